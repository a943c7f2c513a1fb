"""The threat-intel tier on five hosts: MISP double -> two sync hosts -> memcached + sensor."""

from __future__ import annotations

import json
import time

import pytest

STATUS = "/var/lib/wlcg-soc/misp-sync/status.json"
INTEL = "/var/lib/wlcg-soc/misp-sync/intel/misp.intel"
SENSOR_INTEL = "/var/lib/wlcg-soc/intel/misp.intel"
VENV_PY = "/opt/wlcg-soc/misp-sync/venv/bin/python"


def wait_for_status(host, timeout: float = 180) -> dict:
    """The timer's first run (5 s after converge) writes the status file."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.file(STATUS).exists:
            status = json.loads(host.file(STATUS).content_string)
            if status.get("last_success"):
                return status
        time.sleep(2)
    journal = host.run("journalctl -u misp-sync.service --no-pager -n 50").stdout
    pytest.fail(f"no successful sync within {timeout}s:\n{journal}")


@pytest.fixture(scope="module")
def status(host):
    return wait_for_status(host.get_host("podman://misp-sync"))


@pytest.mark.hosts("misp-sync")
def test_timer_fired_and_sync_succeeded(host, status):
    assert host.service("misp-sync.timer").is_enabled
    assert host.service("misp-sync.timer").is_running
    assert status["last_error"] is None
    assert status["intel_rows"] > 300
    assert status["intel"]["Intel::ADDR"] > 0 and status["intel"]["Intel::DOMAIN"] > 0
    assert status["memcached_keys"] > 0
    assert status["push"] == {"misp-sensor": "updated"} or status["push"] == {"misp-sensor": "unchanged"}


@pytest.mark.hosts("misp-sync")
def test_intel_file_content(host, status):
    intel = host.file(INTEL)
    assert intel.user == "misp-sync" and intel.mode == 0o644
    text = intel.content_string
    assert text.startswith("#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url\tmeta.do_notice\n")
    assert "gugehotel.cn\tIntel::DOMAIN\tCENTRAL MISP (" in text
    assert "https://misp-central:8443/events/view/" in text


@pytest.mark.hosts("misp-sensor")
def test_sensor_received_the_same_file(host, status):
    sync = host.get_host("podman://misp-sync")
    assert host.file(SENSOR_INTEL).sha256sum == sync.file(INTEL).sha256sum
    assert host.file(SENSOR_INTEL).user == "wlcg-intel"
    assert host.file(SENSOR_INTEL).mode == 0o644


@pytest.mark.hosts("misp-sync-2")
def test_the_second_sync_host_pushes_too(host, status):
    second = wait_for_status(host)
    assert second["last_error"] is None
    assert second["push"] in ({"misp-sensor": "updated"}, {"misp-sensor": "unchanged"})
    assert host.file(INTEL).sha256sum == host.get_host("podman://misp-sync").file(INTEL).sha256sum


@pytest.mark.hosts("misp-sensor")
def test_sensor_holds_both_keys_each_from_its_host(host, status):
    """One line per sync host, named by a comment, for the receiver only and from the
    addresses that host pushes from."""
    keys = host.file("/var/lib/wlcg-intel/.ssh/authorized_keys")
    assert keys.user == "wlcg-intel" and keys.mode == 0o600
    lines = keys.content_string.splitlines()
    entries = [line for line in lines if not line.startswith("#")]
    assert len(entries) == 2, lines
    for name in ("misp-sync", "misp-sync-2"):
        sync = host.get_host(f"podman://{name}")
        line = lines[lines.index(f"# {name}") + 1]
        public = sync.file("/var/lib/wlcg-soc/misp-sync/ssh/id_ed25519.pub").content_string.split()[:2]
        assert " ".join(public) in line
        addresses = line.split('from="', 1)[1].split('"', 1)[0].split(",")
        assert set(sync.check_output("hostname -I").split()) <= set(addresses), (name, line)
        assert line.startswith('restrict,from="')
        assert ',command="/usr/bin/python3 /usr/local/libexec/wlcg-soc-intel-receive.py ' in line


@pytest.mark.hosts("misp-sync")
def test_the_push_key_only_runs_the_receiver(host, status):
    res = host.run(
        "runuser -u misp-sync -- ssh -i /var/lib/wlcg-soc/misp-sync/ssh/id_ed25519 -o BatchMode=yes"
        " -o UserKnownHostsFile=/var/lib/wlcg-soc/misp-sync/ssh/known_hosts wlcg-intel@misp-sensor id </dev/null"
    )
    assert "uid=" not in res.stdout
    assert "not a Zeek intel file" in res.stderr


@pytest.mark.hosts("misp-sync")
def test_memcached_holds_the_enrichment_keys(host, status):
    script = (
        "from pymemcache.client.base import Client; import json; c = Client(('misp-cache', 11211));"
        " print(json.dumps({k: json.loads(v) for k, v in c.get_many(['ip-dst-174.127.99.225',"
        " 'ip-src-174.127.99.225']).items()}))"
    )
    found = json.loads(host.check_output(f'{VENV_PY} -c "{script}"'))
    assert found, "the CIRCL ip-dst|port indicator 174.127.99.225 is not in memcached"
    hit = next(iter(found.values()))["misp"][0]
    assert {"event_id", "event_uuid", "info", "type"} <= set(hit)


@pytest.mark.hosts("misp-sync")
def test_service_is_unprivileged_and_sandboxed(host, status):
    props = dict(
        line.split("=", 1)
        for line in host.check_output(
            "systemctl show misp-sync.service -p User -p NoNewPrivileges -p ProtectSystem -p ProtectHome"
            " -p PrivateTmp -p CapabilityBoundingSet -p ReadWritePaths -p StandardInput -p ExecStart"
        ).splitlines()
    )
    assert props["User"] == "misp-sync"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["CapabilityBoundingSet"] == ""
    assert props["ReadWritePaths"] == "/var/lib/wlcg-soc/misp-sync"
    assert props["StandardInput"] == "file"
    assert "0123456789abcdef" not in props["ExecStart"]


@pytest.mark.hosts("misp-sync")
def test_key_is_root_only_and_nowhere_else(host, status):
    key = host.file("/etc/wlcg-soc/misp-sync.key")
    assert key.user == "root" and key.group == "root" and key.mode == 0o600
    config = host.file("/etc/wlcg-soc/misp-sync.json")
    assert "0123456789abcdef" not in config.content_string
    assert json.loads(config.content_string)["misp_key_file"] == "-"
    unit = host.file("/etc/systemd/system/misp-sync.service").content_string
    assert "StandardInput=file:/etc/wlcg-soc/misp-sync.key" in unit
    assert "Ansible managed" in config.content_string
    assert host.run("runuser -u misp-sync -- cat /etc/wlcg-soc/misp-sync.key").rc != 0


@pytest.mark.hosts("misp-sync")
def test_misp_outage_keeps_the_last_good_state(host, status):
    """Last on purpose: stops and restarts the central MISP."""
    central = host.get_host("podman://misp-central")
    before = host.file(INTEL).sha256sum
    central.run("systemctl stop misp-double")
    try:
        res = host.run("systemctl start misp-sync.service")
        assert res.rc != 0
        failed = json.loads(host.file(STATUS).content_string)
        assert "unreachable" in failed["last_error"]
        assert failed["last_success"] == status["last_success"] or failed["last_success"] >= status["last_success"]
        assert host.file(INTEL).sha256sum == before
    finally:
        central.run("systemctl start misp-double")
    for _attempt in range(30):
        if host.run("systemctl start misp-sync.service").rc == 0:
            break
        time.sleep(1)
    recovered = json.loads(host.file(STATUS).content_string)
    assert recovered["last_error"] is None
    assert host.file(INTEL).sha256sum == before
