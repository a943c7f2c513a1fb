"""Traffic for the flow probes: send-traffic COLLECTOR.

Sends 20 UDP datagrams from port 50009 to COLLECTOR:40009 (exported as NetFlow v9),
from 50010 to 40010 (IPFIX), from 50013 to 40013 (sFlow), and tries a TCP connection
from port 50011 to 40011 (IPFIX). Nothing needs to answer: the probes see the packets
leave.
"""

import socket
import sys


def main() -> int:
    collector = sys.argv[1]
    for sport, dport in ((50009, 40009), (50010, 40010), (50013, 40013)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("0.0.0.0", sport))  # noqa: S104 (the exporter's own address, whichever it is)
            for datagram in [b"x" * 100] * 20:
                s.sendto(datagram, (collector, dport))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 50011))  # noqa: S104
        s.settimeout(2)
        try:
            s.connect((collector, 40011))
        except OSError as e:  # refused, or dropped by the collector's firewall
            print(f"tcp: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
