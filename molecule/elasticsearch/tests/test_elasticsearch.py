"""Verify the three-node cluster the elasticsearch role built from the archive."""

from __future__ import annotations

import pytest
import testinfra
from conftest import assert_one_node_at_a_time, search_request

NODES = {"es-node1": 9201, "es-node2": 9202, "es-node3": 9203}
TRANSPORT = {"es-node1": 9301, "es-node2": 9302, "es-node3": 9303}
CONF = "/etc/elasticsearch"
SNAPSHOTS = "/srv/search-snapshots/soc"
PASSWORD = "molecule-elastic-pw-0123"  # noqa: S105 (the scenario's own test password)


@pytest.fixture(scope="module")
def hosts():
    return {name: testinfra.get_host(f"podman://{name}") for name in NODES}


def api(host, port: int, path: str, method: str = "GET", body=None, user: str = "elastic", password: str = PASSWORD):
    return search_request(host, f"https://127.0.0.1:{port}{path}", f"{CONF}/certs/ca.crt", user, password, method, body)


def test_cluster_is_green_with_three_nodes(hosts):
    for name, port in NODES.items():
        status, health = api(hosts[name], port, "/_cluster/health")
        assert status == 200, health
        assert health["cluster_name"] == "wlcg-soc"
        assert health["status"] == "green", health
        assert health["number_of_nodes"] == 3
        assert health["number_of_data_nodes"] == 3


def test_node_roles_and_master(hosts):
    status, nodes = api(hosts["es-node1"], 9201, "/_nodes")
    assert status == 200
    roles = {n["name"]: sorted(n["roles"]) for n in nodes["nodes"].values()}
    assert roles == {
        "es-node1": ["data", "ingest", "master"],
        "es-node2": ["data", "ingest", "master"],
        "es-node3": ["data", "ingest"],
    }
    status, master = api(hosts["es-node3"], 9203, "/_cat/master?format=json")
    assert master[0]["node"] in ("es-node1", "es-node2")
    # The heap the inventory asked for: min = max = 256 MiB.
    heaps = {n["name"]: n["jvm"]["mem"]["heap_max_in_bytes"] for n in nodes["nodes"].values()}
    assert set(heaps.values()) == {256 * 1024 * 1024}


def test_authentication_is_required(hosts):
    status = api(hosts["es-node1"], 9201, "/_cluster/health", user="")[0]
    assert status == 401
    status = api(hosts["es-node1"], 9201, "/_cluster/health", password="wrong-password-0123")[0]  # noqa: S106
    assert status == 401
    status, me = api(hosts["es-node2"], 9202, "/_security/_authenticate")
    assert status == 200 and me["username"] == "elastic"


def test_http_is_tls_only(hosts):
    # Plain HTTP to the TLS port gets no API answer.
    res = hosts["es-node1"].run(
        "python3 -c %s",
        "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9201/', timeout=10)",
    )
    assert res.rc != 0


@pytest.mark.parametrize("name", list(NODES))
def test_certificates(hosts, name):
    host = hosts[name]
    key = host.file(f"{CONF}/certs/node.key")
    assert (key.user, key.group, key.mode) == ("root", "elasticsearch", 0o640)
    assert key.content_string.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    for port in (NODES[name], TRANSPORT[name]):
        out = host.check_output(
            "python3 -c %s %s",
            "import ssl, socket, sys; c = ssl.create_default_context(cafile='/etc/elasticsearch/certs/ca.crt');"
            "s = c.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1]))), server_hostname='127.0.0.1');"
            "print(dict(x[0] for x in s.getpeercert()['subject'])['commonName'])",
            str(port),
        )
        # Each port presents its own node's certificate, which the site CA verifies.
        assert out == name


def test_controller_holds_only_the_ca():
    import os
    from pathlib import Path

    pki = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "pki"
    assert sorted(p.name for p in pki.iterdir()) == ["ca.crt", "ca.key"]
    assert (pki / "ca.key").stat().st_mode & 0o777 == 0o600
    assert "ENCRYPTED" in (pki / "ca.key").read_text()


@pytest.mark.parametrize("name", list(NODES))
def test_configuration(hosts, name):
    host = hosts[name]
    conf = host.file(f"{CONF}/elasticsearch.yml")
    assert (conf.user, conf.group, conf.mode) == ("root", "elasticsearch", 0o640)
    text = conf.content_string
    assert "# Ansible managed" in text.splitlines()[:3]
    # Bootstrapping is over: no initial master list anywhere, the runtime file is gone.
    assert "initial_master_nodes" not in text
    assert not host.file("/run/wlcg-soc/elasticsearch-bootstrap.env").exists
    assert "xpack.security.transport.ssl.verification_mode: full" in text
    assert f"path.repo:\n- {SNAPSHOTS}" in text
    assert host.file("/opt/elasticsearch").linked_to == "/opt/wlcg-soc/elasticsearch-8.19.21"
    heap = host.file(f"{CONF}/jvm.options.d/50-wlcg-soc-heap.options").content_string
    assert "-Xms256m" in heap and "-Xmx256m" in heap
    assert host.file("/etc/sysctl.d/60-wlcg-soc-elasticsearch.conf").contains("vm.max_map_count")
    keystore = host.file(f"{CONF}/elasticsearch.keystore")
    assert (keystore.user, keystore.group, keystore.mode) == ("root", "elasticsearch", 0o660)


@pytest.mark.parametrize("name", list(NODES))
def test_service_runs_unprivileged_and_sandboxed(hosts, name):
    host = hosts[name]
    assert host.service("elasticsearch").is_running and host.service("elasticsearch").is_enabled
    pid = host.check_output("systemctl show -P MainPID elasticsearch")
    assert host.check_output(f"ps -o user= -p {pid}") == "elasticsearch"
    status = dict(
        line.split(":", 1) for line in host.file(f"/proc/{pid}/status").content_string.splitlines() if ":" in line
    )
    assert status["CapEff"].strip() == "0000000000000000"
    assert status["NoNewPrivs"].strip() == "1"
    props = host.check_output(
        "systemctl show elasticsearch -p ProtectSystem,ProtectHome,PrivateTmp,LimitNOFILE,ReadWritePaths"
    )
    got = dict(line.split("=", 1) for line in props.splitlines())
    assert got["ProtectSystem"] == "strict" and got["ProtectHome"] == "yes" and got["PrivateTmp"] == "yes"
    assert set(got["ReadWritePaths"].split()) == {"/var/lib/elasticsearch", "/var/log/elasticsearch", CONF, SNAPSHOTS}


def test_templates_shape_new_indices(hosts):
    host, port = hosts["es-node2"], 9202
    for name in ("wlcg-soc-zeek", "wlcg-soc-flows", "wlcg-soc-alerts", "wlcg-soc-status"):
        status, body = api(host, port, f"/_index_template/{name}")
        assert status == 200, body
        tpl = body["index_templates"][0]["index_template"]
        assert tpl["_meta"] == {"managed_by": "wlcg.soc"}
    status = api(host, port, "/flows-molecule-1", method="PUT")[0]
    assert status == 200
    status, doc = api(
        host,
        port,
        "/flows-molecule-1/_doc?refresh=true",
        method="POST",
        body={"@timestamp": "2026-11-26T12:00:00Z", "source": {"ip": "192.0.2.7", "port": 443}, "zeek": {"uid": "C1"}},
    )
    assert status == 201, doc
    status, mapping = api(host, port, "/flows-molecule-1/_mapping")
    props = mapping["flows-molecule-1"]["mappings"]["properties"]
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    assert props["zeek"]["properties"]["uid"]["type"] == "keyword"
    status, settings = api(host, port, "/flows-molecule-1/_settings")
    index = settings["flows-molecule-1"]["settings"]["index"]
    assert index["number_of_replicas"] == "1" and index["number_of_shards"] == "1"
    status = api(host, port, "/flows-molecule-1", method="DELETE")[0]
    assert status == 200


def test_snapshot_repository_restores_a_deleted_index(hosts):
    """The repository on the volume every node mounts: registered, reachable from all three
    nodes, and a snapshot brings back an index that was deleted, with its documents."""
    host, port = hosts["es-node3"], 9203
    status, repo = api(host, port, "/_snapshot/soc-snapshots")
    assert status == 200, repo
    assert repo["soc-snapshots"]["type"] == "fs", repo  # Elasticsearch adds the repository's uuid
    assert repo["soc-snapshots"]["settings"] == {"location": SNAPSHOTS, "compress": "true"}, repo
    status, verified = api(host, port, "/_snapshot/soc-snapshots/_verify", method="POST")
    assert status == 200 and sorted(n["name"] for n in verified["nodes"].values()) == sorted(NODES), verified
    for name in NODES:
        directory = hosts[name].file(SNAPSHOTS)
        assert (directory.user, directory.mode) == ("elasticsearch", 0o750)
    index = "zeek-molecule-snapshot"
    for uid in ("C1", "C2", "C3"):
        assert api(host, port, f"/{index}/_doc", method="POST", body={"uid": uid})[0] == 201
    assert api(host, port, f"/{index}/_refresh", method="POST")[0] == 200
    status, taken = api(
        host, port, "/_snapshot/soc-snapshots/molecule?wait_for_completion=true", method="PUT", body={"indices": index}
    )
    assert status == 200 and taken["snapshot"]["state"] == "SUCCESS", taken
    assert api(host, port, f"/{index}", method="DELETE")[0] == 200
    status, restored = api(
        hosts["es-node1"],
        9201,
        "/_snapshot/soc-snapshots/molecule/_restore?wait_for_completion=true",
        method="POST",
        body={"indices": index},
    )
    assert status == 200 and restored["snapshot"]["shards"]["failed"] == 0, restored
    status, count = api(host, port, f"/{index}/_count")
    assert status == 200 and count["count"] == 3, count
    assert api(host, port, f"/{index}", method="DELETE")[0] == 200
    assert api(host, port, "/_snapshot/soc-snapshots/molecule", method="DELETE")[0] == 200


def test_scheduled_snapshot_runs_on_one_node(hosts):
    """The timer's service, started now as the timer would: a successful snapshot in the
    repository, taken as the engine's user with the root-only credentials on its input."""
    host = hosts["es-node1"]  # elasticsearch_snapshot_host: the group's first host
    timer = host.service("wlcg-soc-search-snapshot.timer")
    assert timer.is_enabled and timer.is_running
    for name in ("es-node2", "es-node3"):
        assert not hosts[name].file("/etc/systemd/system/wlcg-soc-search-snapshot.timer").exists
    credentials = host.file(f"{CONF}/wlcg-soc-search-snapshot.credentials")
    assert (credentials.user, credentials.group, credentials.mode) == ("root", "root", 0o600)
    run = host.run("systemctl start wlcg-soc-search-snapshot.service")
    assert run.rc == 0, host.run("journalctl -u wlcg-soc-search-snapshot --no-pager").stdout
    journal = host.check_output("journalctl -u wlcg-soc-search-snapshot --no-pager -o cat")
    assert "taken in soc-snapshots; deleted 0 expired" in journal, journal
    assert PASSWORD not in journal
    assert host.check_output("systemctl show -P User wlcg-soc-search-snapshot.service") == "elasticsearch"
    status, listed = api(host, 9201, "/_snapshot/soc-snapshots/soc-*")
    assert status == 200, listed
    assert [s["state"] for s in listed["snapshots"]] == ["SUCCESS"], listed


def test_upgrade_kept_the_data_and_left_one_version(hosts):
    """The converge upgraded the cluster that prepare.yml built on 8.19.4."""
    status, nodes = api(hosts["es-node1"], 9201, "/_nodes")
    assert status == 200
    assert {n["name"]: n["version"] for n in nodes["nodes"].values()} == dict.fromkeys(NODES, "8.19.21")
    status, count = api(hosts["es-node2"], 9202, "/upgrade-kept/_count")
    assert status == 200 and count["count"] == 20, count
    status, health = api(hosts["es-node3"], 9203, "/_cluster/health/upgrade-kept")
    assert health["status"] == "green", health
    status, settings = api(hosts["es-node1"], 9201, "/_cluster/settings")
    assert "routing" not in str(settings), settings  # allocation is enabled again
    for host in hosts.values():
        assert host.file("/opt/elasticsearch").linked_to == "/opt/wlcg-soc/elasticsearch-8.19.21"
        assert not host.file("/opt/wlcg-soc/elasticsearch-8.19.4").exists


def test_upgrade_went_one_node_at_a_time_the_elected_master_last(hosts):
    """The data-only node first, the master elected before the upgrade last, never two nodes down."""
    master = hosts["es-node1"].file("/var/tmp/molecule-master-before-upgrade").content_string.strip()  # noqa: S108
    times = []
    for name, host in hosts.items():
        stop, start = (int(v) for v in host.file("/var/tmp/molecule-upgrade-times").content_string.split())  # noqa: S108
        assert 0 < stop < start, f"{name} was not stopped for the upgrade"
        times.append((start, stop, name))
    order = assert_one_node_at_a_time(times)
    assert order[0] == "es-node3" and order[-1] == master, order
