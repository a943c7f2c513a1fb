"""Export flows to a NetFlow/IPFIX collector with softflowd, from captures (the lab, the
workshop scenario): each ``--pcap`` as it is, and for ``--to`` addresses a capture written
here of a short UDP exchange between ``--from`` and each address, stamped now, so that
the flows are current and reach the given addresses (e.g. MISP indicators).

softflowd reads each capture (``-r``), expires its flows at the capture's end and exports
them (IPFIX by default, or NetFlow v9) to ``--collector``; prints the records softflowd
reports as exported, per capture, and exits non-zero if softflowd fails. IPFIX, because
nfacctd 1.7.7 (Debian 12) kept only the first capture's records of softflowd 1.1.0's
NetFlow v9 per collector start here, and none of a capture stamped now; with IPFIX, all.
Python's standard library and softflowd only: it runs on a lab host.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# pcap: magic, version 2.4, GMT offset, accuracy, snap length, link type 1 (Ethernet).
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
MACS = (bytes.fromhex("020000000001"), bytes.fromhex("020000000002"))


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_packet(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An Ethernet frame with an IPv4 UDP datagram."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed,
    )  # fmt: skip
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return MACS[1] + MACS[0] + b"\x08\x00" + header + udp


def exchange_capture(path: Path, source: str, targets: list[str], port: int) -> None:
    """A capture of three request/response pairs between ``source`` and each target, now."""
    now = time.time()
    with path.open("wb") as out:
        out.write(PCAP_HEADER)
        for n, target in enumerate(targets):
            for i in range(3):
                moment = now + n + i * 0.1
                for frame in (
                    udp_packet(source, target, 40000 + n, port, b"request"),
                    udp_packet(target, source, port, 40000 + n, b"response"),
                ):
                    out.write(struct.pack("<IIII", int(moment), int(moment % 1 * 1e6), len(frame), len(frame)))
                    out.write(frame)
                    moment += 0.01


def export(pcap: Path, collector: str, options: list[str], work: Path, timeout: float = 120) -> int:
    """softflowd's exported record count for one capture, with softflowd's ``options``
    (``-v 9``, ``-v 10``, ``-A milli``, ...)."""
    # No control socket: with -r, softflowd 1.1.0 would wait on it after the capture's end.
    cmd = ["softflowd", "-d", "-r", str(pcap), "-n", collector, *options]
    cmd += ["-c", "none", "-p", str(work / "softflowd.pid")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    sent = re.search(r"Flows exported: \d+ \((\d+) records\)", res.stdout + res.stderr)
    if not sent:
        raise SystemExit(f"softflowd did not report its export: {res.stdout}{res.stderr}")
    return int(sent.group(1))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--collector", required=True, help="host:port of the NetFlow/IPFIX collector")
    parser.add_argument("--version", type=int, choices=(9, 10), default=10, help="IPFIX (10) or NetFlow v9")
    parser.add_argument("--pcap", type=Path, action="append", default=[], help="a capture to export as it is")
    parser.add_argument("--to", action="append", default=[], help="an IPv4 address to exchange traffic with")
    parser.add_argument("--from", dest="source", default="192.0.2.10", help="the local side of those exchanges")
    parser.add_argument("--port", type=int, default=443, help="the remote UDP port of those exchanges")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        captures = list(args.pcap)
        if args.to:
            exchange_capture(work / "exchanges.pcap", args.source, args.to, args.port)
            captures.append(work / "exchanges.pcap")
        for pcap in captures:
            print(f"{pcap.name}: {export(pcap, args.collector, ['-v', str(args.version)], work)} records")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
