"""Verify the kibana role with kibana_engine opensearch on dashboards-server: the
opensearch-dashboards package from the mirror, held at its pin, the Dashboards settings,
the service as the vendor's unit runs it with the role's hardening, the status API and the
index patterns and dashboards the role pushed (through the stand-in)."""

from __future__ import annotations

import pytest
import testinfra
import yaml
from conftest import api_get

NAME = "opensearch-dashboards"
CONF = f"/etc/{NAME}/opensearch_dashboards.yml"
CERTS = f"/etc/{NAME}/certs"
URL = "https://dashboards-server:5601"
USER = ("admin", "molecule-admin-Passw0rd")


@pytest.fixture(scope="module")
def server():
    return testinfra.get_host("podman://dashboards-server")


def api(server, path: str) -> dict:
    """GET an API path from the host itself, TLS verified with the site CA."""
    return api_get(server, URL + path, f"{CERTS}/ca.crt", *USER)


def test_systemd_is_running(server):
    failed = server.run("systemctl --failed --no-legend --plain").stdout.strip()
    assert failed == "", failed


def test_package_at_the_pinned_version_and_held(server):
    pkg = server.package(NAME)
    assert pkg.is_installed and pkg.version == "2.19.4"
    assert server.run(f"dpkg --get-selections {NAME}").stdout.split() == [NAME, "hold"]
    assert not server.package("kibana").is_installed
    sources = server.file(f"/etc/apt/sources.list.d/wlcg-soc-{NAME}.sources").content_string.splitlines()
    assert "URIs: http://127.0.0.1:8080" in sources and "Suites: stable" in sources


def test_settings_file(server):
    conf = server.file(CONF)
    assert (conf.user, conf.group, conf.mode) == ("root", NAME, 0o640)
    text = conf.content_string
    assert "# Ansible managed" in text.splitlines()[:3]
    s = yaml.safe_load(text)
    assert s["server.ssl.enabled"] is True
    assert s["server.ssl.certificate"] == f"{CERTS}/{NAME}.crt"
    assert s["opensearch.hosts"] == ["https://search-1.invalid:9200", "https://search-2.invalid:9200"]
    assert s["opensearch.ssl.certificateAuthorities"] == [f"{CERTS}/ca.crt"]
    assert s["opensearch.ssl.verificationMode"] == "full"
    assert (s["opensearch.username"], s["opensearch.password"]) == ("kibanaserver", "molecule-kibanaserver-secret-0123")
    assert s["opensearch_security.auth.type"] == "basicauth"
    assert s["opensearch_security.cookie.secure"] is True
    assert len(s["opensearch_security.cookie.password"]) >= 32
    # Nothing of Kibana's.
    assert not [key for key in s if key.startswith(("elasticsearch.", "xpack."))]
    out = server.check_output(f"openssl verify -CAfile {CERTS}/ca.crt {CERTS}/{NAME}.crt")
    assert out.endswith(": OK")


def test_service_as_the_vendor_unit_runs_it_hardened(server):
    svc = server.service(NAME)
    assert svc.is_running and svc.is_enabled
    pid = int(server.check_output(f"systemctl show -p MainPID --value {NAME}"))
    assert server.check_output(f"ps -o user= -p {pid}") == NAME
    # The settings directory comes from the package's /etc/default file, through the unit.
    environ = server.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ").splitlines()
    assert f"OSD_PATH_CONF=/etc/{NAME}" in environ
    props = "User,NoNewPrivileges,ProtectSystem,CapabilityBoundingSet,ReadWritePaths,FragmentPath"
    got = dict(line.split("=", 1) for line in server.check_output(f"systemctl show {NAME} -p {props}").splitlines())
    assert got["FragmentPath"] == f"/etc/systemd/system/{NAME}.service"
    assert (got["User"], got["NoNewPrivileges"], got["ProtectSystem"]) == (NAME, "yes", "full")
    assert got["CapabilityBoundingSet"] == ""
    assert set(got["ReadWritePaths"].split()) == {f"-/var/lib/{NAME}", f"-/var/log/{NAME}", f"-/run/{NAME}"}
    assert server.file(f"/var/lib/{NAME}/uuid").user == NAME


def test_status_api_over_tls(server):
    assert api(server, "/api/status")["status"]["overall"]["state"] == "green"


def test_index_patterns_and_dashboards_pushed(server):
    for dashboard in ("zeek-overview", "flows-overview", "misp-overview", "capture-loss-overview"):
        obj = api(server, f"/api/saved_objects/dashboard/wlcg-soc-{dashboard}")
        assert obj["attributes"]["title"].startswith("WLCG SOC - "), obj
    found = api(server, "/api/saved_objects/_find?type=index-pattern&per_page=100")["saved_objects"]
    assert {o["id"]: o["attributes"]["title"] for o in found} == {
        "wlcg-soc-zeek": "zeek-*",
        "wlcg-soc-flows": "flows-*",
        "wlcg-soc-alerts": "alerts-*",
    }
