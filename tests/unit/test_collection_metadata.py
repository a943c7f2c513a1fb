"""What the collection declares about itself matches its content: dependencies, handler
names, and the version_added that the changelog tooling reads to announce new content."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers", "block", "rescue", "always")
FQCN = r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z_][a-z0-9_]*"
# Filters, tests and lookups named by FQCN in Jinja.
JINJA_USE = re.compile(rf"(?:\|\s*|\bis\s+(?:not\s+)?|\b(?:lookup|query)\(\s*['\"])({FQCN})")
PYTHON_USE = re.compile(r"\bansible_collections\.([a-z0-9_]+)\.([a-z0-9_]+)\b")
SHIPPED_CONTENT = ("roles", "playbooks", "plugins", "inventories/example-site")


def load(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def walk_tasks(items) -> Iterator[dict]:
    for item in items or []:
        if isinstance(item, dict):
            yield item
            for key in TASK_LISTS:
                yield from walk_tasks(item.get(key))


def task_files() -> Iterator[Path]:
    for role in ROLES:
        for sub in ("tasks", "handlers"):
            yield from sorted((ROOT / "roles" / role / sub).rglob("*.yml"))
    yield from sorted((ROOT / "playbooks").glob("*.yml"))


def used_collections() -> set[str]:
    used: set[str] = set()
    for path in task_files():
        for task in walk_tasks(load(path)):
            used |= {".".join(key.split(".")[:2]) for key in task if re.fullmatch(FQCN, key)}
    for top in SHIPPED_CONTENT:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in {".yml", ".yaml", ".j2"}:
                text = path.read_text(encoding="utf-8")
                used |= {".".join(name.split(".")[:2]) for name in JINJA_USE.findall(text)}
            elif path.suffix == ".py":
                used |= {f"{ns}.{name}" for ns, name in PYTHON_USE.findall(path.read_text(encoding="utf-8"))}
    return used - {"ansible.builtin", "wlcg.soc"}


def test_dependencies_name_every_collection_used():
    used = used_collections()
    galaxy = load(ROOT / "galaxy.yml")["dependencies"]
    requirements = {c["name"]: c["version"] for c in load(ROOT / "requirements.yml")["collections"]}
    assert set(galaxy) == used, f"galaxy.yml dependencies {sorted(galaxy)} vs used {sorted(used)}"
    assert requirements == galaxy, "requirements.yml and galaxy.yml must name the same versions"


def handlers(role: str) -> list[dict]:
    path = ROOT / "roles" / role / "handlers/main.yml"
    return list(walk_tasks(load(path))) if path.is_file() else []


def handler_names(role: str) -> set[str]:
    names = set()
    for handler in handlers(role):
        names.add(handler["name"])
        listen = handler.get("listen") or []
        names |= {listen} if isinstance(listen, str) else set(listen)
    return names


def test_handler_names_are_one_style_and_unique():
    """Imperative, capitalised, and unique across roles: a play that applies two roles
    keeps one handler of each name, so a shared name would run the wrong one."""
    seen: dict[str, str] = {}
    for role in ROLES:
        for name in sorted(handler_names(role)):
            assert re.fullmatch(r"[A-Z][a-z]+ \S.*", name), f"{role}: handler {name!r}"
            assert name not in seen, f"handler {name!r} in both {seen[name]} and {role}"
            seen[name] = role


@pytest.mark.parametrize("role", ROLES)
def test_every_notify_names_a_handler(role):
    known = set().union(*(handler_names(r) for r in ROLES))
    for sub in ("tasks", "handlers"):
        for path in sorted((ROOT / "roles" / role / sub).rglob("*.yml")):
            for task in walk_tasks(load(path)):
                notify = task.get("notify") or []
                for name in [notify] if isinstance(notify, str) else notify:
                    if "{{" not in name:
                        assert name in known, f"{path.relative_to(ROOT)}: notify {name!r} names no handler"


def documentation(path: Path) -> dict:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "DOCUMENTATION" for t in node.targets):
            return yaml.safe_load(ast.literal_eval(node.value))
    return {}


def documented_plugins() -> Iterator[Path]:
    for kind in sorted((ROOT / "plugins").iterdir()):
        if kind.is_dir() and kind.name not in {"module_utils", "doc_fragments", "plugin_utils"}:
            yield from sorted(p for p in kind.iterdir() if p.suffix in {".py", ".yml", ".yaml"})


def test_new_content_carries_version_added():
    """antsibull-changelog lists modules, plugins and roles as new from their version_added."""
    version = str(load(ROOT / "galaxy.yml")["version"])
    missing = []
    for path in documented_plugins():
        if path.suffix == ".py":
            doc = documentation(path)
            if not doc:
                continue  # a filter or test file whose docs are in .yml files beside it
        else:
            doc = (load(path) or {}).get("DOCUMENTATION") or {}
        if not doc.get("version_added"):
            missing.append(str(path.relative_to(ROOT)))
    for role in ROLES:
        specs = load(ROOT / "roles" / role / "meta/argument_specs.yml")["argument_specs"]
        # A role with no main entry point (wlcg.soc.shared) carries it on each of its entry points.
        for name in ["main"] if "main" in specs else sorted(specs):
            if not specs[name].get("version_added"):
                missing.append(f"roles/{role} ({name} entry point)")
    assert not missing, f"no version_added (e.g. {version}): {missing}"
