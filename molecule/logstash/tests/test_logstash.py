"""Verify Logstash on ls-pipe end to end: the package from the mirror at its pinned version and
held, the OpenSearch output plugin the role installed, the hardened service, the writer's
password in one root-only file; then Filebeat-shaped events of real Zeek logs sent from the
controller with pylogbeat over mutual TLS, looked up in the pipe's memcached (keys written
with the MISP sync's own code) and written through the collection's ingest pipelines into the
zeek-default data stream of the OpenSearch node on ls-search, and real pmacct flow records (a
real capture exported by softflowd to a real nfacctd on the controller) into flows-default;
clients without a certificate of the site CA refused; with memcached stopped the events still
arrive, tagged, and counted in Logstash's node stats. Last, the Kafka tier end to end: real
Zeek logs written on ls-sensor, shipped by the filebeat role's Filebeat to the broker on
ls-kafka, read by Logstash's Kafka input and written, enriched, into zeek-default."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import testinfra
import yaml
from conftest import default_address, search_request
from pylogbeat import PyLogBeatClient

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))
import sdists  # noqa: E402 - tests/sdists.py, source distributions fetched at test time
import zeek_logs  # noqa: E402 - tests/zeek_logs.py, real Zeek logs from zat's and parsezeeklogs' sdists

# The collection as Molecule installed it (ansible_collections.wlcg.soc...).
sys.path[:0] = [p for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(":") if p]
from ansible_collections.wlcg.soc.plugins.module_utils.misp_ioc import Export  # noqa: E402
from ansible_collections.wlcg.soc.plugins.module_utils.misp_memcached import key as memcached_key  # noqa: E402

PIPE, SEARCH = "ls-pipe", "ls-search"
VERSION = "1:8.19.7-1"
WRITER_PASSWORD = "molecule-writer-pw-0123"  # noqa: S105 - the scenario's test credential
ADMIN = ("admin", "molecule-admin-pw-0123")
SEARCH_CA = "/etc/opensearch/certs/ca.crt"
STREAM = "zeek-default"
FLOWS = "flows-default"
# The sensor, and zeekctl's live log directory there (the filebeat role's default).
SENSOR = "ls-sensor"
SENSOR_LIVE = "/var/log/zeek/current"
CLIENT_DIR = "/root/beats-client"
STANDIN = "/usr/share/logstash/logstash-core/lib/standin/logstash.py"
BEATS_PORT = 5044
# A Logstash home whose Gemfile lacks the OpenSearch output plugin.
NO_PLUGINS = "/root/logstash-home-without-plugins"
# Two MISP events, one per indicator: an ip-src indicator and an ip-dst indicator.
MISP_EVENTS = {
    "ip-src": (4101, "5c7f3b9e-0d2c-4f5e-9a1b-000000004101", "Scanning campaign (molecule)"),
    "ip-dst": (4102, "5c7f3b9e-0d2c-4f5e-9a1b-000000004102", "C2 server (molecule)"),
}
FLOW_EVENT = (4103, "5c7f3b9e-0d2c-4f5e-9a1b-000000004103", "Flow indicator (molecule)")
# A real capture for the flows: PyPI pypacker 5.4's tests/ether.pcap (as tests/unit/test_flows_pipeline.py).
PYPACKER_VERSION = "5.4"
FLOW_CAPTURE = "ether.pcap"
# Zeek logs sent besides conn, and how many lines of each.
OTHER_LOGS = {"dns": 20, "http": 10, "ssl": 10, "weird": 2, "notice": 1}


@pytest.fixture(scope="module")
def pipe():
    return testinfra.get_host(f"podman://{PIPE}")


@pytest.fixture(scope="module")
def search():
    return testinfra.get_host(f"podman://{SEARCH}")


@pytest.fixture(scope="module")
def pipe_address(pipe) -> str:
    return pipe.check_output("hostname -I").split()[0]


@pytest.fixture(scope="module")
def client_files(pipe, tmp_path_factory) -> dict[str, str]:
    """The client certificate prepare.yml made on the pipe with the site CA (wlcg.soc.pki)."""
    out = tmp_path_factory.mktemp("beats-client")
    files = {}
    for name, remote in (("ca", "ca.crt"), ("crt", "beats-client.crt"), ("key", "beats-client.key")):
        files[name] = str(out / remote)
        Path(files[name]).write_text(pipe.file(f"{CLIENT_DIR}/{remote}").content_string)
    return files


@pytest.fixture(scope="module")
def other_ca_files(tmp_path_factory) -> dict[str, str]:
    """A client certificate of another CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(name: str, key, issuer: x509.Name, issuer_key, ca: bool) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256())
        )

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Another CA")])
    client_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client = certificate("sensor-elsewhere.example.org", client_key, ca_name, ca_key, False)
    out = tmp_path_factory.mktemp("other-ca")
    (out / "client.crt").write_bytes(client.public_bytes(serialization.Encoding.PEM))
    (out / "client.key").write_bytes(
        client_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return {"crt": str(out / "client.crt"), "key": str(out / "client.key")}


@pytest.fixture(scope="module")
def logs() -> dict[str, list[str]]:
    return zeek_logs.json_logs()


@pytest.fixture(scope="module")
def indicators(logs) -> dict[str, str]:
    """One source and one destination address of the conn lines, as MISP indicators (ip-src,
    ip-dst): those of the IPv4 connection whose addresses appear in the fewest lines."""
    records = [json.loads(line) for line in logs["conn"]]

    def lines_with(address: str) -> int:
        return sum(address in (r["id.orig_h"], r["id.resp_h"]) for r in records)

    candidates = [r for r in records if "." in r["id.orig_h"] and "." in r["id.resp_h"]]
    chosen = min(candidates, key=lambda r: lines_with(r["id.orig_h"]) + lines_with(r["id.resp_h"]))
    return {"ip-src": chosen["id.orig_h"], "ip-dst": chosen["id.resp_h"]}


def filebeat_event(log: str, line: str, run: str) -> dict:
    """A line of a Zeek log as the filebeat role's Filebeat sends it to Logstash."""
    return {
        "@timestamp": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.19.7"},
        "message": line,
        "event": {"dataset": zeek_logs.dataset(log), "module": "zeek"},
        "input": {"type": "filestream"},
        "log": {"file": {"path": f"/opt/zeek/logs/current/{log}.log"}, "offset": 0},
        "host": {"name": run},
        "agent": {"type": "filebeat", "version": "8.19.7", "name": run},
        "ecs": {"version": "8.0.0"},
    }


def flow_event(line: str, run: str) -> dict:
    """A line of nfacctd's output as the filebeat role's Filebeat sends it to Logstash."""
    event = filebeat_event("conn", line, run)
    event["event"] = {"module": "netflow", "dataset": "netflow.flow"}
    event["log"]["file"]["path"] = "/var/lib/wlcg-soc/flows/nfacctd-20261207-0100.json"
    return event


def beats_client(address: str, cert: str | None, key: str | None, ca: str) -> PyLogBeatClient:
    return PyLogBeatClient(
        address, BEATS_PORT, timeout=30, ssl_enable=True, ssl_verify=True, ca_certs=ca, certfile=cert, keyfile=key
    )


def send(address: str, files: dict[str, str], events: list[dict]) -> None:
    """Returns once Logstash has ACKed every window, i.e. the events are in its persistent queue."""
    with beats_client(address, files["crt"], files["key"], files["ca"]) as client:
        for start in range(0, len(events), 50):
            client.send(events[start : start + 50])


def search_api(search, path: str, method: str = "GET", body=None):
    return search_request(search, f"https://127.0.0.1:9200{path}", SEARCH_CA, *ADMIN, method, body)


def documents(
    search,
    run: str | None,
    expected: int,
    stream: str = STREAM,
    timeout: float = 120,
    field: str = "host.name",
    also: tuple[dict, ...] = (),
    exact: bool = True,
) -> list[dict]:
    """The documents of one test run (``field``, host.name unless told; any when ``run`` is
    None) that match the ``also`` filters, once there are ``expected`` of them: exactly that
    many unless ``exact`` is false (then those found by the deadline, for the caller to check)."""
    filters = [*also, *([{"term": {field: run}}] if run is not None else [])]
    deadline = time.monotonic() + timeout
    while True:
        search_api(search, f"/{stream}/_refresh", "POST")
        query = {"size": 1000, "query": {"bool": {"filter": filters}}}
        status, found = search_api(search, f"/{stream}/_search", "POST", query)
        hits = found["hits"]["hits"] if status == 200 else []
        if len(hits) >= expected or time.monotonic() > deadline:
            assert not exact or len(hits) == expected, f"{len(hits)} of {expected} documents of {run}: {status} {found}"
            return hits
        time.sleep(2)


def node_stats(pipe) -> dict:
    out = pipe.check_output(
        "python3 -c %s",
        "import urllib.request; print(urllib.request.urlopen("
        "'http://127.0.0.1:9600/_node/stats/pipelines', timeout=10).read().decode())",
    )
    return json.loads(out)["pipelines"]


def failures_counted(pipe, pipeline: str = "wlcg-soc-zeek") -> int:
    """The events.in of the plugin that counts a pipeline's failed MISP lookups."""
    filters = node_stats(pipe)[pipeline]["plugins"]["filters"]
    return next(f for f in filters if f["id"] == f"{pipeline}-misp-lookup-failures")["events"]["in"]


def memcached_set(pipe, values: dict[str, bytes]) -> None:
    """Write keys into the pipe's memcached (pymemcache from Debian, installed with the package)."""
    script = (
        "import json, socket, sys; from pymemcache.client.base import Client; "
        "c = Client((sys.argv[1], 11211)); "
        "c.set_many({k: v.encode() for k, v in json.loads(sys.argv[2]).items()}); "
        "print(sorted(c.get_many(list(json.loads(sys.argv[2])))))"
    )
    address = pipe.check_output("hostname -I").split()[0]
    text = {k: v.decode() for k, v in values.items()}
    out = pipe.check_output("python3 -c %s %s %s", script, address, json.dumps(text))
    assert out == str(sorted(text)), out


# --- installation ---------------------------------------------------------------------------


def test_package_from_the_mirror_at_the_pinned_version_and_held(pipe):
    pkg = pipe.package("logstash")
    assert pkg.is_installed and pkg.version == VERSION
    assert pipe.run("dpkg --get-selections logstash").stdout.split() == ["logstash", "hold"]
    sources = pipe.file("/etc/apt/sources.list.d/wlcg-soc-logstash.sources").content_string
    assert "URIs: http://127.0.0.1:8080" in sources and "Signed-By: /etc/apt/keyrings/wlcg-soc-logstash.asc" in sources
    assert pipe.user("logstash").group == "logstash" and pipe.user("logstash").shell == "/usr/sbin/nologin"


def test_opensearch_output_plugin_installed_by_the_role(pipe):
    listed = pipe.run("/usr/share/logstash/bin/logstash-plugin list --verbose logstash-output-opensearch")
    assert listed.rc == 0 and listed.stdout.strip() == "logstash-output-opensearch (2.0.3)", listed.stderr
    # Logstash without the plugin refuses the zeek pipeline's opensearch output.
    check = (
        "env LOGSTASH_HOME=%s WLCG_SOC_SEARCH_PASSWORD=x python3 " + STANDIN + " --path.settings /etc/logstash"
        " --path.data /var/lib/wlcg-soc/logstash-configtest --path.logs /var/lib/wlcg-soc/logstash-configtest"
        " -f /etc/logstash/wlcg-soc/wlcg-soc-zeek.conf -t"
    )
    pipe.check_output(
        "mkdir -p %s && grep -v opensearch /usr/share/logstash/Gemfile > %s/Gemfile", NO_PLUGINS, NO_PLUGINS
    )
    refused = pipe.run(check, NO_PLUGINS)
    assert refused.rc == 1 and "Couldn't find any output plugin named 'opensearch'" in refused.stderr, refused.stderr
    accepted = pipe.run(check, "/usr/share/logstash")
    assert accepted.rc == 0 and "Configuration OK" in accepted.stdout, accepted.stderr


def test_service_runs_as_logstash_without_capabilities(pipe):
    service = pipe.service("logstash")
    assert service.is_running and service.is_enabled
    unit = pipe.check_output("systemctl show -P FragmentPath logstash")
    assert unit in ("/lib/systemd/system/logstash.service", "/usr/lib/systemd/system/logstash.service")
    assert "/etc/systemd/system/logstash.service.d/50-wlcg-soc.conf" in pipe.check_output(
        "systemctl show -P DropInPaths logstash"
    )
    pid = int(pipe.check_output("systemctl show -P MainPID logstash"))
    status = dict(
        line.split(":", 1) for line in pipe.file(f"/proc/{pid}/status").content_string.splitlines() if ":" in line
    )
    uid = pipe.user("logstash").uid
    assert status["Uid"].split() == [str(uid)] * 4
    assert status["Gid"].split() == [str(pipe.group("logstash").gid)] * 4
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[capabilities].strip(), 16) == 0, (capabilities, status[capabilities])
    assert status["NoNewPrivs"].strip() == "1"
    # Listening: Beats on every address, the API on loopback only.
    assert pipe.socket(f"tcp://0.0.0.0:{BEATS_PORT}").is_listening
    assert pipe.socket("tcp://127.0.0.1:9600").is_listening
    assert not pipe.socket("tcp://0.0.0.0:9600").is_listening


def test_password_only_in_the_root_environment_file(pipe):
    env = pipe.file("/etc/logstash/wlcg-soc.env")
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)
    assert f'WLCG_SOC_SEARCH_PASSWORD="{WRITER_PASSWORD}"' in env.content_string
    holding = pipe.run("grep -rlF %s /etc/logstash", WRITER_PASSWORD).stdout.split()
    assert holding == ["/etc/logstash/wlcg-soc.env"]
    # The pipelines read it from the environment systemd gives the service.
    zeek = pipe.file("/etc/logstash/wlcg-soc/wlcg-soc-zeek.conf").content_string
    assert 'password => "${WLCG_SOC_SEARCH_PASSWORD}"' in zeek
    pid = pipe.check_output("systemctl show -P MainPID logstash")
    assert WRITER_PASSWORD not in pipe.file(f"/proc/{pid}/cmdline").content_string


# --- Beats with mutual TLS ------------------------------------------------------------------


def test_beats_input_presents_a_certificate_of_the_site_ca(pipe_address, client_files):
    context = ssl.create_default_context(cafile=client_files["ca"])
    context.load_cert_chain(client_files["crt"], client_files["key"])
    with (
        socket.create_connection((pipe_address, BEATS_PORT), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=PIPE) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("client", ["no-certificate", "another-ca"])
def test_beats_refuses_clients_without_a_certificate_of_the_site_ca(
    pipe, search, pipe_address, client_files, other_ca_files, logs, client
):
    before = node_stats(pipe)["wlcg-soc-beats"]["events"]["in"]
    run = f"refused-{client}-{uuid.uuid4().hex[:8]}"
    cert, key = (None, None) if client == "no-certificate" else (other_ca_files["crt"], other_ca_files["key"])
    with pytest.raises((OSError, ValueError)), beats_client(pipe_address, cert, key, client_files["ca"]) as beats:
        beats.send([filebeat_event("conn", logs["conn"][0], run)])
    time.sleep(2)
    assert node_stats(pipe)["wlcg-soc-beats"]["events"]["in"] == before
    search_api(search, f"/{STREAM}/_refresh", "POST")
    status, found = search_api(search, f"/{STREAM}/_count", "POST", {"query": {"term": {"host.name": run}}})
    # Before the first event the data stream does not exist yet.
    assert (status, found.get("count")) == (200, 0) or found["error"]["type"] == "index_not_found_exception", found


# --- Zeek into OpenSearch, with the MISP lookups ----------------------------------------------


@pytest.fixture(scope="module")
def misp_keys(indicators) -> dict[str, bytes]:
    """The memcached keys and values of the indicators, made by the MISP sync's own code."""
    export = Export()
    for direction, address in indicators.items():
        event_id, event_uuid, info = MISP_EVENTS[direction]
        export.keys[memcached_key(direction, address)] = [(event_id, event_uuid, info, direction)]
    return export.key_values()


def test_zeek_events_arrive_as_ecs_with_the_misp_hits(
    pipe, search, pipe_address, client_files, logs, indicators, misp_keys
):
    memcached_set(pipe, misp_keys)

    run = f"enrich-{uuid.uuid4().hex[:8]}"
    sent = {"conn": logs["conn"]} | {log: logs[log][:n] for log, n in OTHER_LOGS.items()}
    send(pipe_address, client_files, [filebeat_event(log, line, run) for log, lines in sent.items() for line in lines])
    hits = documents(search, run, sum(len(lines) for lines in sent.values()))

    # The zeek-default data stream, made ECS by wlcg-soc-zeek (no failure, no raw line left).
    assert {h["_index"].rsplit("-", 1)[0] for h in hits} == {f".ds-{STREAM}"}
    docs = [h["_source"] for h in hits]
    datasets = {}
    for doc in docs:
        datasets[doc["event"]["dataset"]] = datasets.get(doc["event"]["dataset"], 0) + 1
    assert datasets == {zeek_logs.dataset(log): len(lines) for log, lines in sent.items()}
    for doc in docs:
        assert doc["event"].get("kind") != "pipeline_error", doc.get("error")
        # The raw line is gone (a notice's message is the notice's text).
        assert not doc.get("message", "").startswith("{") and "@metadata" not in doc and "misp_lookup" not in doc
        assert "_memcached_failure" not in doc.get("tags", [])
    conns = [d for d in docs if d["event"]["dataset"] == "zeek.connection"]
    assert {(d["source"]["ip"], d["destination"]["ip"]) for d in conns} == {
        (json.loads(line)["id.orig_h"], json.loads(line)["id.resp_h"]) for line in logs["conn"]
    }

    # Enrichment: exactly the conn documents with an address in MISP, each address hit kept.
    listed = set(indicators.values())
    event_of = {address: MISP_EVENTS[direction][0] for direction, address in indicators.items()}
    enriched = 0
    for doc in docs:
        expected = {f"{side}.ip" for side in ("source", "destination") if doc.get(side, {}).get("ip") in listed}
        if doc["event"]["dataset"] != "zeek.connection" or not expected:
            assert "misp" not in doc and "enrichments" not in doc.get("threat", {}), doc
            continue
        enriched += 1
        matched = {e["matched"]["field"] for e in doc["threat"]["enrichments"]}
        assert matched == expected, doc["threat"]
        ids = {int(i) for i in doc["misp"]["event_id"]}
        assert ids == {event_of[doc[f.split(".")[0]]["ip"]] for f in expected}, doc["misp"]
        for enrichment in doc["threat"]["enrichments"]:
            assert enrichment["indicator"]["provider"] == "MISP"
            assert enrichment["matched"]["atomic"] == doc[enrichment["matched"]["field"].split(".")[0]]["ip"]
    # The connection the indicators come from hits on both sides.
    both = [
        d for d in conns if (d["source"]["ip"], d["destination"]["ip"]) == (indicators["ip-src"], indicators["ip-dst"])
    ]
    assert both, indicators
    for doc in both:
        assert {e["matched"]["field"] for e in doc["threat"]["enrichments"]} == {"source.ip", "destination.ip"}
        assert {int(i) for i in doc["misp"]["event_id"]} == {4101, 4102}
    assert 0 < enriched < len(conns)


# --- flows ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flow_lines(tmp_path_factory) -> list[str]:
    """pmacct's JSON records of a real capture: softflowd reads it and exports its flows as
    IPFIX to a real nfacctd on the controller, which aggregates them with the nfacctd role's
    default primitives and prints them as the role has it print them (JSON, RFC 3339 UTC)."""
    binaries = {name: shutil.which(name) for name in ("nfacctd", "softflowd")}
    for name, path in binaries.items():
        path or pytest.fail(f"{name} is required: tests/deps.sh installs pmacct and softflowd")
    tmp = tmp_path_factory.mktemp("flows")
    aggregate = yaml.safe_load((ROOT / "roles/nfacctd/defaults/main.yml").read_text())["nfacctd_aggregate"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp / "nfacctd.json"
    conf = tmp / "nfacctd.conf"
    conf.write_text(
        f"daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nnfacctd_time_new: true\n"
        "timestamps_utc: true\ntimestamps_rfc3339: true\nplugins: print[flows]\n"
        f"aggregate[flows]: {', '.join(aggregate)}\nprint_output[flows]: json\n"
        f"print_output_file[flows]: {out}\nprint_output_file_append[flows]: true\nprint_refresh_time[flows]: 1\n"
    )
    log = tmp / "nfacctd.log"
    with log.open("wb") as sink:
        collector = subprocess.Popen(
            [binaries["nfacctd"], "-f", str(conf)], stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 30
        while "waiting for" not in log.read_text(errors="replace"):
            assert collector.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        pcap = sdists.extracted("pypacker", PYPACKER_VERSION, "tests", (".pcap",)) / FLOW_CAPTURE
        softflowd = [binaries["softflowd"], "-d", "-r", str(pcap), "-n", f"127.0.0.1:{port}", "-v", "10"]
        subprocess.run(
            [*softflowd, "-A", "milli", "-c", "none", "-p", str(tmp / "softflowd.pid")],
            capture_output=True,
            timeout=30,
            check=True,
        )
        time.sleep(3)  # printed every second
    finally:
        collector.send_signal(signal.SIGINT)  # pmacct ignores SIGTERM; on SIGINT it writes what it holds
        try:
            collector.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(collector.pid, signal.SIGKILL)
            collector.wait()
    lines = [line for line in out.read_text().splitlines() if line.strip()] if out.exists() else []
    assert lines, log.read_text(errors="replace")
    return lines


def test_flows_arrive_as_ecs_with_the_misp_hits(pipe, search, pipe_address, client_files, flow_lines):
    records = [json.loads(line) for line in flow_lines]
    listed = records[0]["ip_dst"]
    export = Export()
    export.keys[memcached_key("ip-dst", listed)] = [(*FLOW_EVENT, "ip-dst")]
    memcached_set(pipe, export.key_values())

    run = f"flows-{uuid.uuid4().hex[:8]}"
    send(pipe_address, client_files, [flow_event(line, run) for line in flow_lines])
    hits = documents(search, run, len(flow_lines), stream=FLOWS)

    assert {h["_index"].rsplit("-", 1)[0] for h in hits} == {f".ds-{FLOWS}"}
    docs = [h["_source"] for h in hits]
    assert sorted((d["source"]["ip"], d["destination"]["ip"]) for d in docs) == sorted(
        (r["ip_src"], r["ip_dst"]) for r in records
    )
    enriched = 0
    for doc in docs:
        assert doc["event"]["kind"] == "event" and doc["event"]["module"] == "netflow", doc.get("error")
        assert "misp_lookup" not in doc and not doc.get("message", "").startswith("{")
        expected = {f"{side}.ip" for side in ("source", "destination") if doc[side]["ip"] == listed}
        if not expected:
            assert "misp" not in doc and "enrichments" not in doc.get("threat", {}), doc
            continue
        enriched += 1
        assert {e["matched"]["field"] for e in doc["threat"]["enrichments"]} == expected, doc["threat"]
        assert [int(i) for i in doc["misp"]["event_id"]] == [FLOW_EVENT[0]] * len(expected)
    assert 0 < enriched < len(docs)


# --- memcached down ---------------------------------------------------------------------------


def test_memcached_down_events_pass_tagged_and_counted(
    pipe, search, pipe_address, client_files, logs, indicators, misp_keys, flow_lines
):
    conn = [line for line in logs["conn"] if json.loads(line)["id.orig_h"] == indicators["ip-src"]][:3]
    conn += [line for line in logs["conn"] if indicators["ip-src"] not in line and indicators["ip-dst"] not in line][:2]
    before, flows_before = failures_counted(pipe), failures_counted(pipe, "wlcg-soc-flows")
    run = f"memcached-down-{uuid.uuid4().hex[:8]}"
    pipe.check_output("systemctl stop memcached")
    try:
        send(pipe_address, client_files, [filebeat_event("conn", line, run) for line in conn])
        send(pipe_address, client_files, [filebeat_event("dns", logs["dns"][0], run)])
        send(pipe_address, client_files, [flow_event(line, run) for line in flow_lines[:2]])
        docs = [h["_source"] for h in documents(search, run, len(conn) + 1)]
        flows = [h["_source"] for h in documents(search, run, 2, stream=FLOWS)]
    finally:
        pipe.check_output("systemctl start memcached")
    tagged = [d for d in docs if "_memcached_failure" in d.get("tags", [])]
    assert len(tagged) == len(conn) and all(d["event"]["dataset"] == "zeek.connection" for d in tagged)
    assert all("misp" not in d for d in docs + flows)
    assert all("_memcached_failure" in d.get("tags", []) for d in flows)
    assert failures_counted(pipe) - before == len(conn)
    assert failures_counted(pipe, "wlcg-soc-flows") - flows_before == len(flows)

    # memcached back (empty: the MISP sync writes its keys again): the lookups work again (the
    # filter reconnects), nothing more is counted.
    memcached_set(pipe, misp_keys)
    run = f"memcached-back-{uuid.uuid4().hex[:8]}"
    send(pipe_address, client_files, [filebeat_event("conn", conn[0], run)])
    (hit,) = documents(search, run, 1)
    assert "_memcached_failure" not in hit["_source"].get("tags", [])
    assert "source.ip" in {e["matched"]["field"] for e in hit["_source"]["threat"]["enrichments"]}
    assert failures_counted(pipe) - before == len(conn)


def running_pipelines(pipe) -> set[str]:
    """The pipelines Logstash runs (its node API), none while it is not answering."""
    out = pipe.run(
        "python3 -c %s",
        "import urllib.request; print(urllib.request.urlopen("
        "'http://127.0.0.1:9600/_node/pipelines', timeout=10).read().decode())",
    )
    return set(json.loads(out.stdout)["pipelines"]) if out.rc == 0 else set()


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(2)


def test_memcached_down_at_start_the_pipelines_wait_for_it(pipe, search, pipe_address, client_files, logs):
    """Logstash started while memcached is down: the memcached filters cannot register, so the
    Zeek and flows pipelines do not start (the input pipelines do); events sent meanwhile wait in the Beats pipeline's
    persisted queue. Once memcached answers, the pipelines start at the next reload interval
    (logstash_reload_interval_seconds), without a restart, and the events arrive."""
    inputs = {"wlcg-soc-beats", "wlcg-soc-kafka"}
    every = inputs | {"wlcg-soc-zeek", "wlcg-soc-flows"}
    run = f"memcached-late-{uuid.uuid4().hex[:8]}"
    pipe.check_output("systemctl stop memcached")
    try:
        pipe.check_output("systemctl restart logstash")
        wait_for(lambda: inputs <= running_pipelines(pipe), 120, "the input pipelines")
        assert running_pipelines(pipe) == inputs
        send(pipe_address, client_files, [filebeat_event("dns", logs["dns"][0], run)])
    finally:
        pipe.check_output("systemctl start memcached")
    wait_for(lambda: running_pipelines(pipe) == every, 60, "the Zeek and flows pipelines")
    (doc,) = documents(search, run, 1)
    assert doc["_source"]["event"]["dataset"] == "zeek.dns"


# --- the Kafka tier: Filebeat on the sensor, the broker, Logstash's Kafka input ----------------


def append_as_zeek(sensor: str, logs: dict[str, list[str]]) -> None:
    """Append lines to the live logs (<LIVE>/<log>.log) on the sensor as the zeek user, with
    the umask that keeps them to the zeek group, as zeekctl's logger writes them."""
    podman = shutil.which("podman")
    assert podman, "podman is needed on the controller"
    for log, lines in logs.items():
        subprocess.run(
            [
                podman,
                "exec",
                "-i",
                sensor,
                "runuser",
                "-u",
                "zeek",
                "--",
                "sh",
                "-ec",
                f"umask 027; cat >> {SENSOR_LIVE}/{log}.log",
            ],
            input="".join(line + "\n" for line in lines),
            text=True,
            check=True,
        )


def test_zeek_logs_through_kafka_arrive_as_ecs_with_the_misp_hits(pipe, search, logs, indicators, misp_keys):
    """Real Zeek logs written on the sensor: Filebeat (the filebeat role's Kafka output) to the
    wlcg-soc.zeek topic, Logstash's Kafka input to the Zeek pipeline (MISP lookups), into
    zeek-default with the sensor's host name."""
    memcached_set(pipe, misp_keys)
    listed = set(indicators.values())
    conn = [line for n, line in enumerate(logs["conn"]) if n < 100 or any(a in line for a in listed)]
    written = {"conn": conn} | {log: logs[log][:n] for log, n in OTHER_LOGS.items()}
    kafka_before = node_stats(pipe)["wlcg-soc-kafka"]["events"]["out"]
    append_as_zeek(SENSOR, written)

    hits = documents(search, SENSOR, sum(len(lines) for lines in written.values()), timeout=240)
    docs = [h["_source"] for h in hits]
    datasets: dict[str, int] = {}
    for doc in docs:
        datasets[doc["event"]["dataset"]] = datasets.get(doc["event"]["dataset"], 0) + 1
        assert doc["event"].get("kind") != "pipeline_error", doc.get("error")
        assert doc["agent"]["type"] == "filebeat" and doc["log"]["file"]["path"].startswith(SENSOR_LIVE)
    assert datasets == {zeek_logs.dataset(log): len(lines) for log, lines in written.items()}
    enriched = [d for d in docs if "enrichments" in d.get("threat", {})]
    assert enriched and all(d["event"]["dataset"] == "zeek.connection" for d in enriched)
    assert {e["matched"]["atomic"] for d in enriched for e in d["threat"]["enrichments"]} == listed
    # They came through the broker, not the Beats input.
    assert node_stats(pipe)["wlcg-soc-kafka"]["events"]["out"] - kafka_before == len(docs)


def flows_to(search, collector: str) -> list[dict]:
    """The flows to the collector's port 40009 in flows-default (those the probe beside the
    broker exported to nfacctd on the sensor)."""
    search_api(search, f"/{FLOWS}/_refresh", "POST")
    query = {"bool": {"filter": [{"term": {"destination.ip": collector}}, {"term": {"destination.port": 40009}}]}}
    status, found = search_api(search, f"/{FLOWS}/_search", "POST", {"size": 1000, "query": query})
    return found["hits"]["hits"] if status == 200 else []


def packets(hits: list[dict]) -> int:
    return sum(h["_source"]["network"]["packets"] for h in hits)


def test_nfacctd_records_through_kafka_arrive_as_flows(search):
    """nfacctd on the sensor writes its records to Kafka itself (nfacctd_output kafka): Logstash
    reads its topic and they arrive as netflow.flow documents, as from nfacctd's files."""
    sensor, broker = testinfra.get_host(f"podman://{SENSOR}"), testinfra.get_host("podman://ls-kafka")
    collector, exporter = default_address(sensor), default_address(broker)

    def settled() -> bool:
        """test_kafka.py sent the same traffic (20 packets a time) before: its flows are in."""
        total = packets(flows_to(search, collector))
        return total > 0 and total % 20 == 0

    wait_for(settled, 180, "the flows test_kafka.py made")
    before = packets(flows_to(search, collector))
    broker.check_output(f"python3 /usr/local/lib/send-traffic.py {collector}")
    wait_for(lambda: packets(flows_to(search, collector)) >= before + 20, 180, "the new flows")
    hits = flows_to(search, collector)
    assert packets(hits) == before + 20
    for hit in hits:
        doc = hit["_source"]
        assert hit["_index"].startswith(f".ds-{FLOWS}-"), hit["_index"]
        assert (doc["event"]["dataset"], doc["event"]["module"], doc["event"]["kind"]) == (
            "netflow.flow",
            "netflow",
            "event",
        ), doc.get("error")
        assert doc["observer"]["ip"] == exporter and doc["source"]["ip"] == exporter
        assert doc["network"]["transport"] == "udp" and doc["network"]["community_id"].startswith("1:")
        # Only the record's fields: no copy of it (event.original), no raw line.
        assert "original" not in doc["event"] and "message" not in doc, doc
