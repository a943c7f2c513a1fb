"""Real Zeek logs for tests, written by Zeek and shipped in source distributions on PyPI,
fetched at test time (tests/sdists.py) and never copied into this repository:

- ``zat`` 0.4.9 (Apache-2.0), ``data/json/``: JSON logs of Zeek 3.2 (conn, dns, http, files,
  ssl, x509, weird, capture_loss, stats, dhcp, kerberos, ntp, dce_rpc, smb_*, ...);
- ``parsezeeklogs`` 3.0.1 (Apache-2.0), ``tests/data/*/json/``: every JSON log Zeek 8.2.2
  wrote for two captures of the PCAP-ATTACK corpus (notice, conn with ``ip_proto``, dns with
  TXT answers, rdp, dhcp, known_*, stats, telemetry, ...)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import sdists
import yaml

ZAT_VERSION = "0.4.9"
PARSEZEEKLOGS_VERSION = "3.0.1"


# The filebeat role's table of the datasets that are not zeek.<log>: the one source of truth.
_DATASETS = yaml.safe_load((Path(__file__).resolve().parents[1] / "roles/filebeat/vars/main.yml").read_text())[
    "__filebeat_zeek_datasets"
]


def dataset(log: str) -> str:
    """The ``event.dataset`` the filebeat role tags a Zeek log with (conn: zeek.connection)."""
    return _DATASETS.get(log, f"zeek.{log}")


def json_logs() -> dict[str, list[str]]:
    """Each JSON log's name (``conn``, ``dns``, ...) and its lines from both corpora, zat's
    first."""
    found = [sdists.extracted("zat", ZAT_VERSION, "data/json", (".log",))]
    modern = sdists.extracted("parsezeeklogs", PARSEZEEKLOGS_VERSION, "tests/data", (".log",))
    found += sorted(modern.glob("*/json"))
    logs: dict[str, list[str]] = defaultdict(list)
    for directory in found:
        for path in sorted(directory.glob("*.log")):
            logs[path.stem] += [line for line in path.read_text().splitlines() if line.strip()]
    return dict(logs)


def intel_feed() -> list[dict[str, str]]:
    """The rows of zat's ``data/intel_example.intel``, a real Zeek intel feed (501 lines)."""
    path = sdists.extracted("zat", ZAT_VERSION, "data", (".intel",)) / "intel_example.intel"
    lines = path.read_text().splitlines()
    fields = lines[0].removeprefix("#fields\t").split("\t")
    return [dict(zip(fields, line.split("\t"), strict=True)) for line in lines[1:] if line and line[0] != "#"]


def intel_log(logs: dict[str, list[str]]) -> list[str]:
    """intel.log lines for a hit on each indicator of zat's feed, in Zeek's JSON format (the
    fields of ``Intel::Info``, base/frameworks/intel/main.zeek): no real intel.log is
    published on PyPI. Each hit is placed where Zeek's ``frameworks/intel/seen`` scripts see
    its type, on real traffic of ``logs``: an address as the responder of a real connection
    (``Conn::IN_RESP``), a domain as the query of a real DNS request (``DNS::IN_REQUEST``),
    a hash as the hash of a real file (``Files::IN_HASH``)."""
    conns = [json.loads(line) for line in logs["conn"]]
    queries = [json.loads(line) for line in logs["dns"]]
    files = [json.loads(line) for line in logs["files"]]
    out = []
    for n, row in enumerate(intel_feed()):
        hit: dict = {"seen.indicator": row["indicator"], "seen.indicator_type": row["indicator_type"]}
        if row["indicator_type"] == "Intel::ADDR":
            conn = conns[n % len(conns)]
            hit = {k: conn[k] for k in ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_p")} | hit
            hit |= {"id.resp_h": row["indicator"], "seen.where": "Conn::IN_RESP"}
        elif row["indicator_type"] == "Intel::DOMAIN":
            query = queries[n % len(queries)]
            hit = {k: query[k] for k in ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")} | hit
            hit |= {"seen.where": "DNS::IN_REQUEST"}
        else:
            file = files[n % len(files)]
            hit = {"ts": file["ts"]} | hit | {"seen.where": "Files::IN_HASH", "fuid": file["fuid"]}
            hit |= {"file_mime_type": file["mime_type"]} if "mime_type" in file else {}
        hit |= {"seen.node": "worker-1-1", "matched": [row["indicator_type"]], "sources": [row["meta.source"]]}
        out.append(json.dumps(hit))
    return out


def write_corpus(directory: Path) -> int:
    """Write both corpora's JSON logs into ``directory`` as ``<log>.log`` (for the Zeek
    double's log writer, tests/zeek_double/replay.py); returns the number of records."""
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for log, lines in json_logs().items():
        (directory / f"{log}.log").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        count += len(lines)
    return count


if __name__ == "__main__":
    import sys

    print(write_corpus(Path(sys.argv[1])))
