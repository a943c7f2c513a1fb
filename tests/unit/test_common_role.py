"""The common role's input checks (before any change) and its RedHat-family branch.

Every run here is in check mode on this machine with fake facts, so nothing changes
and the platform can be any we like.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ALMA9, DEBIAN12, ROOT, UNSUPPORTED, assert_platform_refused, checks_play, unsupported_platforms

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


# Stop right after the input checks: the rest would touch this machine's packages.
VALIDATE = checks_play("common")
BAD_INPUT = [
    # The argument spec: choices, types and the CA entries' fields.
    ({"common_time_sync": "sometimes"}, "common_time_sync"),
    ({"common_journal_persistent": "maybe"}, "common_journal_persistent"),
    (
        {"common_ca_certificates": [{"name": "x"}]},
        "missing required arguments: content found in common_ca_certificates",
    ),
    # The checks.
    ({"common_journal_max_use": "lots"}, "common_journal_max_use (lots)"),
]
NOT_PEM = {"common_ca_certificates": [{"name": "site", "content": "hello"}]}
CONTAINER = dict(DEBIAN12, virtualization_role="guest", virtualization_type="podman")
TIME_SYNC = {"common_time_sync": "enabled"}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> tuple[str, str]:
    return leaf_and_ca(tmp_path_factory.mktemp("certificates"))


def ca_entry(name: str, content: str) -> dict:
    return {"common_ca_certificates": [{"name": name, "content": content}]}


@pytest.fixture(scope="module")
def checks(playbook_cases, certificates):
    """Every input-check case below, in two ansible-playbook runs (one host per case): the
    checks alone, and the role, which stops at its checks."""
    leaf, ca = certificates
    return {
        VALIDATE: playbook_cases(VALIDATE, [(DEBIAN12, None), (ALMA9, None), (DEBIAN12, ca_entry("site", ca))]),
        APPLY: playbook_cases(
            APPLY,
            [(dict(DEBIAN12, **platform), None) for platform in UNSUPPORTED.values()]
            + [(DEBIAN12, extra) for extra, _needle in BAD_INPUT]
            + [(DEBIAN12, NOT_PEM), (DEBIAN12, ca_entry("leaf", leaf)), (CONTAINER, TIME_SYNC)],
        ),
    }


@unsupported_platforms
def test_unsupported_platform_fails_first(checks, platform):
    facts = dict(DEBIAN12, **platform)
    assert_platform_refused(checks[APPLY].get(facts), "common", facts, "Install base packages")


@pytest.mark.parametrize("facts", [DEBIAN12, ALMA9], ids=["debian12", "alma9"])
def test_supported_platform_passes_checks(checks, facts):
    res = checks[VALIDATE].get(facts)
    assert res.rc == 0, res.out


@pytest.mark.parametrize(("extra", "needle"), BAD_INPUT)
def test_bad_input_names_the_variable(checks, extra, needle):
    res = checks[APPLY].get(DEBIAN12, extra)
    assert res.rc != 0, res.out
    assert needle in res.out, res.out
    assert "Install base packages" not in res.out


def test_ca_entry_must_be_pem(checks):
    res = checks[APPLY].get(DEBIAN12, NOT_PEM)
    assert res.rc != 0, res.out
    assert "common_ca_certificates entry site" in res.out, res.out


def test_ca_entry_must_be_a_ca(checks, certificates):
    res = checks[APPLY].get(DEBIAN12, ca_entry("leaf", certificates[0]))
    assert res.rc != 0, res.out
    assert "common_ca_certificates entry leaf (CN=leaf) is not a CA certificate" in res.out, res.out


def test_ca_certificate_accepted(checks, certificates):
    res = checks[VALIDATE].get(DEBIAN12, ca_entry("site", certificates[1]))
    assert res.rc == 0, res.out


def test_time_sync_enabled_in_container_refused(checks):
    res = checks[APPLY].get(CONTAINER, TIME_SYNC)
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
