"""Verify the common role on both Molecule hosts."""

from __future__ import annotations

import pytest

JOURNALD = "/etc/systemd/journald.conf.d/50-wlcg-soc.conf"
SITE_CA = "/usr/local/share/ca-certificates/wlcg-soc-molecule-site-ca.crt"


def is_site(host) -> bool:
    return host.backend.get_hostname() == "common-site"


def test_systemd_is_running(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), state
    failed = host.run("systemctl --failed --no-legend --plain").stdout.strip()
    assert failed == "", failed


@pytest.mark.parametrize("pkg", ["ca-certificates", "python3", "iproute2"])
def test_base_packages(host, pkg):
    assert host.package(pkg).is_installed


def test_extra_packages_only_where_asked(host):
    assert host.package("jq").is_installed == is_site(host)


def test_journal_settings(host):
    conf = host.file(JOURNALD)
    assert conf.user == "root" and conf.mode == 0o644
    assert "Ansible managed" in conf.content_string
    want = ("500M", "14day") if is_site(host) else ("2G", "1month")
    assert f"SystemMaxUse={want[0]}" in conf.content_string
    assert f"MaxRetentionSec={want[1]}" in conf.content_string
    assert "Storage=persistent" in conf.content_string
    # journald picked the settings up: persistent storage exists.
    assert host.file("/var/log/journal").is_directory


def test_site_ca_trusted(host):
    if not is_site(host):
        assert not host.file(SITE_CA).exists
        return
    assert host.file(SITE_CA).mode == 0o644
    # The CA is in the system bundle: OpenSSL verifies the CA against the bundle alone.
    res = host.run(f"openssl verify -CAfile /etc/ssl/certs/ca-certificates.crt {SITE_CA}")
    assert res.rc == 0, res.stderr
    assert host.file("/etc/ssl/certs/wlcg-soc-molecule-site-ca.pem").is_symlink


def test_no_time_sync_in_containers(host):
    # The host kernel owns a container's clock: auto mode leaves chrony out.
    assert not host.package("chrony").is_installed
