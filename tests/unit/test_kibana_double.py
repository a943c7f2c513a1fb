"""The Kibana API double (tests/kibana_double) against Kibana's documented behaviour.

The expected bodies are those of Kibana's docs (docs/api/saved-objects/*.asciidoc,
docs/api/data-views/*.asciidoc) and of its route and importer code, quoted in
tests/kibana_double/server.py; they are written out here, not computed by the double.
"""

from __future__ import annotations

import json

import pytest
import requests
from kibana_double import DASHBOARDS_EXPORT, KIBANA_EXPORT, KibanaDouble

XSRF = {"kbn-xsrf": "true"}


def auth(double: KibanaDouble, password: str | None = None) -> tuple[str, str]:
    return (double.username, double.password if password is None else password)


def import_file(
    double: KibanaDouble,
    lines: list[dict] | str,
    query: str = "",
    filename: str = "file.ndjson",
    space: str = "",
    headers: dict | None = None,
) -> requests.Response:
    text = lines if isinstance(lines, str) else "\n".join(json.dumps(o) for o in lines)
    prefix = f"/s/{space}" if space else ""
    return requests.post(
        f"{double.url}{prefix}/api/saved_objects/_import{query}",
        files={"file": (filename, text.encode(), "application/ndjson")},
        headers=XSRF if headers is None else headers,
        auth=auth(double),
        timeout=10,
    )


def bulk_get(double: KibanaDouble, objects: list[dict], space: str = "") -> list[dict]:
    prefix = f"/s/{space}" if space else ""
    res = requests.post(
        f"{double.url}{prefix}/api/saved_objects/_bulk_get", json=objects, headers=XSRF, auth=auth(double), timeout=10
    )
    assert res.status_code == 200, res.text
    return res.json()["saved_objects"]


# The docs' examples (import.asciidoc).
PATTERN = {"type": "index-pattern", "id": "my-pattern", "attributes": {"title": "my-pattern-*"}}
DASHBOARD = {"type": "dashboard", "id": "my-dashboard", "attributes": {"title": "Look at my dashboard"}}


# ------------------------------------------------------------------ platform


def test_no_credentials_is_401_with_boom_body(kibana_api):
    res = requests.get(f"{kibana_api.url}/api/saved_objects/_find?type=dashboard", timeout=10)
    assert res.status_code == 401
    assert res.json() == {"statusCode": 401, "error": "Unauthorized", "message": "Unauthorized"}


def test_wrong_password_names_the_user(kibana_api):
    res = requests.get(
        f"{kibana_api.url}/api/saved_objects/_find?type=dashboard", auth=auth(kibana_api, "nope"), timeout=10
    )
    assert res.status_code == 401
    body = res.json()
    assert body["statusCode"] == 401 and body["error"] == "Unauthorized"
    assert "unable to authenticate user [elastic] for REST request [/_security/_authenticate]" in body["message"]


def test_api_key_and_bearer_token(kibana_api):
    kibana_api.api_keys.add("a2V5aWQ6c2VjcmV0")
    kibana_api.tokens.add("AAEAAWVsYXN0aWMva2liYW5hL3Rva2Vu")
    url = f"{kibana_api.url}/api/saved_objects/_find?type=dashboard"
    assert requests.get(url, headers={"Authorization": "ApiKey a2V5aWQ6c2VjcmV0"}, timeout=10).status_code == 200
    assert (
        requests.get(url, headers={"Authorization": "Bearer AAEAAWVsYXN0aWMva2liYW5hL3Rva2Vu"}, timeout=10).status_code
        == 200
    )
    res = requests.get(url, headers={"Authorization": "ApiKey bm9wZTpub3Bl"}, timeout=10)
    assert res.status_code == 401
    assert "unable to authenticate with provided credentials" in res.json()["message"]


def test_writes_need_the_xsrf_header(kibana_api):
    res = import_file(kibana_api, [PATTERN], headers={})
    assert res.status_code == 400
    assert res.json() == {
        "statusCode": 400,
        "error": "Bad Request",
        "message": "Request must contain a kbn-xsrf header.",
    }
    # kbn-version also passes (lifecycle_handlers.ts); reads never need it.
    assert import_file(kibana_api, [PATTERN], headers={"kbn-version": "8.15.0"}).status_code == 200
    res = requests.get(
        f"{kibana_api.url}/api/saved_objects/index-pattern/my-pattern", auth=auth(kibana_api), timeout=10
    )
    assert res.status_code == 200
    # osd-xsrf is not Kibana's header.
    assert import_file(kibana_api, [PATTERN], headers={"osd-xsrf": "true"}).status_code == 400


def test_authentication_comes_before_the_xsrf_check(kibana_api):
    res = requests.post(f"{kibana_api.url}/api/saved_objects/_bulk_get", json=[], timeout=10)
    assert res.status_code == 401


def test_unknown_route_is_404(kibana_api):
    res = requests.get(f"{kibana_api.url}/api/nothing/here", auth=auth(kibana_api), timeout=10)
    assert res.status_code == 404
    assert res.json() == {"statusCode": 404, "error": "Not Found", "message": "Not Found"}


def test_kibana_answers_503_while_starting_and_an_outage_refuses_connections(kibana_api):
    kibana_api.unavailable = 1
    res = requests.get(f"{kibana_api.url}/api/status", auth=auth(kibana_api), timeout=10)
    assert res.status_code == 503 and res.text == "Kibana server is not ready yet"
    assert requests.get(f"{kibana_api.url}/api/status", auth=auth(kibana_api), timeout=10).status_code == 200
    url = kibana_api.url
    kibana_api.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/api/status", timeout=2)


# ------------------------------------------------------------------ import


def test_import_example_from_the_docs(kibana_api):
    res = import_file(kibana_api, [PATTERN, DASHBOARD])
    assert res.status_code == 200
    assert res.json() == {
        "successCount": 2,
        "success": True,
        "warnings": [],
        "successResults": [
            {"type": "index-pattern", "id": "my-pattern", "meta": {"title": "my-pattern-*", "icon": "indexPatternApp"}},
            {
                "type": "dashboard",
                "id": "my-dashboard",
                "meta": {"title": "Look at my dashboard", "icon": "dashboardApp"},
            },
        ],
    }
    stored = kibana_api.stored("dashboard", "my-dashboard")
    assert stored["attributes"] == DASHBOARD["attributes"]
    assert stored["namespaces"] == ["default"]
    assert {"updated_at", "created_at", "version", "coreMigrationVersion", "typeMigrationVersion", "managed"} <= set(
        stored
    )


def test_import_rejects_a_file_that_is_not_ndjson(kibana_api):
    res = import_file(kibana_api, [PATTERN], filename="export.json")
    assert res.status_code == 400
    assert res.json() == {"statusCode": 400, "error": "Bad Request", "message": "Invalid file extension .json"}
    res = requests.post(
        f"{kibana_api.url}/api/saved_objects/_import",
        json=[PATTERN],
        headers=XSRF,
        auth=auth(kibana_api),
        timeout=10,
    )
    assert res.status_code == 415


def test_overwrite_cannot_be_combined_with_create_new_copies(kibana_api):
    res = import_file(kibana_api, [PATTERN], query="?overwrite=true&createNewCopies=true")
    assert res.status_code == 400
    assert res.json()["message"] == "[request query]: cannot use [overwrite] with [createNewCopies]"
    res = import_file(kibana_api, [PATTERN], query="?overwrite=yes")
    assert res.status_code == 400
    assert res.json()["message"] == "[request query.overwrite]: expected value of type [boolean] but got [string]"


def test_the_same_object_twice_is_a_bad_request(kibana_api):
    res = import_file(kibana_api, [PATTERN, PATTERN])
    assert res.status_code == 400
    assert res.json()["message"] == "Non-unique import objects detected: [index-pattern:my-pattern]"


def test_conflicts_without_overwrite_are_200_and_nothing_is_written(kibana_api):
    assert import_file(kibana_api, [PATTERN]).json()["success"] is True
    changed = dict(PATTERN, attributes={"title": "other-*"})
    res = import_file(kibana_api, [changed, DASHBOARD])
    assert res.status_code == 200
    body = res.json()
    assert body["success"] is False
    assert body["errors"] == [
        {
            "id": "my-pattern",
            "type": "index-pattern",
            "meta": {"title": "other-*", "icon": "indexPatternApp"},
            "error": {"type": "conflict"},
        }
    ]
    # Kibana counts the dashboard as a success but writes nothing while a conflict is unresolved.
    assert body["successCount"] == 1
    assert [r["id"] for r in body["successResults"]] == ["my-dashboard"]
    assert kibana_api.stored("dashboard", "my-dashboard") is None
    assert kibana_api.stored("index-pattern", "my-pattern")["attributes"]["title"] == "my-pattern-*"


def test_overwrite_replaces_and_says_so(kibana_api):
    import_file(kibana_api, [PATTERN])
    changed = dict(PATTERN, attributes={"title": "other-*"})
    body = import_file(kibana_api, [changed], query="?overwrite=true").json()
    assert body["success"] is True
    assert body["successResults"][0]["overwrite"] is True
    assert kibana_api.stored("index-pattern", "my-pattern")["attributes"]["title"] == "other-*"


def test_missing_references_example_from_the_docs(kibana_api):
    objects = [
        {
            "type": "visualization",
            "id": "my-vis",
            "attributes": {"title": "Look at my visualization"},
            "references": [{"name": "ref_0", "type": "index-pattern", "id": "my-pattern-*"}],
        },
        {
            "type": "search",
            "id": "my-search",
            "attributes": {"title": "Look at my search"},
            "references": [{"name": "ref_0", "type": "index-pattern", "id": "another-pattern-*"}],
        },
        {
            "type": "dashboard",
            "id": "my-dashboard",
            "attributes": {"title": "Look at my dashboard"},
            "references": [
                {"name": "ref_0", "type": "visualization", "id": "my-vis"},
                {"name": "ref_1", "type": "search", "id": "my-search"},
            ],
        },
    ]
    body = import_file(kibana_api, objects).json()
    assert body["success"] is False
    assert body["successCount"] == 1
    assert body["errors"] == [
        {
            "id": "my-vis",
            "type": "visualization",
            "meta": {"title": "Look at my visualization", "icon": "visualizeApp"},
            "error": {"type": "missing_references", "references": [{"type": "index-pattern", "id": "my-pattern-*"}]},
        },
        {
            "id": "my-search",
            "type": "search",
            "meta": {"title": "Look at my search", "icon": "discoverApp"},
            "error": {
                "type": "missing_references",
                "references": [{"type": "index-pattern", "id": "another-pattern-*"}],
            },
        },
    ]
    assert kibana_api.object_keys() == set()


def test_only_data_view_and_search_references_are_checked(kibana_api):
    vis = {
        "type": "visualization",
        "id": "v",
        "attributes": {"title": "v"},
        "references": [{"name": "x", "type": "lens", "id": "not-there"}],
    }
    assert import_file(kibana_api, [vis]).json()["success"] is True


def test_unsupported_types_fail_alone(kibana_api):
    workpad = {"type": "canvas-workpad", "id": "my-canvas", "attributes": {"name": "Look at my canvas"}}
    body = import_file(kibana_api, [workpad, DASHBOARD]).json()
    assert body["success"] is False
    assert body["errors"] == [
        {"id": "my-canvas", "type": "canvas-workpad", "meta": {"title": None}, "error": {"type": "unsupported_type"}}
    ]
    # Not a resolvable error: the other objects are written.
    assert body["successCount"] == 1
    assert kibana_api.stored("dashboard", "my-dashboard") is not None


def test_create_new_copies_regenerates_ids_and_references(kibana_api):
    vis = dict(PATTERN)
    search = {
        "type": "search",
        "id": "s",
        "attributes": {"title": "s"},
        "references": [
            {"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern", "id": "my-pattern"}
        ],
    }
    body = import_file(kibana_api, [vis, search], query="?createNewCopies=true").json()
    assert body["success"] is True
    new = {r["id"]: r["destinationId"] for r in body["successResults"]}
    assert set(new) == {"my-pattern", "s"} and new["s"] != "s"
    stored = kibana_api.stored("search", new["s"])
    assert stored["references"][0]["id"] == new["my-pattern"]


def test_spaces(kibana_api):
    res = requests.get(f"{kibana_api.url}/api/spaces/space/nope", auth=auth(kibana_api), timeout=10)
    assert res.status_code == 404
    assert res.json() == {"statusCode": 404, "error": "Not Found", "message": "Saved object [space/nope] not found"}
    spaces = requests.get(f"{kibana_api.url}/api/spaces/space", auth=auth(kibana_api), timeout=10).json()
    assert [s["id"] for s in spaces] == ["default", "security"]
    assert spaces[0] == {
        "id": "default",
        "name": "Default",
        "description": "This is your default space!",
        "color": "#00bfb3",
        "disabledFeatures": [],
        "_reserved": True,
    }
    assert import_file(kibana_api, [PATTERN], space="security").json()["success"] is True
    assert kibana_api.object_keys("security") == {"index-pattern:my-pattern"}
    assert kibana_api.object_keys() == set()
    assert "error" in bulk_get(kibana_api, [{"type": "index-pattern", "id": "my-pattern"}])[0]
    assert "error" not in bulk_get(kibana_api, [{"type": "index-pattern", "id": "my-pattern"}], space="security")[0]


def test_saved_object_apis_write_into_unknown_spaces_like_kibana(kibana_api):
    # Kibana does not check that the space exists (elastic/kibana#67164): the objects
    # land in a namespace no one can see until a space of that name is created.
    assert import_file(kibana_api, [PATTERN], space="typo").json()["success"] is True
    assert kibana_api.object_keys("typo") == {"index-pattern:my-pattern"}
    kibana_api.strict_spaces = True
    res = import_file(kibana_api, [PATTERN], space="typo2")
    assert res.status_code == 404


# ------------------------------------------------------------------ reads


def test_bulk_get_entries_and_errors(kibana_api):
    import_file(kibana_api, [PATTERN])
    found = bulk_get(
        kibana_api,
        [
            {"type": "index-pattern", "id": "my-pattern"},
            {"type": "dashboard", "id": "be3733a0-9efe-11e7-acb3-3dab96693fab"},
            {"type": "canvas-workpad", "id": "x"},
        ],
    )
    assert found[0]["attributes"] == {"title": "my-pattern-*"} and found[0]["namespaces"] == ["default"]
    assert found[1] == {
        "id": "be3733a0-9efe-11e7-acb3-3dab96693fab",
        "type": "dashboard",
        "error": {
            "statusCode": 404,
            "error": "Not Found",
            "message": "Saved object [dashboard/be3733a0-9efe-11e7-acb3-3dab96693fab] not found",
        },
    }
    assert found[2]["error"] == {
        "statusCode": 400,
        "error": "Bad Request",
        "message": "Unsupported saved object type: 'canvas-workpad': Bad Request",
    }
    res = requests.post(
        f"{kibana_api.url}/api/saved_objects/_bulk_get", json={}, headers=XSRF, auth=auth(kibana_api), timeout=10
    )
    assert res.status_code == 400
    assert res.json()["message"] == "[request body]: expected value of type [array] but got [Object]"


def test_export_round_trip_of_the_soc_dashboards(kibana_api):
    text = KIBANA_EXPORT.read_text()
    body = import_file(kibana_api, text).json()
    assert body["success"] is True and body["successCount"] == 7
    res = requests.post(
        f"{kibana_api.url}/api/saved_objects/_export",
        json={"objects": [{"type": "dashboard", "id": "wlcg-soc-zeek-overview"}], "includeReferencesDeep": True},
        headers=XSRF,
        auth=auth(kibana_api),
        timeout=10,
    )
    assert res.status_code == 200
    assert res.headers["Content-Type"] == "application/ndjson"
    lines = res.text.split("\n")
    exported = [json.loads(line) for line in lines[:-1]]
    details = json.loads(lines[-1])
    assert details == {
        "excludedObjects": [],
        "excludedObjectsCount": 0,
        "exportedCount": 6,
        "missingRefCount": 0,
        "missingReferences": [],
    }
    # json-stable-stringify: sorted keys, no spaces; no namespaces; referenced objects first.
    assert all(line == json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")) for line in lines)
    assert all("namespaces" not in o for o in exported)
    order = [o["id"] for o in exported]
    assert order.index("wlcg-soc-zeek") < order.index("wlcg-soc-zeek-intel") < order.index("wlcg-soc-zeek-overview")
    assert order[-1] == "wlcg-soc-zeek-overview"
    # What was imported comes back: same attributes and references.
    source = {o["id"]: o for o in map(json.loads, text.splitlines()) if "type" in o}
    for obj in exported:
        assert obj["attributes"] == source[obj["id"]]["attributes"]
        assert obj["references"] == source[obj["id"]]["references"]


def test_export_errors(kibana_api):
    url = f"{kibana_api.url}/api/saved_objects/_export"
    res = requests.post(url, json={}, headers=XSRF, auth=auth(kibana_api), timeout=10)
    assert res.status_code == 400 and res.json()["message"] == "Either `type` or `objects` are required."
    res = requests.post(
        url, json={"objects": [{"type": "dashboard", "id": "nope"}]}, headers=XSRF, auth=auth(kibana_api), timeout=10
    )
    assert res.status_code == 400
    assert res.json()["message"] == "Error fetching objects to export"
    assert res.json()["attributes"]["objects"][0]["error"]["statusCode"] == 404
    res = requests.post(url, json={"type": "canvas-workpad"}, headers=XSRF, auth=auth(kibana_api), timeout=10)
    assert res.json()["message"] == "Trying to export non-exportable type(s): canvas-workpad"


def test_find(kibana_api):
    import_file(kibana_api, KIBANA_EXPORT.read_text())
    url = f"{kibana_api.url}/api/saved_objects/_find"
    body = requests.get(url, params={"type": "index-pattern"}, auth=auth(kibana_api), timeout=10).json()
    assert body["total"] == 2 and body["page"] == 1 and body["per_page"] == 20
    assert {o["id"] for o in body["saved_objects"]} == {"wlcg-soc-zeek", "wlcg-soc-flows"}
    body = requests.get(
        url,
        params={"type": "index-pattern", "search_fields": "title", "search": '"zeek-*"'},
        auth=auth(kibana_api),
        timeout=10,
    ).json()
    assert [o["id"] for o in body["saved_objects"]] == ["wlcg-soc-zeek"]
    res = requests.get(url, auth=auth(kibana_api), timeout=10)
    assert res.status_code == 400


# ------------------------------------------------------------------ data views


def test_data_views_api(kibana_api):
    base = f"{kibana_api.url}/s/security/api/data_views"
    create = {"data_view": {"id": "zeek", "title": "zeek-*", "timeFieldName": "@timestamp"}}
    res = requests.post(f"{base}/data_view", json=create, headers=XSRF, auth=auth(kibana_api), timeout=10)
    assert res.status_code == 200, res.text
    view = res.json()["data_view"]
    assert view["id"] == "zeek" and view["title"] == "zeek-*" and view["name"] == "zeek-*"
    assert view["timeFieldName"] == "@timestamp" and view["namespaces"] == ["security"]
    # The same name again: 400 Duplicate data view.
    res = requests.post(
        f"{base}/data_view", json={"data_view": {"title": "zeek-*"}}, headers=XSRF, auth=auth(kibana_api), timeout=10
    )
    assert res.status_code == 400
    assert res.json() == {"statusCode": 400, "error": "Bad Request", "message": "Duplicate data view: zeek-*"}
    res = requests.post(
        f"{base}/data_view", json={"data_view": {"name": "x"}}, headers=XSRF, auth=auth(kibana_api), timeout=10
    )
    assert (
        res.json()["message"] == "[request body.data_view.title]: expected value of type [string] but got [undefined]"
    )
    # Partial update: only what is given changes.
    res = requests.post(
        f"{base}/data_view/zeek",
        json={"data_view": {"name": "Zeek logs"}, "refresh_fields": False},
        headers=XSRF,
        auth=auth(kibana_api),
        timeout=10,
    )
    assert res.json()["data_view"]["name"] == "Zeek logs"
    assert res.json()["data_view"]["timeFieldName"] == "@timestamp"
    listing = requests.get(base, auth=auth(kibana_api), timeout=10).json()
    assert listing == {
        "data_view": [
            {"id": "zeek", "namespaces": ["security"], "title": "zeek-*", "typeMeta": {}, "name": "Zeek logs"}
        ]
    }
    assert requests.get(f"{kibana_api.url}/api/data_views", auth=auth(kibana_api), timeout=10).json() == {
        "data_view": []
    }
    res = requests.delete(f"{base}/data_view/zeek", headers=XSRF, auth=auth(kibana_api), timeout=10)
    assert res.status_code == 200 and res.text == ""
    res = requests.get(f"{base}/data_view/zeek", auth=auth(kibana_api), timeout=10)
    assert res.status_code == 404
    assert res.json() == {
        "statusCode": 404,
        "error": "Not Found",
        "message": "Saved object [index-pattern/zeek] not found",
    }


# ------------------------------------------------------------------ OpenSearch Dashboards


def test_opensearch_engine_is_opensearch_dashboards(dashboards_api):
    assert import_file(dashboards_api, [PATTERN]).json() == {
        "statusCode": 400,
        "error": "Bad Request",
        "message": "Request must contain a osd-xsrf header.",
    }
    osd = {"osd-xsrf": "true"}
    body = import_file(dashboards_api, DASHBOARDS_EXPORT.read_text(), headers=osd).json()
    assert body == {
        "successCount": 4,
        "success": True,
        "successResults": body["successResults"],
    }
    stored = dashboards_api.stored("dashboard", "wlcg-soc-zeek-overview")
    assert stored["migrationVersion"] == {"dashboard": "7.9.3"}
    assert "coreMigrationVersion" not in stored and "typeMigrationVersion" not in stored
    # 7.10-style errors carry the title at the top level too.
    body = import_file(dashboards_api, [dict(PATTERN, id="wlcg-soc-zeek")], headers=osd).json()
    assert body["errors"][0]["title"] == "my-pattern-*" and body["errors"][0]["error"] == {"type": "conflict"}
    # No spaces, no data views API; index patterns are saved objects.
    url = dashboards_api.url
    assert requests.get(f"{url}/api/spaces/space", auth=auth(dashboards_api), timeout=10).status_code == 404
    assert requests.get(f"{url}/api/data_views", auth=auth(dashboards_api), timeout=10).status_code == 404
    assert (
        requests.get(
            f"{url}/s/security/api/saved_objects/index-pattern/wlcg-soc-zeek", auth=auth(dashboards_api), timeout=10
        ).status_code
        == 404
    )
    res = requests.get(f"{url}/api/saved_objects/index-pattern/wlcg-soc-zeek", auth=auth(dashboards_api), timeout=10)
    assert res.json()["attributes"]["title"] == "zeek-*"
    res = requests.post(
        f"{url}/api/saved_objects/_export",
        json={"type": "index-pattern"},
        headers=osd,
        auth=auth(dashboards_api),
        timeout=10,
    )
    assert json.loads(res.text.split("\n")[-1]) == {"exportedCount": 1, "missingRefCount": 0, "missingReferences": []}
    res = requests.get(f"{url}/api/status", auth=(dashboards_api.username, "wrong"), timeout=10)
    assert res.json() == {"statusCode": 401, "error": "Unauthorized", "message": "Unauthorized"}
