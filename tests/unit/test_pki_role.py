"""The pki role: its input checks (before any change), its platform check (the shared one), and
a real run on this machine that makes the site CA and a host certificate in temporary
directories, then finds nothing to change on a second run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    ALMA9,
    DEBIAN12,
    FIXTURES,
    UNSUPPORTED,
    assert_platform_refused,
    checks_play,
    unsupported_platforms,
)

APPLY = """
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: wlcg.soc.pki
"""
# Stop right after the input checks.
VALIDATE = checks_play("pki")
FIRST_CHANGE = "Create the CA directory on the controller"
GOOD = {"pki_ca_passphrase": "a-long-ca-passphrase-0123", "pki_dir": "/srv/pki"}


BAD_INPUT = [
    ({"pki_ca_passphrase": ""}, "pki_ca_passphrase"),
    ({"pki_ca_passphrase": "short"}, "pki_ca_passphrase"),
    ({"pki_dir": "pki"}, "pki_dir"),
    # The argument spec: the certificates' fields.
    (
        {"pki_certificates": [{"name": "node", "dest": "/etc/x"}]},
        "missing required arguments: common_name found in pki_certificates",
    ),
    ({"pki_certificates": [{"name": "ca", "dest": "/etc/x", "common_name": "x"}]}, "pki_certificates[0]"),
    (
        {"pki_certificates": [{"name": "node", "dest": "/etc/x", "common_name": "x", "ips": ["es01"]}]},
        "pki_certificates[0]",
    ),
    (
        {
            "pki_certificates": [
                {"name": "node", "dest": "/etc/x", "common_name": "x"},
                {"name": "node", "dest": "/etc/x", "common_name": "y"},
            ]
        },
        "same dest and name",
    ),
]
BAD_IDS = ["empty-passphrase", "short-passphrase", "relative-dir", "no-cn", "named-ca", "bad-ip", "duplicate"]
CERTS = [{"name": "node", "dest": "/etc/x", "common_name": "x", "dns": ["a"], "ips": ["192.0.2.1", "2001:db8::1"]}]


@pytest.fixture(scope="module")
def checks(playbook_cases):
    """Every input-check case below, in two ansible-playbook runs (one host per case): the
    argument spec and the checks alone, and the role, which stops at its checks."""
    return {
        VALIDATE: playbook_cases(
            VALIDATE, [(DEBIAN12, GOOD), (ALMA9, GOOD), (DEBIAN12, dict(GOOD, pki_certificates=CERTS))]
        ),
        APPLY: playbook_cases(
            APPLY,
            [(dict(DEBIAN12, **platform), GOOD) for platform in UNSUPPORTED.values()]
            + [(DEBIAN12, dict(GOOD, **extra)) for extra, _named in BAD_INPUT],
        ),
    }


@pytest.mark.parametrize("facts", [DEBIAN12, ALMA9], ids=["debian12", "alma9"])
def test_defaults_pass_checks(checks, facts):
    res = checks[VALIDATE].get(facts, GOOD)
    assert res.rc == 0, res.out


@unsupported_platforms
def test_unsupported_platform_fails_first(checks, platform):
    facts = dict(DEBIAN12, **platform)
    assert_platform_refused(checks[APPLY].get(facts, GOOD), "pki", facts, FIRST_CHANGE)


@pytest.mark.parametrize(("extra", "named"), BAD_INPUT, ids=BAD_IDS)
def test_bad_input_is_named(checks, extra, named):
    good = {"pki_ca_passphrase": "a-long-ca-passphrase-0123", "pki_dir": "/srv/pki"}
    res = checks[APPLY].get(DEBIAN12, dict(good, **extra))
    assert res.rc != 0, res.out
    assert named in res.out, res.out
    assert FIRST_CHANGE not in res.out, res.out


def test_good_input_passes(checks):
    res = checks[VALIDATE].get(
        DEBIAN12, {"pki_ca_passphrase": "a-long-ca-passphrase-0123", "pki_dir": "/srv/pki", "pki_certificates": CERTS}
    )
    assert res.rc == 0, res.out


def make(playbook, tmp_path: Path, facts: dict, check: bool = False):
    certs = [
        {"name": "node", "dest": str(tmp_path / "certs"), "common_name": "es01.example.org",
         "dns": ["es01", "es01.example.org"], "ips": ["192.0.2.21"]},
    ]  # fmt: skip
    extra = {
        "pki_ca_passphrase": "a-long-ca-passphrase-0123",
        "pki_dir": str(tmp_path / "pki"),
        "pki_certificates": certs,
        # This machine's packages stay as they are: cryptography comes with Ansible.
        "pki_install_dependencies": False,
    }
    return playbook(APPLY, facts, extra, check=check)


@pytest.mark.parametrize("facts", [DEBIAN12, ALMA9], ids=["debian12", "alma9"])
def test_makes_the_ca_and_a_host_certificate_once(playbook, tmp_path, facts):
    res = make(playbook, tmp_path, facts)
    assert res.rc == 0, res.out
    ca, crt, key = tmp_path / "pki/ca.crt", tmp_path / "certs/node.crt", tmp_path / "certs/node.key"
    assert (tmp_path / "pki/ca.key").stat().st_mode & 0o077 == 0
    assert key.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "certs/ca.crt").read_text() == ca.read_text()
    verify = subprocess.run(["openssl", "verify", "-CAfile", ca, crt], capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    text = subprocess.run(
        ["openssl", "x509", "-in", crt, "-noout", "-text"], capture_output=True, text=True, check=True
    )
    assert "DNS:es01.example.org" in text.stdout and "IP Address:192.0.2.21" in text.stdout
    assert "BEGIN" not in res.out, "key or certificate material in the output"
    again = make(playbook, tmp_path, facts)
    assert again.rc == 0, again.out
    assert "changed=0" in again.out, again.out
    # Check mode on the converged state predicts no change either.
    checked = make(playbook, tmp_path, facts, check=True)
    assert checked.rc == 0 and "changed=0" in checked.out, checked.out


def run_in_inventory(
    tmp_path: Path, collections_path: str, play: str, extra: dict, rc: int = 0, old_ca: bool = False
) -> tuple[str, Path]:
    """Run `play` against a site inventory (inventories/site-a/hosts.yml, localhost only) as
    the controller user whose home is tmp_path/home; returns the output and the inventory's
    directory."""
    inventory = tmp_path / "inventories/site-a"
    inventory.mkdir(parents=True)
    if old_ca:  # a CA under the former default, <inventory>/pki
        (inventory / "pki").mkdir()
        (inventory / "pki/ca.key").write_text("encrypted key")
        (inventory / "pki/ca.crt").write_text("certificate")
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (inventory / "hosts.yml").write_text(json.dumps({"all": {"hosts": {"localhost": local}}}))
    (tmp_path / "play.yml").write_text(play)
    env = {k: v for k, v in os.environ.items() if k != "XDG_DATA_HOME"}
    env.update(
        HOME=str(tmp_path / "home"),
        ANSIBLE_COLLECTIONS_PATH=collections_path,
        ANSIBLE_LIBRARY=str(FIXTURES / "library"),
        ANSIBLE_FACTS_MODULES="fake_facts",
        WLCG_SOC_FAKE_FACTS=json.dumps(DEBIAN12),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
    )
    cmd = ["ansible-playbook", "-i", str(inventory / "hosts.yml"), "play.yml", "--check", "-e", json.dumps(extra)]
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    out = res.stdout + res.stderr
    assert res.returncode == rc, out
    return out, inventory


def test_default_pki_dir_is_outside_the_inventory(tmp_path, collections_path):
    """The CA's key would be committed with an inventory that holds it: the default is the
    controller user's data directory, one per inventory, named after it."""
    play = f"""
- hosts: localhost
  gather_facts: false
  vars_files:
    - {Path(__file__).resolve().parents[2]}/roles/pki/defaults/main.yml
  tasks:
    - ansible.builtin.debug:
        msg: "pki_dir=[{{{{ pki_dir }}}}]"
"""
    out, inventory = run_in_inventory(tmp_path, collections_path, play, {})
    resolved = out.split("pki_dir=[", 1)[1].split("]", 1)[0]
    assert resolved == str(tmp_path / "home/.local/share/wlcg-soc/pki/site-a"), out
    assert not Path(resolved).resolve().is_relative_to(inventory.resolve())


@pytest.mark.parametrize(
    ("pki_dir", "warned"),
    [
        ("{{ inventory_dir }}/pki", True),
        ("{{ inventory_dir }}/./group_vars/../pki", True),
        # The lab's: beside the repository's inventories, not in one.
        ("{{ inventory_dir }}/../../.lab/pki", False),
        (None, False),
    ],
    ids=["in-inventory", "in-inventory-indirect", "lab", "default"],
)
def test_pki_dir_inside_the_inventory_warns(tmp_path, collections_path, pki_dir, warned):
    extra = {"pki_ca_passphrase": "a-long-ca-passphrase-0123"} | ({"pki_dir": pki_dir} if pki_dir else {})
    out, inventory = run_in_inventory(tmp_path, collections_path, checks_play("pki"), extra)
    warning = f"[WARNING] pki_dir ({inventory}/"
    assert (warning in out) is warned, out
    if warned:
        assert "the site CA's key would be committed with it" in out, out


def test_a_ca_under_the_former_default_is_not_replaced_unnoticed(tmp_path, collections_path):
    extra = {"pki_ca_passphrase": "a-long-ca-passphrase-0123"}
    out, inventory = run_in_inventory(tmp_path, collections_path, APPLY, extra, rc=2, old_ca=True)
    assert f"but {inventory}/pki (the former default) has one: move its ca.key and ca.crt to pki_dir" in out, out
    assert FIRST_CHANGE not in out, out
    assert not (tmp_path / "home/.local/share/wlcg-soc").exists()
