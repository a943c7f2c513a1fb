"""The misp_sync role's input checks (before any change), its platform check (the shared one,
for the sync host and the sensors' receiver entry point), and its RedHat-family branch.

Every run here is in check mode on this machine with fake facts, or renders the role's
templates into a temporary directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import (
    ALMA9,
    DEBIAN12,
    ROOT,
    UNSUPPORTED,
    assert_platform_refused,
    checks_play,
    role_play,
    template_task,
    unsupported_platforms,
)

ROLE = ROOT / "roles/misp_sync"

GOOD = {
    "misp_sync_url": "https://misp.example.org",
    "misp_sync_key": "k" * 40,
    "misp_sync_memcached_servers": ["192.0.2.10:11211", "[2001:db8::10]:11211"],
    "misp_sync_sensors": [],
}
APPLY = """
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: wlcg.soc.misp_sync
"""
# Stop right after the input checks: the rest would touch this machine's packages.
VALIDATE = checks_play("misp_sync")
RECEIVER = APPLY + "        tasks_from: receiver\n"
FIRST_CHANGE = "Install the packages"
RECEIVER_FIRST_CHANGE = "Install SSH and Python"


BAD_INPUT = [
    ({"misp_sync_url": "misp.example.org"}, "misp_sync_url must be the MISP base URL"),
    ({"misp_sync_key": ""}, "not empty and not a CHANGE-ME placeholder"),
    ({"misp_sync_key": "CHANGE-ME-please"}, "not empty and not a CHANGE-ME placeholder"),
    ({"misp_sync_interval_minutes": 0}, "misp_sync_interval_minutes (0)"),
    ({"misp_sync_memcached_ttl": 60}, "misp_sync_memcached_ttl (60) longer than one interval"),
    ({"misp_sync_publish_window": "a month"}, "misp_sync_publish_window (a month)"),
    ({"misp_sync_memcached_servers": ["memcached01"]}, "misp_sync_memcached_servers entry memcached01"),
    ({"misp_sync_sensors": ["nosuchsensor"]}, "misp_sync_sensors entry nosuchsensor is not a host"),
    ({"misp_sync_min_prefix_ipv4": 33}, "misp_sync_min_prefix_ipv4 (33) must be 0-32"),
    ({"misp_sync_max_drop": 1}, "misp_sync_max_drop (1) a fraction"),
    ({"misp_sync_memory_max": "lots"}, "misp_sync_memory_max (lots) a systemd size"),
]
BAD_IDS = [
    "url",
    "empty-key",
    "placeholder-key",
    "interval",
    "ttl",
    "window",
    "memcached",
    "sensor",
    "prefix",
    "drop",
    "memory",
]


@pytest.fixture(scope="module")
def checks(playbook_cases):
    """Every input-check case below, in three ansible-playbook runs (one host per case): the
    checks alone, the role, and its receiver entry point, which stop at their checks."""
    unsupported = [(dict(DEBIAN12, **platform), GOOD) for platform in UNSUPPORTED.values()]
    return {
        VALIDATE: playbook_cases(VALIDATE, [(DEBIAN12, GOOD), (ALMA9, GOOD)]),
        APPLY: playbook_cases(APPLY, unsupported + [(DEBIAN12, dict(GOOD, **extra)) for extra, _needle in BAD_INPUT]),
        RECEIVER: playbook_cases(RECEIVER, unsupported),
    }


@pytest.mark.parametrize("facts", [DEBIAN12, ALMA9], ids=["debian12", "alma9"])
def test_good_input_passes_checks(checks, facts):
    res = checks[VALIDATE].get(facts, GOOD)
    assert res.rc == 0, res.out


@unsupported_platforms
def test_unsupported_platform_fails_first(checks, platform):
    facts = dict(DEBIAN12, **platform)
    assert_platform_refused(checks[APPLY].get(facts, GOOD), "misp_sync", facts, FIRST_CHANGE)


@unsupported_platforms
def test_receiver_refuses_unsupported_platform_first(checks, platform):
    facts = dict(DEBIAN12, **platform)
    assert_platform_refused(checks[RECEIVER].get(facts, GOOD), "misp_sync", facts, RECEIVER_FIRST_CHANGE)


@pytest.mark.parametrize(("extra", "needle"), BAD_INPUT, ids=BAD_IDS)
def test_bad_input_names_the_variable(checks, extra, needle):
    res = checks[APPLY].get(DEBIAN12, dict(GOOD, **extra))
    assert res.rc != 0, res.out
    assert needle in res.out, res.out
    assert FIRST_CHANGE not in res.out, res.out


def test_the_key_stays_out_of_the_output(playbook):
    key = "s3cr3t-automation-key-0123456789abcdef"
    res = playbook(APPLY, DEBIAN12, dict(GOOD, misp_sync_key=key + " with a space"))
    assert res.rc != 0, res.out
    assert key not in res.out, res.out


def test_family_vars_define_the_same_keys():
    debian = yaml.safe_load((ROLE / "vars/Debian.yml").read_text())
    redhat = yaml.safe_load((ROLE / "vars/RedHat.yml").read_text())
    assert debian.keys() == redhat.keys()


TEMPLATES = {"misp-sync.json": "misp-sync.json.j2", "misp-sync.service": "misp-sync.service.j2"}


def render(playbook, tmp_path: Path, family: str, facts: dict, extra: dict) -> dict[str, str]:
    text = role_play(ROLE, family, template_task(ROLE, tmp_path, {src: dest for dest, src in TEMPLATES.items()}))
    res = playbook(text, facts, dict(GOOD, **extra), check=False)
    assert res.rc == 0, res.out
    return {name: (tmp_path / name).read_text() for name in TEMPLATES}


def test_redhat_branch_renders(playbook, tmp_path):
    out = render(playbook, tmp_path, "RedHat", ALMA9, {})
    config = json.loads(out["misp-sync.json"])
    assert "Ansible managed" in config["_comment"]
    # EL's CA bundle verifies the MISP server.
    assert config["validate_certs"] is True
    assert config["ca_path"] == "/etc/pki/tls/certs/ca-bundle.crt"
    assert config["misp_url"] == GOOD["misp_sync_url"]
    assert config["misp_key_file"] == "-"
    assert config["memcached_servers"] == GOOD["misp_sync_memcached_servers"]
    # No filter set: the sync client's own defaults (TLP:RED left out) apply.
    assert config["filters"] == {}
    unit = out["misp-sync.service"]
    assert "# Ansible managed" in unit.splitlines()[:3]
    assert "\nUser=misp-sync\n" in unit
    assert "\nStandardInput=file:/etc/wlcg-soc/misp-sync.key\n" in unit
    assert "\nExecStart=/opt/wlcg-soc/misp-sync/venv/bin/python -m wlcg_soc_misp_sync " in unit


def test_debian_branch_uses_the_debian_ca_bundle(playbook, tmp_path):
    out = render(playbook, tmp_path, "Debian", DEBIAN12, {})
    config = json.loads(out["misp-sync.json"])
    assert config["ca_path"] == "/etc/ssl/certs/ca-certificates.crt"
