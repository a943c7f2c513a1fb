"""The Zeek sensor: layout, NIC tuning, unprivileged capture, timers, scripts that parse; the
Zeek double's workers logging the DNS queries on the capture links and their intel hits."""

from __future__ import annotations

import base64
import configparser
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
import zeek_logs  # tests/zeek_logs.py: zat's real intel feed

PREFIX = "/opt/zeek"
SPOOL = "/var/spool/zeek"
LIVE = "/var/log/zeek/current"
INTEL = "/var/lib/wlcg-soc/intel/misp.intel"
CAP_NET_ADMIN, CAP_NET_RAW = 12, 13
# The send side of the capture links (the veth peers): an address on each, and a resolver
# address that nobody answers (a static neighbour entry, so that queries go out at once).
# Checksums are computed in software, as they arrive from a mirror port: Zeek drops packets
# with a checksum the sending NIC was left to fill in (AF_Packet's CHECKSUM_ON).
LINKS_UP = """
set -e
ethtool -K cap0p tx off >/dev/null
ip addr replace 203.0.113.1/24 dev cap0p
ip neigh replace 203.0.113.53 lladdr 02:00:00:00:00:35 dev cap0p nud permanent
ethtool -K cap1p tx off >/dev/null
ip addr replace 2001:db8:1::1/64 dev cap1p nodad
ip neigh replace 2001:db8:1::53 lladdr 02:00:00:00:00:35 dev cap1p nud permanent
"""
LINKS_DOWN = """
ip addr del 203.0.113.1/24 dev cap0p; ip neigh del 203.0.113.53 dev cap0p; ethtool -K cap0p tx on
ip addr del 2001:db8:1::1/64 dev cap1p; ip neigh del 2001:db8:1::53 dev cap1p; ethtool -K cap1p tx on
"""


@pytest.fixture(scope="module")
def node_cfg(host):
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(host.file(f"{PREFIX}/etc/node.cfg").content_string)
    return parser


def online_cpus(host) -> set[int]:
    cpus = set()
    for part in host.file("/sys/devices/system/cpu/online").content_string.strip().split(","):
        lo, _sep, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def test_node_cfg_has_the_cluster_and_one_af_packet_worker_per_interface(host, node_cfg):
    types = {name: node_cfg[name]["type"] for name in node_cfg.sections()}
    assert types == {
        "logger-1": "logger",
        "manager": "manager",
        "proxy-1": "proxy",
        "worker-cap0": "worker",
        "worker-cap1": "worker",
    }
    cpus = online_cpus(host)
    pins, fanout = [], []
    for name, ifname, buffer in (("worker-cap0", "cap0", 134217728), ("worker-cap1", "cap1", 67108864)):
        worker = node_cfg[name]
        assert worker["interface"] == f"af_packet::{ifname}"
        assert worker["lb_method"] == "custom"
        assert worker["af_packet_fanout_mode"] == "AF_Packet::FANOUT_HASH"
        assert int(worker["af_packet_buffer_size"]) == buffer
        worker_pins = [int(c) for c in worker["pin_cpus"].split(",")]
        assert len(worker_pins) == int(worker["lb_procs"]) >= 1
        assert set(worker_pins) <= cpus
        pins += worker_pins
        fanout.append(int(worker["af_packet_fanout_id"]))
    assert len(pins) == len(set(pins)), f"pins overlap: {pins}"
    assert len(fanout) == len(set(fanout)), f"fanout ids repeat: {fanout}"


@pytest.mark.parametrize("ifname", ["cap0", "cap1"])
def test_capture_interface_is_tuned(host, ifname):
    features = host.check_output(f"ethtool -k {ifname}")
    for feature in (
        "rx-checksumming",
        "tx-checksumming",
        "scatter-gather",
        "tcp-segmentation-offload",
        "generic-segmentation-offload",
        "generic-receive-offload",
        "large-receive-offload",
    ):
        assert f"\n{feature}: off" in features, feature
    link = host.check_output(f"ip -d link show dev {ifname}")
    assert "PROMISC" in link and ",UP" in link
    assert "addrgenmode none" in link
    assert host.check_output(f"ip -o addr show dev {ifname}") == ""
    unit = host.service(f"wlcg-soc-nic-tune@{ifname}.service")
    assert unit.is_enabled and unit.is_running
    # A second run finds nothing to change.
    again = host.check_output(f"python3 /usr/local/libexec/wlcg-soc-nic-tune --json {ifname}")
    assert '"changes": []' in again


def test_tuning_refuses_a_missing_interface(host):
    res = host.run("python3 /usr/local/libexec/wlcg-soc-nic-tune --wait 1 nosuch0")
    assert res.rc == 1
    assert "interface nosuch0 does not exist" in res.stderr


def test_zeek_user_and_directories(host):
    user = host.user("zeek")
    assert user.shell == "/usr/sbin/nologin" and user.group == "zeek"
    for path in ("/var/log/zeek", SPOOL, "/var/lib/wlcg-soc/zeek"):
        d = host.file(path)
        assert d.is_directory and d.user == "zeek" and d.mode == 0o750
    assert host.file(f"{PREFIX}/etc/node.cfg").user == "root"


@pytest.mark.parametrize("binary", ["zeek", "capstats"])
def test_capture_binaries_have_capabilities_not_setuid(host, binary):
    caps = host.check_output(f"getcap {PREFIX}/bin/{binary}")
    assert "cap_net_admin,cap_net_raw=eip" in caps
    assert not host.file(f"{PREFIX}/bin/{binary}").mode & 0o4000


def test_zeek_service_runs_nodes_unprivileged_and_pinned(host, node_cfg):
    service = host.service("zeek.service")
    assert service.is_enabled and service.is_running
    status = host.check_output("runuser -u zeek -- /opt/zeek/bin/zeekctl status")
    assert "stopped" not in status
    for cap in ("cap0", "cap1"):
        pins = node_cfg[f"worker-{cap}"]["pin_cpus"].split(",")
        for i, pin in enumerate(pins, 1):
            text = host.file(f"{SPOOL}/worker-{cap}-{i}.status").content_string
            fields = dict(line.split(":", 1) for line in text.splitlines())
            assert fields["User"].strip() == "zeek"
            effective = int(fields["CapEff"], 16)
            assert effective & (1 << CAP_NET_RAW) and effective & (1 << CAP_NET_ADMIN)
            assert effective & ~((1 << CAP_NET_RAW) | (1 << CAP_NET_ADMIN)) == 0, hex(effective)
            assert fields["Cpus_allowed_list"].strip() == pin


def test_zeek_unit_is_hardened(host):
    props = host.check_output(
        "systemctl show zeek.service -p User -p NoNewPrivileges -p ProtectSystem -p CapabilityBoundingSet"
    )
    assert "User=zeek" in props and "NoNewPrivileges=yes" in props and "ProtectSystem=strict" in props
    assert "CapabilityBoundingSet=cap_net_admin cap_net_raw" in props


def test_zeekctl_cron_runs_and_nodes_survive_it(host):
    timer = host.service("zeekctl-cron.timer")
    assert timer.is_enabled and timer.is_running
    before = host.run(f"wc -l < {SPOOL}/cron.log").stdout.strip() or "0"
    host.check_output("systemctl start zeekctl-cron.service")
    after = host.check_output(f"wc -l < {SPOOL}/cron.log")
    assert int(after) == int(before) + 1
    assert "stopped" not in host.check_output("runuser -u zeek -- /opt/zeek/bin/zeekctl status")


def test_intel_refresh_marks_the_file_for_a_reread(host):
    timer = host.service("zeek-intel-refresh.timer")
    assert timer.is_enabled and timer.is_running
    assert "OnUnitActiveSec=15min" in host.file("/etc/systemd/system/zeek-intel-refresh.timer").content_string
    assert host.file(INTEL).content_string.startswith("#fields\tindicator\tindicator_type\tmeta.source")
    before = host.file(INTEL).mtime
    time.sleep(1.1)
    host.check_output("systemctl start zeek-intel-refresh.service")
    assert host.file(INTEL).mtime > before


def test_intel_script_reads_the_misp_export_and_expires_after_the_sync(host):
    text = host.file(f"{PREFIX}/share/zeek/site/wlcg-soc/intel.zeek").content_string
    assert '"/var/lib/wlcg-soc/intel/misp.intel"' in text
    assert "@load frameworks/intel/seen" in text
    assert "@load frameworks/intel/do_notice" in text
    assert "@load frameworks/intel/do_expire" in text
    assert "redef Intel::item_expiration = 20 min;" in text
    local = host.file(f"{PREFIX}/share/zeek/site/local.zeek").content_string
    assert "@load policy/tuning/json-logs" in local and "@load misc/capture-loss" in local
    assert "@load ./wlcg-soc" in local
    site = host.file(f"{PREFIX}/share/zeek/site/wlcg-soc/site/__load__.zeek").content_string
    assert "@load ./wlcg-heartbeat" in site


def test_networks_and_zeekctl_settings(host):
    networks = host.file(f"{PREFIX}/etc/networks.cfg").content_string
    assert "192.0.2.0/24\tdocumentation network (TEST-NET-1)" in networks
    zeekctl = host.file(f"{PREFIX}/etc/zeekctl.cfg").content_string
    for line in ("LogDir = /var/log/zeek", "SpoolDir = /var/spool/zeek", "LogExpireInterval = 30day"):
        assert line in zeekctl


def test_every_script_the_role_writes_parses(host, tmp_path):
    formatter = shutil.which("zeek-format")
    assert formatter, "zeek-format (zeekscript) is in the dev venv"
    paths = host.check_output(f"find {PREFIX}/share/zeek/site -name '*.zeek'").split()
    assert len(paths) >= 5
    for path in paths:
        local = tmp_path / path.strip("/").replace("/", "_")
        local.write_text(host.file(path).content_string)
        res = subprocess.run([formatter, str(local)], capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"{path}: {res.stderr}"


def test_zeek_is_on_the_path_of_login_shells(host):
    assert host.check_output("bash -lc 'command -v zeekctl'") == f"{PREFIX}/bin/zeekctl"


def live_records(host, log: str) -> list[dict]:
    res = host.run(f"cat {LIVE}/{log}.log")
    return [json.loads(line) for line in res.stdout.splitlines()] if res.rc == 0 else []


@pytest.fixture
def capture_links(host):
    host.run_expect([0], f"bash -c {shlex.quote(LINKS_UP)}")
    yield
    host.run(f"bash -c {shlex.quote(LINKS_DOWN)}")


@pytest.fixture
def intel_feed_row(host):
    """The first domain of zat's real feed, written to the intel file the zeek role loads as
    the MISP sync writes it (atomically, meta.do_notice T); the file put back afterwards."""
    row = next((r for r in zeek_logs.intel_feed() if r["indicator_type"] == "Intel::DOMAIN"), None)
    assert row is not None
    before = host.file(INTEL).content_string
    header = "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url\tmeta.do_notice\n"
    line = f"{row['indicator']}\tIntel::DOMAIN\t{row['meta.source']}\t{row['meta.desc']}\t-\tT\n"

    def replace(text: str) -> None:
        data = base64.b64encode(text.encode()).decode()
        new = f"{INTEL}.new"
        host.run_expect([0], f"echo {data} | base64 -d > {new} && chmod 0644 {new} && mv {new} {INTEL}")

    replace(header + line)
    yield row
    replace(before)


def test_workers_log_dns_queries_and_intel_hits(host, capture_links, intel_feed_row):
    """A query for the intel domain (in upper case) on cap0 and one for another domain over
    IPv6 on cap1: both in dns.log, one intel.log record and one Intel::Notice for the first."""
    domain = intel_feed_row["indicator"]
    before = {log: len(live_records(host, log)) for log in ("dns", "intel", "notice")}
    time.sleep(2.5)  # the workers poll the intel file once a second
    host.run(f"dig +tries=1 +time=1 -b 203.0.113.1 @203.0.113.53 {shlex.quote(domain.upper())} A")
    host.run("dig +tries=1 +time=1 -b 2001:db8:1::1 @2001:db8:1::53 www.example.org AAAA")
    for _attempt in range(20):
        dns = live_records(host, "dns")[before["dns"] :]
        if len(dns) >= 2:
            break
        time.sleep(0.5)
    assert [(r["query"], r["qtype_name"], r["id.orig_h"], r["id.resp_h"]) for r in dns] == [
        (domain, "A", "203.0.113.1", "203.0.113.53"),
        ("www.example.org", "AAAA", "2001:db8:1::1", "2001:db8:1::53"),
    ]
    hits = live_records(host, "intel")[before["intel"] :]
    assert len(hits) == 1, hits
    assert hits[0]["uid"] == dns[0]["uid"] and hits[0]["seen.node"].startswith("worker-cap0-")
    assert {k: hits[0][k] for k in ("seen.indicator", "seen.indicator_type", "seen.where", "matched", "sources")} == {
        "seen.indicator": domain,
        "seen.indicator_type": "Intel::DOMAIN",
        "seen.where": "DNS::IN_REQUEST",
        "matched": ["Intel::DOMAIN"],
        "sources": [intel_feed_row["meta.source"]],
    }
    notices = live_records(host, "notice")[before["notice"] :]
    assert [(n["note"], n["msg"], n["uid"], n["peer_descr"]) for n in notices] == [
        ("Intel::Notice", f"Intel hit on {domain} at DNS::IN_REQUEST", dns[0]["uid"], "manager")
    ]
