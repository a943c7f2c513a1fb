"""Each role's README.md is the one tests/role_readme.py makes of its argument specs."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

_spec = importlib.util.spec_from_file_location("role_readme", ROOT / "tests/role_readme.py")
assert _spec and _spec.loader
role_readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(role_readme)

ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("role", ROLES)
def test_readme_is_current(role):
    readme = ROOT / "roles" / role / "README.md"
    assert readme.is_file(), f"roles/{role}/README.md is missing: run `make readmes`"
    expected = role_readme.render(ROOT / "roles" / role)
    assert readme.read_text(encoding="utf-8") == expected, (
        f"roles/{role}/README.md is out of date with its meta/argument_specs.yml: run `make readmes`"
    )


@pytest.mark.parametrize("role", ROLES)
def test_readme_documents_every_variable(role):
    text = (ROOT / "roles" / role / "README.md").read_text(encoding="utf-8")
    specs = role_readme.argument_specs(ROOT / "roles" / role)
    for entry, spec in specs.items():
        if len(specs) > 1:
            assert f"## Entry point `{entry}`" in text
        for name in (spec or {}).get("options") or {}:
            assert f"| `{name}` |" in text, f"{role}: {name}"


def write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """A small collection with one role of several entry points, applied by a playbook."""
    write(tmp_path / "galaxy.yml", {"namespace": "acme", "name": "site", "version": "1.0.0"})
    write(
        tmp_path / "playbooks/web.yml",
        textwrap.dedent(
            """\
            ---
            - name: Front
              hosts: web
              roles:
                - role: acme.site.thing
            - name: Back
              hosts: db:cache
              tasks:
                - name: Extra part
                  ansible.builtin.include_role:
                    name: acme.site.thing
                    tasks_from: extra
            """
        ),
    )
    role = tmp_path / "roles/thing"
    write(
        role / "meta/main.yml",
        {
            "galaxy_info": {
                "author": "Acme",
                "license": "MIT",
                "min_ansible_version": "2.16",
                "platforms": [{"name": "Debian", "versions": ["bookworm"]}],
            }
        },
    )
    write(
        role / "meta/argument_specs.yml",
        {
            "argument_specs": {
                "extra": {
                    "short_description": "The extra part",
                    "description": ["Does I(more) with O(thing_items[].path)."],
                    "options": {},
                },
                "main": {
                    "short_description": "A thing with C(pipes | and) stars*",
                    "description": ["First paragraph, see U(https://example.org).", "Second B(one)."],
                    "mutually_exclusive": [["thing_a", "thing_b"]],
                    "options": {
                        "thing_a": {"type": "str", "required": True, "description": "The a | b."},
                        "thing_b": {
                            "type": "str",
                            "default": "{{ groups['x'] | default([]) }}",
                            "choices": ["x", "y"],
                            "description": "Set O(thing_a=x) or V(y).",
                        },
                        "thing_items": {
                            "type": "list",
                            "elements": "dict",
                            "default": [],
                            "description": "Items.",
                            "options": {
                                "path": {"type": "path", "required": True, "description": "Where."},
                                "opts": {
                                    "type": "dict",
                                    "description": "More.",
                                    "options": {"mode": {"type": "str", "default": "0640", "description": "Mode."}},
                                },
                            },
                        },
                        "thing_big": {
                            "type": "list",
                            "elements": "str",
                            "default": [f"value-{n}" for n in range(12)],
                            "description": "Long default.",
                        },
                    },
                },
            }
        },
    )
    return tmp_path


def test_render_any_role(collection: Path):
    text = role_readme.render(collection / "roles/thing", collection)
    assert text.startswith("# acme.site.thing\n")
    # main first, then the others; each one's variables in a table
    assert text.index("## Entry point `main`") < text.index("## Entry point `extra`")
    assert "- `extra` (`tasks_from: extra`): The extra part" in text
    assert "| `thing_a` | str |  | yes |  | The a \\| b. |" in text
    # a default with a pipe is spelled in HTML so that it stays in its table cell
    assert "<code>{{ groups['x'] &#124; default([]) }}</code>" in text
    assert "| `x`, `y` |" in text
    assert "Set `thing_a=x` or `y`." in text
    assert "\n### Options of `thing_items[]`" not in text  # sub-options sit one level below
    assert "#### Options of `thing_items[]`" in text
    assert "##### Options of `thing_items[].opts`" in text
    assert "| `mode` | str | `0640` |" in text
    assert "Default of `thing_big`:" in text and "- value-11" in text
    assert "- Only one of `thing_a`, `thing_b`." in text
    assert "Does *more* with `thing_items[].path`." in text
    assert "<https://example.org>" in text
    assert "| Debian | bookworm |" in text
    # the examples: the playbooks' groups, the FQCN, tasks_from for the other entry point
    assert "  hosts: web\n  become: true\n  roles:\n    - role: acme.site.thing\n" in text
    assert "        name: acme.site.thing\n        tasks_from: extra\n" in text
    assert "  hosts: db:cache\n" in text
    assert "`thing_a` has no default: set it in the inventory" in text
    assert "- `acme.site.web` applies the `extra` entry point to `db:cache`." in text
    assert "Authors: Acme." in text and "License: MIT." in text
    # every YAML block of the README parses
    for block in text.split("```yaml\n")[1:]:
        yaml.safe_load(block.split("```", 1)[0])


def test_render_role_without_specs(collection: Path):
    bare = collection / "roles/bare"
    write(bare / "tasks/main.yml", "---\n[]\n")
    text = role_readme.render(bare, collection)
    assert "This role takes no variables." in text
    assert "  hosts: all\n" in text
    assert "Every platform the collection supports." in text


def test_check_lists_stale_readmes(collection: Path):
    stale = role_readme.stale(collection)
    assert stale == [collection / "roles/thing/README.md"]
    stale[0].write_text(role_readme.render(collection / "roles/thing", collection))
    assert role_readme.stale(collection) == []
