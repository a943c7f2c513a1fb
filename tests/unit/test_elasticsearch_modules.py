"""The Elasticsearch / OpenSearch modules end to end: ansible-playbook -> module -> a real
Elasticsearch 8 and a real OpenSearch 2 node (tests/search/engine.py, the test
distributions from Maven Central).

Lifecycle policies: the test distributions lack ILM and ISM, so those tests put
tests/search/lifecycle_double.py (the documented ILM / ISM APIs) in front of the real
node, which still answers everything else (engine detection, health, authentication).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from module_runner import run_task, run_tasks
from page_server import PageServer

pytestmark = pytest.mark.usefixtures("collections_path")


def run_play(tmp_path: Path, module: str, steps: list[dict]) -> tuple[list[dict], str]:
    """Run several tasks of ``wlcg.soc.<module>`` in one play (each step: ``args`` and
    optionally ``check``/``diff``); failed tasks do not stop the play. Their results."""
    tasks = []
    for item in steps:
        task = {f"wlcg.soc.{module}": item["args"], "ignore_errors": True}
        if item.get("check"):
            task["check_mode"] = True
        if item.get("diff"):
            task["diff"] = True
        tasks.append(task)
    results, out = run_tasks(tmp_path, tasks)
    assert len(results) == len(steps), out
    return results, out


def step(args: dict, check: bool = False, diff: bool = False) -> dict:
    return {"args": args, "check": check, "diff": diff}


def conn(node, **extra) -> dict:
    args = {"hosts": [node.url], "timeout": 10, "retries": 1}
    if node.username:
        args.update(username=node.username, password=node.password)
    args.update(extra)
    return args


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stored(node, path: str):
    status, data = node.call("GET", path)
    return data if status == 200 else None


def index_template_body(**extra) -> dict:
    body = {
        "index_patterns": "zeek-conn-*",  # a single pattern: the server stores a list
        "composed_of": ["zeek-settings"],
        "priority": 200,
        "data_stream": {},
        "_meta": {"managed_by": "wlcg.soc"},
        "template": {
            "settings": {"index": {"number_of_replicas": 0}, "codec": "best_compression"},
            "aliases": {"zeek": {}},
        },
    }
    body.update(extra)
    return body


COMPONENT = {
    "template": {
        "settings": {"number_of_shards": 1, "index.refresh_interval": "5s", "index": {"hidden": False}},
        "mappings": {
            "dynamic": False,
            "properties": {
                "@timestamp": {"type": "date"},
                "uid": {"type": "keyword", "ignore_above": 1024},
                "id": {"properties": {"orig_h": {"type": "ip"}, "resp_p": {"type": "integer"}}},
            },
        },
    },
    "version": 1,
    "_meta": {"description": "Zeek conn log"},
}


def test_templates_create_noop_check_update_absent(search_node, tmp_path):
    node = search_node
    comp = dict(conn(node), kind="component", name="zeek-settings", body=COMPONENT)
    args = dict(conn(node), name="zeek-conn", body=index_template_body())
    newer = dict(args, body=index_template_body(priority=300))
    fewer = dict(newer, body=index_template_body(priority=300, template={"aliases": {"zeek": {}}}))
    results, out = run_play(
        tmp_path,
        "elasticsearch_index_template",
        [
            step(comp, diff=True),  # 0 create
            step(args),  # 1 create
            step(comp, diff=True),  # 2, 3: the server's defaults, settings as strings: no change
            step(args, diff=True),
            step(newer, check=True, diff=True),  # 4 check mode: reported, not written
            step(newer, diff=True),  # 5 update
            step(newer),  # 6 no change
            step(fewer, diff=True),  # 7 a setting the body drops is a change (not a subset test)
        ],
    )
    for res in results:
        assert not res.get("failed"), res
    assert [r["operation"] for r in results] == [
        "create",
        "create",
        "none",
        "none",
        "update",
        "update",
        "none",
        "update",
    ]
    assert [r["changed"] for r in results] == [True, True, False, False, True, True, False, True]
    assert results[0]["engine"] == node.flavour and results[0]["engine_version"] == node.version
    assert results[0]["diff"]["before"] == "" and '"index.number_of_shards": "1"' in results[0]["diff"]["after"]
    assert "diff" not in results[2] and "diff" not in results[3] and "WARNING" not in out
    check = results[4]["diff"]
    assert '"priority": 200' in check["before"] and '"priority": 300' in check["after"]
    assert '"priority": 200' in results[5]["diff"]["before"]  # check mode wrote nothing
    assert results[5]["template"]["priority"] == 300
    assert "best_compression" in results[7]["diff"]["before"]
    assert "best_compression" not in results[7]["diff"]["after"]
    stored_template = stored(node, "_index_template/zeek-conn")["index_templates"][0]["index_template"]
    assert stored_template["priority"] == 300 and "settings" not in stored_template["template"]
    assert (
        stored(node, "_component_template/zeek-settings")["component_templates"][0]["component_template"]["version"]
        == 1
    )

    gone_args = [{k: v for k, v in dict(item, state="absent").items() if k != "body"} for item in (args, comp)]
    steps = []
    for gone in gone_args:  # the index template first: it uses the component
        steps += [step(gone, check=True), step(gone, diff=True), step(gone)]
    results, _out = run_play(tmp_path, "elasticsearch_index_template", steps)
    assert [r["operation"] for r in results] == ["delete", "delete", "none"] * 2, results
    assert [r["changed"] for r in results] == [True, True, False] * 2
    assert results[1]["diff"]["after"] == "" and '"zeek-conn-*"' in results[1]["diff"]["before"]
    assert stored(node, "_index_template/zeek-conn") is None
    assert stored(node, "_component_template/zeek-settings") is None


def test_template_rejected_by_server_shows_reason(search_node, tmp_path):
    args = dict(
        conn(search_node),
        name="broken",
        body={"index_patterns": ["broken-*"], "template": {"settings": {"number_of_shards": "many"}}},
    )
    res, _out = run_task(tmp_path, "elasticsearch_index_template", args)
    assert res.get("failed") is True, res
    assert "Failed to parse value [many] for setting [index.number_of_shards]" in res["msg"], res["msg"]
    assert "HTTP 400" in res["msg"] and res["msg"].startswith("index template broken: ")
    # Check mode does not send it, so it cannot know.
    res, _out = run_task(tmp_path, "elasticsearch_index_template", args, check=True)
    assert res["changed"] is True and res["operation"] == "create"

    args = dict(
        conn(search_node),
        name="broken",
        body={"index_patterns": ["broken-*"], "template": {"mappings": {"properties": {"a": {"type": "nosuch"}}}}},
    )
    res, _out = run_task(tmp_path, "elasticsearch_index_template", args)
    assert res.get("failed") is True and "nosuch" in res["msg"] and "mapper_parsing_exception" in res["msg"], res


def pipeline_body(node, description: str) -> dict:
    if node.flavour == "elasticsearch":
        # The test distribution's only processor (x-pack-security); ingest-common is not in it.
        processors = [{"set_security_user": {"field": "user", "properties": ["username", "roles"]}}]
        return {
            "description": description,
            "version": 2,
            "_meta": {"managed_by": "wlcg.soc"},
            "processors": processors,
            "on_failure": [{"set_security_user": {"field": "failed_user"}}],
        }
    return {"description": description, "version": 2, "processors": []}


def test_ingest_pipeline_create_noop_check_update_absent(search_node, tmp_path):
    node = search_node
    args = dict(conn(node), id="zeek-conn", body=pipeline_body(node, "Zeek conn"))
    newer = dict(args, body=pipeline_body(node, "Zeek conn log"))
    gone = dict(conn(node), id="zeek-conn", state="absent")
    results, out = run_play(
        tmp_path,
        "elasticsearch_ingest_pipeline",
        [
            step(args, check=True),  # 0
            step(args, diff=True),  # 1 create
            step(args),  # 2 no change
            step(newer, check=True, diff=True),  # 3
            step(newer, diff=True),  # 4 update
            step(newer),  # 5
            step(gone, check=True),  # 6
            step(gone, diff=True),  # 7 delete
            step(gone),  # 8
        ],
    )
    for res in results:
        assert not res.get("failed"), res
    ops = ["create", "create", "none", "update", "update", "none", "delete", "delete", "none"]
    assert [r["operation"] for r in results] == ops
    assert [r["changed"] for r in results] == [op != "none" for op in ops]
    assert results[1]["diff"]["before"] == "" and results[1]["pipeline"]["description"] == "Zeek conn"
    assert "WARNING" not in out
    assert '"description": "Zeek conn"' in results[3]["diff"]["before"]
    assert '"description": "Zeek conn log"' in results[3]["diff"]["after"]
    assert '"description": "Zeek conn"' in results[4]["diff"]["before"]  # check mode wrote nothing
    assert results[4]["pipeline"]["description"] == "Zeek conn log"
    assert results[7]["diff"]["after"] == "" and "Zeek conn log" in results[7]["diff"]["before"]
    assert stored(node, "_ingest/pipeline/zeek-conn") in (None, {})


def test_ingest_pipeline_rejected_by_server_shows_reason(search_node, tmp_path):
    body = {"description": "uses a processor this node lacks", "processors": [{"no_such": {"field": "a"}}]}
    res, _out = run_task(tmp_path, "elasticsearch_ingest_pipeline", dict(conn(search_node), id="bad", body=body))
    assert res.get("failed") is True, res
    assert "No processor type exists with name [no_such]" in res["msg"], res["msg"]


ILM_POLICY = {
    "phases": {
        "hot": {"actions": {"rollover": {"max_age": "1d", "max_primary_shard_size": "50gb"}}},
        "delete": {"min_age": "90d", "actions": {"delete": {}}},
    },
    "_meta": {"managed_by": "wlcg.soc"},
}

ISM_POLICY = {
    "description": "Zeek logs, kept 90 days",
    "default_state": "hot",
    "states": [
        {
            "name": "hot",
            "actions": [{"rollover": {"min_index_age": "1d"}}],
            "transitions": [{"state_name": "delete", "conditions": {"min_index_age": "90d"}}],
        },
        {"name": "delete", "actions": [{"delete": {}}]},
    ],
    "ism_template": [{"index_patterns": ["zeek-*"], "priority": 100}],
}


def lifecycle_cases(node):
    if node.flavour == "elasticsearch":
        newer = json.loads(json.dumps(ILM_POLICY))
        newer["phases"]["delete"]["min_age"] = "30d"
        return "ilm", ILM_POLICY, newer
    newer = json.loads(json.dumps(ISM_POLICY))
    newer["states"][0]["transitions"][0]["conditions"]["min_index_age"] = "30d"
    return "ism", ISM_POLICY, newer


def test_lifecycle_policy_create_noop_check_update_absent(search_node, tmp_path):
    from search.lifecycle_double import LifecycleDouble

    api, policy, newer = lifecycle_cases(search_node)
    with LifecycleDouble(search_node.url, api) as double:
        args = dict(conn(search_node, hosts=[double.url]), name="zeek", policy=policy)
        update = dict(args, policy=newer)
        gone = dict(conn(search_node, hosts=[double.url]), name="zeek", state="absent")
        results, out = run_play(
            tmp_path,
            "elasticsearch_lifecycle_policy",
            [
                step(args, check=True),  # 0
                step(args, diff=True),  # 1 create
                step(args),  # 2 stored with the server's defaults and bookkeeping: no change
                step(update, check=True, diff=True),  # 3
                step(update, diff=True),  # 4 update
                step(dict(args, policy={"policy": newer})),  # 5 the whole request body: same policy
            ],
        )
        for res in results:
            assert not res.get("failed"), res
        ops = ["create", "create", "none", "update", "update", "none"]
        assert [r["operation"] for r in results] == ops
        assert [r["changed"] for r in results] == [op != "none" for op in ops]
        assert all(r["api"] == api and r["engine"] == search_node.flavour for r in results)
        assert results[1]["engine_version"] == search_node.version and "WARNING" not in out
        assert '"90d"' in results[3]["diff"]["before"] and '"30d"' in results[3]["diff"]["after"]
        assert '"90d"' in results[4]["diff"]["before"]  # check mode wrote nothing
        assert "30d" in json.dumps(double.policies)
        puts = [path for method, path in double.requests if method == "PUT"]
        assert len(puts) == 2, puts
        if api == "ism":  # an ISM update names the version it replaces
            assert "if_seq_no=1" in puts[-1] and "if_primary_term=1" in puts[-1], puts

        results, _out = run_play(
            tmp_path, "elasticsearch_lifecycle_policy", [step(gone, check=True), step(gone, diff=True), step(gone)]
        )
        assert [r["operation"] for r in results] == ["delete", "delete", "none"], results
        assert results[1]["diff"]["after"] == "" and double.policies == {}


def test_lifecycle_policy_rejected_shows_reason(search_node, tmp_path):
    from search.lifecycle_double import LifecycleDouble

    api, policy, _newer = lifecycle_cases(search_node)
    bad = json.loads(json.dumps(policy))
    if api == "ilm":
        bad["phases"]["delete"]["actions"]["rollover"] = {"max_age": "1d"}
        reason = "invalid action [rollover] defined in phase [delete]"
    else:
        bad["default_state"] = "warm"
        reason = "Policy default state [warm] does not exist"
    with LifecycleDouble(search_node.url, api) as double:
        args = dict(conn(search_node, hosts=[double.url]), name="zeek", policy=bad)
        res, _out = run_task(tmp_path, "elasticsearch_lifecycle_policy", args)
    assert res.get("failed") is True and reason in res["msg"], res


def test_wrong_password_names_user_not_password(elasticsearch_node, tmp_path):
    node = elasticsearch_node
    secret = "Not-The-Password-4711"  # noqa: S105 - a wrong password on purpose
    args = dict(conn(node, password=secret), name="zeek-settings", kind="component", body=COMPONENT)
    started = time.monotonic()
    res, out = run_task(tmp_path, "elasticsearch_index_template", args)
    assert res.get("failed") is True, res
    assert "refused user 'admin' (HTTP 401, authentication failed)" in res["msg"], res["msg"]
    assert "unable to authenticate user [admin]" in res["msg"]
    assert secret not in out
    assert time.monotonic() - started < 20  # a refused login is not retried

    # An API key that the server does not know is named by its id only.
    key = "c29tZS1rZXktaWQ6c29tZS1zZWNyZXQtYXBpLWtleQ=="  # base64 of some-key-id:some-secret-api-key
    args = dict(conn(node), name="zeek-settings", kind="component", body=COMPONENT, api_key=key)
    args.pop("username"), args.pop("password")
    res, out = run_task(tmp_path, "elasticsearch_index_template", args)
    assert res.get("failed") is True and "the API key with id 'some-key-id'" in res["msg"], res
    assert key not in out and "some-secret-api-key" not in out


def test_user_without_privilege_gets_servers_reason(elasticsearch_node, tmp_path):
    node = elasticsearch_node
    args = dict(
        conn(node, username="reader", password=node.reader_password),
        name="zeek-settings",
        kind="component",
        body=COMPONENT,
    )
    res, out = run_task(tmp_path, "elasticsearch_index_template", args)
    assert res.get("failed") is True, res
    # The viewer role may not even read templates; whatever the request, the server's reason shows.
    assert "user 'reader' may not " in res["msg"] and "/_component_template/zeek-settings (HTTP 403)" in res["msg"]
    assert "security_exception" in res["msg"] and node.reader_password not in out


def test_unreachable_host_fails_after_bounded_retries(tmp_path):
    dead = f"http://127.0.0.1:{closed_port()}"
    args = {"hosts": [dead], "retries": 2, "timeout": 2, "id": "p", "body": {"processors": []}}
    started = time.monotonic()
    res, _out = run_task(tmp_path, "elasticsearch_ingest_pipeline", args)
    took = time.monotonic() - started
    assert res.get("failed") is True, res
    assert f"no usable answer from {dead} after 3 rounds of tries" in res["msg"], res["msg"]
    assert "Connection refused" in res["msg"]
    assert 3 <= took < 30  # pauses of 1 and 2 seconds between the rounds


def test_next_host_is_tried(search_node, tmp_path):
    dead = f"http://127.0.0.1:{closed_port()}"
    args = dict(conn(search_node, hosts=[dead, search_node.url], retries=0), id="via-second", body={"processors": []})
    res, _out = run_task(tmp_path, "elasticsearch_ingest_pipeline", args)
    assert res["changed"] is True and res["operation"] == "create", res
    search_node.call("DELETE", "_ingest/pipeline/via-second")


def test_engine_mismatch_is_refused(search_node, tmp_path):
    other = "opensearch" if search_node.flavour == "elasticsearch" else "elasticsearch"
    args = dict(conn(search_node, engine=other), id="p", body={"processors": []})
    res, _out = run_task(tmp_path, "elasticsearch_ingest_pipeline", args)
    assert res.get("failed") is True, res
    assert f"engine is {other} but the server at {search_node.url} is {search_node.flavour}" in res["msg"]


def test_red_cluster_fails_clearly(search_node, tmp_path):
    node = search_node
    settings = {"number_of_shards": 1, "number_of_replicas": 0, "index.routing.allocation.require._name": "nowhere"}
    status, answer = node.call("PUT", "red-probe?wait_for_active_shards=0", {"settings": settings})
    assert status == 200, answer
    try:
        deadline = time.monotonic() + 30
        while node.call("GET", "_cluster/health")[1]["status"] != "red":
            assert time.monotonic() < deadline, "the cluster did not turn red"
            time.sleep(0.2)
        args = dict(conn(node, retries=1, timeout=1), id="p", body={"processors": []})
        started = time.monotonic()
        res, _out = run_task(tmp_path, "elasticsearch_ingest_pipeline", args)
        assert res.get("failed") is True, res
        assert f"cluster 'wlcg-soc-test-{node.flavour}' at {node.url} is red (wanted yellow or better)" in res["msg"]
        assert "after 2 checks" in res["msg"] and "unassigned_shards=1" in res["msg"], res["msg"]
        assert time.monotonic() - started < 30
        assert stored(node, "_ingest/pipeline/p") in (None, {})
    finally:
        node.call("DELETE", "red-probe")


# -- answers that are not the API's ------------------------------------------------------

# Each module's arguments, and the API path it reads first.
HTML_CASES = {
    "ingest_pipeline": ({"id": "zeek", "body": {"processors": []}}, "/_ingest/pipeline/zeek"),
    "lifecycle_policy": (
        {"name": "zeek", "policy": {"phases": {"delete": {"min_age": "30d", "actions": {"delete": {}}}}}},
        "/_ilm/policy/zeek",
    ),
    "index_template": ({"name": "zeek", "body": {"index_patterns": ["zeek-*"]}}, "/_index_template/zeek"),
}


@pytest.mark.parametrize("module", list(HTML_CASES))
@pytest.mark.parametrize("routed", [False, True], ids=["every-path", "api-paths"])
def test_an_html_page_with_200_fails_and_changes_nothing(tmp_path, module, routed):
    """A web server at the URL (every path), or a proxy that passes only the engine's root and
    health through: a 200 with HTML is no answer of the API, not something to compare or change."""
    engine = {"/": {"cluster_name": "soc", "version": {"number": "8.19.0"}}, "/_cluster/health": {"status": "green"}}
    args, api_path = HTML_CASES[module]
    with PageServer(engine if routed else None) as server:
        res, _out = run_task(tmp_path, f"elasticsearch_{module}", {**args, "hosts": [server.url], "retries": 0})
        methods = {method for method, _path in server.seen}
    assert res["failed"] is True and res["changed"] is False, res
    where = f"{server.url}{api_path if routed else ''}"
    assert (
        f"{where}: GET answered HTTP 200 with a body that is not JSON (text/html) where a JSON object was expected"
        in res["msg"]
    ), res["msg"]
    assert "Welcome to nginx!" in res["msg"] and "set engine" not in res["msg"]
    assert methods == {"GET"}  # nothing written


def test_snapshot_repository_snapshot_delete_restore(search_node, tmp_path):
    """The repository by the module; a snapshot of an index, the index deleted and restored."""
    node = search_node
    location = f"{node.repo_path}/soc"
    repo = dict(conn(node), name="soc-snapshots", settings={"location": location})
    compressed = dict(repo, settings={"location": location, "compress": True, "max_snapshot_bytes_per_sec": "40mb"})
    outside = dict(repo, settings={"location": str(tmp_path / "elsewhere")})
    results, out = run_play(
        tmp_path,
        "elasticsearch_snapshot_repository",
        [
            step(repo, diff=True),  # 0 create, verified
            step(repo),  # 1 no change, not verified again
            step(compressed, check=True, diff=True),  # 2 reported, not written
            step(compressed),  # 3 booleans and sizes compare as the strings the server keeps
            step(compressed),  # 4
            step(dict(compressed, verify="always")),  # 5 verified, nothing written
            step(outside),  # 6 refused: not below path.repo
        ],
    )
    assert [r.get("operation") for r in results[:6]] == ["create", "none", "update", "update", "none", "none"], out
    assert not any(r.get("failed") for r in results[:6]), out
    assert results[0]["verified_nodes"] == ["node-1"] and "verified_nodes" not in results[1]
    assert results[5]["verified_nodes"] == ["node-1"] and not results[5]["changed"]
    assert '"compress": "true"' in results[2]["diff"]["after"]
    assert results[4]["repository"] == {
        "type": "fs",
        "settings": {"location": location, "compress": "true", "max_snapshot_bytes_per_sec": "40mb"},
    }
    assert results[6]["failed"] and "path.repo" in results[6]["msg"], results[6]
    assert stored(node, "_snapshot/soc-snapshots")["soc-snapshots"]["settings"]["location"] == location

    index = f"zeek-snap-{node.flavour}"
    # No replica: the shared single-node cluster stays green for the other tests.
    assert node.call("PUT", index, {"settings": {"number_of_replicas": 0}})[0] == 200
    for uid in ("C1", "C2", "C3"):
        assert node.call("POST", f"{index}/_doc", {"uid": uid})[0] == 201
    assert node.call("POST", f"{index}/_refresh")[0] == 200
    status, taken = node.call(
        "PUT", "_snapshot/soc-snapshots/before-delete?wait_for_completion=true", {"indices": index}
    )
    assert status == 200 and taken["snapshot"]["state"] == "SUCCESS", taken
    assert node.call("DELETE", index)[0] == 200
    assert node.call("GET", f"{index}/_count")[0] == 404
    status, restored = node.call(
        "POST", "_snapshot/soc-snapshots/before-delete/_restore?wait_for_completion=true", {"indices": index}
    )
    assert status == 200 and restored["snapshot"]["shards"]["failed"] == 0, restored
    status, count = node.call("GET", f"{index}/_count")
    assert status == 200 and count["count"] == 3, count

    results, out = run_play(tmp_path, "elasticsearch_snapshot_repository", [step(dict(repo, state="absent"))] * 2)
    assert [r["operation"] for r in results] == ["delete", "none"], out
    assert node.call("GET", "_snapshot/soc-snapshots")[0] == 404
    assert node.call("DELETE", index)[0] == 200
