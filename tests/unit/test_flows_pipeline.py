"""The flows ingest pipeline (roles/elasticsearch/files/ingest/wlcg-soc-flows.json) on the real
OpenSearch test node, fed the JSON lines that the real pmacct collectors write when real exporters
send them real traffic.

The collectors are Debian's pmacct 1.7.7, configured by the nfacctd role's own template and
defaults (rendered as tests/unit/test_nfacctd_role.py renders them; only the paths, the loopback
address, free ports and a one-second refresh differ):

- ``nfacctd`` receives NetFlow v9 and IPFIX from Debian's softflowd 1.1.0 reading the captures
  (``softflowd -r``: no capture privileges, deterministic): with absolute times in milliseconds
  (``-A milli``), as routers send them, and IPFIX with softflowd's default times relative to its
  uptime, of which pmacct prints the end as ``0000-00-00T00:00:00.000000Z``.
- ``sfacctd`` receives sFlow v5 from pmacct's own ``pmacctd`` reading the captures with its
  ``sfprobe`` plugin.

softflowd 1.1.0 leaves the template flowsets out of the count in the header of a NetFlow v9
datagram, and pmacct reads no more flowsets than that count: the data flowsets at the end of the
first datagram of each export (the one carrying the templates) are lost. The NetFlow v9 records are
thus a subset of the IPFIX ones here, which the IPFIX export (counted by its length) delivers whole.
And nfacctd 1.7.7, with the templates file the role configures, corrupts its heap and dies when an
exporter sends its templates again (test_a_template_refresh): each nfacctd run here gets one export.

The captures: PyPI ``pypacker`` 5.4 (sdist, GPL-2.0), ``tests/ether.pcap`` (IPv4: TCP, UDP/DNS,
ICMP, ARP) and ``tests/ip6_sr-header.pcap`` (IPv6: TCP, and IPv6 in IPv6 with a segment routing
header), fetched at test time (tests/sdists.py) and never copied into this repository.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import flow_export
import pytest
import sdists
from ansible_collections.wlcg.soc.plugins.module_utils.misp_ioc import Export
from ansible_collections.wlcg.soc.plugins.module_utils.misp_memcached import key as memcached_key
from conftest import run_playbook
from ingest_helpers import (
    DASHBOARDS,
    MAPPINGS,
    bulk_create,
    community_id,
    dashboard_fields,
    data_stream,
    field_types,
    leaves,
    load_pipelines,
    mapped,
    simulate,
)
from test_nfacctd_role import DEB, render

PYPACKER_VERSION = "5.4"
CAPTURES = ("ether.pcap", "ip6_sr-header.pcap")
# Each export: the collector, and softflowd's options (None: sFlow from pmacctd's sfprobe).
EXPORTS = {
    "netflow-v9": ("nfacctd", ["-v", "9", "-A", "milli"]),
    "ipfix": ("nfacctd", ["-v", "10", "-A", "milli"]),
    "ipfix-uptime": ("nfacctd", ["-v", "10"]),
    "sflow": ("sfacctd", None),
}
DATASETS = {"nfacctd": "netflow.flow", "sfacctd": "sflow.flow"}
READ_AT = "2026-12-06T00:00:00Z"  # when the shipper read the line
# IANA protocol numbers of what the captures hold, from IANA's registry.
IANA = {"icmp": 1, "tcp": 6, "udp": 17, "ipv6": 41}
NO_TIME = "0000-00-00T00:00:00.000000Z"
# What the pipeline moves out of pmacct's record into ECS fields.
ECS_KEYS = {"ip_src", "ip_dst", "port_src", "port_dst", "ip_proto", "bytes", "packets", "peer_ip_src"}
ECS_KEYS |= {"iface_in", "iface_out", "timestamp_start", "timestamp_end"}
TIMEOUT = 30.0


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@contextlib.contextmanager
def running(cmd: list[str], log: Path, ready: str) -> Iterator[subprocess.Popen]:
    """A pmacct daemon in its own process group, up once its log says ``ready``. Stopped with
    SIGINT (pmacct ignores SIGTERM; on SIGINT its plugins write what they hold), and killed with
    its group if it does not stop, however the test ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while ready not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, f"{cmd[0]} did not start: {log.read_text(errors='replace')}"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(ProcessLookupError):  # the core waited for its plugins; any left
            os.killpg(proc.pid, signal.SIGKILL)


def lines_in(out: Path, daemon: str) -> list[str]:
    return [line for path in sorted(out.glob(f"{daemon}-*.json")) for line in path.read_text().splitlines() if line]


@functools.cache
def capture(name: str) -> Path:
    return sdists.extracted("pypacker", PYPACKER_VERSION, "tests", (".pcap",)) / name


def export(name: str, pcap: Path, port: int, tmp: Path) -> int | None:
    """Send the capture's flows to the collector; the records the exporter says it sent (None
    for sFlow, whose samples the collector aggregates)."""
    options = EXPORTS[name][1]
    if options is not None:
        return flow_export.export(pcap, f"127.0.0.1:{port}", options, tmp, timeout=TIMEOUT)
    conf = tmp / "pmacctd.conf"
    conf.write_text(
        f"daemonize: false\npcap_savefile: {pcap}\nplugins: sfprobe\n"
        f"sfprobe_receiver: 127.0.0.1:{port}\nsfprobe_agentip: 127.0.0.1\n"
    )
    # pmacctd stops at the capture's end; its exit status then depends on which of its
    # processes sees the end first, so the records are what is checked.
    subprocess.run(["pmacctd", "-f", str(conf)], capture_output=True, timeout=TIMEOUT, check=False)
    return None


def collector_run(name: str, pcaps: tuple[str, ...], setup: dict) -> tuple[list[str], list[int | None]]:
    """A collector started afresh, each capture exported to it: what it wrote once it stopped,
    and what the exporter sent."""
    daemon, out, tmp = EXPORTS[name][0], setup["out"], setup["tmp"]
    for path in out.glob("*.json"):
        path.unlink()
    (tmp / "state/templates.json").unlink(missing_ok=True)
    with running([daemon, "-f", str(setup["confs"][daemon])], tmp / f"{name}.log", "waiting for"):
        sent = [export(name, capture(pcap), setup["ports"][daemon], tmp) for pcap in pcaps]
        # Written every second: wait until the files stop growing (two refreshes at least).
        deadline, settled, seen, still = time.monotonic() + TIMEOUT, time.monotonic() + 2.5, -1, 0
        while time.monotonic() < deadline and (still < 3 or time.monotonic() < settled):
            count = len(lines_in(out, daemon))
            still, seen = (still + 1 if count == seen else 0), count
            time.sleep(0.5)
    return lines_in(out, daemon), sent


@pytest.fixture(scope="module")
def setup(tmp_path_factory, collections_path) -> dict:
    """The collectors' configurations, rendered by the nfacctd role, and where they write."""
    for binary in ("nfacctd", "sfacctd", "pmacctd", "softflowd"):
        shutil.which(binary) or pytest.fail(f"{binary} is required: tests/deps.sh installs pmacct and softflowd")
    tmp = tmp_path_factory.mktemp("flows")
    rendered, out, state = tmp / "rendered", tmp / "out", tmp / "state"
    for path in (rendered, out, state):
        path.mkdir()
    ports = {"nfacctd": free_udp_port(), "sfacctd": free_udp_port()}
    extra = {
        "nfacctd_listen_address": "127.0.0.1",
        "nfacctd_port": ports["nfacctd"],
        "nfacctd_sflow_enabled": True,
        "nfacctd_sflow_port": ports["sfacctd"],
        "nfacctd_output_dir": str(out),
        "nfacctd_refresh_seconds": 1,
        "__nfacctd_state_dir": str(state),
    }
    files = render(functools.partial(run_playbook, rendered, collections_path), rendered, "Debian", DEB, extra)
    confs = {}
    for daemon in ("nfacctd", "sfacctd"):
        confs[daemon] = tmp / f"{daemon}.conf"
        confs[daemon].write_text(files[f"{daemon}.conf"])
    return {"confs": confs, "ports": ports, "out": out, "tmp": tmp}


@pytest.fixture(scope="module")
def collected(setup) -> dict[str, dict]:
    """Each export's records as the collector wrote them, and how many the exporter sent."""
    runs = {}
    for name, (daemon, _options) in EXPORTS.items():
        # sfacctd takes both captures; nfacctd one each, as it crashes when an exporter sends its
        # templates again (test_a_template_refresh).
        batches = [CAPTURES] if daemon == "sfacctd" else [(pcap,) for pcap in CAPTURES]
        lines, sent = [], []
        for pcaps in batches:
            got, told = collector_run(name, pcaps, setup)
            lines += got
            sent += told
        runs[name] = {"lines": lines, "sent": None if None in sent else sum(sent)}
    return runs


@pytest.fixture(scope="module")
def node(search_nodes):
    opensearch = search_nodes.get("opensearch")
    load_pipelines(opensearch)
    return opensearch


def flow_doc(line: str, name: str) -> dict:
    # As the shipper delivers it: the line, its dataset, the time it was read.
    return {"message": line, "event": {"dataset": DATASETS[EXPORTS[name][0]]}, "@timestamp": READ_AT}


@pytest.fixture(scope="module")
def ecs(node, collected) -> dict[str, list[tuple[dict, dict]]]:
    """Every record through wlcg-soc-flows: (pmacct's record, the document) per line and export."""
    return {
        name: list(
            zip(
                [json.loads(line) for line in run["lines"]],
                simulate(node, [flow_doc(line, name) for line in run["lines"]], "wlcg-soc-flows"),
                strict=True,
            )
        )
        for name, run in collected.items()
    }


def flow_key(record: dict) -> tuple:
    return (record["ip_src"], record["ip_dst"], record["port_src"], record["port_dst"], record["ip_proto"])


def test_the_collectors_wrote_what_the_exporters_sent(collected):
    for name in ("ipfix", "ipfix-uptime"):
        assert len(collected[name]["lines"]) == collected[name]["sent"] == 10, name  # 8 + 2
    ipfix = {flow_key(r): r for r in map(json.loads, collected["ipfix"]["lines"])}
    v9 = [json.loads(line) for line in collected["netflow-v9"]["lines"]]
    assert v9 and len(v9) < collected["netflow-v9"]["sent"]  # softflowd's header count, above
    for record in v9:
        twin = ipfix[flow_key(record)]
        assert record["export_proto_version"] == 9 and twin["export_proto_version"] == 10
        for key in ("bytes", "packets", "timestamp_start", "timestamp_end", "tcp_flags"):
            assert record[key] == twin[key], (key, record, twin)
    sflow = [json.loads(line) for line in collected["sflow"]["lines"]]
    assert sflow and {flow_key(r) for r in sflow} <= set(ipfix)
    for record in sflow:
        # Every packet is sampled, unless pmacctd's pipe to its probe overflows on a busy machine.
        assert 0 < record["packets"] <= ipfix[flow_key(record)]["packets"]
    seen = {key for r in map(json.loads, collected["ipfix"]["lines"]) for key in r}
    assert {r["ip_proto"] for r in ipfix.values()} == set(IANA)
    assert any(":" in r["ip_src"] for r in ipfix.values()) and any("." in r["ip_src"] for r in ipfix.values())
    # The keys of nfacctd's JSON with the role's aggregate (its primitives' printed names).
    assert seen == ECS_KEYS | {
        "event_type",
        "tos",
        "tcp_flags",
        "sampling_rate",
        "export_proto_version",
        "stamp_inserted",
        "stamp_updated",
    }


def test_every_record_becomes_ecs(ecs):
    for name, pairs in ecs.items():
        assert pairs, name
        for record, doc in pairs:
            event = doc["event"]
            assert event["kind"] == "event", doc
            assert event["module"] == ("sflow" if name == "sflow" else "netflow")
            assert event["dataset"] == DATASETS[EXPORTS[name][0]]
            assert event["category"] == ["network"] and event["type"] == ["connection"]
            assert event["ingested"] and "message" not in doc and "raw" not in doc["netflow"]
            assert doc["source"]["ip"] == record["ip_src"] and doc["destination"]["ip"] == record["ip_dst"]
            assert set(doc["related"]["ip"]) == {record["ip_src"], record["ip_dst"]}
            proto = record["ip_proto"]
            assert doc["network"]["transport"] == proto and doc["network"]["iana_number"] == str(IANA[proto])
            assert doc["network"]["type"] == ("ipv6" if ":" in record["ip_src"] else "ipv4")
            if proto in ("tcp", "udp"):
                assert (doc["source"]["port"], doc["destination"]["port"]) == (record["port_src"], record["port_dst"])
            else:  # pmacct prints 0: no ports
                assert "port" not in doc["source"] and "port" not in doc["destination"]
            assert doc["network"]["bytes"] == doc["source"]["bytes"] == record["bytes"]
            assert doc["network"]["packets"] == doc["source"]["packets"] == record["packets"]
            assert doc["observer"]["ip"] == record["peer_ip_src"] == "127.0.0.1"
            assert doc["observer"]["ingress"]["interface"]["id"] == str(record["iface_in"])
            assert doc["observer"]["egress"]["interface"]["id"] == str(record["iface_out"])
            # pmacct's other fields, under netflow.*: tcp_flags as a number, times in RFC 3339.
            rest = {k: v for k, v in record.items() if k not in ECS_KEYS}
            assert doc["netflow"].keys() == rest.keys()
            assert doc["netflow"]["tcp_flags"] == int(record["tcp_flags"])
            for key in ("stamp_inserted", "stamp_updated"):
                assert instant(doc["netflow"][key]) == instant(record[key])
            assert {
                k: v for k, v in doc["netflow"].items() if k not in ("tcp_flags", "stamp_inserted", "stamp_updated")
            } == {k: v for k, v in rest.items() if k not in ("tcp_flags", "stamp_inserted", "stamp_updated")}


def test_times(ecs):
    for name, pairs in ecs.items():
        for record, doc in pairs:
            event = doc["event"]
            if name == "sflow":  # samples: no times of their own, the shipper's stays
                assert "timestamp_start" not in record and "start" not in event and doc["@timestamp"] == READ_AT
                continue
            start = instant(record["timestamp_start"])
            assert instant(event["start"]) == start
            if record["timestamp_end"] == NO_TIME:  # softflowd's uptime times: pmacct has no end
                assert name == "ipfix-uptime" and "end" not in event and "duration" not in event
                assert instant(doc["@timestamp"]) == start
                continue
            end = instant(record["timestamp_end"])
            assert instant(event["end"]) == end and instant(doc["@timestamp"]) == end
            assert event["duration"] == (end - start) // timedelta(microseconds=1) * 1000
    # The captures' own times (2013 and 2016), to the millisecond.
    starts = {doc["event"]["start"] for _record, doc in ecs["ipfix"]}
    assert "2013-02-11T11:31:56.491Z" in starts and any(s.startswith("2016-05-30T") for s in starts)
    assert any(doc["event"]["duration"] > 0 for _record, doc in ecs["ipfix"])


def test_community_id_as_zeek_computes_it(ecs):
    """The Community ID a Zeek conn record of the same 5-tuple gets (written from the spec):
    the analyst's pivot between flows and Zeek."""
    checked = 0
    for pairs in ecs.values():
        for record, doc in pairs:
            proto = record["ip_proto"]
            if proto not in ("tcp", "udp"):
                assert "community_id" not in doc["network"], doc
                continue
            src, dst, sport, dport = record["ip_src"], record["ip_dst"], record["port_src"], record["port_dst"]
            if max(sport, dport) > 63335:  # OpenSearch 2.19's processor bound (wlcg-soc-community-id)
                assert "community_id" not in doc["network"], doc
                continue
            assert doc["network"]["community_id"] == community_id(src, dst, IANA[proto], sport, dport), record
            checked += 1
    assert checked >= 16  # the IPFIX exports alone


def test_a_template_refresh(setup):
    """nfacctd as the role configures it survives an exporter that sends its templates again (with
    nfacctd_templates_file, pmacct 1.7.7 corrupts its heap there: pmacct issue 651)."""
    with running(
        ["nfacctd", "-f", str(setup["confs"]["nfacctd"])], setup["tmp"] / "refresh.log", "waiting for"
    ) as proc:
        for _n in range(2):
            export("ipfix", capture("ether.pcap"), setup["ports"]["nfacctd"], setup["tmp"])
        time.sleep(1)
        assert proc.poll() is None, (setup["tmp"] / "refresh.log").read_text(errors="replace")


def test_misp_hits_of_a_flow_become_threat_enrichments(node, collected):
    """A real flow whose destination Logstash found in the MISP sync's keys (the value made by
    the sync's own code, unparsed, as the memcached filter sets it)."""
    line = next(x for x in collected["ipfix"]["lines"] if '"tcp"' in x)
    record = json.loads(line)
    export = Export()
    export.keys = {memcached_key("ip-dst", record["ip_dst"]): [(9, "uuid-9", "Scanner", "ip-dst")]}
    (value,) = list(export.key_values().values())
    doc = dict(flow_doc(line, "ipfix"), misp_lookup={"destination": {"ip-dst": value.decode()}})
    (out,) = simulate(node, [doc], "wlcg-soc-flows")
    assert out["event"]["kind"] == "event" and "misp_lookup" not in out, out
    (hit,) = out["threat"]["enrichments"]
    assert hit["matched"] == {
        "atomic": record["ip_dst"],
        "field": "destination.ip",
        "type": "indicator_match_rule",
        "id": "uuid-9",
    }
    assert out["misp"]["event_id"] == ["9"] and out["misp"]["matched_field"] == ["destination.ip"]


def test_failures_are_kept_with_why(node, collected):
    line = next(x for x in collected["ipfix"]["lines"] if '"tcp"' in x)
    record = json.loads(line)
    high = dict(record, port_src=64000)  # above the bound of OpenSearch 2.19's community_id
    numeric = dict(record, ip_proto="6")  # as pmacct prints protocols with print_num_protos
    epoch = dict(record, timestamp_start="1360582316.491000", timestamp_end="1360582316.694000")
    cut, bad_time, no_dataset, high_port, by_number, since_epoch = simulate(
        node,
        [
            flow_doc(line[:-9], "ipfix"),  # cut short: not JSON
            flow_doc(json.dumps(dict(record, timestamp_start="yesterday")), "ipfix"),
            {"message": line, "@timestamp": READ_AT},  # no event.dataset
            flow_doc(json.dumps(high), "ipfix"),
            flow_doc(json.dumps(numeric), "ipfix"),
            flow_doc(json.dumps(epoch), "ipfix"),
        ],
        "wlcg-soc-flows",
    )
    for doc in (cut, bad_time, no_dataset):
        assert doc["event"]["kind"] == "pipeline_error", doc
        assert doc["error"]["message"] and "{{" not in doc["error"]["message"], doc
        assert doc["@timestamp"] == READ_AT and "source" not in doc
    assert cut["error"]["id"] == "flows-json" and cut["message"] == line[:-9]
    assert bad_time["error"]["id"] == "flows-ecs" and "timestamp_start (yesterday)" in bad_time["error"]["message"]
    assert bad_time["netflow"]["raw"] == dict(record, timestamp_start="yesterday")  # whole, as pmacct wrote it
    assert "event.dataset" in no_dataset["error"]["message"]
    assert high_port["event"]["kind"] == "event" and high_port["source"]["port"] == 64000
    assert "community_id" not in high_port["network"]
    assert (by_number["network"]["transport"], by_number["network"]["iana_number"]) == ("tcp", "6")
    assert by_number["network"]["community_id"]
    assert (since_epoch["event"]["start"], since_epoch["event"]["duration"]) == ("2013-02-11T11:31:56.491Z", 203000000)


def test_what_the_pipeline_makes_is_mapped_and_what_the_flows_dashboards_query_exists(ecs):
    produced = set()
    for pairs in ecs.values():
        for _record, doc in pairs:
            produced |= leaves(doc)
    known = mapped(MAPPINGS["properties"])
    ecs_fields = {f for f in produced if not f.startswith("netflow.")}
    assert ecs_fields - known == set(), "fields the pipeline makes but ecs-mappings.json does not map"
    assert {f for f in produced if f.startswith("netflow.")} <= known, "pmacct's fields with the role's defaults"
    queried = dashboard_fields(DASHBOARDS.glob("wlcg-soc-flows*.ndjson"))
    assert "observer.ip" in queried
    assert queried - produced == set(), "fields the flows dashboards query that no flow record has"
    # The data view's time field is one every flow record has: sFlow samples carry no event.start.
    for _name, pairs in ecs.items():
        for _record, doc in pairs:
            assert "@timestamp" in doc


def test_bulk_into_a_flows_data_stream_with_the_templates(node, collected):
    """The records, and two that fail, index into a flows-* data stream through the family's
    default pipeline, with the mappings of ecs-mappings.json."""
    name = "flows-ingest-test"
    docs = [flow_doc(line, export) for export, run in collected.items() for line in run["lines"]]
    line = collected["ipfix"]["lines"][0]
    docs += [flow_doc(line[:-9], "ipfix"), flow_doc(json.dumps(dict(json.loads(line), timestamp_end="soon")), "ipfix")]
    with data_stream(node, name, "wlcg-soc-flows"):
        bulk_create(node, name, docs)
        status, count = node.call("GET", f"{name}/_count")
        assert status == 200 and count["count"] == len(docs), count
        status, count = node.call("GET", f"{name}/_count?q=event.kind:pipeline_error")
        assert count["count"] == 2, count
        fields = {
            "source.ip": "ip",
            "destination.port": "long",
            "event.start": "date",
            "event.duration": "long",
            "network.iana_number": "keyword",
            "network.community_id": "keyword",
            "observer.ingress.interface.id": "keyword",
            "netflow.tcp_flags": "long",
            "netflow.stamp_updated": "date",
            "netflow.export_proto_version": "long",
        }
        assert field_types(node, name, fields) == fields
        record = next(json.loads(x) for x in collected["ipfix"]["lines"] if '"tcp"' in x)
        cid = community_id(record["ip_src"], record["ip_dst"], 6, record["port_src"], record["port_dst"])
        status, hits = node.call("GET", f"{name}/_search?q=network.community_id:%22{cid}%22")
        assert hits["hits"]["total"]["value"] >= 2, hits  # one per export of the flow
        status, hits = node.call("GET", f"{name}/_search?q=event.module:sflow")
        assert hits["hits"]["total"]["value"] == len(collected["sflow"]["lines"]), hits
