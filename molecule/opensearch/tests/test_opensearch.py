"""Verify the three-node OpenSearch cluster with the security plugin that the elasticsearch
role built from the archive: TLS, the vault's administrator, no demo user, the SOC's
principals with least privilege, snapshots."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import testinfra
from conftest import assert_rolling_restart, search_request

ROOT = Path(__file__).resolve().parents[3]
INGEST = ROOT / "roles/elasticsearch/files/ingest"
sys.path.insert(0, str(ROOT / "tests"))
import zeek_logs  # noqa: E402 - tests/zeek_logs.py, real Zeek logs from zat's sdist

NODES = {"os-node1": 9201, "os-node2": 9202, "os-node3": 9203}
CONF = "/etc/opensearch"
ADMIN = ("admin", "molecule-admin-pw-0123")
WRITER = ("soc_writer", "molecule-writer-pw-0123")
ALERTING = ("soc_alerting", "molecule-alerting-pw-0123")
DASHBOARDS = ("kibanaserver", "molecule-dashboards-secret-0123")
# The security plugin's demo users with their documented default passwords.
DEMO_LOGINS = [(name, name) for name in ("admin", "kibanaserver", "kibanaro", "logstash", "readall", "snapshotrestore")]
DEMO_LOGINS.append(("anomalyadmin", "anomalyadmin"))
EVENT = {"@timestamp": "2026-12-06T12:00:00Z"}


@pytest.fixture(scope="module")
def hosts():
    return {name: testinfra.get_host(f"podman://{name}") for name in NODES}


def api(host, port: int, path: str, method: str = "GET", body=None, login: tuple[str, str] = ADMIN):
    return search_request(host, f"https://127.0.0.1:{port}{path}", f"{CONF}/certs/ca.crt", *login, method, body)


def test_cluster_is_green_over_tls_with_the_vault_admin(hosts):
    for name, port in NODES.items():
        status, health = api(hosts[name], port, "/_cluster/health")
        assert status == 200, health
        assert (health["status"], health["number_of_nodes"]) == ("green", 3), health
    status, info = api(hosts["os-node1"], 9201, "/_plugins/_security/authinfo")
    assert status == 200 and "all_access" in info["roles"], info


def test_no_demo_user_can_log_in(hosts):
    host = hosts["os-node2"]
    for login in DEMO_LOGINS:
        status, _body = api(host, 9202, "/_plugins/_security/authinfo", login=login)
        assert status == 401, login[0]
    status, users = api(host, 9202, "/_plugins/_security/api/internalusers")
    assert status == 200, users
    assert set(users) == {"admin", "kibanaserver", "soc_writer", "soc_alerting"}, sorted(users)


@pytest.mark.parametrize("name", list(NODES))
def test_security_files_and_certificates(hosts, name):
    host = hosts[name]
    users = host.file(f"{CONF}/opensearch-security/internal_users.yml")
    assert (users.user, users.group, users.mode) == ("root", "opensearch", 0o640)
    text = users.content_string
    assert "# Ansible managed" in text and "admin:" in text
    for demo in ("kibanaserver", "kibanaro", "logstash", "readall", "snapshotrestore", "anomalyadmin"):
        assert f"{demo}:" not in text
    for demo_file in ("esnode.pem", "esnode-key.pem", "kirk.pem", "kirk-key.pem", "root-ca.pem"):
        assert not host.file(f"{CONF}/{demo_file}").exists
    key = host.file("/etc/wlcg-soc/opensearch-admin/admin.key")
    assert (key.user, key.group, key.mode) == ("root", "root", 0o640)
    subject = host.check_output("openssl x509 -in /etc/wlcg-soc/opensearch-admin/admin.crt -noout -subject")
    assert subject.replace(" ", "") == "subject=CN=wlcg-soc-admin"
    settings = host.file(f"{CONF}/opensearch.yml").content_string
    assert "plugins.security.authcz.admin_dn:\n- CN=wlcg-soc-admin" in settings
    assert "plugins.security.allow_unsafe_democertificates: false" in settings


def test_writer_adds_documents_and_nothing_else(hosts):
    host, port = hosts["os-node3"], 9203
    # The families' index templates make data streams, which need the event time.
    status, doc = api(host, port, "/zeek-molecule-1/_doc", "POST", dict(EVENT, uid="C1"), login=WRITER)
    assert status == 201 and doc["_index"].startswith(".ds-zeek-molecule-1-"), doc
    assert api(host, port, "/flows-molecule-1/_doc", "POST", dict(EVENT, bytes=1), login=WRITER)[0] == 201
    assert api(host, port, "/other-index/_doc", "POST", EVENT, login=WRITER)[0] == 403
    assert api(host, port, f"/zeek-molecule-1/_doc/{doc['_id']}", "DELETE", login=WRITER)[0] == 403
    assert api(host, port, "/zeek-molecule-1", "DELETE", login=WRITER)[0] == 403
    assert api(host, port, "/zeek-molecule-1/_search", login=WRITER)[0] == 403
    assert api(host, port, "/.opendistro_security/_search", login=WRITER)[0] == 403
    assert api(host, port, "/_plugins/_security/api/internalusers", login=WRITER)[0] == 403


def test_alerting_reads_keeps_its_own_state_and_adds_alerts(hosts):
    host, port = hosts["os-node1"], 9201
    alert = dict(EVENT, rule={"name": "r1"})  # ECS: rule is an object
    assert api(host, port, "/alerts-molecule-1/_doc?refresh=true", "POST", alert, login=WRITER)[0] == 201
    status, found = api(host, port, "/alerts-*/_search", login=ALERTING)
    assert status == 200 and found["hits"]["total"]["value"] >= 1, found
    assert api(host, port, "/elastalert_status", "PUT", login=ALERTING)[0] == 200
    assert api(host, port, "/elastalert_status/_doc", "POST", {"rule_name": "r1"}, login=ALERTING)[0] == 201
    # Its alerts are documents of alerts-*; the traffic's families stay read-only to it.
    assert api(host, port, "/alerts-molecule-1/_doc", "POST", alert, login=ALERTING)[0] == 201
    assert api(host, port, "/zeek-molecule-1/_doc", "POST", EVENT, login=ALERTING)[0] == 403
    assert api(host, port, "/alerts-molecule-1", "DELETE", login=ALERTING)[0] == 403
    assert api(host, port, "/zeek-molecule-1", "DELETE", login=ALERTING)[0] == 403


def test_dashboards_user_and_analyst_mapping(hosts):
    host, port = hosts["os-node2"], 9202
    status, info = api(host, port, "/_plugins/_security/authinfo", login=DASHBOARDS)
    assert status == 200 and "kibana_server" in info["roles"], info
    status, mapping = api(host, port, "/_plugins/_security/api/rolesmapping/soc_analyst")
    assert status == 200, mapping
    assert mapping["soc_analyst"]["backend_roles"] == ["cn=soc-analysts,ou=groups,dc=example,dc=org"]
    status, role = api(host, port, "/_plugins/_security/api/roles/soc_analyst")
    assert status == 200, role
    assert role["soc_analyst"]["index_permissions"][0]["allowed_actions"] == ["read", "indices:admin/mappings/get"]


def test_zeek_records_become_ecs_through_the_default_pipeline(hosts):
    """The role's ingest pipelines on the cluster (modules assembled on every node): a conn.log
    line as Zeek wrote it (zat's sdist), indexed by the pipeline writer into a zeek-* data
    stream, comes out as ECS with its Community ID."""
    status, pipelines = api(hosts["os-node1"], 9201, "/_ingest/pipeline/wlcg-soc-*")
    assert status == 200, pipelines
    files = [*INGEST.glob("*.json"), *INGEST.glob("opensearch/*.json")]
    assert set(pipelines) == {p.stem for p in files}
    line = zeek_logs.json_logs()["conn"][0]
    record = json.loads(line)
    event = {"message": line, "event": {"dataset": "zeek.connection"}, "@timestamp": EVENT["@timestamp"]}
    status, doc = api(hosts["os-node3"], 9203, "/zeek-molecule-2/_doc?refresh=true", "POST", event, login=WRITER)
    assert status == 201, doc
    # A data stream has no GET by id: its backing index has.
    status, found = api(hosts["os-node2"], 9202, f"/{doc['_index']}/_doc/{doc['_id']}")
    assert status == 200, found
    source = found["_source"]
    assert source["event"]["kind"] == "event", source
    assert (source["source"]["ip"], source["destination"]["port"]) == (record["id.orig_h"], record["id.resp_p"])
    assert source["network"]["community_id"].startswith("1:") and source["zeek"]["session_id"] == record["uid"]


def test_scheduled_snapshot_over_tls(hosts):
    host = hosts["os-node1"]
    assert host.service("wlcg-soc-search-snapshot.timer").is_enabled
    run = host.run("systemctl start wlcg-soc-search-snapshot.service")
    assert run.rc == 0, host.run("journalctl -u wlcg-soc-search-snapshot --no-pager").stdout
    status, listed = api(host, 9201, "/_snapshot/soc-snapshots/soc-*")
    assert status == 200 and [s["state"] for s in listed["snapshots"]] == ["SUCCESS"], listed


def test_rolling_restart_went_one_node_at_a_time(hosts):
    """After the side effect (molecule/elasticsearch/rolling-restart.yml): every node restarted
    through the security plugin's TLS, and none stopped before the previous one ran again."""
    assert_rolling_restart(hosts, "opensearch")
    status, health = api(hosts["os-node1"], 9201, "/_cluster/health")
    assert status == 200 and health["status"] == "green" and health["number_of_nodes"] == 3, health
