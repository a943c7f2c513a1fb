"""The common role's input checks (before any change) and its RedHat-family branch.

Every run here is in check mode on this machine with fake facts, so nothing changes
and the platform can be any we like.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ALMA9, DEBIAN12, ROOT, assert_platform_refused, unsupported_platforms

ROLE = ROOT / "roles/common"

APPLY = """
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: wlcg.soc.common
"""


def leaf_and_ca(tmp_path: Path) -> tuple[str, str]:
    """A self-signed CA and a leaf certificate, made with openssl."""

    def mk(name: str, ext: str) -> str:
        key, crt = tmp_path / f"{name}.key", tmp_path / f"{name}.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", f"/CN={name}",
             "-addext", ext],
            check=True, capture_output=True,
        )  # fmt: skip
        return crt.read_text()

    return mk("leaf", "basicConstraints=critical,CA:FALSE"), mk("ca", "basicConstraints=critical,CA:TRUE")


@unsupported_platforms
def test_unsupported_platform_fails_first(playbook, platform):
    facts = dict(DEBIAN12, **platform)
    assert_platform_refused(playbook(APPLY, facts), "common", facts, "Install base packages")


@pytest.mark.parametrize("facts", [DEBIAN12, ALMA9], ids=["debian12", "alma9"])
def test_supported_platform_passes_checks(playbook, facts):
    # Stop right after the input checks: the rest would touch this machine's packages.
    text = """
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: wlcg.soc.common
        tasks_from: validate.yml
"""
    res = playbook(text, facts)
    assert res.rc == 0, res.out


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"common_time_sync": "sometimes"}, "common_time_sync"),
        ({"common_journal_persistent": "maybe"}, "common_journal_persistent"),
        ({"common_ca_certificates": [{"name": "x"}]}, "content"),
        ({"common_journal_max_use": "lots"}, "common_journal_max_use (lots)"),
    ],
)
def test_bad_input_names_the_variable(playbook, extra, needle):
    res = playbook(APPLY, DEBIAN12, extra)
    assert res.rc != 0, res.out
    assert needle in res.out, res.out
    assert "Install base packages" not in res.out


def test_ca_entry_must_be_pem(playbook):
    res = playbook(APPLY, DEBIAN12, {"common_ca_certificates": [{"name": "site", "content": "hello"}]})
    assert res.rc != 0, res.out
    assert "common_ca_certificates entry site" in res.out, res.out


def test_ca_entry_must_be_a_ca(playbook, tmp_path):
    leaf = leaf_and_ca(tmp_path)[0]
    res = playbook(APPLY, DEBIAN12, {"common_ca_certificates": [{"name": "leaf", "content": leaf}]})
    assert res.rc != 0, res.out
    assert "common_ca_certificates entry leaf (CN=leaf) is not a CA certificate" in res.out, res.out


def test_ca_certificate_accepted(playbook, tmp_path):
    ca = leaf_and_ca(tmp_path)[1]
    text = APPLY.replace("name: wlcg.soc.common", "name: wlcg.soc.common\n        tasks_from: validate.yml")
    res = playbook(text, DEBIAN12, {"common_ca_certificates": [{"name": "site", "content": ca}]})
    assert res.rc == 0, res.out


def test_time_sync_enabled_in_container_refused(playbook):
    facts = dict(DEBIAN12, virtualization_role="guest", virtualization_type="podman")
    res = playbook(APPLY, facts, {"common_time_sync": "enabled"})
    assert res.rc != 0, res.out
    assert "common_time_sync is 'enabled' but this host is a container (podman)" in res.out, res.out


def test_family_vars_define_the_same_keys():
    debian = yaml.safe_load((ROLE / "vars/Debian.yml").read_text())
    redhat = yaml.safe_load((ROLE / "vars/RedHat.yml").read_text())
    assert debian.keys() == redhat.keys()


def test_redhat_branch_renders(playbook, tmp_path):
    """Render the role's templates with the RedHat-family settings."""
    text = f"""
- hosts: localhost
  gather_facts: true
  vars_files:
    - {ROLE}/defaults/main.yml
    - {ROLE}/vars/main.yml
    - {ROLE}/vars/RedHat.yml
  tasks:
    - wlcg_soc_render:
        src: "{ROLE}/templates/{{{{ item }}}}.j2"
        dest: "{tmp_path}/{{{{ item }}}}"
        mode: "0644"
      loop: [chrony.conf, journald.conf]
"""
    res = playbook(text, ALMA9, {"common_ntp_servers": ["ntp1.example.org", "ntp2.example.org"]}, check=False)
    assert res.rc == 0, res.out
    chrony = (tmp_path / "chrony.conf").read_text()
    assert chrony.startswith("#")
    assert "Ansible managed" in chrony
    assert "server ntp1.example.org iburst\nserver ntp2.example.org iburst\n" in chrony
    assert "driftfile /var/lib/chrony/drift\n" in chrony
    assert "keyfile /etc/chrony.keys\n" in chrony
    assert "pool " not in chrony
    journald = (tmp_path / "journald.conf").read_text()
    assert "[Journal]\nStorage=persistent\nSystemMaxUse=2G\nMaxRetentionSec=1month\n" in journald
