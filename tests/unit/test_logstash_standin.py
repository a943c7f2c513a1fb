"""The Logstash stand-in (tests/logstash_standin/logstash.py) on the controller: its ``-t``
on a configuration shaped like the role's, the Beats protocol over mutual TLS from a real
client (pylogbeat), real Zeek conn.log lines (tests/zeek_logs.py) through json and memcached
enrichment against a real memcached holding keys as the MISP sync writes them, and the
output into the real OpenSearch test node through the collection's ingest pipelines, with
an outage and a refused document."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import zeek_logs
from certs import cert_pem, certificate, key_pem, subject
from conftest import running_memcached
from doubles_common import HttpDouble
from pylogbeat import PyLogBeatClient
from search.engine import free_port

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tests/logstash_standin/logstash.py"
INGEST = ROOT / "roles/elasticsearch/files/ingest"
MAPPINGS = json.loads((ROOT / "roles/elasticsearch/files/ecs-mappings.json").read_text())["template"]["mappings"]
PASSWORD = "s3cret-Writer-pw"  # noqa: S105 - a test credential


# --- certificates ---------------------------------------------------------------------------


def make_pki(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate; the
    server key as PKCS#8 and as PKCS#1 (what Logstash refuses)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    def new_key():
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    ca_key, server_key, client_key = new_key(), new_key(), new_key()
    ca_name = subject("wlcg-soc test CA")
    ca = certificate("wlcg-soc test CA", ca_key, ca_name, ca_key, True)
    sans = (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server = certificate("localhost", server_key, ca_name, ca_key, False, sans)
    client = certificate("sensor1.example.org", client_key, ca_name, ca_key, False)
    files = {
        "ca": cert_pem(ca),
        "server_crt": cert_pem(server),
        "server_key": key_pem(server_key),
        "server_key_pkcs1": key_pem(server_key, pkcs8=False),
        "client_crt": cert_pem(client),
        "client_key": key_pem(client_key),
    }
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, data in files.items():
        out[name] = directory / f"{name}.pem"
        out[name].write_bytes(data)
    return out


# --- the role's shape of configuration ------------------------------------------------------

BEATS = """
input {
  beats {
    id => "wlcg-soc-beats"
    host => "127.0.0.1"
    port => %(beats_port)d
    ssl_enabled => true
    ssl_certificate => "%(server_crt)s"
    ssl_key => "%(server_key)s"
    ssl_certificate_authorities => ["%(ca)s"]
    ssl_client_authentication => "required"
    ssl_supported_protocols => ["TLSv1.2", "TLSv1.3"]
  }
}
output {
  if [event][module] in ["netflow", "sflow"] {
    pipeline { id => "wlcg-soc-to-flows" send_to => ["wlcg-soc-flows"] }
  } else {
    pipeline { id => "wlcg-soc-to-zeek" send_to => ["wlcg-soc-zeek"] }
  }
}
"""

ZEEK = """
input { pipeline { id => "wlcg-soc-zeek-in" address => "wlcg-soc-zeek" } }
filter {
  if [event][dataset] == "zeek.connection" {
    json { id => "wlcg-soc-zeek-addresses" source => "message" target => "[@metadata][record]"
           skip_on_invalid_json => true }
    if [@metadata][record][id.orig_h] {
      memcached {
        id => "wlcg-soc-misp-source"
        hosts => ["%(memcached)s"]
        get => {
          "ip-src-%%{[@metadata][record][id.orig_h]}" => "[misp_lookup][source][ip-src]"
          "ip-dst-%%{[@metadata][record][id.orig_h]}" => "[misp_lookup][source][ip-dst]"
        }
      }
    }
    if [@metadata][record][id.resp_h] {
      memcached { id => "wlcg-soc-misp-destination" hosts => ["%(memcached)s"]
        get => {
          "ip-src-%%{[@metadata][record][id.resp_h]}" => "[misp_lookup][destination][ip-src]"
          "ip-dst-%%{[@metadata][record][id.resp_h]}" => "[misp_lookup][destination][ip-dst]"
        }
      }
    }
    # Real Logstash counts no memcached failures: a plugin in a conditional does (events.in).
    if "_memcached_failure" in [tags] { mutate { id => "wlcg-soc-misp-failures" } }
  }
}
output {
  opensearch {
    id => "wlcg-soc-zeek-out"
    hosts => ["%(search_url)s"]
    user => "soc_writer"
    password => "${WLCG_SOC_SEARCH_PASSWORD}"
    ssl => true
    cacert => "%(ca)s"
    ssl_certificate_verification => true
    index => "%(index)s"
    action => "create"
    pipeline => "wlcg-soc-zeek"
    manage_template => false
    retry_initial_interval => 1
    retry_max_interval => 2
  }
}
"""

FLOWS = """
input { pipeline { id => "wlcg-soc-flows-in" address => "wlcg-soc-flows" } }
filter {
  json { id => "wlcg-soc-flows-addresses" source => "message" target => "[@metadata][record]"
         skip_on_invalid_json => true }
  if [@metadata][record][ip_src] {
    memcached { id => "wlcg-soc-misp-flow-source" hosts => ["%(memcached)s"]
      get => { "ip-src-%%{[@metadata][record][ip_src]}" => "[misp_lookup][source][ip-src]" } }
  }
}
output {
  elasticsearch {
    id => "wlcg-soc-flows-out"
    hosts => ["%(search_url)s"]
    user => "soc_writer"
    password => "${WLCG_SOC_SEARCH_PASSWORD}"
    ssl_enabled => true
    ssl_certificate_authorities => ["%(ca)s"]
    ssl_verification_mode => "full"
    index => "flows-default"
    action => "create"
    pipeline => "wlcg-soc-flows"
    manage_template => false
    ilm_enabled => false
    data_stream => false
  }
}
"""


def write_settings(tmp_path: Path, values: dict, pipelines: dict[str, str]) -> Path:
    """/etc/logstash as the role lays it out: logstash.yml, pipelines.yml, conf.d/."""
    settings = tmp_path / "etc"
    (settings / "conf.d").mkdir(parents=True, exist_ok=True)
    (settings / "logstash.yml").write_text(
        f"node.name: ls1\npath.data: {tmp_path / 'data'}\npath.logs: {tmp_path / 'logs'}\n"
        "pipeline.ordered: auto\npipeline.workers: 1\npipeline.batch.size: 125\n"
        "dead_letter_queue.enable: true\ndead_letter_queue.max_bytes: 64mb\n"
        "dead_letter_queue.storage_policy: drop_newer\napi.enabled: true\napi.http.host: 127.0.0.1\n"
        f"api.http.port: {values.get('api_port', 9600)}\nlog.level: info\nconfig.reload.automatic: false\n"
        "config.support_escapes: false\nqueue.checkpoint.writes: 1024\n"
    )
    entries = []
    for pid, text in pipelines.items():
        conf = settings / "conf.d" / f"{pid}.conf"
        conf.write_text(text % values)
        extra = "  queue.max_bytes: 4gb\n" if pid == "wlcg-soc-beats" else ""
        entries.append(f"- pipeline.id: {pid}\n  path.config: {conf}\n  queue.type: persisted\n{extra}")
    (settings / "pipelines.yml").write_text("".join(entries))
    return settings


def role_values(tmp_path: Path, pki: dict[str, Path], **extra) -> dict:
    return {
        "beats_port": free_port(),
        "api_port": free_port(),
        "memcached": "127.0.0.1:1",
        "search_url": "https://localhost:9200",
        "index": "zeek-default",
        **{k: str(v) for k, v in pki.items()},
        **extra,
    }


def standin(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(STANDIN), *args],
        env={**os.environ, "WLCG_SOC_SEARCH_PASSWORD": PASSWORD, **(env or {})},
        **kwargs,
    )


def test_t(settings: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(STANDIN), "--path.settings", str(settings), "--config.test_and_exit"],
        env={**os.environ, "WLCG_SOC_SEARCH_PASSWORD": PASSWORD, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


test_t.__test__ = False  # a helper, not a test


def api(port: int, path: str = "/") -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        return json.loads(answer.read())


def wait_for(check, timeout: float = 60, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.2)


class Running:
    """The stand-in as the package's unit runs it, stopped with SIGTERM."""

    def __init__(self, settings: Path, api_port: int, log: Path):
        self.log = log
        self.out = log.open("w")
        self.proc = standin("--path.settings", str(settings), stdout=self.out, stderr=subprocess.STDOUT)
        self.api_port = api_port

    def wait_up(self) -> None:
        def up() -> bool:
            assert self.proc.poll() is None, self.log.read_text()
            return bool(api(self.api_port).get("status") == "green")

        wait_for(up, 30, "the API")

    def pipeline(self, pid: str) -> dict:
        return api(self.api_port, "/_node/stats/pipelines")["pipelines"][pid]

    def plugin(self, pid: str, section: str, plugin_id: str) -> dict:
        return next(p for p in self.pipeline(pid)["plugins"][section] if p["id"] == plugin_id)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(timeout=60)
        self.out.close()
        return code


@pytest.fixture
def pki(tmp_path) -> dict[str, Path]:
    return make_pki(tmp_path / "certs")


def beats_client(port: int, pki: dict[str, Path], with_cert: bool = True) -> PyLogBeatClient:
    return PyLogBeatClient(
        "127.0.0.1",
        port,
        timeout=30,
        ssl_enable=True,
        ssl_verify=True,
        ca_certs=str(pki["ca"]),
        certfile=str(pki["client_crt"]) if with_cert else None,
        keyfile=str(pki["client_key"]) if with_cert else None,
    )


def filebeat_event(line: str, dataset: str = "zeek.connection") -> dict:
    """An event as Filebeat's Logstash output sends it for a line of a Zeek log."""
    return {
        "@timestamp": "2026-12-06T10:00:00.000Z",
        "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.19.0"},
        "message": line,
        "event": {"dataset": dataset, "module": "zeek"},
        "input": {"type": "filestream"},
        "log": {"file": {"path": "/opt/zeek/logs/current/conn.log"}, "offset": 0},
        "host": {"name": "sensor1"},
        "agent": {"type": "filebeat", "version": "8.19.0", "name": "sensor1"},
        "ecs": {"version": "8.0.0"},
    }


# --- -t -----------------------------------------------------------------------------------


def test_config_test_accepts_the_roles_configuration(tmp_path, pki):
    settings = write_settings(
        tmp_path, role_values(tmp_path, pki), {"wlcg-soc-beats": BEATS, "wlcg-soc-zeek": ZEEK, "wlcg-soc-flows": FLOWS}
    )
    res = test_t(settings)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Configuration OK" in res.stdout
    # -f checks one file the same way.
    one = subprocess.run(
        [sys.executable, str(STANDIN), "-f", str(settings / "conf.d/wlcg-soc-zeek.conf"), "-t"],
        env={**os.environ, "WLCG_SOC_SEARCH_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        check=False,
    )
    assert one.returncode == 0 and "Configuration OK" in one.stdout, one.stderr
    # The password comes from the environment (systemd's EnvironmentFile): without it, no start.
    res = test_t(settings, env={"WLCG_SOC_SEARCH_PASSWORD": ""})
    assert res.returncode == 0  # defined but empty is defined
    env = {k: v for k, v in os.environ.items() if k != "WLCG_SOC_SEARCH_PASSWORD"}
    res = subprocess.run(
        [sys.executable, str(STANDIN), "--path.settings", str(settings), "-t"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 1 and "Replacement variable `WLCG_SOC_SEARCH_PASSWORD` is not defined" in res.stderr


@pytest.mark.parametrize(
    ("pipeline", "old", "new", "message"),
    [
        ("wlcg-soc-beats", "ssl_client_authentication", "ssl_verfy_mode", "Unknown setting 'ssl_verfy_mode' for beats"),
        ("wlcg-soc-zeek", "memcached {\n        id", "memcahced {\n        id", "filter plugin named 'memcahced'"),
        ("wlcg-soc-zeek", 'source => "message"', 'source "message"', "Expected a valid pipeline configuration"),
        ("wlcg-soc-zeek", 'action => "create"', 'action => ["create", "index"]', "invalid value for 'action'"),
        ("wlcg-soc-beats", '"required"', '"mandatory"', "expected one of none, optional, required"),
        ("wlcg-soc-beats", "    port =>", "    # port =>", "port => # SETTING MISSING"),
    ],
    ids=["unknown-option", "misspelt-plugin", "syntax-error", "wrong-type", "bad-choice", "missing-required"],
)
def test_config_test_refuses(tmp_path, pki, pipeline, old, new, message):
    texts = {"wlcg-soc-beats": BEATS, "wlcg-soc-zeek": ZEEK}
    assert old in texts[pipeline]
    texts[pipeline] = texts[pipeline].replace(old, new, 1)
    settings = write_settings(tmp_path, role_values(tmp_path, pki), texts)
    res = test_t(settings)
    assert res.returncode == 1, res.stdout
    assert message in res.stderr, res.stderr
    assert f"{pipeline}.conf" in res.stderr, res.stderr  # names the file


def test_config_test_refuses_unknown_settings(tmp_path, pki):
    settings = write_settings(tmp_path, role_values(tmp_path, pki), {"wlcg-soc-beats": BEATS})
    with (settings / "logstash.yml").open("a") as out:
        out.write("queue.tpye: persisted\n")
    res = test_t(settings)
    assert res.returncode == 1 and 'Setting "queue.tpye" doesn\'t exist' in res.stderr, res.stderr
    (settings / "pipelines.yml").write_text((settings / "pipelines.yml").read_text() + "  api.http.port: 9601\n")
    (settings / "logstash.yml").write_text((settings / "logstash.yml").read_text().replace("queue.tpye", "queue.type"))
    res = test_t(settings)
    assert res.returncode == 1 and "api.http.port" in res.stderr, res.stderr


# --- Beats over mutual TLS ----------------------------------------------------------------


def test_beats_mutual_tls_from_pylogbeat(tmp_path, pki):
    values = role_values(tmp_path, pki)
    sink = """
input { pipeline { address => "wlcg-soc-zeek" } }
output { pipeline { send_to => ["nowhere"] ensure_delivery => false } }
"""
    settings = write_settings(tmp_path, values, {"wlcg-soc-beats": BEATS, "wlcg-soc-zeek": sink})
    ls = Running(settings, values["api_port"], tmp_path / "ls.log")
    try:
        ls.wait_up()
        wait_for(lambda: ls.pipeline("wlcg-soc-beats"), 10)
        with beats_client(values["beats_port"], pki) as client:
            client.send([filebeat_event(f'{{"n": {n}}}') for n in range(5)])  # returns once ACKed
            client.send([filebeat_event('{"n": 5}')])
        stats = ls.pipeline("wlcg-soc-beats")
        assert stats["events"]["in"] == 6
        assert ls.plugin("wlcg-soc-beats", "inputs", "wlcg-soc-beats")["events"]["out"] == 6
        wait_for(lambda: ls.pipeline("wlcg-soc-zeek")["events"]["out"] == 6, 10, "the zeek pipeline")
        # A client without a certificate is refused by the handshake.
        with pytest.raises(Exception), beats_client(values["beats_port"], pki, with_cert=False) as client:  # noqa: B017
            client.send([filebeat_event("x")])
        assert ls.pipeline("wlcg-soc-beats")["events"]["in"] == 6
    finally:
        assert ls.stop() == 0, ls.log.read_text()


def test_beats_refuses_a_key_that_is_not_pkcs8(tmp_path, pki):
    values = role_values(tmp_path, pki, server_key=str(pki["server_key_pkcs1"]))
    settings = write_settings(tmp_path, values, {"wlcg-soc-beats": BEATS})
    assert test_t(settings).returncode == 0  # as Logstash: -t does not register plugins
    log = tmp_path / "ls.log"
    with log.open("w") as out:
        proc = standin("--path.settings", str(settings), stdout=out, stderr=subprocess.STDOUT)
        assert proc.wait(timeout=30) == 1
    assert "File does not contain valid private key" in log.read_text()


# --- Zeek through memcached into OpenSearch -------------------------------------------------


class SearchFront(HttpDouble):
    """The search engine as the output sees it at a site: HTTPS with the site CA, basic auth
    for the writer, forwarding to the real OpenSearch test node; ``stop()`` is an outage."""

    def __init__(self, upstream: str, pki: dict[str, Path]):
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(pki["server_crt"]), str(pki["server_key"]))
        self._init_http("127.0.0.1", 0, context, public_name="localhost")
        self.upstream = upstream
        self.bulk_requests = 0

    def handle(self, method, raw_path, headers, body):
        import base64

        expected = "Basic " + base64.b64encode(f"soc_writer:{PASSWORD}".encode()).decode()
        if headers.get("Authorization") != expected:
            return 401, b'{"error":"unauthorized"}', {}
        self.bulk_requests += raw_path.startswith("/_bulk")
        req = urllib.request.Request(  # noqa: S310 - the loopback test node
            self.upstream + raw_path, data=body or None, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as answer:  # noqa: S310
                return answer.status, answer.read(), {}
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), {}


@pytest.fixture
def zeek_node(search_nodes):
    """The OpenSearch node with the collection's ingest pipelines and a zeek data stream
    template of the ECS mappings."""
    node = search_nodes.get("opensearch")
    for path in sorted(INGEST.glob("*.json")) + sorted((INGEST / "opensearch").glob("*.json")):
        status, answer = node.call("PUT", f"_ingest/pipeline/{path.stem}", json.loads(path.read_text()))
        assert status == 200, (path.name, answer)
    name = "zeek-lsstandin"
    assert (
        node.call("PUT", "_component_template/wlcg-soc-lsstandin-ecs", {"template": {"mappings": MAPPINGS}})[0] == 200
    )
    template = {
        "index_patterns": [f"{name}*"],
        "data_stream": {},
        "priority": 510,
        "composed_of": ["wlcg-soc-lsstandin-ecs"],
        "template": {"settings": {"index.number_of_replicas": 0}},
    }
    assert node.call("PUT", "_index_template/wlcg-soc-lsstandin", template)[0] == 200
    yield node, name
    node.call("DELETE", f"_data_stream/{name}")
    node.call("DELETE", "_index_template/wlcg-soc-lsstandin")
    node.call("DELETE", "_component_template/wlcg-soc-lsstandin-ecs")


def misp_keys(lines: list[str]) -> dict[str, bytes]:
    """memcached keys for some of the lines' addresses, made by the MISP sync's own code."""
    from ansible_collections.wlcg.soc.plugins.module_utils.misp_ioc import Mapper

    records = [json.loads(line) for line in lines]
    mapper = Mapper("https://misp.example.org/", "MISP", {"7": "CIRCL"})
    event = {"id": "4242", "uuid": "5c7f3b9e-0d2c-4f5e-9a1b-000000004242", "info": "Test scanning campaign",
             "orgc_id": "7"}  # fmt: skip
    mapper.add({"id": "1", "type": "ip-src", "value": records[0]["id.orig_h"], "Event": event})
    mapper.add({"id": "2", "type": "ip-dst", "value": records[1]["id.resp_h"], "Event": event})
    return mapper.export.key_values()


def count(node, index: str, query: str = "") -> int:
    node.call("POST", f"{index}/_refresh")
    status, answer = node.call("GET", f"{index}/_count" + (f"?q={query}" if query else ""))
    return answer["count"] if status == 200 else 0


def test_a_pipeline_that_could_not_start_starts_at_a_later_reload(tmp_path, pki):
    """config.reload.automatic: the Zeek pipeline, whose memcached filter cannot register with
    memcached down, is created again every config.reload.interval and runs once it answers."""
    port = free_port()
    values = role_values(tmp_path, pki, memcached=f"127.0.0.1:{port}")
    settings = write_settings(tmp_path, values, {"wlcg-soc-beats": BEATS, "wlcg-soc-zeek": ZEEK})
    yml = settings / "logstash.yml"
    yml.write_text(yml.read_text().replace("config.reload.automatic: false\n", "")
                   + "config.reload.automatic: true\nconfig.reload.interval: 1s\n")  # fmt: skip
    ls = Running(settings, values["api_port"], tmp_path / "ls.log")
    server = None
    try:
        ls.wait_up()
        assert set(api(values["api_port"], "/_node/pipelines")["pipelines"]) == {"wlcg-soc-beats"}
        assert (
            api(values["api_port"], "/_node/pipelines")["pipelines"]["wlcg-soc-beats"]["config_reload_interval"]
            == 10**9
        )
        binary = shutil.which("memcached") or pytest.fail("memcached is required: apt-get install memcached")
        server = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "nobody", "-m", "16"])
        wait_for(lambda: "wlcg-soc-zeek" in api(values["api_port"], "/_node/pipelines")["pipelines"], 20, "the retry")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        assert ls.stop() == 0, ls.log.read_text()
    assert "non_running_pipelines=>['wlcg-soc-zeek']" in ls.log.read_text()


def test_zeek_through_memcached_into_opensearch(tmp_path, pki, zeek_node):
    from pymemcache.client.base import Client

    node, index = zeek_node
    lines = zeek_logs.json_logs()["conn"][:40]
    mc = running_memcached()
    memcached = mc.__enter__()
    front = SearchFront(node.url, pki)
    front.start()
    host, port = memcached.split(":")
    Client((host, int(port))).set_many(misp_keys(lines))
    values = role_values(tmp_path, pki, memcached=memcached, search_url=front.url, index=index)
    settings = write_settings(tmp_path, values, {"wlcg-soc-beats": BEATS, "wlcg-soc-zeek": ZEEK})
    ls = Running(settings, values["api_port"], tmp_path / "ls.log")

    def send(events: list[dict]) -> None:
        with beats_client(values["beats_port"], pki) as client:
            client.send(events)  # returns once the window is ACKed: in the persisted queue

    try:
        ls.wait_up()
        wait_for(lambda: ls.pipeline("wlcg-soc-zeek"), 10)
        send([filebeat_event(line) for line in lines[:20]])
        wait_for(lambda: count(node, index) == 20, 60, "20 documents")

        # Documents are ECS (the collection's ingest pipeline ran), enriched from memcached.
        _status, hits = node.call("GET", f"{index}/_search?size=100")
        docs = [h["_source"] for h in hits["hits"]["hits"]]
        first = json.loads(lines[0])
        assert all(d["event"]["dataset"] == "zeek.connection" and "@metadata" not in d for d in docs)
        assert first["id.orig_h"] in {d["source"]["ip"] for d in docs}
        # The memcached answers (misp_lookup) become threat.enrichments and misp.* in the
        # collection's wlcg-soc-misp-enrich pipeline.
        enriched = [d for d in docs if "misp" in d]
        assert all("misp_lookup" not in d for d in docs)
        hit = next(d for d in enriched if d["source"]["ip"] == first["id.orig_h"])
        assert hit["misp"]["event_uuid"] == ["5c7f3b9e-0d2c-4f5e-9a1b-000000004242"], hit["misp"]
        assert "source.ip" in hit["misp"]["matched_field"]
        assert {e["matched"]["field"] for e in hit["threat"]["enrichments"]} >= {"source.ip"}
        second = json.loads(lines[1])
        assert any(d["destination"]["ip"] == second["id.resp_h"] and "destination.ip" in d["misp"]["matched_field"]
                   for d in enriched)  # fmt: skip
        assert ls.plugin("wlcg-soc-zeek", "filters", "wlcg-soc-misp-source")["events"]["in"] == 20
        assert "_memcached_failure" not in json.dumps(docs)

        # memcached stops: the events pass, tagged, and the counting plugin sees them.
        mc.__exit__(None, None, None)
        send([filebeat_event(line) for line in lines[20:25]])
        wait_for(lambda: count(node, index) == 25, 60, "25 documents")
        assert count(node, index, "tags:_memcached_failure") == 5
        assert ls.plugin("wlcg-soc-zeek", "filters", "wlcg-soc-misp-failures")["events"]["in"] == 5

        # The engine goes away and comes back: nothing is lost.
        front.stop()
        send([filebeat_event(line) for line in lines[25:35]])
        wait_for(lambda: front.bulk_requests >= 0 and ls.pipeline("wlcg-soc-zeek")["events"]["in"] == 35, 30)
        time.sleep(2)
        assert count(node, index) == 25
        front.start()
        wait_for(lambda: count(node, index) == 35, 60, "35 documents after the outage")

        # A document the engine refuses (400: a string where the mappings have an object)
        # lands in the dead-letter queue; the others are not held up.
        send([filebeat_event(lines[35]) | {"host": "not-an-object"}, filebeat_event(lines[36])])
        dlq = tmp_path / "data/dead_letter_queue/wlcg-soc-zeek/dlq.jsonl"
        wait_for(dlq.exists, 30, "the DLQ")
        entry = json.loads(dlq.read_text().splitlines()[0])
        assert "status: 400" in entry["reason"] and entry["event"]["host"] == "not-an-object", entry
        assert entry["plugin_id"] == "wlcg-soc-zeek-out"
        wait_for(lambda: count(node, index) == 36, 30, "36 documents")
    finally:
        code = ls.stop()
        front.stop()
        mc.__exit__(None, None, None)
    assert code == 0, ls.log.read_text()


# --- the kafka input against a real broker -------------------------------------------------

KAFKA = """
input {
  kafka {
    id => "wlcg-soc-kafka"
    bootstrap_servers => "%(bootstrap)s"
    topics => ["%(topic)s"]
    group_id => "%(group)s"
    client_id => "logstash1"
    consumer_threads => 2
    auto_offset_reset => "earliest"
    codec => json
    decorate_events => "basic"
    add_field => { "[kafka][topic]" => "%%{[@metadata][kafka][topic]}" }
    security_protocol => "SSL"
    ssl_truststore_type => "PEM"
    ssl_truststore_location => "%(ca)s"
    ssl_keystore_type => "PEM"
    ssl_keystore_location => "%(keystore)s"
    ssl_endpoint_identification_algorithm => "https"
  }
}
output {
  elasticsearch {
    id => "wlcg-soc-kafka-out"
    hosts => ["%(sink)s"]
    index => "zeek-default"
    action => "create"
    manage_template => false
    ilm_enabled => false
    data_stream => false
  }
}
"""


class BulkSink(HttpDouble):
    """An Elasticsearch ``_bulk`` endpoint that keeps the documents it is sent."""

    def __init__(self) -> None:
        self._init_http("127.0.0.1", 0)
        self.docs: list[dict] = []
        self.start()

    def handle(self, method, raw_path, headers, body):
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        sources = lines[1::2]
        self.docs += sources
        items = [{"create": {"status": 201}} for _doc in sources]
        return 200, json.dumps({"errors": False, "items": items}).encode(), {}


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    """The test process's broker (tests/kafka_broker.py), shared with the other module."""
    from kafka_broker import shared

    broker = shared(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


def kafka_values(tmp_path: Path, broker, sink: BulkSink, topic: str, keystore: str = "client") -> dict:
    return {
        "api_port": free_port(),
        "bootstrap": broker.bootstrap,
        "topic": topic,
        "group": f"logstash-{topic}",
        "ca": str(broker.pki["ca"]),
        "keystore": str(broker.pki[keystore]),
        "sink": sink.url,
    }


def produce(broker, topic: str, values: list[bytes]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**broker.client_tls(), acks="all", compression_type="gzip")
    try:
        for value in values:
            producer.send(topic, value)
        producer.flush(timeout=30)
    finally:
        producer.close()


def test_kafka_input_over_mutual_tls(tmp_path, kafka):
    topic = "wlcg-soc-ls.zeek"
    kafka.create_topic(topic, partitions=2)
    lines = zeek_logs.json_logs()["conn"][:20]
    produce(kafka, topic, [json.dumps(filebeat_event(line)).encode() for line in lines] + [b"not json"])
    with BulkSink() as sink:
        values = kafka_values(tmp_path, kafka, sink, topic)
        settings = write_settings(tmp_path, values, {"wlcg-soc-kafka": KAFKA})
        assert test_t(settings).returncode == 0
        ls = Running(settings, values["api_port"], tmp_path / "ls.log")
        try:
            ls.wait_up()
            expected = {*lines, "not json"}
            wait_for(lambda: {d.get("message") for d in sink.docs} >= expected, 60, "the events in the sink")
            wait_for(lambda: kafka.committed(values["group"]) == len(lines) + 1, 30, "the committed offsets")
        finally:
            assert ls.stop() == 0, ls.log.read_text()
    # At least once: a rebalance between two consumer threads may hand a record out again.
    assert len(sink.docs) >= len(lines) + 1
    by_line = {doc.get("message"): doc for doc in sink.docs}
    for line in lines:
        doc = by_line[line]
        assert doc["event"] == {"dataset": "zeek.connection", "module": "zeek"}
        assert doc["@timestamp"] == "2026-12-06T10:00:00.000Z" and doc["host"] == {"name": "sensor1"}
        assert doc["kafka"] == {"topic": topic}  # decorate_events: [@metadata][kafka]
        assert "@metadata" not in doc
    failed = by_line["not json"]
    assert failed["tags"] == ["_jsonparsefailure"]
    assert "Unable to create Kafka consumer" not in ls.log.read_text()


def test_kafka_input_without_the_sites_client_certificate(tmp_path, kafka):
    topic = "wlcg-soc-ls.refused"
    kafka.create_topic(topic)
    produce(kafka, topic, [json.dumps(filebeat_event('{"n": 1}')).encode()])
    with BulkSink() as sink:
        values = kafka_values(tmp_path, kafka, sink, topic, keystore="other_client")
        settings = write_settings(tmp_path, values, {"wlcg-soc-kafka": KAFKA})
        ls = Running(settings, values["api_port"], tmp_path / "ls.log")
        try:
            ls.wait_up()
            wait_for(lambda: "Unable to create Kafka consumer" in ls.log.read_text(), 30, "the refused handshake")
            time.sleep(2)
            assert sink.docs == []
            assert ls.pipeline("wlcg-soc-kafka")["events"]["in"] == 0
        finally:
            assert ls.stop() == 0, ls.log.read_text()
    assert kafka.committed(values["group"]) == 0


def test_config_test_refuses_an_unknown_kafka_option(tmp_path, pki):
    values = {"api_port": 9600, "bootstrap": "127.0.0.1:9093", "topic": "t", "group": "g", "ca": str(pki["ca"]),
              "keystore": str(pki["client_key"]), "sink": "http://127.0.0.1:9200"}  # fmt: skip
    settings = write_settings(tmp_path, values, {"wlcg-soc-kafka": KAFKA})
    res = test_t(settings)
    assert res.returncode == 0, res.stderr
    text = KAFKA.replace('client_id => "logstash1"', 'client_id => "logstash1"\n    fetch_max_wiat_ms => 100')
    settings = write_settings(tmp_path, values, {"wlcg-soc-kafka": text})
    res = test_t(settings)
    assert res.returncode == 1 and "Unknown setting 'fetch_max_wiat_ms' for kafka" in res.stderr, res.stderr


def test_kafka_input_refuses_a_store_password_with_pem_stores(tmp_path, pki):
    values = {"api_port": free_port(), "bootstrap": "127.0.0.1:1", "topic": "t", "group": "g", "ca": str(pki["ca"]),
              "keystore": str(pki["client_key"]), "sink": "http://127.0.0.1:1"}  # fmt: skip
    text = KAFKA.replace('ssl_keystore_type => "PEM"', 'ssl_keystore_type => "PEM"\n    ssl_keystore_password => "x"')
    settings = write_settings(tmp_path, values, {"wlcg-soc-kafka": text})
    assert test_t(settings).returncode == 0  # as Logstash: -t does not register plugins
    log = tmp_path / "ls.log"
    with log.open("w") as out:
        proc = standin("--path.settings", str(settings), stdout=out, stderr=subprocess.STDOUT)
        assert proc.wait(timeout=30) == 1
    assert "SSL key store password cannot be specified with PEM format" in log.read_text()
