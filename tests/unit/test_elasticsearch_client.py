"""The search modules' client (module_utils/search_client.py): its normalisation on
answers captured from a real Elasticsearch 8 and OpenSearch 2 node during the test,
engine detection, and its failure paths (retries, several hosts, refused logins,
secrets kept out of messages) against real nodes or small local HTTP servers.
"""

from __future__ import annotations

import copy
import json
import shutil
import ssl
import subprocess

import pytest
from page_server import LocalServer
from search.engine import closed_port_url

pytestmark = pytest.mark.usefixtures("collections_path")


@pytest.fixture
def sc():
    from ansible_collections.wlcg.soc.plugins.module_utils import search_client

    return search_client


def client_for(sc, node, **extra):
    args = {"hosts": [node.url], "username": node.username, "password": node.password, "timeout": 10, "retries": 0}
    args.update(extra)
    return sc.SearchClient(**args)


# -- normalisation on real answers -------------------------------------------------

TEMPLATE_BODIES = [
    # settings nested, flat, with and without "index.", numbers and booleans
    {
        "index_patterns": "soc-a-*",
        "priority": 10,
        "template": {
            "settings": {
                "number_of_shards": 2,
                "index": {"number_of_replicas": 0, "hidden": False, "refresh_interval": "5s"},
                "index.max_result_window": 20000,
                "analysis": {"analyzer": {"short": {"type": "standard", "max_token_length": 200, "stopwords": ["a"]}}},
            },
            "mappings": {
                "dynamic": False,
                "_source": {"enabled": True},
                "properties": {
                    "@timestamp": {"type": "date", "format": "strict_date_optional_time||epoch_millis"},
                    "src": {"type": "ip"},
                    "uid": {"type": "keyword", "ignore_above": 256},
                    "conn": {"properties": {"bytes": {"type": "long"}, "proto": {"type": "keyword"}}},
                },
            },
            "aliases": {"soc-a": {}, "soc-a-write": {"is_write_index": False}},
        },
        "version": 3,
        "_meta": {"managed_by": "wlcg.soc", "n": 1},
    },
    # a data stream template on a component
    {"index_patterns": ["soc-ds-*"], "data_stream": {}, "composed_of": ["soc-comp"], "priority": 500},
    # the bare minimum
    {"index_patterns": ["soc-min-*"]},
]

COMPONENT_BODY = {
    "template": {"settings": {"index.codec": "best_compression", "number_of_shards": 1}},
    "version": 1,
    "_meta": {"owner": "soc"},
}


def test_template_normalisation_on_real_answers(search_node, sc):
    node = search_node
    status, answer = node.call("PUT", "_component_template/soc-comp", COMPONENT_BODY)
    assert status == 200, answer
    stored = node.call("GET", "_component_template/soc-comp")[1]["component_templates"][0]["component_template"]
    before, after = sc.compare_template(COMPONENT_BODY, stored)
    assert before == after
    assert after["template"]["settings"] == {"index.codec": "best_compression", "index.number_of_shards": "1"}

    for i, body in enumerate(TEMPLATE_BODIES):
        name = f"soc-t{i}"
        status, answer = node.call("PUT", f"_index_template/{name}", body)
        assert status == 200, answer
        stored = node.call("GET", f"_index_template/{name}")[1]["index_templates"][0]["index_template"]
        before, after = sc.compare_template(body, stored)
        assert before == after, (stored, before, after)
        # Any real difference still shows.
        changed = copy.deepcopy(body)
        changed["priority"] = 77
        assert sc.compare_template(changed, stored)[0] != sc.compare_template(changed, stored)[1]
        node.call("DELETE", f"_index_template/{name}")
    node.call("DELETE", "_component_template/soc-comp")

    # What each engine fills in for a data stream, recorded from the answer itself.
    stored = {"index_patterns": ["x-*"], "data_stream": {}}
    node.call("PUT", "_index_template/soc-ds", stored)
    answer = node.call("GET", "_index_template/soc-ds")[1]["index_templates"][0]["index_template"]
    node.call("DELETE", "_index_template/soc-ds")
    assert answer["data_stream"] != {}, answer  # the server did add defaults...
    assert sc.compare_template(stored, answer)[0]["data_stream"] == {}  # ...which the comparison leaves out
    # ...but not when the desired template is no data stream template at all.
    before, after = sc.compare_template({"index_patterns": ["x-*"]}, answer)
    assert before != after


def test_setting_written_as_number_or_string_is_the_same(search_node, sc):
    node = search_node
    as_number = {"index_patterns": ["n-*"], "template": {"settings": {"index": {"number_of_replicas": 1}}}}
    as_string = {"index_patterns": ["n-*"], "template": {"settings": {"number_of_replicas": "1"}}}
    node.call("PUT", "_index_template/soc-n", as_number)
    answer = node.call("GET", "_index_template/soc-n")[1]["index_templates"][0]["index_template"]
    node.call("DELETE", "_index_template/soc-n")
    assert answer["template"]["settings"] == {"index": {"number_of_replicas": "1"}}
    for desired in (as_number, as_string):
        before, after = sc.compare_template(desired, answer)
        assert before == after


def test_pipeline_normalisation_on_real_answers(search_node, sc):
    node = search_node
    body = {"description": "soc", "version": 7, "processors": []}
    if node.flavour == "elasticsearch":
        body["processors"] = [{"set_security_user": {"field": "u", "properties": ["username"], "tag": "t"}}]
        body["_meta"] = {"owner": "soc"}
    node.call("PUT", "_ingest/pipeline/soc-p", body)
    answer = node.call("GET", "_ingest/pipeline/soc-p")[1]["soc-p"]
    node.call("DELETE", "_ingest/pipeline/soc-p")
    before, after = sc.compare_pipeline(body, answer)
    assert before == after
    assert (
        sc.compare_pipeline(dict(body, version=8), answer)[0] != sc.compare_pipeline(dict(body, version=8), answer)[1]
    )


def test_settings_flattening(sc):
    assert sc.flatten_settings(
        {
            "index": {"number_of_shards": 3, "hidden": True, "sort": {"field": ["a", "b"]}},
            "codec": "x",
            "index.a.b": 1.5,
        }
    ) == {
        "index.number_of_shards": "3",
        "index.hidden": "true",
        "index.sort.field": ["a", "b"],
        "index.codec": "x",
        "index.a.b": "1.5",
    }


def test_ilm_and_ism_normalisation_on_the_documented_answers(search_node, sc):
    """The lifecycle doubles answer as the ILM / ISM docs say; these are their answers."""
    from search.lifecycle_double import LifecycleDouble

    api = "ilm" if search_node.flavour == "elasticsearch" else "ism"
    if api == "ilm":
        policy = {
            "phases": {"hot": {"actions": {"rollover": {"max_age": "7d"}}}, "delete": {"actions": {"delete": {}}}}
        }
        path = "_ilm/policy/p"
    else:
        policy = {
            "description": "d",
            "default_state": "a",
            "states": [{"name": "a", "actions": [{"read_only": {}}]}],
            "ism_template": {"index_patterns": ["a-*"], "priority": 1},
        }
        path = "_plugins/_ism/policies/p"
    with LifecycleDouble(search_node.url, api) as double:
        client = client_for(sc, search_node, hosts=[double.url])
        client.request("PUT", path, body={"policy": policy})
        answer = client.request("GET", path)
    compare = sc.compare_ilm if api == "ilm" else sc.compare_ism
    stored = answer["p"]["policy"] if api == "ilm" else answer["policy"]
    assert stored != policy  # defaults and bookkeeping were added
    before, after = compare(policy, stored)
    assert before == after, (before, after)
    # A changed retry setting (ISM) or min_age (ILM) is a difference.
    changed = copy.deepcopy(policy)
    if api == "ilm":
        changed["phases"]["hot"]["min_age"] = "1d"
    else:
        changed["states"][0]["actions"][0]["retry"] = {"count": 5}
    before, after = compare(changed, stored)
    assert before != after


# -- engine, health, authentication against the real nodes -----------------------------


def test_detects_engine_and_version(search_node, sc):
    client = client_for(sc, search_node)
    info = client.connect()
    assert info["engine"] == search_node.flavour
    assert info["version"] == search_node.version
    assert info["cluster_name"] == f"wlcg-soc-test-{search_node.flavour}"


def test_wrong_password_names_user_never_password(elasticsearch_node, sc):
    secret = "Wr0ng-but-secret"  # noqa: S105 - a wrong password on purpose
    client = client_for(sc, elasticsearch_node, password=secret)
    with pytest.raises(sc.SearchError) as caught:
        client.connect()
    message = str(caught.value)
    assert caught.value.status == 401
    assert "refused user 'admin' (HTTP 401, authentication failed)" in message
    assert "unable to authenticate user [admin]" in message
    assert secret not in message and secret not in repr(caught.value.error)


def test_anonymous_request_is_told_to_authenticate(elasticsearch_node, sc):
    client = sc.SearchClient(hosts=[elasticsearch_node.url], retries=0)
    with pytest.raises(sc.SearchError, match=r"refused anonymous access \(no username or api_key given\)"):
        client.connect()


# -- retries, several hosts, secrets: small local servers -------------------------------


class Scripted(LocalServer):
    """A local HTTP server answering from a list of (status, body) in turn, then 200."""

    def __init__(self, answers, headers=None, tls: ssl.SSLContext | None = None):
        self.answers = list(answers)
        self.headers = headers or {}
        super().__init__(tls)

    def respond(self, handler):
        self.seen.append((handler.command, handler.path, handler.headers.get("Authorization")))
        status, body = self.answers.pop(0) if self.answers else (200, {"acknowledged": True})
        if callable(body):
            body = body(handler)
        return status, "application/json", json.dumps(body).encode(), self.headers


@pytest.fixture
def scripted():
    servers = []

    def make(answers, headers=None, tls=None):
        server = Scripted(answers, headers, tls)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


UNAVAILABLE = {
    "error": {"type": "cluster_block_exception", "reason": "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered]"}
}


def test_retries_429_and_503_with_backoff(sc, scripted):
    server = scripted([(503, UNAVAILABLE), (429, {"error": "too many requests"}), (200, {"ok": 1})])
    pauses = []
    client = sc.SearchClient(hosts=[server.url], retries=3, sleep=pauses.append)
    assert client.request("GET", "x") == {"ok": 1}
    assert pauses == [1.0, 2.0]
    assert len(server.seen) == 3


def test_gives_up_after_bounded_retries_with_servers_reason(sc, scripted):
    server = scripted([(503, UNAVAILABLE)] * 5)
    pauses = []
    client = sc.SearchClient(hosts=[server.url], retries=2, sleep=pauses.append)
    with pytest.raises(sc.SearchError) as caught:
        client.request("PUT", "_index_template/t", body={})
    assert pauses == [1.0, 2.0] and len(server.seen) == 3
    message = str(caught.value)
    assert "after 3 rounds of tries" in message
    assert "HTTP 503 cluster_block_exception: blocked by: [SERVICE_UNAVAILABLE/1/state not recovered]" in message


def test_next_host_on_connection_failure_without_pause(sc, scripted):
    server = scripted([])
    pauses = []
    client = sc.SearchClient(hosts=[closed_port_url(), server.url], retries=3, sleep=pauses.append)
    assert client.request("GET", "x") == {"acknowledged": True}
    assert pauses == [] and client.last_host == server.url


def test_not_found_and_error_reasons(sc, scripted):
    missing = {"error": {"root_cause": [{"type": "resource_not_found_exception", "reason": "gone"}]}, "status": 404}
    nested = {
        "error": {
            "type": "illegal_argument_exception",
            "reason": "outer",
            "root_cause": [{"type": "illegal_argument_exception", "reason": "outer"}],
            "caused_by": {"type": "a", "reason": "middle", "caused_by": {"type": "b", "reason": "innermost"}},
        }
    }
    server = scripted([(404, missing), (404, missing), (400, nested)])
    client = sc.SearchClient(hosts=[server.url], retries=0)
    assert client.request("GET", "x", missing_ok=True) is None
    with pytest.raises(sc.SearchError, match="HTTP 404"):
        client.request("GET", "x")
    with pytest.raises(sc.SearchError) as caught:
        client.request("PUT", "x", body={})
    assert "illegal_argument_exception: outer; caused by b: innermost" in str(caught.value)


def test_secrets_never_in_messages_even_when_echoed(sc, scripted):
    """A server (or proxy) that echoes the request's credentials back in its error."""
    password, api_key = "p4ss-w0rd-secret", "a2V5LWlkOmtleS1zZWNyZXQ="  # key-id:key-secret

    def echo(handler):
        return {"error": {"type": "x", "reason": f"got {handler.headers.get('Authorization')} / {password}"}}

    server = scripted([(401, echo), (400, echo)])
    client = sc.SearchClient(hosts=[server.url], username="soc", password=password, retries=0)
    with pytest.raises(sc.SearchError) as caught:
        client.request("GET", "x")
    assert "refused user 'soc'" in str(caught.value)
    assert password not in str(caught.value) and "Basic " + "*" * 8 in str(caught.value)

    server = scripted([(401, echo)])
    client = sc.SearchClient(hosts=[server.url], api_key=api_key, retries=0)
    with pytest.raises(sc.SearchError) as caught:
        client.request("GET", "x")
    assert "the API key with id 'key-id'" in str(caught.value)
    assert api_key not in str(caught.value) and "key-secret" not in str(caught.value)
    # "id:key" is sent encoded, as the server expects it.
    server = scripted([])
    sc.SearchClient(hosts=[server.url], api_key="key-id:key-secret", retries=0).request("GET", "x")
    assert server.seen[-1][2] == f"ApiKey {api_key}"


def test_credentials_in_host_url_are_refused_without_showing_them(sc):
    with pytest.raises(sc.SearchError) as caught:
        sc.SearchClient(hosts=["https://admin:s3cret@es.example.org:9200"])
    assert "s3cret" not in str(caught.value) and "https://es.example.org:9200" in str(caught.value)


def test_red_cluster_after_bounded_checks(sc, scripted):
    red = {"cluster_name": "soc", "status": "red", "timed_out": True, "number_of_nodes": 1, "unassigned_shards": 4}
    server = scripted([(200, {"version": {"number": "8.19.21"}, "cluster_name": "soc"})] + [(408, red)] * 3)
    pauses = []
    client = sc.SearchClient(hosts=[server.url], retries=2, sleep=pauses.append)
    with pytest.raises(sc.SearchError) as caught:
        client.connect()
    assert str(caught.value).startswith(
        f"cluster 'soc' at {server.url} is red (wanted yellow or better) after 3 checks"
    )
    assert "unassigned_shards=4" in str(caught.value) and pauses == [1.0, 2.0]
    health_calls = [path for _m, path, _a in server.seen if path.startswith("/_cluster/health")]
    assert len(health_calls) == 3 and "wait_for_status=yellow" in health_calls[0]


def test_opensearch_detected_from_root(sc, scripted):
    root = {"cluster_name": "c", "version": {"distribution": "opensearch", "number": "2.19.4"}}
    server = scripted([(200, root), (200, {"cluster_name": "c", "status": "green"})])
    assert sc.SearchClient(hosts=[server.url], retries=0).connect() == {
        "engine": "opensearch",
        "version": "2.19.4",
        "cluster_name": "c",
    }


def self_signed(tmp_path, name: str):
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "1", "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def test_tls_ca_path_validate_certs_and_client_certificate(sc, scripted, tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    server_cert, server_key = self_signed(tmp_path, "server")
    client_cert, client_key = self_signed(tmp_path, "client")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(server_cert, server_key)
    tls.load_verify_locations(client_cert)
    tls.verify_mode = ssl.CERT_REQUIRED  # the server wants the client's certificate
    server = scripted([], tls=tls)

    def get(**options):
        return sc.SearchClient(hosts=[server.url], retries=0, timeout=5, **options).request("GET", "x")

    assert get(ca_path=server_cert, client_cert=client_cert, client_key=client_key) == {"acknowledged": True}
    assert get(validate_certs=False, client_cert=client_cert, client_key=client_key) == {"acknowledged": True}
    with pytest.raises(sc.SearchError, match=r"TLS certificate verification failed .*; set ca_path"):
        get(client_cert=client_cert, client_key=client_key)  # the system CAs do not know it
    with pytest.raises(sc.SearchError, match="no usable answer"):
        get(ca_path=server_cert)  # no client certificate: the server ends the handshake
    with pytest.raises(sc.SearchError, match="client_cert/client_key: cannot load"):
        get(ca_path=server_cert, client_cert=server_key)
