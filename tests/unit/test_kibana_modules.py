"""The Kibana modules end to end: ansible-playbook -> module -> the Kibana API double
(tests/kibana_double), fed with the SOC's saved objects (roles/kibana/files/dashboards)."""

from __future__ import annotations

import copy
import json
import socket
import time

import pytest
from kibana_double import DASHBOARDS_EXPORT, KIBANA_EXPORT
from module_runner import run_task
from page_server import PageServer

pytestmark = pytest.mark.usefixtures("collections_path")

SOC_OBJECTS = {
    "index-pattern:wlcg-soc-flows",
    "index-pattern:wlcg-soc-zeek",
    "visualization:wlcg-soc-zeek-about",
    "search:wlcg-soc-zeek-intel",
    "lens:wlcg-soc-zeek-records",
    "visualization:wlcg-soc-zeek-services",
    "dashboard:wlcg-soc-zeek-overview",
}


def conn(double, **extra) -> dict:
    args = {"url": double.url, "username": double.username, "password": double.password, "timeout": 10}
    args.update(extra)
    return args


def soc_objects() -> list[dict]:
    return [json.loads(line) for line in KIBANA_EXPORT.read_text().splitlines() if '"type"' in line]


# ------------------------------------------------------------------ kibana_saved_objects


def test_import_then_nothing_to_do(kibana_api, tmp_path):
    args = conn(kibana_api, src=str(KIBANA_EXPORT), space="security")
    first, _out = run_task(tmp_path, "kibana_saved_objects", args)
    assert first["changed"] is True, first
    assert set(first["created"]) == SOC_OBJECTS and set(first["imported"]) == SOC_OBJECTS
    assert first["updated"] == [] and first["unchanged"] == []
    assert kibana_api.object_keys("security") == SOC_OBJECTS
    assert kibana_api.object_keys() == set()
    assert len(kibana_api.imports) == 1 and kibana_api.imports[0][:2] == ("security", True)
    writes = len(kibana_api.writes)

    second, _out = run_task(tmp_path, "kibana_saved_objects", args)
    assert second["changed"] is False, second
    assert set(second["unchanged"]) == SOC_OBJECTS
    assert second["created"] == second["updated"] == second["imported"] == []
    assert len(kibana_api.writes) == writes
    # Every request carried the xsrf headers of both products.
    assert all(h.get("kbn-xsrf") == "true" and h.get("osd-xsrf") == "true" for _m, _p, h in kibana_api.requests)


def test_a_changed_object_is_imported_alone(kibana_api, tmp_path):
    args = conn(kibana_api, src=str(KIBANA_EXPORT))
    run_task(tmp_path, "kibana_saved_objects", args)
    # Someone edits the dashboard's title in Kibana.
    edited = kibana_api.stored("dashboard", "wlcg-soc-zeek-overview")
    edited["attributes"]["title"] = "My overview"
    kibana_api.put_object(edited)

    res, _out = run_task(tmp_path, "kibana_saved_objects", args, diff=True)
    assert res["changed"] is True
    assert res["updated"] == ["dashboard:wlcg-soc-zeek-overview"]
    assert len(res["unchanged"]) == 6
    assert kibana_api.imports[-1] == ("default", True, ["dashboard:wlcg-soc-zeek-overview"])
    assert kibana_api.stored("dashboard", "wlcg-soc-zeek-overview")["attributes"]["title"] == "WLCG SOC - Zeek overview"
    before, after = json.loads(res["diff"]["before"]), json.loads(res["diff"]["after"])
    assert set(before) == set(after) == {"dashboard:wlcg-soc-zeek-overview"}
    assert before["dashboard:wlcg-soc-zeek-overview"]["attributes"]["title"] == "My overview"
    assert after["dashboard:wlcg-soc-zeek-overview"]["attributes"]["title"] == "WLCG SOC - Zeek overview"
    # JSON text attributes are shown decoded.
    panels = after["dashboard:wlcg-soc-zeek-overview"]["attributes"]["panelsJSON"]
    assert isinstance(panels, list) and panels[0]["gridData"]["w"] == 16


def test_layout_of_json_text_and_reference_order_are_no_change(kibana_api, tmp_path):
    run_task(tmp_path, "kibana_saved_objects", conn(kibana_api, src=str(KIBANA_EXPORT)))
    objects = soc_objects()
    dashboard = next(o for o in objects if o["type"] == "dashboard")
    dashboard["attributes"]["panelsJSON"] = json.dumps(json.loads(dashboard["attributes"]["panelsJSON"]), indent=2)
    dashboard["references"].reverse()
    for obj in objects:  # what an export from another Kibana would carry
        obj.update(updated_at="2030-01-01T00:00:00.000Z", version="WzUsMV0=", namespaces=["elsewhere"])
    res, _out = run_task(tmp_path, "kibana_saved_objects", conn(kibana_api, objects=objects))
    assert res["changed"] is False, res
    assert len(res["unchanged"]) == 7


def test_check_mode_writes_nothing_and_shows_the_diff(kibana_api, tmp_path):
    res, _out = run_task(
        tmp_path, "kibana_saved_objects", conn(kibana_api, src=str(KIBANA_EXPORT), space="security"), True, True
    )
    assert res["changed"] is True
    assert set(res["created"]) == SOC_OBJECTS and res["imported"] == []
    assert kibana_api.writes == [] and kibana_api.imports == []
    assert res["diff"]["before"] == ""
    after = json.loads(res["diff"]["after"])
    assert after["lens:wlcg-soc-zeek-records"]["attributes"]["visualizationType"] == "lnsXY"


def test_overwrite_false_creates_only_what_is_missing(kibana_api, tmp_path):
    args = conn(kibana_api, src=str(KIBANA_EXPORT))
    run_task(tmp_path, "kibana_saved_objects", args)
    edited = kibana_api.stored("visualization", "wlcg-soc-zeek-about")
    edited["attributes"]["title"] = "Local notes"
    kibana_api.put_object(edited)
    kibana_api.objects.pop(("default", "index-pattern", "wlcg-soc-flows"))
    res, _out = run_task(tmp_path, "kibana_saved_objects", dict(args, overwrite=False))
    assert res["changed"] is True
    assert res["kept"] == ["visualization:wlcg-soc-zeek-about"]
    assert res["created"] == ["index-pattern:wlcg-soc-flows"]
    assert kibana_api.imports[-1] == ("default", False, ["index-pattern:wlcg-soc-flows"])
    assert kibana_api.stored("visualization", "wlcg-soc-zeek-about")["attributes"]["title"] == "Local notes"


def test_import_errors_in_a_200_answer_fail_the_task_and_name_each_object(kibana_api, tmp_path):
    search = next(o for o in soc_objects() if o["type"] == "search")
    orphan = copy.deepcopy(search)
    orphan["id"] = "orphan-search"
    orphan["references"][0]["id"] = "no-such-data-view"
    zeek = next(o for o in soc_objects() if o["id"] == "wlcg-soc-zeek")
    lens = next(o for o in soc_objects() if o["type"] == "lens")
    res, _out = run_task(tmp_path, "kibana_saved_objects", conn(kibana_api, objects=[orphan, zeek, lens]))
    assert res["failed"] is True
    assert "search:orphan-search (Zeek intel hits): missing_references (index-pattern:no-such-data-view)" in res["msg"]
    assert "Kibana wrote none of them" in res["msg"]
    assert res["errors"][0]["error"] == {
        "type": "missing_references",
        "references": [{"type": "index-pattern", "id": "no-such-data-view"}],
    }
    # Kibana counts the data view and the Lens chart as successes, but writes nothing: no change.
    assert res["success_count"] == 2 and res["imported"] == [] and res["changed"] is False
    assert kibana_api.object_keys() == set()


def test_unsupported_types_fail_but_the_others_are_written(kibana_api, tmp_path):
    workpad = {"type": "canvas-workpad", "id": "soc-wall", "attributes": {"name": "SOC wall screen"}}
    lens = next(o for o in soc_objects() if o["type"] == "lens")
    zeek = next(o for o in soc_objects() if o["id"] == "wlcg-soc-zeek")
    res, _out = run_task(tmp_path, "kibana_saved_objects", conn(kibana_api, objects=[workpad, lens, zeek]))
    assert res["failed"] is True
    assert "canvas-workpad:soc-wall: unsupported_type" in res["msg"]
    assert "Kibana wrote the other 2" in res["msg"]
    assert res["changed"] is True
    assert set(res["imported"]) == {"lens:wlcg-soc-zeek-records", "index-pattern:wlcg-soc-zeek"}
    assert kibana_api.object_keys() == {"lens:wlcg-soc-zeek-records", "index-pattern:wlcg-soc-zeek"}


def test_check_mode_predicts_import_errors(kibana_api, tmp_path):
    search = next(o for o in soc_objects() if o["type"] == "search")
    workpad = {"type": "canvas-workpad", "id": "soc-wall", "attributes": {"name": "SOC wall screen"}}
    res, _out = run_task(tmp_path, "kibana_saved_objects", conn(kibana_api, objects=[search, workpad]), check=True)
    assert res["failed"] is True
    assert res["msg"].startswith("check mode: the import into space default would fail for 2 object(s)")
    assert (
        "search:wlcg-soc-zeek-intel (Zeek intel hits): missing_references (index-pattern:wlcg-soc-zeek)" in res["msg"]
    )
    assert "Unsupported saved object type: 'canvas-workpad'" in res["msg"]
    assert kibana_api.writes == []


def test_unknown_space_fails_before_anything_is_written(kibana_api, tmp_path):
    res, _out = run_task(tmp_path, "kibana_saved_objects", conn(kibana_api, src=str(KIBANA_EXPORT), space="secuirty"))
    assert res["failed"] is True
    assert res["msg"] == f"Kibana at {kibana_api.url} has no space 'secuirty': create it first"
    assert kibana_api.writes == [] and kibana_api.object_keys("secuirty") == set()
    res, _out = run_task(tmp_path, "kibana_saved_objects", conn(kibana_api, src=str(KIBANA_EXPORT), space="Security"))
    assert res["failed"] is True and "space must be a Kibana space identifier" in res["msg"]


def test_bad_input_fails_with_the_reason(kibana_api, tmp_path):
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"type":"dashboard","id":"a","attributes":{}}\n{"type": "dashboard", "attributes": {}}\n')
    res, _out = run_task(tmp_path, "kibana_saved_objects", conn(kibana_api, src=str(bad)))
    assert (
        res["failed"] is True
        and res["msg"] == f"{bad} line 2: the saved object has no id (both type and id are needed)"
    )
    bad.write_text("{not json\n")
    res, _out = run_task(tmp_path, "kibana_saved_objects", conn(kibana_api, src=str(bad)))
    assert res["failed"] is True and res["msg"].startswith(f"{bad} line 1 is not JSON")
    dupe = soc_objects()[:1] * 2
    res, _out = run_task(tmp_path, "kibana_saved_objects", conn(kibana_api, objects=dupe))
    assert res["failed"] is True and res["msg"] == "saved object index-pattern:wlcg-soc-flows is given more than once"
    assert kibana_api.requests == []


def test_dashboards_engine(dashboards_api, tmp_path):
    args = conn(dashboards_api, src=str(DASHBOARDS_EXPORT), engine="opensearch")
    first, _out = run_task(tmp_path, "kibana_saved_objects", args)
    assert first["changed"] is True and len(first["imported"]) == 4
    second, _out = run_task(tmp_path, "kibana_saved_objects", args)
    assert second["changed"] is False and len(second["unchanged"]) == 4
    assert all(h.get("osd-xsrf") == "true" for m, _p, h in dashboards_api.requests if m == "POST")
    res, _out = run_task(tmp_path, "kibana_saved_objects", dict(args, space="security"))
    assert res["failed"] is True and "OpenSearch Dashboards has no spaces" in res["msg"]


def test_wrong_credentials_name_the_user_and_never_the_password(kibana_api, tmp_path):
    wrong = "Wr0ng-S3cret-Passw0rd"
    res, out = run_task(tmp_path, "kibana_saved_objects", conn(kibana_api, src=str(KIBANA_EXPORT), password=wrong))
    assert res["failed"] is True
    assert f"Kibana at {kibana_api.url} refused the credentials of user 'elastic' (HTTP 401)" in res["msg"]
    assert "unable to authenticate user [elastic]" in res["msg"]
    assert wrong not in out
    assert kibana_api.writes == []


def test_api_key_and_token(kibana_api, tmp_path):
    kibana_api.api_keys.add("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==")
    bearer_ok, bearer_bad = "AAEAAWVsYXN0aWMva2liYW5hL3NvYzpzZWNyZXQ", "AAEAAWVsYXN0aWMva2liYW5hL25vcGU"
    kibana_api.tokens.add(bearer_ok)
    base = {"url": kibana_api.url, "src": str(KIBANA_EXPORT)}
    res, _out = run_task(
        tmp_path,
        "kibana_saved_objects",
        dict(base, api_key="VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="),
    )
    assert res["changed"] is True
    res, _out = run_task(tmp_path, "kibana_saved_objects", dict(base, token=bearer_ok))
    assert res["changed"] is False
    res, out = run_task(tmp_path, "kibana_saved_objects", dict(base, token=bearer_bad))
    assert res["failed"] is True and "refused the credentials of the service account token (HTTP 401)" in res["msg"]
    assert bearer_bad not in out


def test_unreachable_server_fails_after_bounded_retries(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = {"url": f"http://127.0.0.1:{port}", "username": "elastic", "password": "x", "src": str(KIBANA_EXPORT)}
    started = time.monotonic()
    res, _out = run_task(tmp_path, "kibana_saved_objects", dict(args, retries=2))
    elapsed = time.monotonic() - started
    assert res["failed"] is True
    assert res["msg"].startswith(
        f"Kibana at http://127.0.0.1:{port} is unreachable (POST /api/saved_objects/_bulk_get)"
    )
    assert "Connection refused" in res["msg"] and res["msg"].endswith("gave up after 3 attempts")
    assert elapsed < 30  # waits 1 s + 2 s between the attempts


def test_kibana_starting_up_is_waited_for(kibana_api, tmp_path):
    kibana_api.unavailable = 2  # 503 "Kibana server is not ready yet", twice
    res, _out = run_task(tmp_path, "kibana_saved_objects", conn(kibana_api, src=str(KIBANA_EXPORT)))
    assert res["changed"] is True and len(res["imported"]) == 7
    kibana_api.unavailable = 10
    res, _out = run_task(tmp_path, "kibana_saved_objects", conn(kibana_api, src=str(KIBANA_EXPORT), retries=1))
    assert res["failed"] is True
    assert "is not available (POST /api/saved_objects/_bulk_get, HTTP 503) after 2 attempts" in res["msg"]
    assert "Kibana server is not ready yet" in res["msg"]


# ------------------------------------------------------------------ kibana_data_view


def test_data_view_create_noop_update_delete(kibana_api, tmp_path):
    args = conn(
        kibana_api, id="wlcg-soc-zeek", title="zeek-*", name="Zeek logs", time_field="@timestamp", space="security"
    )
    res, _out = run_task(tmp_path, "kibana_data_view", args, check=True, diff=True)
    assert res["changed"] is True and kibana_api.writes == []
    assert json.loads(res["diff"]["after"])["title"] == "zeek-*"
    res, _out = run_task(tmp_path, "kibana_data_view", args)
    assert res["changed"] is True
    assert res["data_view"] == {
        "id": "wlcg-soc-zeek",
        "title": "zeek-*",
        "name": "Zeek logs",
        "time_field": "@timestamp",
    }
    stored = kibana_api.stored("index-pattern", "wlcg-soc-zeek", "security")
    assert stored["attributes"]["timeFieldName"] == "@timestamp"
    writes = len(kibana_api.writes)
    res, _out = run_task(tmp_path, "kibana_data_view", args)
    assert res["changed"] is False and len(kibana_api.writes) == writes

    res, _out = run_task(tmp_path, "kibana_data_view", dict(args, time_field="event.start"), diff=True)
    assert res["changed"] is True
    assert json.loads(res["diff"]["before"])["time_field"] == "@timestamp"
    assert json.loads(res["diff"]["after"])["time_field"] == "event.start"
    assert (
        kibana_api.stored("index-pattern", "wlcg-soc-zeek", "security")["attributes"]["timeFieldName"] == "event.start"
    )
    assert kibana_api.requests[-1][:2] == ("POST", "/s/security/api/data_views/data_view/wlcg-soc-zeek")

    gone = conn(kibana_api, id="wlcg-soc-zeek", space="security", state="absent")
    res, _out = run_task(tmp_path, "kibana_data_view", gone, check=True)
    assert res["changed"] is True and kibana_api.stored("index-pattern", "wlcg-soc-zeek", "security")
    res, _out = run_task(tmp_path, "kibana_data_view", gone)
    assert res["changed"] is True and kibana_api.stored("index-pattern", "wlcg-soc-zeek", "security") is None
    res, _out = run_task(tmp_path, "kibana_data_view", gone)
    assert res["changed"] is False


def test_data_view_found_by_name_without_id(kibana_api, tmp_path):
    args = conn(kibana_api, title="flows-*", time_field="event.start")
    res, _out = run_task(tmp_path, "kibana_data_view", args)
    assert res["changed"] is True
    new_id = res["data_view"]["id"]
    res, _out = run_task(tmp_path, "kibana_data_view", args)
    assert res["changed"] is False and res["data_view"]["id"] == new_id
    assert len([k for k in kibana_api.object_keys() if k.startswith("index-pattern:")]) == 1


def test_data_view_on_dashboards(dashboards_api, tmp_path):
    args = conn(dashboards_api, engine="opensearch", id="wlcg-soc-flows", title="flows-*", time_field="event.start")
    res, _out = run_task(tmp_path, "kibana_data_view", args)
    assert res["changed"] is True
    assert dashboards_api.stored("index-pattern", "wlcg-soc-flows")["attributes"] == {
        "title": "flows-*",
        "timeFieldName": "event.start",
    }
    res, _out = run_task(tmp_path, "kibana_data_view", args)
    assert res["changed"] is False
    res, _out = run_task(tmp_path, "kibana_data_view", dict(args, title="flows-v2-*"))
    assert res["changed"] is True
    assert dashboards_api.stored("index-pattern", "wlcg-soc-flows")["attributes"]["title"] == "flows-v2-*"
    res, _out = run_task(tmp_path, "kibana_data_view", dict(args, name="Flows"))
    assert res["failed"] is True and "name is not supported with engine=opensearch" in res["msg"]
    res, _out = run_task(tmp_path, "kibana_data_view", dict(args, state="absent"))
    assert res["changed"] is True and dashboards_api.stored("index-pattern", "wlcg-soc-flows") is None


def test_data_view_wrong_password(kibana_api, tmp_path):
    wrong = "N0t-The-Passw0rd"
    res, out = run_task(tmp_path, "kibana_data_view", conn(kibana_api, password=wrong, title="zeek-*"))
    assert res["failed"] is True and "user 'elastic'" in res["msg"] and wrong not in out


def test_objects_that_kibana_migrated_are_reported(kibana_api, tmp_path):
    dashboard = next(o for o in soc_objects() if o["type"] == "dashboard")
    stored = kibana_api.put_object(dashboard)
    stored["attributes"]["title"] = "Migrated by Kibana"
    kibana_api.put_object(stored)
    old = dict(dashboard, typeMigrationVersion="7.17.3")
    res, _out = run_task(tmp_path, "kibana_saved_objects", conn(kibana_api, objects=[old]))
    assert res["updated"] == ["dashboard:wlcg-soc-zeek-overview"]
    assert any("typeMigrationVersion 8.9.0, the file has 7.17.3" in w for w in res["warnings"]), res


# ------------------------------------------------------------------ answers that are not the API's

HTML_CASES = {
    "saved_objects": ("kibana_saved_objects", {"objects": [{"type": "dashboard", "id": "d", "attributes": {}}]}),
    "data_view": ("kibana_data_view", {"id": "zeek", "title": "zeek-*"}),
    "index_pattern": ("kibana_data_view", {"id": "zeek", "title": "zeek-*", "engine": "opensearch"}),
}


@pytest.mark.parametrize("case", list(HTML_CASES))
def test_an_html_page_with_200_fails_and_changes_nothing(tmp_path, case):
    module, args = HTML_CASES[case]
    with PageServer() as server:
        res, _out = run_task(tmp_path, module, {**args, "url": server.url, "retries": 0})
        methods = [method for method, _path in server.seen]
    assert res["failed"] is True and res["changed"] is False, res
    assert res["msg"].startswith(f"{'OpenSearch Dashboards' if 'engine' in args else 'Kibana'} at {server.url}/api/")
    assert "answered HTTP 200 with a body that is not JSON (text/html) where a JSON object was expected" in res["msg"]
    assert "Welcome to nginx!" in res["msg"]
    assert len(methods) == 1  # the first read fails: nothing written
