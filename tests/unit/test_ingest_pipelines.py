"""The collection's ingest pipelines (roles/elasticsearch/files/ingest/) on the real
OpenSearch test node (with ingest-common, lang-painless and lang-mustache), fed real Zeek
JSON logs (tests/zeek_logs.py: zat's sdist): every record becomes ECS, a record that
fails is kept with why, and what the pipelines produce is what the index template maps and
the dashboards query."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import zeek_logs
from ansible_collections.wlcg.soc.plugins.module_utils.misp_ioc import Export
from ansible_collections.wlcg.soc.plugins.module_utils.misp_memcached import key as memcached_key
from ingest_helpers import (
    DASHBOARDS,
    INGEST,
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
    unknown_fields,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The datasets with a pipeline of their own; the router hands them over by event.dataset.
DATASETS = sorted(p.stem.removeprefix("wlcg-soc-") for p in INGEST.glob("wlcg-soc-zeek.*.json"))


@pytest.fixture(scope="module")
def node(search_nodes):
    opensearch = search_nodes.get("opensearch")
    load_pipelines(opensearch)
    return opensearch


@pytest.fixture(scope="module")
def logs() -> dict[str, list[str]]:
    found = zeek_logs.json_logs()
    return found | {"intel": zeek_logs.intel_log(found)}


def zeek_doc(line: str, dataset: str) -> dict:
    # As the pipelines tier delivers it: the line, its dataset, the time it was read.
    return {"message": line, "event": {"dataset": dataset}, "@timestamp": "2026-12-06T00:00:00Z"}


@pytest.fixture(scope="module")
def ecs(node, logs) -> dict[str, list[tuple[dict, dict]]]:
    """Every zat JSON log through wlcg-soc-zeek: (Zeek's record, the document) per line."""
    return {
        log: list(
            zip(
                [json.loads(line) for line in lines],
                simulate(node, [zeek_doc(x, zeek_logs.dataset(log)) for x in lines], "wlcg-soc-zeek"),
                strict=True,
            )
        )
        for log, lines in logs.items()
    }


def epoch_micros(stamp: str) -> int:
    """Microseconds since the epoch of an ISO 8601 time (the engine drops trailing zeros)."""
    return (datetime.fromisoformat(stamp) - EPOCH) // timedelta(microseconds=1)


def test_every_dataset_pipeline_is_routed():
    router = json.loads((INGEST / "wlcg-soc-zeek.json").read_text())
    routed = [p["pipeline"]["name"].removeprefix("wlcg-soc-") for p in router["processors"] if "pipeline" in p]
    assert sorted(routed) == DATASETS
    for dataset in DATASETS:
        assert f"ctx.event.dataset == '{dataset}'" in json.dumps(router)


def test_every_record_becomes_ecs(ecs):
    assert set(ecs) >= {"conn", "dns", "http", "ssl", "x509", "files", "weird", "capture_loss", "notice", "intel"}
    for log, pairs in ecs.items():
        name = zeek_logs.dataset(log).removeprefix("zeek.")
        for record, doc in pairs:
            assert doc["event"]["kind"] != "pipeline_error", doc
            assert doc["event"]["module"] == "zeek" and doc["event"]["dataset"] == zeek_logs.dataset(log)
            assert doc.get("message") == record.get("msg") if log == "notice" else "message" not in doc
            assert "raw" not in doc["zeek"]
            if "ts" in record:  # else the time the line was read stays
                assert epoch_micros(doc["@timestamp"]) == round(record["ts"] * 1_000_000), (record, doc)
            if "id.orig_h" in record:
                assert (doc["source"]["ip"], doc["source"]["port"]) == (record["id.orig_h"], record["id.orig_p"])
                assert (doc["destination"]["ip"], doc["destination"]["port"]) == (
                    record["id.resp_h"],
                    record["id.resp_p"],
                )
                assert set(doc["related"]["ip"]) == {record["id.orig_h"], record["id.resp_h"]}
            if "uid" in record:
                assert doc["zeek"]["session_id"] == record["uid"]
            assert not {"ts", "uid", "id.orig_h", "id.resp_p"} & set(doc["zeek"].get(name, {}))


def test_connection(ecs):
    for record, doc in ecs["conn"]:
        assert doc["network"]["transport"] == record["proto"]
        assert doc["network"].get("iana_number") == (str(record["ip_proto"]) if "ip_proto" in record else None)
        assert (
            doc["source"]["bytes"] == record["orig_ip_bytes"] and doc["destination"]["packets"] == record["resp_pkts"]
        )
        assert doc["network"]["bytes"] == record["orig_ip_bytes"] + record["resp_ip_bytes"]
        assert (
            doc["event"]["type"] == ["connection"] and doc["zeek"]["connection"]["conn_state"] == record["conn_state"]
        )
        if "duration" in record:
            assert abs(doc["event"]["duration"] - record["duration"] * 1e9) < 1
        proto = {"tcp": 6, "udp": 17}.get(record["proto"])
        if proto and max(record["id.orig_p"], record["id.resp_p"]) <= 63335:
            want = community_id(
                record["id.orig_h"], record["id.resp_h"], proto, record["id.orig_p"], record["id.resp_p"]
            )
            assert doc["network"]["community_id"] == want


def test_protocol_logs(ecs):
    record, doc = ecs["dns"][0]
    assert doc["dns"]["question"] == {
        "name": record["query"],
        "type": record["qtype_name"],
        "class": record["qclass_name"],
    }
    assert doc["dns"]["response_code"] == record["rcode_name"] and doc["dns"]["id"] == str(record["trans_id"])
    answered = [(r, d) for r, d in ecs["dns"] if "answers" in r]
    assert answered
    for record, doc in answered:
        assert [a["data"] for a in doc["dns"]["answers"]] == record["answers"]
        assert [a["ttl"] for a in doc["dns"]["answers"]] == [round(t) for t in record["TTLs"]]
    record, doc = ecs["http"][0]
    assert (doc["http"]["request"]["method"], doc["http"]["response"]["status_code"]) == (
        record["method"],
        record["status_code"],
    )
    assert (doc["url"]["domain"], doc["url"]["original"]) == (record["host"], record["uri"])
    assert doc["user_agent"]["original"] == record["user_agent"]
    record, doc = ecs["ssl"][0]
    assert (doc["tls"]["version_protocol"], doc["tls"]["version"]) == ("tls", "1.2")  # Zeek's TLSv12
    assert doc["tls"]["client"]["server_name"] == record["server_name"]
    assert doc["tls"]["server"]["issuer"] == record["issuer"]
    record, doc = ecs["x509"][0]
    assert doc["x509"]["serial_number"] == record["certificate.serial"]
    assert doc["x509"]["alternative_names"] == record["san.dns"]
    assert doc["x509"]["not_after"] == "2020-02-08T19:00:00Z"  # 1581188400.0
    record, doc = ecs["files"][0]
    assert (doc["file"]["name"], doc["file"]["hash"]["sha1"]) == (record["filename"], record["sha1"])
    assert set(doc["related"]["ip"]) == set(record["tx_hosts"] + record["rx_hosts"])
    record, doc = ecs["capture_loss"][0]
    assert doc["event"]["kind"] == "metric" and doc["zeek"]["capture_loss"]["percent_lost"] == record["percent_lost"]


def test_notice(ecs, node):
    record, doc = ecs["notice"][0]  # Zeek 8.2.2: SSL::Invalid_Server_Cert on an RDP connection
    assert doc["event"]["kind"] == "alert" and doc["event"]["category"] == ["intrusion_detection"]
    assert (doc["rule"]["name"], doc["message"]) == (record["note"], record["msg"])
    assert doc["zeek"]["notice"]["note"] == record["note"] and doc["network"]["transport"] == record["proto"]
    assert (doc["source"]["ip"], doc["destination"]["port"]) == (record["id.orig_h"], record["id.resp_p"])
    # A notice of no connection (a scan, say) has only its own src, dst and p.
    scan = {k: v for k, v in record.items() if not k.startswith("id.") and k not in ("uid", "proto")}
    (doc,) = simulate(node, [zeek_doc(json.dumps(scan), "zeek.notice")], "wlcg-soc-zeek")
    assert (doc["source"]["ip"], doc["destination"]["ip"]) == (record["src"], record["dst"])
    assert doc["destination"]["port"] == record["p"] and set(doc["related"]["ip"]) == {record["src"], record["dst"]}


def test_intel(ecs, node):
    hashes = {32: "md5", 40: "sha1", 64: "sha256"}
    assert len(ecs["intel"]) == 500
    for record, doc in ecs["intel"]:
        seen, kind = record["seen.indicator"], record["seen.indicator_type"]
        indicator = doc["threat"]["indicator"]
        assert doc["event"]["kind"] == "alert" and (doc["event"]["category"], doc["event"]["type"]) == (
            ["threat"],
            ["indicator"],
        )
        assert indicator["name"] == seen and indicator["provider"] == record["sources"]
        (enrichment,) = doc["threat"]["enrichments"]
        assert enrichment["indicator"] == indicator and enrichment["matched"]["atomic"] == seen
        if kind == "Intel::ADDR":
            assert (indicator["type"], indicator["ip"]) == ("ipv4-addr", seen)
            assert enrichment["matched"]["field"] == "destination.ip" and doc["destination"]["ip"] == seen
        elif kind == "Intel::DOMAIN":
            assert (indicator["type"], indicator["url"]["domain"]) == ("domain-name", seen)
            assert enrichment["matched"]["field"] == "dns.question.name"
        else:
            assert indicator["type"] == "file" and indicator["file"]["hash"] == {hashes[len(seen)]: seen.lower()}
            assert enrichment["matched"]["field"] == "file.hash"
        assert doc["zeek"]["intel"]["seen.where"] == record["seen.where"]
    # An intel.log line that names no indicator is kept as a failure.
    (broken,) = simulate(node, [zeek_doc(json.dumps({"ts": 1.0, "seen.where": "x"}), "zeek.intel")], "wlcg-soc-zeek")
    assert broken["event"]["kind"] == "pipeline_error" and "seen.indicator" in broken["error"]["message"]


def test_misp_hits_of_a_connection_become_threat_enrichments(node, logs):
    """Logstash's memcached answers (the values the MISP sync writes, made by its own code) on a
    real conn record: every hit, source and destination, becomes one ECS enrichment."""
    record = json.loads(logs["conn"][0])
    src, dst = record["id.orig_h"], record["id.resp_h"]
    export = Export()
    export.keys = {
        memcached_key("ip-dst", src): [(41, "uuid-41", "Phishing wave", "ip-dst")],
        memcached_key("ip-src", dst): [(42, "uuid-42", "C2 servers", "ip-src|port"), (7, "uuid-7", "Old", "ip-src")],
    }
    values = {k: v.decode() for k, v in export.key_values().items()}
    lookup = {  # as Logstash's memcached filter sets them: the value, unparsed; a miss sets nothing
        "source": {"ip-dst": values[memcached_key("ip-dst", src)]},
        "destination": {"ip-src": values[memcached_key("ip-src", dst)]},
    }
    (doc,) = simulate(node, [dict(zeek_doc(logs["conn"][0], "zeek.connection"), misp_lookup=lookup)], "wlcg-soc-zeek")
    assert "misp_lookup" not in doc and doc["event"]["kind"] == "event", doc
    got = [(e["matched"]["field"], e["matched"]["atomic"], e["matched"]["id"]) for e in doc["threat"]["enrichments"]]
    assert got == [("source.ip", src, "uuid-41"), ("destination.ip", dst, "uuid-42"), ("destination.ip", dst, "uuid-7")]
    first = doc["threat"]["enrichments"][0]["indicator"]
    assert first == {"ip": src, "name": src, "type": "ipv4-addr", "provider": "MISP", "description": "Phishing wave"}
    assert doc["misp"] == {
        "event_id": ["41", "42", "7"],
        "event_uuid": ["uuid-41", "uuid-42", "uuid-7"],
        "info": ["Phishing wave", "C2 servers", "Old"],
        "type": ["ip-dst", "ip-src|port", "ip-src"],
        "matched_field": ["source.ip", "destination.ip"],
        "indicator": [src, dst],
    }
    assert leaves(doc) - {f for f in leaves(doc) if f.startswith("zeek.")} <= mapped(MAPPINGS["properties"])
    (plain,) = simulate(node, [dict(zeek_doc(logs["conn"][0], "zeek.connection"), misp_lookup={})], "wlcg-soc-zeek")
    assert "threat" not in plain and "misp" not in plain and "misp_lookup" not in plain


def test_failures_are_kept_with_why(node, logs):
    conn = json.loads(logs["conn"][0])
    high = dict(conn, **{"id.orig_p": 64000})  # above the bound of OpenSearch 2.19's community_id
    bad_ts = dict(conn, ts="yesterday")
    docs = simulate(
        node,
        [
            zeek_doc(logs["conn"][0][:-9], "zeek.connection"),  # cut short: not JSON
            {"message": logs["dns"][0], "@timestamp": "2026-12-06T00:00:00Z"},  # no event.dataset
            zeek_doc(json.dumps(bad_ts), "zeek.connection"),
            zeek_doc(json.dumps(high), "zeek.connection"),
        ],
        "wlcg-soc-zeek",
    )
    cut, no_dataset, bad_time, high_port = docs
    for doc in (cut, no_dataset, bad_time):
        assert doc["event"]["kind"] == "pipeline_error", doc
        assert doc["error"]["message"] and "{{" not in doc["error"]["message"], doc
    assert cut["error"]["id"] == "zeek-json" and cut["message"] == logs["conn"][0][:-9]
    assert "event.dataset" in no_dataset["error"]["message"]
    assert "yesterday" in bad_time["error"]["message"]
    assert high_port["event"]["kind"] == "event" and high_port["source"]["port"] == 64000
    assert "community_id" not in high_port["network"]


def test_a_record_the_router_cannot_read_keeps_its_line(node, logs):
    """The router drops message only once the record is ECS: a record its script refuses
    (no dataset, a bad ts) is kept with the line as it came, and the record's fields stay
    where the decode left them."""
    bad_ts = json.dumps(dict(json.loads(logs["conn"][0]), ts="yesterday"))
    docs = simulate(
        node,
        [{"message": logs["dns"][0], "@timestamp": "2026-12-06T00:00:00Z"}, zeek_doc(bad_ts, "zeek.connection")],
        "wlcg-soc-zeek",
    )
    for doc, line in zip(docs, [logs["dns"][0], bad_ts], strict=True):
        assert doc["event"]["kind"] == "pipeline_error" and doc["error"]["id"] == "zeek-common", doc
        assert doc["message"] == line and doc["event"]["ingested"], doc
        assert "source" not in doc and "related" not in doc, doc


def test_what_the_pipelines_make_is_mapped_and_what_dashboards_query_exists(ecs):
    produced = set()
    for pairs in ecs.values():
        for _record, doc in pairs:
            produced |= leaves(doc)
    ecs_fields = {f for f in produced if not f.startswith("zeek.")}
    known = mapped(MAPPINGS["properties"])
    assert ecs_fields - known == set(), "fields the pipelines make but ecs-mappings.json does not map"
    queried = dashboard_fields(DASHBOARDS.glob("*.ndjson"))
    assert queried, "no fields found in the dashboards"
    assert unknown_fields(queried, known | produced) == set(), "fields the dashboards query that nothing maps or makes"


def test_bulk_into_a_data_stream_with_the_templates(node, logs):
    """The documents index into a zeek-* data stream through the family's default pipeline,
    with the mappings of ecs-mappings.json."""
    name = "zeek-ingest-test"
    with data_stream(node, name, "wlcg-soc-zeek"):
        # every log of both corpora, and the intel hits
        docs = [zeek_doc(line, zeek_logs.dataset(log)) for log, lines in logs.items() for line in lines]
        bulk_create(node, name, docs)
        status, count = node.call("GET", f"{name}/_count?q=event.kind:pipeline_error")
        assert status == 200 and count["count"] == 0, count
        status, count = node.call("GET", f"{name}/_count")
        assert count["count"] == len(docs)
        fields = ["source.ip", "network.community_id", "x509.not_after", "dns.answers.ttl", "threat.indicator.ip"]
        assert field_types(node, name, fields) == {
            "source.ip": "ip",
            "network.community_id": "keyword",
            "x509.not_after": "date",
            "dns.answers.ttl": "long",
            "threat.indicator.ip": "ip",
        }
        status, hits = node.call("GET", f"{name}/_search?q=network.community_id:%221:Cg/JgpV12tFPFRGSAZqKqTl2uwk=%22")
        assert hits["hits"]["total"]["value"] >= 1, hits
