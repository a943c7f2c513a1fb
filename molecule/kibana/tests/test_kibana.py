"""Verify the kibana role on kibana-server: repository, package, TLS, settings, hardened
service, the status API and the dashboards the role pushed (through the stand-in)."""

from __future__ import annotations

import pytest
import testinfra
import yaml
from conftest import api_get

CONF = "/etc/kibana/kibana.yml"
CERTS = "/etc/kibana/certs"
DROPIN = "/etc/systemd/system/kibana.service.d/50-wlcg-soc.conf"
SOURCES = "/etc/apt/sources.list.d/wlcg-soc-kibana.sources"
KEYRING = "/etc/apt/keyrings/wlcg-soc-kibana.asc"
URL = "https://kibana-server:5601"
USER = ("elastic", "molecule-elastic-Passw0rd")


@pytest.fixture(scope="module")
def server():
    return testinfra.get_host("podman://kibana-server")


@pytest.fixture(scope="module")
def pid(server) -> int:
    return int(server.check_output("systemctl show -p MainPID --value kibana"))


def api(server, path: str) -> dict:
    """GET an API path from the host itself, TLS verified with the site CA."""
    return api_get(server, URL + path, f"{CERTS}/ca.crt", *USER)


def test_systemd_is_running(server):
    state = server.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), state
    failed = server.run("systemctl --failed --no-legend --plain").stdout.strip()
    assert failed == "", failed


def test_repository_with_its_keyring(server):
    sources = server.file(SOURCES)
    assert sources.exists and (sources.user, sources.mode) == ("root", 0o644)
    fields = dict(line.split(": ", 1) for line in sources.content_string.splitlines() if ": " in line)
    assert fields["URIs"] == "http://127.0.0.1:8080"
    assert fields["Suites"] == "stable" and fields["Components"] == "main"
    assert fields["Signed-By"] == KEYRING
    keyring = server.file(KEYRING)
    assert (keyring.user, keyring.group, keyring.mode) == ("root", "root", 0o644)
    assert keyring.content_string.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_package_at_the_pinned_version(server):
    pkg = server.package("kibana")
    assert pkg.is_installed and pkg.version == "8.15.0"
    # Held there, so that a routine upgrade does not move it.
    assert server.run("dpkg --get-selections kibana").stdout.split() == ["kibana", "hold"]
    assert server.user("kibana").shell == "/usr/sbin/nologin"


def test_settings_file(server):
    conf = server.file(CONF)
    assert (conf.user, conf.group, conf.mode) == ("root", "kibana", 0o640)
    text = conf.content_string
    assert "# Ansible managed" in text.splitlines()[:3]
    s = yaml.safe_load(text)
    assert s["server.host"] == "0.0.0.0"  # noqa: S104
    assert s["server.port"] == 5601
    assert s["server.publicBaseUrl"].startswith("https://") and s["server.publicBaseUrl"].endswith(":5601")
    assert s["server.ssl.enabled"] is True
    assert s["server.ssl.certificate"] == f"{CERTS}/kibana.crt"
    assert s["server.ssl.key"] == f"{CERTS}/kibana.key"
    assert s["elasticsearch.hosts"] == ["https://search-1.invalid:9200", "https://search-2.invalid:9200"]
    assert s["elasticsearch.ssl.certificateAuthorities"] == [f"{CERTS}/ca.crt"]
    assert s["elasticsearch.ssl.verificationMode"] == "full"
    assert s["elasticsearch.serviceAccountToken"] == "AAEAAWVsYXN0aWMva2liYW5hL21vbGVjdWxlOnRlc3Q"
    for key in ("xpack.encryptedSavedObjects", "xpack.security", "xpack.reporting"):
        assert len(s[f"{key}.encryptionKey"]) >= 32
    assert s["logging.root.level"] == "warn"


def test_tls_files(server):
    certs = server.file(CERTS)
    assert (certs.user, certs.group, certs.mode) == ("root", "kibana", 0o750)
    key = server.file(f"{CERTS}/kibana.key")
    assert (key.user, key.group, key.mode) == ("root", "kibana", 0o640)
    for name in ("kibana.crt", "ca.crt"):
        cert = server.file(f"{CERTS}/{name}")
        assert cert.mode == 0o644 and cert.content_string.startswith("-----BEGIN CERTIFICATE-----")
    # Signed by the site CA, for the host's names.
    out = server.check_output(f"openssl verify -CAfile {CERTS}/ca.crt {CERTS}/kibana.crt")
    assert out.endswith(": OK")
    text = server.check_output(f"openssl x509 -noout -ext subjectAltName -in {CERTS}/kibana.crt")
    assert "DNS:kibana-server" in text


def test_service_runs_unprivileged(server, pid):
    svc = server.service("kibana")
    assert svc.is_running and svc.is_enabled
    assert server.check_output(f"ps -o user= -p {pid}") == "kibana"
    lines = server.file(f"/proc/{pid}/status").content_string.splitlines()
    status = {k: v.strip() for k, v in (line.split(":", 1) for line in lines)}
    assert status["CapEff"] == status["CapPrm"] == status["CapBnd"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1"


def test_hardening_configured(server):
    dropin = server.file(DROPIN)
    assert (dropin.user, dropin.group, dropin.mode) == ("root", "root", 0o644)
    assert "# Ansible managed" in dropin.content_string.splitlines()[:3]
    want = {
        "User": "kibana",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
        "MemoryDenyWriteExecute": "no",
        "UMask": "0027",
    }
    props = ",".join([*want, "ReadWritePaths", "RestrictAddressFamilies"])
    out = server.check_output(f"systemctl show kibana -p {props}")
    got = dict(line.split("=", 1) for line in out.splitlines())
    assert {k: got[k] for k in want} == want
    assert set(got["ReadWritePaths"].split()) == {"-/var/lib/kibana", "-/var/log/kibana", "-/run/kibana"}
    assert set(got["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}


def test_sandbox_in_effect(server, pid):
    """The service's own mount namespace: read-only system, writable data and runtime dirs."""
    mounts = {}
    for line in server.file(f"/proc/{pid}/mountinfo").content_string.splitlines():
        fields = line.split()
        mounts[fields[4]] = fields[5].split(",")
    assert "ro" in mounts["/"], mounts["/"]
    assert "rw" in mounts["/var/lib/kibana"]
    # What the service wrote there: Kibana's uuid and its pid file.
    assert server.file("/var/lib/kibana/uuid").user == "kibana"
    assert server.file("/run/kibana/kibana.pid").content_string.strip() == str(pid)


def test_status_api_over_tls(server):
    status = api(server, "/api/status")
    assert status["status"]["overall"]["level"] == "available"


def test_dashboards_and_data_views_pushed(server):
    for dashboard in ("zeek-overview", "flows-overview", "misp-overview", "capture-loss-overview"):
        obj = api(server, f"/api/saved_objects/dashboard/wlcg-soc-{dashboard}")
        assert obj["attributes"]["title"].startswith("WLCG SOC - "), obj
    views = api(server, "/api/data_views")["data_view"]
    assert {v["id"]: v["title"] for v in views} == {
        "wlcg-soc-zeek": "zeek-*",
        "wlcg-soc-flows": "flows-*",
        "wlcg-soc-alerts": "alerts-*",
    }
