"""The threat-intel tier on five hosts: MISP double -> two sync hosts -> memcached + sensor;
the sync hosts' heartbeats -> the search tier's stand-in on misp-central."""

from __future__ import annotations

import base64
import datetime
import json
import re
import time

import pytest

STATUS = "/var/lib/wlcg-soc/misp-sync/status.json"
INTEL = "/var/lib/wlcg-soc/misp-sync/intel/misp.intel"
SENSOR_INTEL = "/var/lib/wlcg-soc/intel/misp.intel"
VENV_PY = "/opt/wlcg-soc/misp-sync/venv/bin/python"
# What the search tier's stand-in received (molecule/misp_sync/files/search_receiver.py): 9200
# has a certificate of the test CA the sync hosts trust, 9201 a self-signed one.
RECEIVED = "/var/lib/search-receiver/requests.jsonl"
WRITER = ("soc_writer", "molecule-writer-pw-0123")


def wait_for_status(host, timeout: float = 180, key: str = "last_success") -> dict:
    """The timer's first run (5 s after converge) writes the status file: the run's outcome,
    then its heartbeat's (``heartbeat_error``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.file(STATUS).exists:
            status = json.loads(host.file(STATUS).content_string)
            if status.get("last_success") and key in status:
                return status
        time.sleep(2)
    journal = host.run("journalctl -u misp-sync.service --no-pager -n 50").stdout
    pytest.fail(f"no successful sync within {timeout}s:\n{journal}")


@pytest.fixture(scope="module")
def status(host):
    return wait_for_status(host.get_host("podman://misp-sync"))


def received(host) -> list[dict]:
    central = host.get_host("podman://misp-central")
    text = central.file(RECEIVED).content_string if central.file(RECEIVED).exists else ""
    return [json.loads(line) for line in text.splitlines()]


def heartbeats(host, name: str) -> list[dict]:
    """The heartbeats that reached the trusted port from sync host ``name``, oldest first."""
    return [r for r in received(host) if r["port"] == 9200 and "doc" in r and r["doc"]["host"]["name"] == name]


def iso(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


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
def test_each_run_writes_a_heartbeat_as_the_writer_over_verified_tls(host, status):
    status = wait_for_status(host, key="heartbeat_error")
    assert status["heartbeat_error"] is None
    last_success = iso(status["last_success"])
    beat = next(b for b in heartbeats(host, "misp-sync") if b["doc"]["misp_sync"]["last_success"] == last_success)
    assert beat["method"] == "PUT" and re.fullmatch(r"/status-default/_create/[0-9a-f]{32}", beat["path"])
    assert beat["authorization"] == "Basic " + base64.b64encode(":".join(WRITER).encode()).decode()
    doc = beat["doc"]
    assert {k: doc["event"][k] for k in ("kind", "module", "dataset", "outcome")} == {
        "kind": "metric",
        "module": "misp_sync",
        "dataset": "misp_sync.status",
        "outcome": "success",
    }
    assert doc["event"]["duration"] > 0 and "error" not in doc
    assert doc["host"] == {"name": "misp-sync"} and doc["service"] == {"type": "misp_sync"}
    sync = doc["misp_sync"]
    assert sync["exit_code"] == 0 and doc["event"]["start"].startswith(last_success[:19])
    assert (sync["intel_rows"], sync["memcached_keys"]) == (status["intel_rows"], status["memcached_keys"])
    # The self-signed receiver, tried first, was refused at the handshake: nothing reached it.
    untrusted = [r for r in received(host) if r["port"] == 9201]
    assert any("unknown ca" in r.get("tls_error", "").lower() for r in untrusted), untrusted
    assert not [r for r in untrusted if "doc" in r], untrusted
    # The second sync host's heartbeats arrive too, under its own name.
    wait_for_status(host.get_host("podman://misp-sync-2"), key="heartbeat_error")
    assert heartbeats(host, "misp-sync-2")


@pytest.mark.hosts("misp-sync")
def test_the_writer_password_is_root_only_and_nowhere_else(host, status):
    password = WRITER[1]
    key = host.file("/etc/wlcg-soc/misp-sync.key")
    assert key.user == "root" and key.mode == 0o600
    assert key.content_string.splitlines()[1:] == [password]
    assert password not in host.file("/etc/wlcg-soc/misp-sync.json").content_string
    assert password not in host.file("/etc/systemd/system/misp-sync.service").content_string
    assert password not in host.check_output("systemctl show misp-sync.service -p ExecStart -p Environment")
    assert password not in host.file(STATUS).content_string
    assert password not in host.check_output("journalctl -u misp-sync.service --no-pager -o cat")


@pytest.mark.hosts("misp-sync")
def test_a_search_outage_is_recorded_and_does_not_fail_the_run(host, status):
    central = host.get_host("podman://misp-central")
    central.run("systemctl stop search-receiver")
    try:
        assert host.run("systemctl start misp-sync.service").rc == 0
        failed = json.loads(host.file(STATUS).content_string)
        assert failed["last_error"] is None
        for port in (9201, 9200):
            assert f"https://misp-central:{port}: ConnectionError" in failed["heartbeat_error"], failed
        journal = host.check_output("journalctl -u misp-sync.service --no-pager -o cat -n 20")
        assert "misp-sync: heartbeat not written: " in journal
    finally:
        central.run("systemctl start search-receiver")
    for _attempt in range(30):
        if central.socket("tcp://0.0.0.0:9200").is_listening:
            break
        time.sleep(1)
    assert host.run("systemctl start misp-sync.service").rc == 0
    assert json.loads(host.file(STATUS).content_string)["heartbeat_error"] is None


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
        # The failed run's heartbeat names the failure and the last success.
        beat = heartbeats(host, "misp-sync")[-1]["doc"]
        assert beat["event"]["outcome"] == "failure" and beat["error"]["message"] == failed["last_error"]
        assert beat["misp_sync"] == {"exit_code": 1, "last_success": iso(failed["last_success"])}
    finally:
        central.run("systemctl start misp-double")
    for _attempt in range(30):
        if host.run("systemctl start misp-sync.service").rc == 0:
            break
        time.sleep(1)
    recovered = json.loads(host.file(STATUS).content_string)
    assert recovered["last_error"] is None
    assert host.file(INTEL).sha256sum == before
