"""Real Zeek logs for tests: the JSON logs Zeek 3.2 wrote that the zat project ships in its
source distribution (PyPI ``zat`` 0.4.9, Apache-2.0, ``data/json/``: conn, dns, http, files,
ssl, x509, weird, capture_loss, stats, dhcp, kerberos, ntp, dce_rpc, smb_*, ...), fetched at
test time (tests/sdists.py) and never copied into this repository."""

from __future__ import annotations

import sdists

ZAT_VERSION = "0.4.9"


def dataset(log: str) -> str:
    """The ``event.dataset`` of a Zeek log, as Elastic's Zeek integration names it."""
    return "zeek.connection" if log == "conn" else f"zeek.{log}"


def json_logs() -> dict[str, list[str]]:
    """Each JSON log's name (``conn``, ``dns``, ...) and its lines."""
    found = sdists.extracted("zat", ZAT_VERSION, "data/json", (".log",))
    return {
        path.stem: [line for line in path.read_text().splitlines() if line.strip()]
        for path in sorted(found.glob("*.log"))
    }
