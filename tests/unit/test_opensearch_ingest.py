"""The test OpenSearch node runs ingest pipelines and analyzers for real: its modules
(ingest-common, lang-painless, lang-mustache, analysis-common, ingest-geoip with the 2019
GeoLite2 databases, ingest-user-agent; tests/search/engine.py) are loaded and work on log
lines as Zeek and Apache httpd write them.
"""

from __future__ import annotations

import json

# A Zeek conn.log entry in Zeek's JSON log format (LogAscii::use_json): a DNS query to
# Google's public resolver.
ZEEK_CONN = (
    '{"ts":1591367999.305988,"uid":"CMdzit1AMNsmfAIiQc","id.orig_h":"192.168.4.76",'
    '"id.orig_p":36844,"id.resp_h":"8.8.8.8","id.resp_p":53,"proto":"udp","service":"dns",'
    '"duration":0.06685185432434082,"orig_bytes":62,"resp_bytes":141,"conn_state":"SF",'
    '"missed_bytes":0,"history":"Dd","orig_pkts":2,"orig_ip_bytes":118,"resp_pkts":2,'
    '"resp_ip_bytes":197}'
)
# Apache httpd's Combined Log Format: the example of its log-file documentation, with the
# User-Agent of a current Chrome on Windows (the example's Netscape 4 is too old for the
# user_agent processor's regexes).
APACHE_COMBINED = (
    '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?size=2 HTTP/1.0" 200 2326 '
    '"http://www.example.com/start.html" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 '
    '(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"'
)


def simulate(node, processors: list[dict], message: str) -> dict:
    status, answer = node.call(
        "POST",
        "_ingest/pipeline/_simulate",
        {"pipeline": {"processors": processors}, "docs": [{"_source": {"message": message}}]},
    )
    assert status == 200, answer
    doc = answer["docs"][0]
    assert "error" not in doc, json.dumps(doc)
    return doc["doc"]["_source"]


def test_modules_are_loaded(opensearch_node):
    status, answer = opensearch_node.call("GET", "_nodes/plugins?filter_path=nodes.*.modules.name")
    assert status == 200, answer
    (node,) = answer["nodes"].values()
    names = {m["name"] for m in node["modules"]}
    assert {
        "ingest-common",
        "lang-painless",
        "lang-mustache",
        "analysis-common",
        "ingest-geoip",
        "ingest-user-agent",
    } <= names


def test_failure_message_template(opensearch_node):
    """lang-mustache renders the on_failure metadata: a failed document is kept with why."""
    status, answer = opensearch_node.call(
        "POST",
        "_ingest/pipeline/_simulate",
        {
            "pipeline": {
                "processors": [{"date": {"field": "ts", "formats": ["UNIX"], "tag": "zeek-ts"}}],
                "on_failure": [
                    {"set": {"field": "error.message", "value": "{{ _ingest.on_failure_message }}"}},
                    {"set": {"field": "error.type", "value": "{{ _ingest.on_failure_processor_tag }}"}},
                ],
            },
            "docs": [{"_source": {"ts": "yesterday"}}],
        },
    )
    assert status == 200, answer
    doc = answer["docs"][0]["doc"]["_source"]
    assert doc["ts"] == "yesterday"
    assert doc["error"]["type"] == "zeek-ts"
    assert "yesterday" in doc["error"]["message"], doc


def test_zeek_conn_pipeline(opensearch_node):
    processors = [
        {"json": {"field": "message", "target_field": "zeek"}},
        # Zeek's JSON keys carry dots ("id.orig_h"); expand them into objects.
        {"dot_expander": {"field": "id.orig_h", "path": "zeek"}},
        {"dot_expander": {"field": "id.resp_h", "path": "zeek"}},
        {"rename": {"field": "zeek.id.orig_h", "target_field": "source.ip"}},
        {"rename": {"field": "zeek.id.resp_h", "target_field": "destination.ip"}},
        {"date": {"field": "zeek.ts", "formats": ["UNIX"], "target_field": "@timestamp"}},
        {"lowercase": {"field": "zeek.conn_state"}},
        {"set": {"field": "event.module", "value": "zeek"}},
        {"geoip": {"field": "destination.ip", "target_field": "destination.geo"}},
        {"script": {"source": "ctx.network = ['bytes': ctx.zeek.orig_bytes + ctx.zeek.resp_bytes]"}},
    ]
    doc = simulate(opensearch_node, processors, ZEEK_CONN)
    assert doc["source"]["ip"] == "192.168.4.76"
    assert doc["destination"]["ip"] == "8.8.8.8"
    assert doc["@timestamp"].startswith("2020-06-05T14:39:59.305")
    assert doc["zeek"]["conn_state"] == "sf"
    assert doc["event"]["module"] == "zeek"
    assert doc["destination"]["geo"]["country_iso_code"] == "US"
    assert doc["destination"]["geo"]["continent_name"] == "North America"
    assert doc["network"]["bytes"] == 62 + 141


def test_apache_combined_pipeline(opensearch_node):
    processors = [
        {
            "dissect": {
                "field": "message",
                "pattern": "%{source.ip} %{ident} %{user.name} [%{ts}] "
                '"%{http.method} %{request} HTTP/%{http.version}" %{http.status} %{http.bytes} '
                '"%{http.referrer}" "%{user_agent.original}"',
            }
        },
        {"grok": {"field": "request", "patterns": ["%{URIPATH:url.path}(?:\\?%{GREEDYDATA:url.query})?"]}},
        {"date": {"field": "ts", "formats": ["dd/MMM/yyyy:HH:mm:ss Z"], "target_field": "@timestamp"}},
        {"user_agent": {"field": "user_agent.original", "target_field": "user_agent"}},
    ]
    doc = simulate(opensearch_node, processors, APACHE_COMBINED)
    assert doc["source"]["ip"] == "127.0.0.1" and doc["user"]["name"] == "frank"
    assert doc["http"]["method"] == "GET" and doc["http"]["status"] == "200"
    assert doc["url"] == {"path": "/apache_pb.gif", "query": "size=2"}
    assert doc["@timestamp"] == "2000-10-10T20:55:36.000Z"  # -07:00 in UTC
    assert doc["user_agent"]["name"] == "Chrome" and doc["user_agent"]["version"] == "120.0.0.0"
    assert doc["user_agent"]["os"] == {"name": "Windows", "version": "10", "full": "Windows 10"}


def test_analysis_common_analyzer(opensearch_node):
    body = {
        "tokenizer": {"type": "pattern", "pattern": ","},
        "filter": ["lowercase", "asciifolding"],
        "text": "Zürich,CERN,Genève",
    }
    status, answer = opensearch_node.call("POST", "_analyze", body)
    assert status == 200, answer
    assert [t["token"] for t in answer["tokens"]] == ["zurich", "cern", "geneve"]
