"""The user, role, role mapping and API key modules end to end: ansible-playbook ->
module -> the real OpenSearch security plugin (tests/search/opensearch_security.py, over
TLS verified against the node's CA).

The Elasticsearch test distribution cannot store native users, roles or role mappings
(its ``.security`` index needs the ``analysis-common`` module it lacks), so the
Elasticsearch half runs against tests/search/security_double.py, the documented security
API in front of the real node.
"""

from __future__ import annotations

import json
import secrets
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import SECURE_OPENSEARCH
from module_runner import run_tasks

pytestmark = [pytest.mark.usefixtures("collections_path"), pytest.mark.xdist_group(SECURE_OPENSEARCH)]

# What OpenSearch's own action groups allow a pipeline writer: new documents in the
# SOC's indices (with their index created on first write), nothing else.
WRITER_ROLE = {
    "name": "soc_writer",
    "description": "Logstash writes Zeek logs, flows and alerts",
    "cluster": ["cluster_monitor", "indices:data/write/bulk"],
    "indices": [
        {
            "names": ["zeek-*", "flows-*", "alerts-*"],
            "privileges": ["indices:data/write/index", "indices:data/write/bulk*", "create_index"],
        }
    ],
}


def conn(node, **extra) -> dict:
    args = {
        "hosts": [node.url],
        "ca_path": node.ca_path,
        "username": node.username,
        "password": node.password,
        "timeout": 20,
        "retries": 1,
    }
    args.update(extra)
    return args


def play(tmp_path: Path, steps: list[tuple[str, dict, dict]]) -> tuple[list[dict], str]:
    """Run (module, args, task keywords) steps in one play; failed tasks do not stop it."""
    tasks = [{f"wlcg.soc.{module}": args, "ignore_errors": True, **extra} for module, args, extra in steps]
    results, out = run_tasks(tmp_path, tasks)
    assert len(results) == len(steps), out
    return results, out


def bulk(node, user: str, password: str, docs: list[tuple[str, dict]]) -> list[dict]:
    """The items of a ``_bulk`` request of ``create`` actions, sent as ``user``."""
    lines = "".join(json.dumps({"create": {"_index": index}}) + "\n" + json.dumps(doc) + "\n" for index, doc in docs)
    headers = {"Content-Type": "application/x-ndjson", **node.auth_header(user, password)}
    req = urllib.request.Request(f"{node.url}/_bulk?refresh=true", data=lines.encode(), method="POST", headers=headers)  # noqa: S310
    context = ssl.create_default_context(cafile=node.ca_path)
    with urllib.request.urlopen(req, timeout=30, context=context) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())["items"]


def strong_password() -> str:
    return f"Soc-{secrets.token_urlsafe(16)}-9x"


def test_opensearch_role_create_noop_check_update_delete(secure_opensearch, tmp_path):
    node = secure_opensearch
    role = dict(conn(node), **dict(WRITER_ROLE, name="soc_writer_lifecycle"))
    wider = dict(role, cluster=["cluster_monitor", "cluster_composite_ops"])
    fls = dict(
        role,
        indices=[
            {"names": ["zeek-*"], "privileges": ["read"], "except_fields": ["smtp.body"], "query": {"term": {"a": 1}}}
        ],
    )
    results, _out = play(
        tmp_path,
        [
            ("elasticsearch_role", role, {"diff": True}),  # 0 create
            ("elasticsearch_role", role, {}),  # 1 the server's fls/masked_fields/tenants defaults: no change
            ("elasticsearch_role", wider, {"check_mode": True, "diff": True}),  # 2 reported, not written
            ("elasticsearch_role", wider, {}),  # 3 update
            ("elasticsearch_role", fls, {}),  # 4 field- and document-level security
            ("elasticsearch_role", fls, {}),  # 5 ~field and dls as JSON text compare as given
            ("elasticsearch_role", dict(role, state="absent"), {}),  # 6 delete
            ("elasticsearch_role", dict(role, state="absent"), {}),  # 7 nothing to delete
        ],
    )
    for res in results:
        assert not res.get("failed"), res
    assert [r["operation"] for r in results] == [
        "create",
        "none",
        "update",
        "update",
        "update",
        "none",
        "delete",
        "none",
    ]
    assert [r["changed"] for r in results] == [True, False, True, True, True, False, True, False]
    assert '"cluster_monitor"' in results[0]["diff"]["after"] and results[0]["diff"]["before"] == ""
    assert "cluster_composite_ops" in results[2]["diff"]["after"]
    assert results[3]["role"]["cluster"] == ["cluster_monitor", "cluster_composite_ops"]
    assert results[4]["role"]["indices"] == [
        {
            "names": ["zeek-*"],
            "privileges": ["read"],
            "field_security": {"grant": ["*"], "except": ["smtp.body"]},
            "query": {"term": {"a": 1}},
        }
    ]
    assert node.call("GET", "_plugins/_security/api/roles/soc_writer_lifecycle")[0] == 404


def test_opensearch_user_password_checked_by_login(secure_opensearch, tmp_path):
    node = secure_opensearch
    first, second = strong_password(), strong_password()
    user = dict(conn(node), name="soc_pw_user", user_password=first, backend_roles=["soc"], full_name="Pipelines")
    results, out = play(
        tmp_path,
        [
            ("elasticsearch_user", user, {"diff": True}),  # 0 create
            ("elasticsearch_user", user, {"diff": True}),  # 1 the login works: nothing to do
            ("elasticsearch_user", dict(user, user_password=second), {"check_mode": True, "diff": True}),  # 2
            ("elasticsearch_user", dict(user, user_password=second), {"diff": True}),  # 3 new password
            ("elasticsearch_user", dict(user, user_password=second), {}),  # 4 no change
            ("elasticsearch_user", dict(user, user_password=first, update_password="on_create"), {}),  # noqa: S106 - 5 kept
            ("elasticsearch_user", dict(conn(node), name="soc_pw_user", full_name="Pipes"), {}),  # 6 one field
            ("elasticsearch_user", dict(user, user_password="short"), {}),  # noqa: S106 - 7 the plugin's policy refuses it
        ],
    )
    assert [r.get("operation") for r in results] == [
        "create",
        "none",
        "update",
        "update",
        "none",
        "none",
        "update",
        "update",
    ], [(r.get("msg"), r.get("exception")) for r in results]
    assert [r.get("password_changed") for r in results[:7]] == [True, False, True, True, False, False, False]
    assert not any(r.get("failed") for r in results[:7]), results
    # The password is never shown: not in a result, a diff or anything the play printed.
    assert first not in out and second not in out
    assert "********" in results[2]["diff"]["after"] and "(new)" in results[2]["diff"]["after"]
    assert "(new)" not in results[1].get("diff", {}).get("after", "")
    # The old password stops working only when the task that changes it runs outside check mode.
    auth = "_plugins/_security/authinfo"
    assert node.call("GET", auth, user="soc_pw_user", password=second)[0] == 200
    assert node.call("GET", auth, user="soc_pw_user", password=first)[0] == 401
    assert results[6]["user"] == {"roles": [], "backend_roles": ["soc"], "full_name": "Pipes", "metadata": {}}
    assert node.call("GET", auth, user="soc_pw_user", password=second)[0] == 200  # kept by step 6
    assert results[7]["failed"] and "Weak password" in results[7]["msg"] and "short" not in results[7]["msg"]
    results, _out = play(tmp_path, [("elasticsearch_user", dict(conn(node), name="soc_pw_user", state="absent"), {})])
    assert results[0]["operation"] == "delete"
    assert node.call("GET", auth, user="soc_pw_user", password=second)[0] == 401


def test_opensearch_writer_indexes_but_cannot_delete_or_read_security(secure_opensearch, tmp_path):
    """A role, its user and the mapping, and what the pipeline writer may then do."""
    node = secure_opensearch
    password = strong_password()
    mapping = dict(conn(node), role="soc_writer", users=["soc_writer"])
    results, out = play(
        tmp_path,
        [
            ("elasticsearch_role", dict(conn(node), **WRITER_ROLE), {}),
            ("elasticsearch_user", dict(conn(node), name="soc_writer", user_password=password), {}),
            ("elasticsearch_role_mapping", mapping, {"diff": True}),
            ("elasticsearch_role_mapping", mapping, {}),
            ("elasticsearch_role_mapping", dict(mapping, backend_roles=["cn=soc,ou=groups"]), {"diff": True}),
        ],
    )
    assert not any(r.get("failed") for r in results), results
    assert [r["operation"] for r in results] == ["create", "create", "create", "none", "update"]
    assert results[4]["mapping"] == {"users": ["soc_writer"], "backend_roles": ["cn=soc,ou=groups"], "hosts": []}
    assert password not in out

    def as_writer(method: str, path: str, body=None) -> int:
        return node.call(method, path, body, user="soc_writer", password=password)[0]

    status, doc = node.call(
        "POST", "zeek-conn-2026.12.06/_doc?refresh=true", {"uid": "C1"}, user="soc_writer", password=password
    )
    assert status == 201, doc
    # What Logstash sends: _bulk with create actions, into its indices and nowhere else.
    items = bulk(node, "soc_writer", password, [("flows-2026.12.06", {"bytes": 10}), ("other-index", {"a": 1})])
    assert [item["create"]["status"] for item in items] == [201, 403], items
    assert as_writer("DELETE", "zeek-conn-2026.12.06") == 403
    assert as_writer("DELETE", f"zeek-conn-2026.12.06/_doc/{doc['_id']}") == 403
    assert as_writer("GET", "zeek-conn-2026.12.06/_search") == 403
    assert as_writer("GET", ".opendistro_security/_search") == 403
    assert as_writer("POST", "other-index/_doc", {"a": 1}) == 403
    status, count = node.call("GET", "zeek-conn-2026.12.06/_count")
    assert status == 200 and count["count"] == 1, count


def test_opensearch_refuses_what_it_cannot_hold(secure_opensearch, tmp_path):
    node = secure_opensearch
    results, _out = play(
        tmp_path,
        [
            ("elasticsearch_user", dict(conn(node), name="x_user", user_password=strong_password(), email="a@b"), {}),
            ("elasticsearch_user", dict(conn(node), name="x_user", roles=["readall"]), {}),  # no password to create
            ("elasticsearch_role", dict(conn(node), name="kibana_server", cluster=["cluster_all"]), {}),
            ("elasticsearch_role", dict(conn(node), name="x_role", run_as=["admin"]), {}),
            ("elasticsearch_role_mapping", dict(conn(node), role="x_role", rules={"field": {"username": "a"}}), {}),
            ("elasticsearch_api_key", dict(conn(node), name="x_key"), {}),
            (
                "elasticsearch_role",
                dict(
                    conn(node),
                    name="x_role",
                    indices=[{"names": ["a"], "privileges": ["read"], "fields": ["a"], "except_fields": ["b"]}],
                ),
                {},
            ),
        ],
    )
    assert all(r.get("failed") for r in results), results
    messages = [r["msg"] for r in results]
    assert "email: elasticsearch only" in messages[0]
    assert "user_password is required to create the user" in messages[1]
    assert "built in" in messages[2]
    assert "run_as: elasticsearch only" in messages[3]
    assert "rules: elasticsearch only" in messages[4]
    assert "OpenSearch 2 has no API keys" in messages[5]
    assert "either grants fields or excludes them" in messages[6]
    _status, users = node.call("GET", "_plugins/_security/api/internalusers")
    assert "x_user" not in users
    _status, role = node.call("GET", "_plugins/_security/api/roles/kibana_server")
    assert "cluster_all" not in json.dumps(role)


# -- Elasticsearch: the documented security API (tests/search/security_double.py) ----------


@pytest.fixture
def es_security(elasticsearch_node):
    from search.security_double import SecurityDouble

    with SecurityDouble(elasticsearch_node.url) as double:
        yield double, elasticsearch_node


def es_conn(double, node, **extra) -> dict:
    args = {"hosts": [double.url], "username": node.username, "password": node.password, "timeout": 20, "retries": 1}
    args.update(extra)
    return args


def test_elasticsearch_role_lifecycle(es_security, tmp_path):
    double, node = es_security
    role = dict(
        es_conn(double, node),
        name="soc_writer",
        description="Logstash writes Zeek logs, flows and alerts",
        cluster=["monitor"],
        indices=[{"names": ["zeek-*", "flows-*", "alerts-*"], "privileges": ["create_doc", "auto_configure"]}],
    )
    analyst = dict(
        es_conn(double, node),
        name="soc_analyst",
        indices=[
            {"names": ["zeek-*"], "privileges": ["read"], "except_fields": ["smtp.body"], "query": '{"term": {"a": 1}}'}
        ],
        metadata={"team": "soc"},
    )
    results, out = play(
        tmp_path,
        [
            ("elasticsearch_role", role, {"diff": True}),  # 0 create
            ("elasticsearch_role", role, {}),  # 1 the server's defaults (transient_metadata...): no change
            ("elasticsearch_role", dict(role, run_as=["logstash"]), {"check_mode": True}),  # 2
            ("elasticsearch_role", dict(role, run_as=["logstash"]), {}),  # 3
            ("elasticsearch_role", analyst, {}),  # 4 field security and a query as JSON text
            ("elasticsearch_role", analyst, {}),  # 5
            ("elasticsearch_role", dict(es_conn(double, node), name="superuser", cluster=["monitor"]), {}),  # 6
            (
                "elasticsearch_role",
                dict(es_conn(double, node), name="x", tenants=[{"patterns": ["a"], "privileges": ["b"]}]),
                {},
            ),
            ("elasticsearch_role", dict(role, state="absent"), {}),  # 8
            ("elasticsearch_role", dict(role, state="absent"), {}),  # 9
        ],
    )
    assert [r.get("operation") for r in results] == [
        "create",
        "none",
        "update",
        "update",
        "create",
        "none",
        "none",
        "none",
        "delete",
        "none",
    ], out
    assert not any(r.get("failed") for r in results[:6] + results[8:]), out
    assert results[0]["role"]["indices"] == [
        {"names": ["zeek-*", "flows-*", "alerts-*"], "privileges": ["create_doc", "auto_configure"]}
    ]
    assert results[3]["role"]["run_as"] == ["logstash"]
    assert results[5]["role"]["indices"][0]["field_security"] == {"grant": ["*"], "except": ["smtp.body"]}
    assert results[5]["role"]["indices"][0]["query"] == {"term": {"a": 1}}
    assert results[6]["failed"] and "built in" in results[6]["msg"]
    assert results[7]["failed"] and "tenants: opensearch only" in results[7]["msg"]
    assert ("PUT", "/_security/role/superuser") not in double.requests


def test_elasticsearch_users_and_the_built_in_kibana_system(es_security, tmp_path):
    double, node = es_security
    first, second, kibana = strong_password(), strong_password(), strong_password()
    user = dict(
        es_conn(double, node), name="soc_writer", user_password=first, roles=["soc_writer"], email="soc@example.org"
    )
    builtin = dict(es_conn(double, node), name="kibana_system", user_password=kibana)
    results, out = play(
        tmp_path,
        [
            ("elasticsearch_user", user, {"diff": True}),  # 0 create
            ("elasticsearch_user", user, {}),  # 1 the login works
            ("elasticsearch_user", dict(user, user_password=second), {"diff": True}),  # 2 new password
            ("elasticsearch_user", dict(user, user_password=second, enabled=False), {}),  # 3 disabled
            ("elasticsearch_user", dict(user, user_password=first, enabled=False), {}),  # 4 cannot log in: left alone
            ("elasticsearch_user", builtin, {}),  # 5 only the password, through _password
            ("elasticsearch_user", builtin, {}),  # 6
            ("elasticsearch_user", dict(builtin, roles=["superuser"]), {}),  # 7 refused
            ("elasticsearch_user", dict(user, backend_roles=["x"]), {}),  # 8 refused
            ("elasticsearch_user", dict(user, metadata={"_reserved": True}), {}),  # 9 refused
        ],
    )
    assert [r.get("operation") for r in results[:7]] == [
        "create",
        "none",
        "update",
        "update",
        "none",
        "update",
        "none",
    ], out
    assert [r.get("password_changed") for r in results[:7]] == [True, False, True, False, False, True, False]
    assert not any(r.get("failed") for r in results[:7]), out
    for secret in (first, second, kibana):
        assert secret not in out
    assert results[3]["user"]["enabled"] is False
    assert results[5]["user"]["roles"] == ["kibana_system"]
    assert ("POST", "/_security/user/kibana_system/_password") in double.requests or (
        "PUT",
        "/_security/user/kibana_system/_password",
    ) in double.requests
    assert ("PUT", "/_security/user/kibana_system") not in double.requests
    assert (
        results[7]["failed"] and "only its password and enabled" in results[7]["msg"] and "roles" in results[7]["msg"]
    )
    assert results[8]["failed"] and "backend_roles: opensearch only" in results[8]["msg"]
    assert results[9]["failed"] and "keys starting with _" in results[9]["msg"]


def test_elasticsearch_role_mapping_rules(es_security, tmp_path):
    double, node = es_security
    groups = dict(es_conn(double, node), role="soc_analyst", users=["alice"], backend_roles=["cn=soc,ou=groups"])
    rules = dict(es_conn(double, node), name="pki-analysts", role="soc_analyst", rules={"field": {"dn": "*,ou=soc"}})
    results, out = play(
        tmp_path,
        [
            ("elasticsearch_role_mapping", groups, {"diff": True}),  # 0
            ("elasticsearch_role_mapping", groups, {}),  # 1
            ("elasticsearch_role_mapping", dict(groups, enabled=False), {}),  # 2
            ("elasticsearch_role_mapping", rules, {}),  # 3
            ("elasticsearch_role_mapping", rules, {}),  # 4
            ("elasticsearch_role_mapping", dict(groups, mapped_hosts=["10.0.0.1"]), {}),  # 5 refused
            ("elasticsearch_role_mapping", dict(rules, users=["bob"]), {}),  # 6 refused
            ("elasticsearch_role_mapping", dict(rules, state="absent"), {}),  # 7
        ],
    )
    assert [r.get("operation") for r in results] == [
        "create",
        "none",
        "update",
        "create",
        "none",
        "none",
        "none",
        "delete",
    ], out
    assert results[0]["mapping"] == {
        "roles": ["soc_analyst"],
        "rules": {"any": [{"field": {"username": ["alice"]}}, {"field": {"groups": ["cn=soc,ou=groups"]}}]},
        "enabled": True,
        "metadata": {},
    }
    assert results[2]["mapping"]["enabled"] is False
    assert results[5]["failed"] and "mapped_hosts: opensearch only" in results[5]["msg"]
    assert results[6]["failed"] and "rules replaces users and backend_roles" in results[6]["msg"]


def test_elasticsearch_api_key_created_once_updated_in_place(es_security, tmp_path):
    double, node = es_security
    key = dict(
        es_conn(double, node),
        name="elastalert",
        role_descriptors={"alerts_reader": {"indices": [{"names": ["alerts-*"], "privileges": ["read"]}]}},
        metadata={"service": "elastalert2"},
    )
    wider = dict(
        key,
        role_descriptors={"alerts_reader": {"indices": [{"names": ["alerts-*", "zeek-*"], "privileges": ["read"]}]}},
    )

    def whoami(encoded: str) -> int:
        req = urllib.request.Request(  # noqa: S310 - loopback
            f"{double.url}/_security/_authenticate", headers={"Authorization": f"ApiKey {encoded}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    results, out = play(
        tmp_path,
        [
            ("elasticsearch_api_key", key, {"diff": True}),  # 0 create: the secret, once
            ("elasticsearch_api_key", key, {}),  # 1 no change, no secret
            ("elasticsearch_api_key", wider, {"check_mode": True}),  # 2
            ("elasticsearch_api_key", wider, {"diff": True}),  # 3 updated in place
        ],
    )
    assert [r.get("operation") for r in results] == ["create", "none", "update", "update"], out
    assert not any(r.get("failed") for r in results), out
    created = results[0]
    assert created["api_key"] and created["encoded"] and "api_key" not in results[1] and "encoded" not in results[3]
    assert results[1]["id"] == results[3]["id"] == created["id"]
    assert results[3]["key"]["role_descriptors"]["alerts_reader"]["indices"][0]["names"] == ["alerts-*", "zeek-*"]
    assert created["api_key"] not in json.dumps(created.get("diff"))
    assert whoami(created["encoded"]) == 200
    results, out = play(
        tmp_path,
        [
            ("elasticsearch_api_key", dict(key, state="absent"), {}),
            ("elasticsearch_api_key", dict(key, state="absent"), {}),
        ],
    )
    assert [r.get("operation") for r in results] == ["delete", "none"], out
    assert whoami(created["encoded"]) == 401
