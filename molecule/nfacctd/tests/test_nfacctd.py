"""Verify the nfacctd role on nfacctd-collector, fed by nfacctd-exporter's flow probes."""

from __future__ import annotations

import json
import time

import pytest
import testinfra
from conftest import default_address

FLOW_DIR = "/var/lib/wlcg-soc/flows"
CONF_DIR = "/etc/wlcg-soc/nfacctd"
NETFLOW_PORT = 2055
SFLOW_PORT = 6343
# What send-traffic.py sends and how the exporter's probes report it:
# (file prefix, protocol, source port, destination port, export protocol version).
FLOWS = [
    ("nfacctd", "udp", 50009, 40009, 9),  # NetFlow v9
    ("nfacctd", "udp", 50010, 40010, 10),  # IPFIX
    ("nfacctd", "tcp", 50011, 40011, 10),  # IPFIX
    ("sfacctd", "udp", 50013, 40013, 5),  # sFlow v5
]
HARDENING = {
    "User": "nfacctd",
    "Group": "nfacctd",
    "KillSignal": "2",  # SIGINT
    "KillMode": "control-group",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "PrivateIPC": "yes",
    "ProtectHostname": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectProc": "invisible",
    "MemoryDenyWriteExecute": "yes",
    "LockPersonality": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "SystemCallArchitectures": "native",
    "UMask": "0027",
    "ReadWritePaths": FLOW_DIR,
}


@pytest.fixture(scope="module")
def collector():
    return testinfra.get_host("podman://nfacctd-collector")


@pytest.fixture(scope="module")
def exporter():
    return testinfra.get_host("podman://nfacctd-exporter")


@pytest.fixture(scope="module")
def collector_address(collector) -> str:
    return default_address(collector)


@pytest.fixture(scope="module")
def exporter_address(exporter) -> str:
    return default_address(exporter)


def read_records(collector) -> dict[str, list[dict]]:
    """Every JSON record in the flow files, by file prefix (nfacctd, sfacctd)."""
    out: dict[str, list[dict]] = {"nfacctd": [], "sfacctd": []}
    for prefix, records in out.items():
        text = collector.run(f"cat {FLOW_DIR}/{prefix}-*.json").stdout
        records.extend(json.loads(line) for line in text.splitlines() if line.strip())
    return out


def matches(record: dict, src: str, dst: str, proto: str, sport: int, dport: int, version: int) -> bool:
    return (
        record.get("ip_src") == src
        and record.get("ip_dst") == dst
        and record.get("ip_proto") == proto
        and record.get("port_src") == sport
        and record.get("port_dst") == dport
        and record.get("export_proto_version") == version
    )


@pytest.fixture(scope="module")
def records(collector, exporter, collector_address, exporter_address) -> dict[str, list[dict]]:
    """Send the traffic, then wait for the collector to write the four flows (probes
    export a few seconds after the last packet; the collector writes every 10 s)."""
    exporter.check_output(f"python3 /usr/local/lib/send-traffic.py {collector_address}")
    deadline = time.monotonic() + 120
    while True:
        found = read_records(collector)
        missing = [
            f for f in FLOWS if not any(matches(r, exporter_address, collector_address, *f[1:]) for r in found[f[0]])
        ]
        if not missing or time.monotonic() > deadline:
            return found
        time.sleep(3)


def test_systemd_is_running(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), state
    failed = host.run("systemctl --failed --no-legend --plain").stdout.strip()
    assert failed == "", failed


def test_service_user(collector):
    user = collector.user("nfacctd")
    assert user.exists and user.group == "nfacctd"
    assert user.uid < 1000, "not a system user"
    assert user.shell == "/usr/sbin/nologin"
    assert user.password in ("!", "*", "!*")
    assert collector.group("filebeat").exists


@pytest.mark.parametrize("name", ["nfacctd", "sfacctd"])
def test_collectors_run_from_the_roles_units(collector, name):
    svc = collector.service(name)
    assert svc.is_running and svc.is_enabled
    out = collector.check_output(f"systemctl show {name} -p FragmentPath -p ExecStart")
    assert f"FragmentPath=/etc/systemd/system/{name}.service" in out
    assert f"/usr/sbin/{name} -f {CONF_DIR}/{name}.conf" in out


@pytest.mark.parametrize("unit", ["pmacctd.service", "uacctd.service"])
def test_package_daemons_masked(collector, unit):
    assert collector.run(f"systemctl is-enabled {unit}").stdout.strip() == "masked"


def test_listens_on_the_collector_address_only(collector, collector_address):
    # ss cannot name the sockets' processes here (no CAP_SYS_PTRACE in the container): by port.
    udp = collector.check_output("ss -H -l -n -u").splitlines()
    ours = sorted(line.split()[3] for line in udp if line.split()[3].rsplit(":", 1)[1] in ("2055", "6343"))
    assert ours == sorted([f"{collector_address}:{NETFLOW_PORT}", f"{collector_address}:{SFLOW_PORT}"]), udp


@pytest.mark.parametrize("name", ["nfacctd", "sfacctd"])
def test_every_process_unprivileged(collector, name):
    """The core and its plugin, as nfacctd, without capabilities, in a seccomp sandbox."""
    cgroups = collector.check_output(f"grep -l '/{name}.service$' /proc/[0-9]*/cgroup").split()
    procs = [path.split("/")[2] for path in cgroups]
    assert len(procs) >= 2, procs  # core process and print plugin
    for pid in procs:
        lines = collector.file(f"/proc/{pid}/status").content_string.splitlines()
        status = {k: v.strip() for k, v in (line.split(":", 1) for line in lines)}
        uid = collector.check_output("id -u nfacctd")
        assert status["Uid"].split() == [uid] * 4, status["Uid"]
        assert status["CapEff"] == status["CapPrm"] == status["CapBnd"] == "0000000000000000"
        assert status["NoNewPrivs"] == "1"
        assert status["Seccomp"] == "2"


@pytest.mark.parametrize("name", ["nfacctd", "sfacctd"])
def test_hardening_configured(collector, name):
    props = ",".join([*HARDENING, "RestrictAddressFamilies"])
    out = collector.check_output(f"systemctl show {name} -p {props}")
    got = dict(line.split("=", 1) for line in out.splitlines())
    assert {k: got[k] for k in HARDENING} == HARDENING
    assert set(got["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}


def test_sandbox_in_effect(collector):
    """nfacctd's own mount namespace: read-only system, writable flow and state dirs."""
    pid = collector.check_output("systemctl show -p MainPID --value nfacctd")
    mounts = {}
    for line in collector.file(f"/proc/{pid}/mountinfo").content_string.splitlines():
        fields = line.split()
        mounts[fields[4]] = fields[5].split(",")
    assert "ro" in mounts["/"], mounts["/"]
    assert "rw" in mounts[FLOW_DIR], mounts.get(FLOW_DIR)
    assert "rw" in mounts["/var/lib/nfacctd"], mounts.get("/var/lib/nfacctd")


def test_settings_files(collector, exporter_address, collector_address):
    d = collector.file(CONF_DIR)
    assert (d.user, d.group, d.mode) == ("root", "nfacctd", 0o750)
    for name in ("nfacctd.conf", "sfacctd.conf", "allowed-exporters.lst"):
        f = collector.file(f"{CONF_DIR}/{name}")
        assert (f.user, f.group, f.mode) == ("root", "nfacctd", 0o640), name
        assert "! Ansible managed" in f.content_string.splitlines()[:3], name
    allowed = [
        line
        for line in collector.file(f"{CONF_DIR}/allowed-exporters.lst").content_string.splitlines()
        if line and not line.startswith("!")
    ]
    assert allowed == [exporter_address]
    conf = collector.file(f"{CONF_DIR}/nfacctd.conf").content_string
    for line in (
        f"nfacctd_ip: {collector_address}",
        f"nfacctd_port: {NETFLOW_PORT}",
        "plugins: print[netflow]",
        "print_output[netflow]: json",
        f"print_output_file[netflow]: {FLOW_DIR}/nfacctd-%Y%m%d-%H%M.json",
        "print_history[netflow]: 5m",
        "print_history_roundoff[netflow]: m",
        "print_refresh_time[netflow]: 10",
        "nfacctd_disable_checks: false",
    ):
        assert f"\n{line}\n" in conf, line


def test_firewall_admits_the_exporter_only(collector, exporter_address, collector_address):
    status = collector.check_output("ufw status")
    assert "Status: active" in status
    for port in (NETFLOW_PORT, SFLOW_PORT):
        rule = [line for line in status.splitlines() if line.startswith(f"{collector_address} {port}/udp")]
        assert len(rule) == 1, status
        assert rule[0].split()[2:4] == ["ALLOW", exporter_address], rule


@pytest.mark.parametrize(("prefix", "proto", "sport", "dport", "version"), FLOWS)
def test_flow_recorded(records, exporter_address, collector_address, prefix, proto, sport, dport, version):
    """The exporter's flow, as its probe exported it, in the collector's JSON records."""
    flow = (exporter_address, collector_address, proto, sport, dport, version)
    found = [r for r in records[prefix] if matches(r, *flow)]
    assert found, f"no {proto} {sport}->{dport} v{version} record in {prefix}-*.json: {records[prefix]}"
    record = found[0]
    assert record["peer_ip_src"] == exporter_address
    assert record["packets"] >= 1 and record["bytes"] >= 40
    if proto == "udp" and prefix == "nfacctd":
        # 20 datagrams of 100 bytes: 128 bytes each on the wire (IP and UDP headers).
        assert sum(r["packets"] for r in found) == 20
        assert sum(r["bytes"] for r in found) == 20 * 128
    if proto == "tcp":
        assert int(record["tcp_flags"]) & 0x02, record  # SYN
    stamp = "timestamp_start" if prefix == "nfacctd" else "stamp_updated"
    assert record[stamp].endswith("Z"), record  # UTC, RFC 3339


def test_flow_files(collector, records):
    d = collector.file(FLOW_DIR)
    assert (d.user, d.group, d.mode) == ("nfacctd", "filebeat", 0o2750)
    names = collector.check_output(f"ls {FLOW_DIR}").split()
    assert names, "no flow files"
    for name in names:
        f = collector.file(f"{FLOW_DIR}/{name}")
        assert (f.user, f.group, f.mode) == ("nfacctd", "filebeat", 0o640), name
        # One file per 5-minute interval, named after its start.
        stem = name.split("-", 1)[1].removesuffix(".json")
        assert len(stem) == 13 and int(stem[-2:]) % 5 == 0, name


def test_old_files_cleaned_up(collector, records):
    collector.check_output(
        f"touch -d '4 days ago' {FLOW_DIR}/nfacctd-20000101-0000.json {FLOW_DIR}/sfacctd-20000101-0000.json"
        f" {FLOW_DIR}/keep-me.txt"
    )
    assert collector.service("nfacctd-cleanup.timer").is_enabled
    assert collector.service("nfacctd-cleanup.timer").is_running
    collector.check_output("systemctl start nfacctd-cleanup.service")
    names = collector.check_output(f"ls {FLOW_DIR}").split()
    assert "nfacctd-20000101-0000.json" not in names
    assert "sfacctd-20000101-0000.json" not in names
    assert "keep-me.txt" in names, "deleted a file that is not a flow file"
    assert any(n.startswith("nfacctd-2") for n in names), "deleted the current files"
    collector.check_output(f"rm {FLOW_DIR}/keep-me.txt")


def test_stop_ends_every_process(collector):
    """SIGINT stops the core process and its plugin (SIGTERM could leave the core behind)."""
    try:
        collector.check_output("systemctl stop nfacctd")
        left = collector.run("pgrep -u nfacctd -f '^nfacctd:'")
        assert left.rc == 1, left.stdout
        assert collector.check_output("systemctl show nfacctd -p Result --value") == "success"
    finally:
        collector.check_output("systemctl start nfacctd")
    assert collector.service("nfacctd").is_running
