"""The collection's contracts: playbooks per tier, inventories, role conventions."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

TIERS = [
    "common.yml",
    "threat_intel.yml",
    "sensors.yml",
    "kafka.yml",
    "flows.yml",
    "search.yml",
    "pipelines.yml",
    "dashboards.yml",
    "alerting.yml",
]
GROUPS = {
    "misp_sync",
    "memcached",
    "zeek_sensors",
    "flow_collectors",
    "logstash",
    "elasticsearch",
    "kibana",
    "elastalert",
}
# Optional tiers: declared in the example site, not required in every inventory.
OPTIONAL_GROUPS = {"kafka"}
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())


def load(path: Path):
    return yaml.safe_load(path.read_text())


def inventory(name: str) -> dict:
    out = subprocess.run(
        ["ansible-inventory", "-i", str(ROOT / "inventories" / name), "--list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def test_site_imports_every_tier_in_order():
    site = load(ROOT / "playbooks/site.yml")
    assert [p["ansible.builtin.import_playbook"] for p in site] == TIERS
    for tier in TIERS:
        assert (ROOT / "playbooks" / tier).is_file()


@pytest.mark.parametrize("name", ["lab", "example-site"])
def test_inventory_has_every_group(name):
    inv = inventory(name)
    for group in GROUPS:
        assert inv.get(group, {}).get("hosts"), f"{name}: group {group} has no hosts"


def test_lab_has_three_search_nodes():
    assert len(inventory("lab")["elasticsearch"]["hosts"]) == 3


@pytest.mark.parametrize("tier", TIERS)
def test_tier_targets_known_groups(tier):
    for play in load(ROOT / "playbooks" / tier):
        for pattern in re.split(r"[:,]", play["hosts"]):
            assert pattern == "all" or pattern in GROUPS | OPTIONAL_GROUPS, f"{tier}: unknown group {pattern}"


def test_example_site_declares_the_optional_groups():
    """Declared (and explained there), left empty: a site adds hosts to use the tier."""
    children = inventory("example-site")["all"]["children"]
    for group in OPTIONAL_GROUPS:
        assert group in children, f"example-site: no group {group}"


def test_example_site_secrets_are_vault_placeholders():
    vault = load(ROOT / "inventories/example-site/group_vars/all/vault.yml")
    assert vault
    for key, value in vault.items():
        assert key.startswith("vault_")
        assert str(value).startswith("CHANGE-ME"), key
    # Secrets are used only through their vault_ names.
    for path in (ROOT / "inventories/example-site").rglob("*.yml"):
        if path.name == "vault.yml":
            continue
        for key, value in (load(path) or {}).items():
            if re.search(r"(password|_key|token)$", key):
                assert re.fullmatch(r"\{\{ vault_\w+ \}\}", str(value)), f"{path}: {key}"


@pytest.mark.parametrize("role", ROLES)
def test_role_interface(role):
    """Every default is documented in argument_specs and prefixed with the role name (the options
    of every entry point: wlcg.soc.shared has one per tasks_from file and no main)."""
    base = ROOT / "roles" / role
    entry_points = load(base / "meta/argument_specs.yml")["argument_specs"]
    spec = {name: opt for entry in entry_points.values() for name, opt in entry.get("options", {}).items()}
    defaults = load(base / "defaults/main.yml") or {}
    assert set(defaults) <= set(spec), set(defaults) - set(spec)
    for name in spec:
        assert name.startswith(f"{role}_"), name
        if name in defaults:
            assert spec[name].get("default") == defaults[name], name
    for path in (base / "vars").glob("*.yml"):
        for name in load(path) or {}:
            assert name.startswith(f"__{role}_"), f"{path.name}: {name}"


@pytest.mark.parametrize("role", ROLES)
def test_templates_carry_ansible_managed(role):
    for path in (ROOT / "roles" / role / "templates").rglob("*.j2"):
        if path.parent.name == "api":
            continue  # request bodies for a service's API (JSON), never written to a host
        if path.name.startswith("_"):
            continue  # a part other templates include, never written on its own
        assert "ansible_managed" in path.read_text().splitlines()[0], path
