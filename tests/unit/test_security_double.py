"""The security double (tests/search/security_double.py) in front of the real Elasticsearch 8 node.

The expected bodies are those of Elasticsearch's reference pages (security-api-*), written out
here, not computed by the double. Where the node validates a request before it fails to store
it, the double must answer exactly as the node does, and the tests ask both.
"""

from __future__ import annotations

import base64
import time

import pytest
import requests

RESERVED_REALM = {"name": "reserved", "type": "reserved"}
NATIVE_REALM = {"name": "default_native", "type": "native"}
CHALLENGES = ['Basic realm="security", charset="UTF-8"', "ApiKey"]


@pytest.fixture
def double(elasticsearch_node):
    from search.security_double import SecurityDouble

    with SecurityDouble(elasticsearch_node.url) as running:
        yield running


@pytest.fixture
def call(elasticsearch_node):
    """``call(url, method, path, body, login=(user, password) | api_key=encoded)``: a response, by default
    as the node's superuser."""
    node = elasticsearch_node

    def run(url, method, path, body=None, login=None, api_key=None) -> requests.Response:
        if api_key:
            auth, headers = None, {"Authorization": f"ApiKey {api_key}"}
        else:
            auth, headers = login or (node.username, node.password), {}
        return requests.request(method, f"{url}/{path.lstrip('/')}", json=body, auth=auth, headers=headers, timeout=30)

    return run


def refused(res: requests.Response, status: int, kind: str, reason: str) -> None:
    assert res.status_code == status, res.text
    assert res.json()["error"]["type"] == kind and res.json()["error"]["reason"] == reason, res.text
    assert res.json()["error"]["root_cause"] == [{"type": kind, "reason": reason}]


# Requests the node answers without writing to its security index (refusals, built-ins, what
# it does not have): the double must answer the same.
WITHOUT_WRITING = [
    ("PUT", "_security/user/jdoe", {"password": "abc", "roles": []}),
    ("PUT", "_security/user/jdoe", {"password": "long-enough", "roles": [], "bogus": 1}),
    ("PUT", "_security/user/jdoe", {"password": "long-enough"}),
    ("PUT", "_security/user/kibana_system", {"password": "long-enough", "roles": []}),
    ("DELETE", "_security/user/elastic", None),
    ("PUT", "_security/user/elastic/_password", {}),
    ("PUT", "_security/user/elastic/_password", {"password": "abc"}),
    ("PUT", "_security/user/elastic/_password", {"password": "long-enough", "bogus": 1}),
    ("PUT", "_security/user/nobody/_password", {"password": "long-enough"}),
    ("PUT", "_security/role/r", {"bogus": 1}),
    ("PUT", "_security/role/r", {"indices": [{"names": ["a"], "privileges": ["read"], "bogus": 1}]}),
    ("PUT", "_security/role/r", {"indices": [{"privileges": ["read"]}]}),
    ("PUT", "_security/role/r", {"indices": [{"names": [], "privileges": ["read"]}]}),
    ("PUT", "_security/role/r", {"indices": [{"names": ["a"], "privileges": []}]}),
    ("PUT", "_security/role/superuser", {"cluster": ["all"]}),
    ("DELETE", "_security/role/superuser", None),
    ("GET", "_security/role/superuser", None),
    ("GET", "_security/role/nope", None),
    ("GET", "_security/user/kibana_system", None),
    ("GET", "_security/user", None),
    ("GET", "_security/user/nope", None),
    ("GET", "_security/role_mapping/nope", None),
    ("DELETE", "_security/role_mapping/nope", None),
    ("DELETE", "_security/role/nope", None),
    ("DELETE", "_security/user/nope", None),
    (
        "PUT",
        "_security/role_mapping/m",
        {"roles": ["a"], "role_templates": [{"template": "x"}], "enabled": True, "rules": {"field": {"username": "*"}}},
    ),
    ("POST", "_security/api_key", {}),
    ("GET", "_security/api_key?id=nope", None),
    ("GET", "_security/api_key?id=a&name=b", None),
    ("DELETE", "_security/api_key", {}),
    ("DELETE", "_security/api_key", {"ids": ["nope"]}),
    ("PUT", "_security/api_key/nope", {}),
]


@pytest.mark.parametrize(("method", "path", "body"), WITHOUT_WRITING, ids=lambda v: str(v)[:40])
def test_answers_as_the_node_where_it_does_not_write(double, call, elasticsearch_node, method, path, body):
    theirs = call(elasticsearch_node.url, method, path, body)
    ours = call(double.url, method, path, body)
    assert (ours.status_code, ours.json()) == (theirs.status_code, theirs.json())


def test_users_create_read_update_delete(double, call):
    user = {"password": "l0ng-r4nd0m-p@ssw0rd", "roles": ["viewer"], "full_name": "Jack Nicholson"}
    user.update(email="jacknich@example.com", metadata={"intelligence": 7})
    assert call(double.url, "PUT", "_security/user/jacknich", user).json() == {"created": True}
    shown = {k: v for k, v in user.items() if k != "password"}
    expected = {"jacknich": {"username": "jacknich", **shown, "enabled": True}}
    assert call(double.url, "GET", "_security/user/jacknich").json() == expected

    # An update without a password keeps it.
    res = call(double.url, "POST", "_security/user/jacknich", {"roles": ["editor"]})
    assert res.status_code == 200 and res.json() == {"created": False}
    expected["jacknich"].update(roles=["editor"], full_name=None, email=None, metadata={})
    assert call(double.url, "GET", "_security/user/jacknich").json() == expected
    res = call(double.url, "GET", "_security/_authenticate", login=("jacknich", user["password"]))
    assert res.status_code == 200 and res.json()["roles"] == ["editor"]

    everyone = call(double.url, "GET", "_security/user").json()
    assert next(iter(everyone)) == "elastic" and everyone["jacknich"] == expected["jacknich"]
    assert everyone["kibana_system"]["metadata"] == {"_reserved": True}
    assert call(double.url, "GET", "_security/user/jacknich,nope").json() == expected
    res = call(double.url, "DELETE", "_security/user/jacknich")
    assert (res.status_code, res.json()) == (200, {"found": True})
    res = call(double.url, "DELETE", "_security/user/jacknich")
    assert (res.status_code, res.json()) == (404, {"found": False})
    res = call(double.url, "GET", "_security/user/jacknich")
    assert (res.status_code, res.json()) == (404, {})


def test_user_refusals_of_the_store(double, call):
    res = call(double.url, "PUT", "_security/user/jdoe", {"roles": []})
    reason = "Validation Failed: 1: password must be specified unless you are updating an existing user;"
    refused(res, 400, "validation_exception", reason)
    res = call(double.url, "PUT", "_security/user/jdoe/_enable")
    refused(res, 400, "validation_exception", "Validation Failed: 1: only existing users can be enabled;")
    res = call(double.url, "PUT", "_security/user/jdoe/_disable")
    refused(res, 400, "validation_exception", "Validation Failed: 1: only existing users can be disabled;")


def test_authenticate_native_user(double, call):
    call(double.url, "PUT", "_security/user/jdoe", {"password": "first-password", "roles": ["viewer"]})
    res = call(double.url, "GET", "_security/_authenticate", login=("jdoe", "first-password"))
    assert res.status_code == 200
    assert res.json() == {
        "username": "jdoe",
        "roles": ["viewer"],
        "full_name": None,
        "email": None,
        "metadata": {},
        "enabled": True,
        "authentication_realm": NATIVE_REALM,
        "lookup_realm": NATIVE_REALM,
        "authentication_type": "realm",
    }
    assert call(double.url, "PUT", "_security/user/jdoe/_password", {"password": "second-password"}).json() == {}
    res = call(double.url, "GET", "_security/_authenticate", login=("jdoe", "first-password"))
    reason = "unable to authenticate user [jdoe] for REST request [/_security/_authenticate]"
    assert res.status_code == 401 and res.raw.headers.getlist("WWW-Authenticate") == CHALLENGES
    assert res.json()["error"] == {
        "root_cause": [{"type": "security_exception", "reason": reason, "header": {"WWW-Authenticate": CHALLENGES}}],
        "type": "security_exception",
        "reason": reason,
        "header": {"WWW-Authenticate": CHALLENGES},
    }
    assert call(double.url, "GET", "_security/_authenticate", login=("jdoe", "second-password")).ok
    assert call(double.url, "PUT", "_security/user/jdoe/_disable").json() == {}
    assert call(double.url, "GET", "_security/user/jdoe").json()["jdoe"]["enabled"] is False
    res = call(double.url, "GET", "_security/_authenticate", login=("jdoe", "second-password"))
    assert res.status_code == 401 and res.json()["error"]["reason"] == reason
    assert call(double.url, "POST", "_security/user/jdoe/_enable").json() == {}
    assert call(double.url, "GET", "_security/_authenticate", login=("jdoe", "second-password")).ok


def test_built_in_user_takes_a_password_and_the_enabled_flag(double, call):
    assert call(double.url, "PUT", "_security/user/kibana_system/_password", {"password": "kibana-password"}).ok
    res = call(double.url, "GET", "_security/_authenticate", login=("kibana_system", "kibana-password"))
    assert res.json() == {
        "username": "kibana_system",
        "roles": ["kibana_system"],
        "full_name": None,
        "email": None,
        "metadata": {"_reserved": True},
        "enabled": True,
        "authentication_realm": RESERVED_REALM,
        "lookup_realm": RESERVED_REALM,
        "authentication_type": "realm",
    }
    assert call(double.url, "PUT", "_security/user/kibana_system/_disable").ok
    assert call(double.url, "GET", "_security/user/kibana_system").json()["kibana_system"]["enabled"] is False
    res = call(double.url, "GET", "_security/_authenticate", login=("kibana_system", "kibana-password"))
    assert res.status_code == 401


def test_other_credentials_are_the_nodes(double, call, elasticsearch_node):
    node = elasticsearch_node
    res = call(double.url, "GET", "_security/_authenticate")
    assert res.json() == call(node.url, "GET", "_security/_authenticate").json()
    assert res.json()["authentication_realm"] == {"name": "default_file", "type": "file"}
    res = call(double.url, "GET", "_security/_authenticate", login=(node.username, "Not-The-Password"))
    theirs = call(node.url, "GET", "_security/_authenticate", login=(node.username, "Not-The-Password"))
    assert (res.status_code, res.json()) == (401, theirs.json())
    assert ("GET", "/_security/_authenticate") in double.requests


def test_roles_with_the_defaults_elasticsearch_fills_in(double, call):
    role = {
        "cluster": ["monitor"],
        "indices": [
            {
                "names": "zeek-*",
                "privileges": ["read"],
                "field_security": {"grant": ["title", "body"]},
                "query": {"match": {"title": "foo"}},
            },
            {"names": [".security*"], "privileges": ["read"], "allow_restricted_indices": True},
        ],
        "metadata": {"version": 1},
        "description": "Reads Zeek",
    }
    res = call(double.url, "PUT", "_security/role/zeek_reader", role)
    assert (res.status_code, res.json()) == (200, {"role": {"created": True}})
    expected = {
        "cluster": ["monitor"],
        "indices": [
            {
                "names": ["zeek-*"],
                "privileges": ["read"],
                "field_security": {"grant": ["title", "body"]},
                "query": '{"match":{"title":"foo"}}',
                "allow_restricted_indices": False,
            },
            {"names": [".security*"], "privileges": ["read"], "allow_restricted_indices": True},
        ],
        "applications": [],
        "run_as": [],
        "metadata": {"version": 1},
        "transient_metadata": {"enabled": True},
        "description": "Reads Zeek",
    }
    assert call(double.url, "GET", "_security/role/zeek_reader").json() == {"zeek_reader": expected}
    assert call(double.url, "POST", "_security/role/zeek_reader", {}).json() == {"role": {"created": False}}
    empty = {"cluster": [], "indices": [], "applications": [], "run_as": [], "metadata": {}}
    assert call(double.url, "GET", "_security/role/zeek_reader").json() == {
        "zeek_reader": {**empty, "transient_metadata": {"enabled": True}}
    }

    both = call(double.url, "GET", "_security/role/zeek_reader,superuser").json()
    assert set(both) == {"zeek_reader", "superuser"} and both["superuser"]["metadata"] == {"_reserved": True}
    everything = call(double.url, "GET", "_security/role").json()
    assert {"zeek_reader", "superuser", "viewer", "editor", "kibana_system", "logstash_system"} <= set(everything)
    res = call(double.url, "DELETE", "_security/role/zeek_reader")
    assert (res.status_code, res.json()) == (200, {"found": True})
    res = call(double.url, "GET", "_security/role/zeek_reader")
    assert (res.status_code, res.json()) == (404, {})


def test_role_mappings(double, call):
    mapping = {"roles": ["user"], "enabled": True, "rules": {"field": {"username": "*"}}, "metadata": {"version": 1}}
    res = call(double.url, "PUT", "_security/role_mapping/mapping1", mapping)
    assert (res.status_code, res.json()) == (200, {"role_mapping": {"created": True}})
    assert call(double.url, "GET", "_security/role_mapping/mapping1").json() == {"mapping1": mapping}
    res = call(double.url, "POST", "_security/role_mapping/mapping1", {**mapping, "metadata": None})
    assert res.json() == {"role_mapping": {"created": False}}
    assert call(double.url, "GET", "_security/role_mapping").json() == {"mapping1": {**mapping, "metadata": {}}}

    templated = {
        "role_templates": [{"template": {"source": "{{#tojson}}groups{{/tojson}}"}, "format": "json"}],
        "rules": {"field": {"realm.name": "saml1"}},
        "enabled": True,
    }
    assert call(double.url, "PUT", "_security/role_mapping/mapping5", templated).ok
    assert call(double.url, "GET", "_security/role_mapping/mapping5").json() == {
        "mapping5": {
            "enabled": True,
            "role_templates": [{"template": '{"source":"{{#tojson}}groups{{/tojson}}"}', "format": "json"}],
            "rules": {"field": {"realm.name": "saml1"}},
            "metadata": {},
        }
    }

    for body, missing in (
        ({}, "roles"),
        ({"roles": ["a"], "rules": {}}, "enabled"),
        ({"roles": [], "enabled": True}, "rules"),
    ):
        res = call(double.url, "PUT", "_security/role_mapping/m", body)
        refused(res, 400, "parsing_exception", f"failed to parse role-mapping [m]. missing field [{missing}]")
    res = call(double.url, "PUT", "_security/role_mapping/m", {**mapping, "run_as": ["x"]})
    refused(res, 400, "parsing_exception", "[role-mapping] unknown field [run_as]")
    res = call(double.url, "DELETE", "_security/role_mapping/mapping1")
    assert (res.status_code, res.json()) == (200, {"found": True})
    assert call(double.url, "GET", "_security/role_mapping/mapping1").status_code == 404


def test_api_keys(double, call, elasticsearch_node):
    descriptors = {"zeek": {"cluster": ["monitor"], "indices": [{"names": ["zeek-*"], "privileges": ["read"]}]}}
    body = {"name": "ingest-zeek", "expiration": "1d", "role_descriptors": descriptors, "metadata": {"app": "zeek"}}
    before = int(time.time() * 1000)
    created = call(double.url, "POST", "_security/api_key", body).json()
    assert set(created) == {"id", "name", "expiration", "api_key", "encoded"} and created["name"] == "ingest-zeek"
    assert before + 86_400_000 <= created["expiration"] <= int(time.time() * 1000) + 86_400_000
    key_id, encoded = created["id"], created["encoded"]
    assert base64.b64decode(encoded).decode() == f"{key_id}:{created['api_key']}"

    info = call(double.url, "GET", f"_security/api_key?id={key_id}").json()["api_keys"]
    assert len(info) == 1 and before <= info[0].pop("creation") <= created["expiration"]
    stored = {**descriptors["zeek"], "applications": [], "run_as": [], "metadata": {}}
    stored["indices"] = [{"names": ["zeek-*"], "privileges": ["read"], "allow_restricted_indices": False}]
    assert info[0] == {
        "id": key_id,
        "name": "ingest-zeek",
        "type": "rest",
        "expiration": created["expiration"],
        "invalidated": False,
        "username": "admin",
        "realm": "default_file",
        "realm_type": "file",
        "metadata": {"app": "zeek"},
        "role_descriptors": {"zeek": {**stored, "transient_metadata": {"enabled": True}}},
    }
    for query in ("name=ingest-*", "owner=true", "username=admin", "realm_name=default_file", "active_only=true"):
        assert [k["id"] for k in call(double.url, "GET", f"_security/api_key?{query}").json()["api_keys"]] == [key_id]
    assert call(
        double.url, "GET", "_security/api_key?owner=true", login=("reader", elasticsearch_node.reader_password)
    ).json() == {"api_keys": []}

    res = call(double.url, "GET", "_security/_authenticate", api_key=encoded)
    assert res.json() == {
        "username": "admin",
        "roles": [],
        "full_name": None,
        "email": None,
        "metadata": {},
        "enabled": True,
        "authentication_realm": {"name": "_es_api_key", "type": "_es_api_key"},
        "lookup_realm": {"name": "_es_api_key", "type": "_es_api_key"},
        "authentication_type": "api_key",
        "api_key": {"id": key_id, "name": "ingest-zeek"},
    }

    update = {"metadata": {"app": "zeek", "v": 2}}
    assert call(double.url, "PUT", f"_security/api_key/{key_id}", update).json() == {"updated": True}
    assert call(double.url, "PUT", f"_security/api_key/{key_id}", update).json() == {"updated": False}
    assert call(double.url, "PUT", f"_security/api_key/{key_id}").json() == {"updated": False}
    res = call(
        double.url,
        "PUT",
        f"_security/api_key/{key_id}",
        update,
        login=("reader", elasticsearch_node.reader_password),
    )
    reason = f"no API key owned by requesting user found for ID [{key_id}]"
    refused(res, 404, "resource_not_found_exception", reason)

    res = call(double.url, "DELETE", "_security/api_key", {"ids": [key_id]})
    assert res.json() == {"invalidated_api_keys": [key_id], "previously_invalidated_api_keys": [], "error_count": 0}
    res = call(double.url, "DELETE", "_security/api_key", {"name": "ingest-zeek"})
    assert res.json() == {"invalidated_api_keys": [], "previously_invalidated_api_keys": [key_id], "error_count": 0}
    info = call(double.url, "GET", f"_security/api_key?id={key_id}").json()["api_keys"][0]
    assert info["invalidated"] is True and info["invalidation"] >= before
    assert call(double.url, "GET", "_security/api_key?active_only=true").json() == {"api_keys": []}
    res = call(double.url, "PUT", f"_security/api_key/{key_id}", update)
    refused(res, 400, "illegal_argument_exception", f"cannot update invalidated API key [{key_id}]")


@pytest.mark.parametrize("which", ["invalidated", "unknown", "wrong secret"])
def test_api_key_refused(double, call, which):
    created = call(double.url, "POST", "_security/api_key", {"name": "k"}).json()
    key_id, secret = created["id"], created["api_key"]
    problem = f"api key [{key_id}] has been invalidated"
    if which == "invalidated":
        call(double.url, "DELETE", "_security/api_key", {"owner": True})
    elif which == "unknown":
        key_id, problem = "abcdefghijklmnopqrst", "unable to find apikey with id abcdefghijklmnopqrst"
    else:
        secret, problem = "not-the-key", f"invalid credentials for API key [{key_id}]"
    encoded = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    res = call(double.url, "GET", "_security/_authenticate", api_key=encoded)
    assert res.status_code == 401 and res.raw.headers.getlist("WWW-Authenticate") == CHALLENGES
    error = res.json()["error"]
    assert error["reason"] == (
        "unable to authenticate with provided credentials and anonymous access is not allowed for this request"
    )
    assert error["additional_unsuccessful_credentials"] == f"API key: {problem}"


def test_api_key_owners(double, call):
    call(double.url, "PUT", "_security/user/jdoe", {"password": "jdoe-password", "roles": ["viewer"]})
    created = call(double.url, "PUT", "_security/api_key", {"name": "k"}, login=("jdoe", "jdoe-password")).json()
    derived = call(double.url, "POST", "_security/api_key", {"name": "derived"}, api_key=created["encoded"]).json()
    owners = {
        k["name"]: (k["username"], k["realm"], k["realm_type"])
        for k in call(double.url, "GET", "_security/api_key").json()["api_keys"]
    }
    assert owners == {"k": ("jdoe", "default_native", "native"), "derived": ("jdoe", "default_native", "native")}
    res = call(double.url, "GET", "_security/_authenticate", api_key=derived["encoded"])
    assert res.json()["username"] == "jdoe" and res.json()["api_key"]["name"] == "derived"
    res = call(double.url, "DELETE", "_security/api_key", {"username": "jdoe"})
    assert sorted(res.json()["invalidated_api_keys"]) == sorted([created["id"], derived["id"]])


def test_everything_else_goes_to_the_node(double, call, elasticsearch_node):
    node = elasticsearch_node
    res = call(double.url, "GET", "_cluster/health?wait_for_status=green&timeout=5s")
    assert (
        res.status_code == 200
        and res.json()["cluster_name"] == call(node.url, "GET", "_cluster/health").json()["cluster_name"]
    )
    assert res.headers["X-elastic-product"] == "Elasticsearch"
    assert ("GET", "/_cluster/health?wait_for_status=green&timeout=5s") in double.requests
    # The node authorizes: the viewer may not create an index, the superuser may.
    res = call(double.url, "PUT", "security-double-probe", {}, login=("reader", node.reader_password))
    assert res.status_code == 403 and res.json()["error"]["type"] == "security_exception"
    assert call(double.url, "PUT", "security-double-probe", {"settings": {"number_of_replicas": 0}}).ok
    try:
        assert call(node.url, "GET", "security-double-probe").status_code == 200
    finally:
        call(node.url, "DELETE", "security-double-probe")
    # Security APIs other than those above too.
    ours, theirs = (call(url, "GET", "_security/privilege/_builtin") for url in (double.url, node.url))
    assert (ours.status_code, ours.json()) == (theirs.status_code, theirs.json())
