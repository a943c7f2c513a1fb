"""Helpers for the tests of the collection's ingest pipelines (roles/elasticsearch/files/ingest/)
on a real search node (tests/search/engine.py): loading and simulating them, indexing through
them into a data stream with the shared mappings, the fields a document has, the fields
ecs-mappings.json maps and the dashboards query, and the Community ID as its spec defines it."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import re
import struct
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INGEST = ROOT / "roles/elasticsearch/files/ingest"
MAPPINGS = json.loads((ROOT / "roles/elasticsearch/files/ecs-mappings.json").read_text())["template"]["mappings"]
DASHBOARDS = ROOT / "roles/kibana/files/dashboards"


def pipeline_files(engine: str) -> list[Path]:
    """The pipelines the role loads on an engine: the engine-neutral ones and the engine's own."""
    return sorted(INGEST.glob("*.json")) + sorted((INGEST / engine).glob("*.json"))


def load_pipelines(node, engine: str = "opensearch") -> None:
    for path in pipeline_files(engine):
        status, answer = node.call("PUT", f"_ingest/pipeline/{path.stem}", json.loads(path.read_text()))
        assert status == 200, (path.name, answer)


def simulate(node, docs: list[dict], pipeline: str) -> list[dict]:
    """The documents as the pipeline leaves them, in order; a failure must come back as a
    document (the pipelines keep what fails), never as an error."""
    status, answer = node.call(
        "POST", f"_ingest/pipeline/{pipeline}/_simulate", {"docs": [{"_source": d} for d in docs]}
    )
    assert status == 200, answer
    out = []
    for doc in answer["docs"]:
        assert "error" not in doc, json.dumps(doc)
        out.append(doc["doc"]["_source"])
    return out


def leaves(doc: dict, prefix: str = "") -> set[str]:
    """The dotted names of a document's values (lists of objects looked into)."""
    out: set[str] = set()
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= leaves(value, path + ".")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                out |= leaves(item, path + ".")
        else:
            out.add(path)
    return out


def mapped(props: dict, prefix: str = "") -> set[str]:
    """The dotted names of the fields (and objects without properties) a mapping declares."""
    out: set[str] = set()
    for key, spec in props.items():
        if "properties" in spec:
            out |= mapped(spec["properties"], f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


def dashboard_fields(paths: Iterable[Path]) -> set[str]:
    """The fields saved objects query: their aggregations' fields, the fields named in their
    queries, and their data views' time fields."""
    queried: set[str] = set()
    for path in paths:
        for line in path.read_text().splitlines():
            obj = json.loads(line) if line.strip() else {}
            attrs = obj.get("attributes", {})
            if attrs.get("timeFieldName"):
                queried.add(attrs["timeFieldName"])
            vis = json.loads(attrs.get("visState") or "{}")
            queried |= {a["params"]["field"] for a in vis.get("aggs", []) if "field" in a.get("params", {})}
            source = json.loads(attrs.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON") or "{}")
            query = source.get("query", {}).get("query") or ""
            queried |= set(re.findall(r"([A-Za-z_@][\w.@]*)\s*:", query))
    return queried


def unknown_fields(queried: set[str], known: set[str]) -> set[str]:
    """The queried fields that are neither known nor an object of a known field (a query may
    name an object, as in ``misp : *``)."""
    objects = {f.rsplit(".", i)[0] for f in known for i in range(1, f.count(".") + 1)}
    return queried - known - objects


def community_id(saddr: str, daddr: str, proto: int, sport: int, dport: int, seed: int = 0) -> str:
    """Community ID v1 (github.com/corelight/community-id-spec), written here from the spec."""
    src, dst = ipaddress.ip_address(saddr).packed, ipaddress.ip_address(daddr).packed
    if (src, sport) > (dst, dport):
        src, dst, sport, dport = dst, src, dport, sport
    data = struct.pack("!H", seed) + src + dst + struct.pack("!BxHH", proto, sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()  # noqa: S324 - the spec's hash


@contextlib.contextmanager
def data_stream(node, name: str, pipeline: str) -> Iterator[None]:
    """Index templates making ``name`` a data stream with ecs-mappings.json's mappings and the
    pipeline as its default, as the role's family templates do; removed, with the stream, after."""
    component = f"wlcg-soc-test-{name}-ecs"
    assert node.call("PUT", f"_component_template/{component}", {"template": {"mappings": MAPPINGS}})[0] == 200
    template = {
        "index_patterns": [f"{name}*"],
        "data_stream": {},
        "priority": 500,
        "composed_of": [component],
        "template": {"settings": {"index.number_of_replicas": 0, "index.default_pipeline": pipeline}},
    }
    assert node.call("PUT", f"_index_template/wlcg-soc-test-{name}", template)[0] == 200
    try:
        yield
    finally:
        node.call("DELETE", f"_data_stream/{name}")
        node.call("DELETE", f"_index_template/wlcg-soc-test-{name}")
        node.call("DELETE", f"_component_template/{component}")


def bulk_create(node, name: str, docs: list[dict]) -> None:
    """Index the documents with one _bulk request (refreshed); none may be refused."""
    lines = []
    for doc in docs:
        lines += [json.dumps({"create": {}}), json.dumps(doc)]
    req = urllib.request.Request(  # noqa: S310 - the test node
        f"{node.url}/{name}/_bulk?refresh=true",
        data=("\n".join(lines) + "\n").encode(),
        method="POST",
        headers={"Content-Type": "application/x-ndjson", **node.auth_header(None, None)},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - the test node
        result = json.loads(resp.read())
    assert not result["errors"], [i for i in result["items"] if "error" in i["create"]][:2]


def field_types(node, name: str, fields: Iterable[str]) -> dict[str, str]:
    """The mapped type of each field in the index (or data stream) ``name``."""
    status, mapping = node.call("GET", f"{name}/_mapping/field/{','.join(fields)}")
    assert status == 200, mapping
    (index,) = mapping.values()
    return {f: next(iter(m["mapping"].values()))["type"] for f, m in index["mappings"].items()}
