"""The Zeek double's workers (tests/zeek_double/worker.py, intel.py): the site policy the role
renders, Zeek's intel file format, DNS requests in real captures, intel matching, and the
records they write (the fields Zeek's dns.log, intel.log and notice.log have)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import sdists
import zeek_logs
from ansible_collections.wlcg.soc.plugins.module_utils import zeek_intel as zi
from conftest import DEBIAN12, ROOT, role_play, run_playbook, template_task

sys.path.insert(0, str(ROOT / "tests/zeek_double"))
# The double's modules, importable as its worker imports them.
import intel
import worker

ROLE = ROOT / "roles/zeek"
# The role's configuration, laid out as in zeek_prefix.
TEMPLATES = {
    "node.cfg.j2": "etc/node.cfg",
    "networks.cfg.j2": "etc/networks.cfg",
    "zeekctl.cfg.j2": "etc/zeekctl.cfg",
    "local.zeek.j2": "share/zeek/site/local.zeek",
    "wlcg-soc-load.zeek.j2": "share/zeek/site/wlcg-soc/__load__.zeek",
    "intel.zeek.j2": "share/zeek/site/wlcg-soc/intel.zeek",
    "site-load.zeek.j2": "share/zeek/site/wlcg-soc/site/__load__.zeek",
}
# A layout as wlcg.soc.zeek_cpu_layout returns it: one interface, two workers.
LAYOUT = {
    "workers": [
        {"interface": "zdcap", "lb_procs": 2, "pin_cpus": [0, 0], "fanout_id": 21, "buffer_size": 134217728,
         "numa_node": None},
    ],
    "topology": {"cpus_online": 2, "physical_cores": 2},
}  # fmt: skip
SOURCE = "CIRCL MISP (5f1b1a5e-7c2c-4b1e-9a0e-0a1b2c3d4e5f)"


def render(workdir: Path, collections_path: str, extra: dict) -> Path:
    """The role's configuration rendered with ``extra`` into the Zeek prefix ``workdir``/zeek."""
    prefix = workdir / "zeek"
    (prefix / "etc").mkdir(parents=True)
    (prefix / "share/zeek/site/wlcg-soc/site").mkdir(parents=True)
    play = role_play(ROLE, "Debian", template_task(ROLE, prefix, TEMPLATES))
    res = run_playbook(workdir, collections_path, play, DEBIAN12, {"__zeek_layout": LAYOUT, **extra}, check=False)
    assert res.rc == 0, res.out
    return prefix


@pytest.fixture(scope="module")
def site(tmp_path_factory, collections_path) -> Path:
    """The role's site scripts with its defaults, the intel file in a temporary directory."""
    workdir = tmp_path_factory.mktemp("site")
    prefix = render(workdir, collections_path, {"zeek_intel_files": [str(workdir / "intel/misp.intel")]})
    return prefix / "share/zeek/site"


def pcap_frames(path: Path) -> list[bytes]:
    """The frames of a pcap file (libpcap format, either byte order)."""
    data = path.read_bytes()
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}
    endian = order[data[:4]]
    assert struct.unpack(f"{endian}I", data[20:24])[0] == 1, "Ethernet captures only"
    frames, pos = [], 24
    while pos + 16 <= len(data):
        length = struct.unpack(f"{endian}I", data[pos + 8 : pos + 12])[0]
        frames.append(data[pos + 16 : pos + 16 + length])
        pos += 16 + length
    return frames


@pytest.fixture(scope="module")
def captures() -> Path:
    """pypacker's real captures (its sdist's tests/*.pcap)."""
    return sdists.extracted("pypacker", "5.4", "tests", (".pcap",))


def write_intel(path: Path, rows: list[zi.IntelRow], do_notice: bool | None = True) -> None:
    """An intel file as the MISP sync writes it to the sensors (replaced by rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    zi.write_atomic(str(path), zi.render(zi.rows_of(rows), do_notice))


def records(logs: Path, log: str) -> list[dict]:
    path = logs / f"{log}.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- The site policy


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"zeek_intel_do_notice": False, "zeek_intel_files": ["/srv/intel/a.intel", "/srv/intel/b.intel"]},
        {"zeek_intel_files": [], "zeek_intel_refresh_minutes": 5, "zeek_intel_expire_minutes": 7},
    ],
    ids=["defaults", "two-files-no-notice", "no-files"],
)
def test_policy_is_what_the_rendered_scripts_load(tmp_path, collections_path, extra):
    policy = intel.site_policy(render(tmp_path, collections_path, extra) / "share/zeek/site", "local.zeek")
    files = extra.get("zeek_intel_files", ["/var/lib/wlcg-soc/intel/misp.intel"])
    assert policy.read_files == files
    assert policy.dns_seen
    assert policy.do_notice == extra.get("zeek_intel_do_notice", True)
    assert policy.expiration == 60.0 * extra.get("zeek_intel_expire_minutes", 20)
    assert {"tuning/json-logs", "frameworks/intel/seen", "frameworks/intel/do_expire"} <= policy.scripts


def test_policy_without_seen_or_expire(tmp_path):
    (tmp_path / "local.zeek").write_text(
        "# no seen scripts\n@load ./intel\n@load frameworks/intel/seen/file-hashes  # not dns\n"
    )
    (tmp_path / "intel.zeek").write_text(
        'redef Intel::read_files += { "/a.intel" };\nredef Intel::read_files += { "/b.intel", };\n'
        "redef Intel::item_expiration = 1 hr;\n"
    )
    policy = intel.site_policy(tmp_path, "local.zeek")
    assert policy.read_files == ["/a.intel", "/b.intel"]
    assert not policy.dns_seen and not policy.do_notice
    # Without do_expire.zeek's hook an expired item stays.
    assert policy.item_expiration == 3600.0 and policy.expiration is None
    assert intel.site_policy(tmp_path / "missing", "local.zeek") == intel.Policy()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20 min", 1200.0), ("10mins", 600.0), ("1hr", 3600.0), ("2 days", 172800.0), ("-1 min", -60.0), ("x", None)],
)
def test_interval(text, seconds):
    assert intel.interval(text) == seconds


# --- Intel files


def test_reads_a_real_feed():
    """zat's intel_example.intel: 500 rows with meta.do_notice and meta.desc, no meta.url."""
    path = sdists.extracted("zat", zeek_logs.ZAT_VERSION, "data", (".intel",)) / "intel_example.intel"
    rows = zeek_logs.intel_feed()
    for do_notice in (True, False):
        items = intel.read_items(path.read_text(), do_notice)
        assert items is not None and len(items) == len(rows) == 500
        assert [(i.indicator, i.indicator_type) for i in items] == [(r["indicator"], r["indicator_type"]) for r in rows]
        assert [i.meta for i in items] == [intel.Meta(r["meta.source"], r["meta.desc"]) for r in rows]
        assert items[0] == intel.Item("0-de-franchise.ca", "Intel::DOMAIN", intel.Meta("CPS-CTI", "CIT0DAY"))


def test_reads_the_sync_format_with_unset_fields():
    rows = [zi.IntelRow(r["indicator"], r["indicator_type"], SOURCE) for r in zeek_logs.intel_feed()[:3]]
    rows.append(zi.IntelRow("198.51.100.7", "Intel::ADDR", SOURCE, "C2 server", "https://misp.example/events/view/9"))
    for do_notice in (None, True, False):
        text = zi.render(zi.rows_of(rows), do_notice).decode()
        items = intel.read_items(text, do_notice=True)
        assert items is not None
        notice = bool(do_notice)
        assert items[0] == intel.Item("0-de-franchise.ca", "Intel::DOMAIN", intel.Meta(SOURCE, do_notice=notice))
        assert items[-1].meta == intel.Meta(SOURCE, "C2 server", "https://misp.example/events/view/9", notice)
    # The role's empty file (its header only) has no items; a file without header none either.
    assert intel.read_items("#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url\n", True) == []
    assert intel.read_items("", True) is None


def test_follows_zeeks_line_rules():
    header = "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.do_notice\tmeta.if_in\n"
    lines = [
        "# a comment, and a blank line\n",
        "\n",
        "a.example\tIntel::DOMAIN\ts\t(empty)\tT\tDNS::IN_REQUEST\r\n",  # CRLF, an empty string
        "b.example\tIntel::DOMAIN\t-\td\tF\t-\n",  # meta.source unset: skipped
        "c.example\tIntel::JA3\ts\td\tF\t-\n",  # a type Zeek does not know (MISP emits it): skipped
        "d.example\tIntel::DOMAIN\ts\n",  # too few fields: skipped
        "e.example\tIntel::DOMAIN\ts\td\tyes\t-\n",  # not a bool: skipped
        "f.example\tIntel::DOMAIN\ts\td\tF\tDNS::NOWHERE\n",  # not an Intel::Where: skipped
        "g\\x2eexample\tIntel::DOMAIN\ts\t-\t1\tIntel::IN_ANYWHERE\tan extra column\n",
    ]
    items = intel.read_items(header + "".join(lines), do_notice=True)
    assert items == [
        intel.Item("a.example", "Intel::DOMAIN", intel.Meta("s", "", do_notice=True, if_in="DNS::IN_REQUEST")),
        intel.Item("g.example", "Intel::DOMAIN", intel.Meta("s", do_notice=True)),
    ]
    # Without do_notice.zeek the record has no do_notice and if_in: those columns are ignored.
    assert [i.indicator for i in intel.read_items(header + "".join(lines), do_notice=False) or []] == [
        "a.example",
        "e.example",
        "f.example",
        "g.example",
    ]
    # A header must name the required columns; "#fields" with a space is a comment, so the
    # first row becomes the header.
    assert intel.read_items("#fields\tindicator\tindicator_type\na.example\tIntel::DOMAIN\n", True) is None
    assert intel.read_items("#fields indicator\tindicator_type\tmeta.source\na\tIntel::DOMAIN\ts\n", True) is None


def test_rereads_a_replaced_file_and_expires_with_do_expire(site):
    """The rendered policy loads do_expire with Intel::item_expiration = 20 min."""
    intel_file = Path(intel.site_policy(site, "local.zeek").read_files[0])
    write_intel(intel_file, [zi.IntelRow("a.example", "Intel::DOMAIN", SOURCE)])
    files = intel.IntelFiles(intel.site_policy(site, "local.zeek"))
    files.poll(1000.0)
    assert [m.source for m in files.store.find("A.Example", "Intel::DOMAIN")] == [SOURCE]
    # Replaced (a new inode) without a.example: a re-read adds, never removes.
    write_intel(intel_file, [zi.IntelRow("b.example", "Intel::DOMAIN", "other")])
    files.poll(1100.0)
    assert files.store.find("a.example", "Intel::DOMAIN") and files.store.find("b.example", "Intel::DOMAIN")
    # 20 min after its last insertion a.example expires.
    files.poll(2200.0)
    assert not files.store.find("a.example", "Intel::DOMAIN") and files.store.find("b.example", "Intel::DOMAIN")
    # The file unchanged (inode and mtime): not read again, so b.example expires too...
    files.poll(2299.0)
    assert files.store.find("b.example", "Intel::DOMAIN")
    files.poll(2301.0)
    assert not files.store.find("b.example", "Intel::DOMAIN")
    # ...unless touched (as zeek-intel-refresh.timer does): read again, inserted again.
    stat = intel_file.stat()
    os.utime(intel_file, (stat.st_atime, stat.st_mtime + 5))
    files.poll(2302.0)
    files.poll(3501.0)
    assert files.store.find("b.example", "Intel::DOMAIN")


def test_missing_file_is_read_once_it_appears(tmp_path):
    policy = intel.Policy(read_files=[str(tmp_path / "late.intel")])
    files = intel.IntelFiles(policy)
    files.poll(1.0)
    write_intel(tmp_path / "late.intel", [zi.IntelRow("a.example", "Intel::DOMAIN", SOURCE)], do_notice=None)
    files.poll(2.0)
    assert files.store.find("a.example", "Intel::DOMAIN") == [intel.Meta(SOURCE)]


# --- DNS requests in real captures


def test_parses_the_dns_requests_of_real_captures(captures):
    frames = pcap_frames(captures / "dns.pcap")
    # A query for www.google.de (RD and AD set: Z is the 3 bits Z, AD, CD); the two replies
    # are not requests.
    assert [worker.parse_frame(f) for f in frames] == [
        worker.Query(
            "192.168.178.22", 42432, "192.168.178.1", 53, 18523, 0, False, True, 2,
            (worker.Question("www.google.de", 1, 1),),
        ),
        None,
        None,
    ]  # fmt: skip
    queries = [q for q in map(worker.parse_frame, pcap_frames(captures / "dns2.pcap")) if q]
    assert [(q.orig_p, q.trans_id, q.questions[0].name, q.questions[0].qtype) for q in queries] == [
        (49157, 22185, "time.windows.com", 28),
        (49157, 53928, "time.windows.com.localdomain", 28),
        (49157, 427, "time.windows.com", 1),
        (49157, 55979, "teredo.ipv6.microsoft.com", 1),
        (49157, 37291, "isatap.localdomain", 1),
        (49157, 35498, "isatap.localdomain", 1),
        (49157, 44972, "teredo.ipv6.microsoft.com", 1),
        (49157, 11695, "isatap.localdomain", 1),
        (49157, 21422, "isatap.localdomain", 1),
        (49178, 63392, "time.windows.com", 1),
        (49157, 19873, "isatap.localdomain", 1),
    ]
    assert {(q.orig_h, q.resp_h, q.resp_p, q.rd, q.z) for q in queries} == {
        ("192.168.114.129", "192.168.114.1", 53, True, 0)
    }


def test_drops_what_zeek_does_not_analyze_as_a_dns_request(captures):
    # ether.pcap's two queries were captured on the sending host before its NIC filled in the
    # UDP checksum: Zeek drops them (bad_UDP_checksum); its replies, TCP, ICMP and ARP are no
    # requests. dns3.pcap is mDNS (port 5353).
    ether = pcap_frames(captures / "ether.pcap")
    assert len(ether) == 49 and not any(map(worker.parse_frame, ether))
    assert not any(map(worker.parse_frame, pcap_frames(captures / "dns3.pcap")))


def test_uid_is_zeeks_format():
    """A 32-bit and a 64-bit word in base 62: at most 6 + 11 digits, most often all of them,
    as the connection uids of the real logs."""
    uids = {worker.new_uid() for _n in range(1000)}
    assert len(uids) == 1000
    real = {json.loads(line)["uid"] for line in zeek_logs.json_logs()["conn"]}
    for found in (uids, real):
        assert all(re.fullmatch(r"C[0-9a-zA-Z]{2,17}", uid) for uid in found)
        assert sum(len(uid) == 18 for uid in found) > 0.7 * len(found)


# --- Matching and records


@pytest.fixture
def logs(tmp_path) -> Path:
    path = tmp_path / "logger-1"
    path.mkdir()
    return path


def run(site: Path, logs: Path, frames: list[bytes], now: float = 1_700_000_000.0) -> worker.Worker:
    """A worker of the rendered policy that saw ``frames`` (intel read first)."""
    node = worker.Worker("worker-cap0-1", "manager", site, "local.zeek", logs)
    node.tick(now)
    for frame in frames:
        node.handle(frame, now)
    node.close()
    return node


def test_hit_gives_intel_and_notice_records(site, logs, captures):
    intel_file = Path(intel.site_policy(site, "local.zeek").read_files[0])
    write_intel(
        intel_file,
        [
            zi.IntelRow("WWW.Google.DE", "Intel::DOMAIN", SOURCE, "Phishing", "https://misp.example/events/view/7"),
            zi.IntelRow("www.google.de", "Intel::DOMAIN", "CPS-CTI"),
            zi.IntelRow("192.168.178.1", "Intel::ADDR", SOURCE),
        ],
    )
    query = pcap_frames(captures / "dns.pcap")[0]
    run(site, logs, [query, query])
    dns, hits, notices = records(logs, "dns"), records(logs, "intel"), records(logs, "notice")
    assert len(dns) == 2 and dns[0]["uid"] == dns[1]["uid"]
    conn = {
        "ts": 1_700_000_000.0,
        "uid": dns[0]["uid"],
        "id.orig_h": "192.168.178.22",
        "id.orig_p": 42432,
        "id.resp_h": "192.168.178.1",
        "id.resp_p": 53,
    }
    assert dns[0] == conn | {
        "proto": "udp",
        "trans_id": 18523,
        "query": "www.google.de",
        "qclass": 1,
        "qclass_name": "C_INTERNET",
        "qtype": 1,
        "qtype_name": "A",
        "AA": False,
        "TC": False,
        "RD": True,
        "RA": False,
        "Z": 2,
        "rejected": False,
        "opcode": 0,
        "opcode_name": "query",
    }
    assert hits == 2 * [
        conn
        | {
            "seen.indicator": "www.google.de",
            "seen.indicator_type": "Intel::DOMAIN",
            "seen.where": "DNS::IN_REQUEST",
            "seen.node": "worker-cap0-1",
            "matched": ["Intel::DOMAIN"],
            "sources": sorted(["CPS-CTI", SOURCE]),
        }
    ]
    # One notice: the second hit on the same indicator and addresses is suppressed.
    assert notices == [
        conn
        | {
            "proto": "udp",
            "note": "Intel::Notice",
            "msg": "Intel hit on www.google.de at DNS::IN_REQUEST",
            "sub": "www.google.de",
            "src": "192.168.178.22",
            "dst": "192.168.178.1",
            "p": 53,
            "peer_descr": "manager",
            "actions": ["Notice::ACTION_LOG"],
            "email_dest": [],
            "suppress_for": 3600.0,
        }
    ]


def test_no_hit_on_parent_or_sub_domains(site, logs, captures):
    intel_file = Path(intel.site_policy(site, "local.zeek").read_files[0])
    rows = [("windows.com", "Intel::DOMAIN"), ("x.isatap.localdomain", "Intel::DOMAIN"), ("isatap", "Intel::DOMAIN")]
    # The same name as another type does not match a domain either.
    rows.append(("teredo.ipv6.microsoft.com", "Intel::URL"))
    write_intel(intel_file, [zi.IntelRow(i, t, SOURCE) for i, t in rows])
    run(site, logs, pcap_frames(captures / "dns2.pcap"))
    dns = records(logs, "dns")
    assert len(dns) == 11 and not records(logs, "intel") and not records(logs, "notice")
    # The connection from port 49157 keeps its uid, the one from 49178 has its own.
    assert len({r["uid"] for r in dns}) == 2


def test_do_notice_only_where_the_intel_asks_for_it(site, logs, captures):
    intel_file = Path(intel.site_policy(site, "local.zeek").read_files[0])
    write_intel(intel_file, [zi.IntelRow("www.google.de", "Intel::DOMAIN", SOURCE)], do_notice=False)
    run(site, logs, pcap_frames(captures / "dns.pcap")[:1])
    assert len(records(logs, "intel")) == 1 and not records(logs, "notice")


def test_nothing_but_dns_log_without_the_seen_scripts(tmp_path, logs, captures):
    intel_file = tmp_path / "misp.intel"
    write_intel(intel_file, [zi.IntelRow("www.google.de", "Intel::DOMAIN", SOURCE)])
    site = tmp_path / "site"
    site.mkdir()
    (site / "local.zeek").write_text(
        f'@load frameworks/intel/do_notice\nredef Intel::read_files += {{ "{intel_file}" }};\n'
    )
    run(site, logs, pcap_frames(captures / "dns.pcap"))
    assert len(records(logs, "dns")) == 1 and not records(logs, "intel") and not records(logs, "notice")


def test_record_fields_are_zeeks(site, logs, captures):
    """The fields and their order as Zeek 8's records have them: dns.log's as the real log of
    parsezeeklogs' corpus (less what only a reply sets), notice.log's likewise (plus
    peer_descr, which a cluster's notices have), intel.log's as Intel::Info."""
    intel_file = Path(intel.site_policy(site, "local.zeek").read_files[0])
    write_intel(intel_file, [zi.IntelRow("www.google.de", "Intel::DOMAIN", SOURCE)])
    run(site, logs, pcap_frames(captures / "dns.pcap")[:1])
    real = zeek_logs.json_logs()
    real_dns = max((list(json.loads(line)) for line in real["dns"]), key=len)
    ours = list(records(logs, "dns")[0])
    assert ours == [k for k in real_dns if k in ours]
    assert set(real_dns) - set(ours) == {"rtt", "rcode", "rcode_name", "answers", "TTLs"}
    real_notice = list(json.loads(real["notice"][0]))
    ours = list(records(logs, "notice")[0])
    assert [k for k in ours if k != "peer_descr"] == [k for k in real_notice if k != "fuid"]
    assert ours.index("peer_descr") == ours.index("p") + 1
    assert list(records(logs, "intel")[0]) == [
        "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
        "seen.indicator", "seen.indicator_type", "seen.where", "seen.node", "matched", "sources",
    ]  # fmt: skip


# --- Live: the double started as zeekctl starts it, on the role's configuration

# Run in a network namespace of its own: a veth pair (zdcap is the capture interface), the
# double started, real frames put onto the link from the peer, and a query sent over IPv6 by
# the kernel (checksums computed in software, as from a mirror port); waits for the records.
LIVE_DRIVER = """
import ctypes, fcntl, pathlib, socket, struct, subprocess, sys, time
zeekctl, frames, message, logs, expected = sys.argv[1:6]
ip = lambda *args: subprocess.run(["ip", *args], check=True)
ip("link", "add", "zdcap", "type", "veth", "peer", "name", "zdcapp")
ip("link", "set", "zdcap", "up")
ip("link", "set", "zdcapp", "up")
ip("addr", "add", "2001:db8:1::1/64", "dev", "zdcapp", "nodad")
ip("neigh", "replace", "2001:db8:1::53", "lladdr", "02:00:00:00:00:35", "dev", "zdcapp", "nud", "permanent")
value = ctypes.create_string_buffer(struct.pack("II", 0x17, 0))  # ETHTOOL_STXCSUM: off
control = socket.socket()
fcntl.ioctl(control, 0x8946, bytearray(struct.pack("16sP", b"zdcapp", ctypes.addressof(value)) + bytes(16)))
subprocess.run([sys.executable, zeekctl, "install"], check=True, stdout=subprocess.DEVNULL)
subprocess.run([sys.executable, zeekctl, "start"], check=True, stdout=subprocess.DEVNULL)
try:
    index = str(socket.if_nametoindex("zdcap"))
    for _ in range(100):  # until both workers' packet sockets are bound to zdcap
        bound = [line.split()[4] for line in pathlib.Path("/proc/net/packet").read_text().splitlines()[1:]]
        if bound.count(index) == 2:
            break
        time.sleep(0.1)
    peer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    peer.bind(("zdcapp", 0))
    for frame in pathlib.Path(frames).read_text().split():
        peer.send(bytes.fromhex(frame))
    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(bytes.fromhex(message), ("2001:db8:1::53", 53))
    dns = pathlib.Path(logs, "dns.log")
    for _ in range(100):
        if dns.exists() and len(dns.read_text().splitlines()) >= int(expected):
            break
        time.sleep(0.1)
    time.sleep(0.5)  # for records beyond those expected
finally:
    subprocess.run([sys.executable, zeekctl, "stop"], check=True, stdout=subprocess.DEVNULL)
"""


def test_workers_log_what_they_capture(tmp_path, collections_path, captures):
    if os.geteuid() != 0 or subprocess.run(["unshare", "--net", "true"], check=False).returncode:
        pytest.skip("needs root and unshare for a network namespace")
    spool, logs = tmp_path / "spool", tmp_path / "logs"
    logs.mkdir()
    intel_file = tmp_path / "intel/misp.intel"
    extra = {"zeek_spool_dir": str(spool), "zeek_log_dir": str(logs), "zeek_intel_files": [str(intel_file)]}
    prefix = render(tmp_path, collections_path, extra)
    shutil.copytree(ROOT / "tests/zeek_double/bin", prefix / "bin")
    shutil.copytree(ROOT / "tests/zeek_double", prefix / "lib/zeekctl-double", ignore=shutil.ignore_patterns("bin"))
    (prefix / "share/zeekctl/scripts").mkdir(parents=True)
    write_intel(intel_file, [zi.IntelRow("www.google.de", "Intel::DOMAIN", SOURCE)])
    frames = pcap_frames(captures / "dns2.pcap")
    (tmp_path / "frames").write_text("\n".join(f.hex() for f in frames))
    # The DNS message of dns.pcap's query for www.google.de (its UDP payload).
    message = pcap_frames(captures / "dns.pcap")[0][14 + 20 + 8 :]
    driver = [sys.executable, "-c", LIVE_DRIVER, str(prefix / "lib/zeekctl-double/zeekctl.py")]
    driver += [str(tmp_path / "frames"), message.hex(), str(logs / "current"), "12"]
    subprocess.run(["unshare", "--net", *driver], check=True, timeout=60)
    dns = records(logs / "current", "dns")
    # dns2.pcap's 11 queries and the IPv6 one, each once: the workers share the packets (the
    # two workers write side by side, so in no set order).
    expected = [q.questions[0].name for q in map(worker.parse_frame, frames) if q] + ["www.google.de"]
    assert sorted(r["query"] for r in dns) == sorted(expected)
    ipv6 = next(r for r in dns if r["id.orig_h"] == "2001:db8:1::1")
    assert (ipv6["id.resp_h"], ipv6["id.resp_p"], ipv6["query"]) == ("2001:db8:1::53", 53, "www.google.de")
    hits = records(logs / "current", "intel")
    assert [(h["uid"], h["seen.indicator"]) for h in hits] == [(ipv6["uid"], "www.google.de")]
    assert hits[0]["seen.node"] in ("worker-zdcap-1", "worker-zdcap-2")
    assert [n["msg"] for n in records(logs / "current", "notice")] == ["Intel hit on www.google.de at DNS::IN_REQUEST"]
