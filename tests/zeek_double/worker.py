"""The Zeek double's worker node: captures its interface as Zeek's AF_Packet source does and
writes what Zeek's DNS analysis and intel framework log for the DNS queries it sees, into the
log node's directory (as the workers' logs reach zeekctl's logger).

Run by bin/zeek for a worker (zeekctl starts it as ``zeek NODE -i INTERFACE``): NODE's
settings come from node.cfg (af_packet_fanout_id, default 23; af_packet_fanout_mode), the
site policy from the scripts zeekctl installed (intel.py).

- Capture: an AF_PACKET socket on the interface (``af_packet::`` prefix dropped), in
  promiscuous mode, in the fanout group of the node's interface, so that each packet goes to
  one worker of the interface; both directions, as Zeek sees them.
- Packets: Ethernet with 802.1Q/802.1ad tags, IPv4 (header checksum checked, fragments
  skipped) or IPv6 (hop-by-hop, routing and destination options skipped; fragments skipped),
  UDP to port 53 with a valid checksum (AF_Packet::checksum_validation_mode = CHECKSUM_ON: a
  bad checksum drops the packet); DNS messages with QR=0 and opcode query or notify, at
  most dns_max_queries (25) questions, names as Zeek's DNS analyzer extracts them
  (compression pointers backwards only, labels of at most 63 bytes, lower-cased, without the
  trailing dot).
- dns.log: one record per query, as Zeek logs a request that got no reply (the double sees
  no replies): the fields of DNS::Info that such a request sets (no rtt, rcode, answers,
  TTLs). Zeek writes it when the connection expires; the double at once. The connection's
  uid is kept while packets of the connection come within udp_inactivity_timeout (1 min).
- intel.log: with frameworks/intel/seen (or its dns.zeek) loaded, each question whose name
  matches an Intel::DOMAIN indicator (exactly, case-insensitively) gives an Intel::Info
  record (ts, uid, id, seen.indicator/indicator_type/where/node, matched, sources).
- notice.log: with frameworks/intel/do_notice loaded, a match with an item whose
  meta.do_notice is T (and meta.if_in anywhere or DNS::IN_REQUEST) gives an Intel::Notice,
  as the manager raises it (peer_descr), suppressed for an hour per indicator and address
  pair (Notice::default_suppression_interval; Zeek suppresses cluster-wide, the double in
  each worker).

Records are appended as Zeek's JSON writer writes them (one object per line, fields in the
record's order, ts in epoch seconds), flushed line by line; JSON whether or not the policy
loads tuning/json-logs, as replay.py writes. Python's standard library only.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import zeekctl
from intel import IntelFiles, Meta, site_policy

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC, PACKET_FANOUT = 1, 1, 18
FANOUT_MODES = {"AF_Packet::FANOUT_HASH": 0, "AF_Packet::FANOUT_CPU": 2, "AF_Packet::FANOUT_QM": 5}
DEFAULT_FANOUT_ID = 23
# Link types whose frames start with an Ethernet header (loopback's is all zeros).
ETHERNET_LINKS = (1, 772)
DNS_PORT = 53
DNS_MAX_QUERIES = 25
NAME_BUFFER = 512
UDP_INACTIVITY = 60.0
SUPPRESS_FOR = 3600.0

# base/protocols/dns/consts.zeek
QUERY_TYPES = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR", 10: "NULL",
    11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB", 19: "X25",
    20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAP-PTR", 24: "SIG", 25: "KEY", 26: "PX", 27: "GPOS",
    28: "AAAA", 29: "LOC", 30: "NXT", 31: "EID", 32: "NIMLOC", 33: "SRV", 34: "ATMA", 35: "NAPTR",
    36: "KX", 37: "CERT", 38: "A6", 39: "DNAME", 40: "SINK", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP",
    45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM",
    52: "TLSA", 53: "SMIMEA", 55: "HIP", 56: "NINFO", 57: "RKEY", 58: "TALINK", 59: "CDS", 60: "CDNSKEY",
    61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 99: "SPF", 100: "UINFO",
    101: "UID", 102: "GID", 103: "UNSPEC", 104: "NID", 105: "L32", 106: "L64", 107: "LP", 108: "EUI48",
    109: "EUI64", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB", 254: "MAILA",
    255: "*", 256: "URI", 257: "CAA", 32768: "TA", 32769: "DLV", 65281: "WINS", 65282: "WINS-R",
    65422: "XPF", 65521: "INTEGRITY",
}  # fmt: skip
CLASSES = {1: "C_INTERNET", 2: "C_CSNET", 3: "C_CHAOS", 4: "C_HESIOD", 254: "C_NONE", 255: "C_ANY"}
OPCODES = {0: "query", 4: "notify"}  # the opcodes Zeek raises dns_request for
BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Question:
    name: str
    qtype: int
    qclass: int


@dataclass(frozen=True)
class Query:
    """A DNS request: its connection's endpoints, header and the questions parsed."""

    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    trans_id: int
    opcode: int
    tc: bool
    rd: bool
    z: int
    questions: tuple[Question, ...]


def _checksum(data: bytes) -> int:
    """The Internet checksum's one's-complement sum of ``data`` (0xffff when it verifies)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _name(msg: bytes, pos: int, room: int) -> tuple[bytes, int] | None:
    """The name at ``pos`` as Zeek's ExtractName reads it (labels joined by dots, with a
    trailing dot) and the position after it; None where Zeek stops parsing the message."""
    name = b""
    while pos < len(msg):
        length = msg[pos]
        if length == 0:
            return name, pos + 1
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                return None
            target = (length & 0x3F) << 8 | msg[pos + 1]
            if target >= pos:  # only backwards, as Zeek
                return None
            rest = _name(msg[:pos], target, room - len(name))
            return (name + rest[0], pos + 2) if rest else None
        if length > 63 or length >= room - len(name) or pos + 1 + length > len(msg):
            return None
        name += msg[pos + 1 : pos + 1 + length] + b"."
        pos += 1 + length
    return None


def parse_dns(msg: bytes) -> tuple[int, int, bool, bool, int, tuple[Question, ...]] | None:
    """(trans_id, opcode, TC, RD, Z, questions) of a DNS request; None for other messages."""
    if len(msg) < 12:
        return None
    trans_id, flags, qdcount = struct.unpack("!HHH", msg[:6])
    opcode = (flags >> 11) & 0xF
    if flags & 0x8000 or opcode not in OPCODES or qdcount > DNS_MAX_QUERIES:
        return None
    questions = []
    pos = 12
    for _n in range(qdcount):
        found = _name(msg, pos, NAME_BUFFER)
        if found is None or found[1] + 4 > len(msg):
            break
        raw, pos = found
        qtype, qclass = struct.unpack("!HH", msg[pos : pos + 4])
        pos += 4
        name = raw.removesuffix(b".").lower().decode("utf-8", "backslashreplace")
        questions.append(Question(name, qtype, qclass))
    return trans_id, opcode, bool(flags & 0x0200), bool(flags & 0x0100), (flags >> 4) & 0x7, tuple(questions)


def parse_frame(frame: bytes) -> Query | None:
    """The DNS request an Ethernet frame carries over UDP to port 53, else None."""
    if len(frame) < 14:
        return None
    ethertype, pos = struct.unpack("!H", frame[12:14])[0], 14
    while ethertype in (0x8100, 0x88A8) and len(frame) >= pos + 4:
        ethertype, pos = struct.unpack("!H", frame[pos + 2 : pos + 4])[0], pos + 4
    packet = frame[pos:]
    if ethertype == 0x0800 and len(packet) >= 20 and packet[0] >> 4 == 4:
        header = (packet[0] & 0xF) * 4
        total, fragment, protocol = struct.unpack("!H2xHxB", packet[2:10])
        if header < 20 or total < header or _checksum(packet[:header]) != 0xFFFF or fragment & 0x3FFF:
            return None
        if protocol != 17:
            return None
        src, dst = packet[12:16], packet[16:20]
        udp = packet[header:total]
    elif ethertype == 0x86DD and len(packet) >= 40 and packet[0] >> 4 == 6:
        length, protocol = struct.unpack("!HB", packet[4:7])
        src, dst = packet[8:24], packet[24:40]
        payload = packet[40 : 40 + length]
        while protocol in (0, 43, 60) and len(payload) >= 8:
            protocol, payload = payload[0], payload[(payload[1] + 1) * 8 :]
        if protocol != 17:
            return None
        udp = payload
    else:
        return None
    if len(udp) < 8:
        return None
    sport, dport, ulen, check = struct.unpack("!HHHH", udp[:8])
    if dport != DNS_PORT or not 8 <= ulen <= len(udp):
        return None
    udp = udp[:ulen]
    pseudo = src + dst + (struct.pack("!xBH", 17, ulen) if len(src) == 4 else struct.pack("!I3xB", ulen, 17))
    # An IPv4 checksum of 0 means none was computed; IPv6 requires one.
    if (check or len(src) == 16) and _checksum(pseudo + udp) != 0xFFFF:
        return None
    dns = parse_dns(udp[8:])
    if dns is None:
        return None
    orig, resp = str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst))
    return Query(orig, sport, resp, dport, *dns)


def new_uid() -> str:
    """A connection uid as Zeek makes one (UID::Base62 of bits_per_uid=96 random bits: a
    32-bit and a 64-bit word, each in base 62, least significant digit first)."""
    digits = ""
    for bits in (32, 64):
        value = secrets.randbits(bits)
        while True:
            digits += BASE62[value % 62]
            value //= 62
            if not value:
                break
    return "C" + digits


def _conn(ts: float, uid: str, query: Query) -> dict[str, Any]:
    return {
        "ts": round(ts, 6),
        "uid": uid,
        "id.orig_h": query.orig_h,
        "id.orig_p": query.orig_p,
        "id.resp_h": query.resp_h,
        "id.resp_p": query.resp_p,
    }


def dns_record(ts: float, uid: str, query: Query) -> dict[str, Any]:
    """DNS::Info of a request without reply (the last question's, as Zeek keeps)."""
    record = _conn(ts, uid, query) | {"proto": "udp", "trans_id": query.trans_id}
    if query.questions:
        last = query.questions[-1]
        record |= {
            "query": last.name,
            "qclass": last.qclass,
            "qclass_name": CLASSES.get(last.qclass, f"qclass-{last.qclass}"),
            "qtype": last.qtype,
            "qtype_name": QUERY_TYPES.get(last.qtype, f"query-{last.qtype}"),
        }
    return record | {
        "AA": False,
        "TC": query.tc,
        "RD": query.rd,
        "RA": False,
        "Z": query.z,
        "rejected": False,
        "opcode": query.opcode,
        "opcode_name": OPCODES[query.opcode],
    }


def intel_record(ts: float, uid: str, query: Query, name: str, node: str, metas: list[Meta]) -> dict[str, Any]:
    """Intel::Info of a domain seen in a DNS request."""
    return _conn(ts, uid, query) | {
        "seen.indicator": name,
        "seen.indicator_type": "Intel::DOMAIN",
        "seen.where": "DNS::IN_REQUEST",
        "seen.node": node,
        "matched": ["Intel::DOMAIN"],
        "sources": sorted({meta.source for meta in metas}),
    }


def notice_record(ts: float, uid: str, query: Query, name: str, manager: str) -> dict[str, Any]:
    """Notice::Info of do_notice.zeek's Intel::Notice, after Notice::apply_policy."""
    return _conn(ts, uid, query) | {
        "proto": "udp",
        "note": "Intel::Notice",
        "msg": f"Intel hit on {name} at DNS::IN_REQUEST",
        "sub": name,
        "src": query.orig_h,
        "dst": query.resp_h,
        "p": query.resp_p,
        "peer_descr": manager,
        "actions": ["Notice::ACTION_LOG"],
        "email_dest": [],
        "suppress_for": SUPPRESS_FOR,
    }


class Worker:
    """One worker's analysis: DNS requests to records in ``logs``."""

    def __init__(self, node: str, manager: str, site: Path, script: str, logs: Path) -> None:
        self.node, self.manager, self.logs = node, manager, logs
        self.policy = site_policy(site, script)
        self.intel = IntelFiles(self.policy)
        self._uids: dict[tuple[str, int, str, int], tuple[str, float]] = {}
        self._suppressed: dict[tuple[str, str, str], float] = {}
        self._handles: dict[str, TextIO] = {}

    def tick(self, now: float) -> None:
        """Once a second: intel files re-read when changed, idle connections forgotten."""
        self.intel.poll(now)
        self._uids = {k: v for k, v in self._uids.items() if now - v[1] < UDP_INACTIVITY}

    def write(self, log: str, record: dict[str, Any]) -> None:
        if log not in self._handles:
            self._handles[log] = open(self.logs / f"{log}.log", "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._handles[log].write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()

    def handle(self, frame: bytes, now: float) -> None:
        query = parse_frame(frame)
        if query is None:
            return
        key = (query.orig_h, query.orig_p, query.resp_h, query.resp_p)
        uid = self._uids[key][0] if key in self._uids else new_uid()
        self._uids[key] = (uid, now)
        self.write("dns", dns_record(now, uid, query))
        if not self.policy.dns_seen:
            return
        for question in query.questions:
            metas = self.intel.store.find(question.name, "Intel::DOMAIN")
            if not metas:
                continue
            self.write("intel", intel_record(now, uid, query, question.name, self.node, metas))
            notify = any(m.do_notice and m.if_in in ("Intel::IN_ANYWHERE", "DNS::IN_REQUEST") for m in metas)
            if self.policy.do_notice and notify:
                pair = sorted((query.orig_h, query.resp_h), key=ipaddress.ip_address)
                identifier = (question.name, pair[0], pair[1])
                if self._suppressed.get(identifier, 0.0) <= now:
                    self._suppressed[identifier] = now + SUPPRESS_FOR
                    self.write("notice", notice_record(now, uid, query, question.name, self.manager))


def capture_socket(interface: str, fanout_id: int, fanout_mode: str) -> socket.socket:
    """A non-blocking AF_PACKET socket on ``interface`` as Zeek's AF_Packet source opens it."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((interface, ETH_P_ALL))
    membership = struct.pack("iHH8s", socket.if_nametoindex(interface), PACKET_MR_PROMISC, 0, b"")
    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, membership)
    sock.setsockopt(SOL_PACKET, PACKET_FANOUT, (fanout_id & 0xFFFF) | FANOUT_MODES[fanout_mode] << 16)
    sock.setblocking(False)
    return sock


def main(node_name: str, interface: str) -> int:
    cfg = zeekctl.settings()
    cluster = zeekctl.nodes()
    node = next(n for n in cluster if n["name"] == node_name)
    manager = next(n["name"] for n in cluster if n["type"] == "manager")
    installed = Path(cfg["SpoolDir"], "installed-scripts-do-not-touch", "site")
    logs = Path(cfg["SpoolDir"], zeekctl.log_node(cluster)["name"])
    worker = Worker(node_name, manager, installed, cfg.get("SitePolicyScripts", "local.zeek"), logs)
    sock = capture_socket(
        interface.removeprefix("af_packet::"),
        int(node.get("af_packet_fanout_id", DEFAULT_FANOUT_ID)),
        node.get("af_packet_fanout_mode", "AF_Packet::FANOUT_HASH"),
    )
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    try:
        next_tick = 0.0
        while True:
            now = time.time()
            if now >= next_tick:
                worker.tick(now)
                next_tick = now + 1.0
            if not select.select([sock], [], [], max(0.0, next_tick - now))[0]:
                continue
            while True:
                try:
                    frame, address = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                if address[3] in ETHERNET_LINKS:
                    worker.handle(frame, time.time())
    finally:
        worker.close()
        sock.close()


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main(sys.argv[1], sys.argv[2]))
