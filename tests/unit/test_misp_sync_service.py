"""The sync service as the misp_sync role installs and runs it, and the sensors' receiver.

The package is assembled as the role does (the collection's module_utils and the role's
``__main__.py`` and ``heartbeat.py`` in ``wlcg_soc_misp_sync``), run with ``python -m`` and
the key (and the heartbeat's password) on standard input, against the MISP API double and a
real memcached; the heartbeat goes to a TLS receiver on a thread of this process, and to a
real OpenSearch with its security plugin.
"""

from __future__ import annotations

import base64
import datetime
import importlib
import importlib.util
import io
import ipaddress
import json
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from ansible_collections.wlcg.soc.plugins.module_utils.zeek_intel import INTEL_TYPES, parse
from conftest import ROOT, SECURE_OPENSEARCH, misp_event
from doubles_common import HttpDouble
from pymemcache.client.base import Client

ROLE = ROOT / "roles/misp_sync"
PACKAGE = "wlcg_soc_misp_sync"
RECEIVER = ROLE / "files/intel-receive.py"


def role_code() -> list[tuple[str, Path | None]]:
    """(file name, source) of the sync package as the role's vars list it (None: empty file)."""
    names = yaml.safe_load((ROLE / "vars/main.yml").read_text())["__misp_sync_module_utils"]
    return [(n, ROOT / "plugins/module_utils" / n) for n in names] + [
        ("__main__.py", ROLE / "files/__main__.py"),
        ("heartbeat.py", ROLE / "files/heartbeat.py"),
        ("__init__.py", None),
    ]


@pytest.fixture
def lib(tmp_path) -> Path:
    package = tmp_path / "lib" / PACKAGE
    package.mkdir(parents=True)
    for name, source in role_code():
        (package / name).write_text(source.read_text() if source else "")
    return package.parent


# Values a member of a sharing community can publish, each of which broke or misled the sync.
HOSTILE = misp_event(
    "I" * 60000,
    ("user-agent", "Evil\u2028Bot"),
    ("filename", "#payload.exe"),
    ("ip-dst", "0.0.0.0/0"),
    ("ip-dst", "2001:db8::/16"),
    ("ip-dst", "::ffff:192.0.2.11"),
    ("ip-src", "fe80::1%eth0"),
    ("domain", "ok.example"),
)
PLAIN_ROWS = [("ip-src", f"198.51.100.{i}") for i in range(1, 21)]
PLAIN = misp_event("Phishing wave", *PLAIN_ROWS)


class Service:
    def __init__(self, lib: Path, tmp_path: Path, double, memcached: str):
        self.lib, self.double = lib, double
        state = tmp_path / "state"
        state.mkdir()
        self.intel = state / "misp.intel"
        self.status_path = state / "status.json"
        self.force_file = state / "force"
        self.config_path = tmp_path / "misp-sync.json"
        self.config = {
            "misp_url": double.url,
            "misp_key_file": "-",
            "validate_certs": False,  # the double serves plain http on loopback
            "timeout": 5,
            "zeek_intel_path": str(self.intel),
            "do_notice": True,
            "memcached_servers": [memcached],
            "memcached_ttl": 600,
            "status_file": str(self.status_path),
            "force_file": str(self.force_file),
            "filters": {},
            "policy": {},
            "push": {},
        }
        # What systemd connects to standard input: the root-only key file.
        self.stdin = double.key

    def run(self, *args: str, path: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
        self.config_path.write_text(json.dumps(self.config))
        return subprocess.run(
            [sys.executable, "-m", PACKAGE, "--config", str(self.config_path), *args],
            input=self.stdin,
            env={"PYTHONPATH": ":".join(map(str, (*path, self.lib))), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    @property
    def status(self) -> dict:
        return json.loads(self.status_path.read_text())


@pytest.fixture
def service(lib, tmp_path, misp_double, memcached) -> Service:
    return Service(lib, tmp_path, misp_double, memcached)


def test_hostile_values_are_skipped_counted_and_the_rest_exported(service, memcached):
    service.double.add_events([HOSTILE, PLAIN])
    done = service.run()
    assert done.returncode == 0, done.stderr
    status = service.status
    assert status["last_error"] is None
    assert status["not_exported"] == {
        "IPv4 network wider than /8": 1,
        "IPv6 network wider than /32": 1,
        "address with zone id": 1,
        "starts with #": 1,
    }
    assert status["trimmed"] == {"event info in a memcached value": 1}
    data = service.intel.read_bytes()
    rows, fields = parse(data)
    # Zeek's reader: one record per LF-terminated line, TAB-separated, a known type in each.
    assert len(data.split(b"\n")) - 2 == len(rows) == 23
    assert all(len(line.split(b"\t")) == len(fields) for line in data.split(b"\n")[1:-1])
    assert {r["indicator_type"] for r in rows} <= INTEL_TYPES
    assert {"Evil Bot", "192.0.2.11", "ok.example"} <= {r["indicator"] for r in rows}
    client = Client(tuple(memcached.split(":")))
    assert json.loads(client.get("ip-dst-192.0.2.11"))["misp"][0]["info"] == "I" * 256
    client.close()


# Text no UTF-8 can carry: a lone surrogate (MISP answers it as a "\ud800" escape) and a
# byte that is not UTF-8 (put into the answer below).
UNDECODABLE = misp_event("Undecodable", ("domain", "evil\ud800.example"), ("domain", "bad-BYTE.example"), *PLAIN_ROWS)


def with_raw_byte(double, monkeypatch) -> None:
    """restSearch answers carry a raw 0xff where the event says -BYTE."""
    handle = double.handle

    def raw(method, raw_path, headers, body):
        status, payload, extra = handle(method, raw_path, headers, body)
        if "restSearch" in raw_path:
            payload = payload.replace(b"-BYTE", b"\xff")
        return status, payload, extra

    monkeypatch.setattr(double, "handle", raw)


@pytest.fixture(params=["orjson", "json"])
def without_orjson(request, tmp_path) -> tuple[Path, ...]:
    """PYTHONPATH entries that make PyMISP parse with orjson (installed) or the standard library."""
    if request.param == "orjson":
        assert importlib.util.find_spec("orjson"), "orjson (requirements-dev.txt) is needed here"
        return ()
    blocker = tmp_path / "no-orjson"
    blocker.mkdir()
    (blocker / "orjson.py").write_text("raise ImportError('orjson blocked for this test')\n")
    return (blocker,)


def test_undecodable_values_are_skipped_with_either_parser(service, monkeypatch, without_orjson):
    service.double.add_events([UNDECODABLE])
    with_raw_byte(service.double, monkeypatch)
    done = service.run(path=without_orjson)
    assert done.returncode == 0, done.stderr
    assert service.status["not_exported"] == {"undecodable text": 2}
    indicators = sorted(r["indicator"] for r in parse(service.intel.read_bytes())[0])
    assert indicators == sorted(f"198.51.100.{i}" for i in range(1, 21))


@pytest.mark.parametrize("parser", ["orjson", "json"])
def test_undecodable_values_are_skipped_by_the_module_code_with_either_parser(misp_double, monkeypatch, parser):
    import pymisp.api
    from ansible_collections.wlcg.soc.plugins.module_utils.misp import connect
    from ansible_collections.wlcg.soc.plugins.module_utils.misp_ioc import Filters, collect

    monkeypatch.setattr(pymisp.api, "loads", importlib.import_module(parser).loads)
    misp_double.add_events([UNDECODABLE])
    with_raw_byte(misp_double, monkeypatch)
    misp = connect(misp_double.url, misp_double.key, validate_certs=False)
    export = collect(misp, misp_double.url, Filters(), page_size=7)
    assert export.skipped == {"undecodable text": 2}
    assert len(export.rows) == 20 and export.pages == 4


def test_a_drop_to_nothing_is_refused_until_forced_once(service, memcached):
    service.double.add_events([PLAIN])
    assert service.run().returncode == 0
    before, first = service.intel.read_bytes(), service.status
    # A wrong filter (or lost rights, or a restored database) empties MISP's answer.
    service.config["filters"] = {"event_ids": ["999999"]}
    refused = service.run()
    assert refused.returncode == 4, refused.stderr
    assert "export refused: the export has 0 intel rows where the last one had 20" in refused.stderr
    status = service.status
    assert status["last_error"].startswith("export refused: the export has 0 intel rows")
    assert status["last_success"] == first["last_success"] and status["intel_rows"] == 20
    assert service.intel.read_bytes() == before
    client = Client(tuple(memcached.split(":")))
    assert client.get("ip-src-198.51.100.7") is not None
    # The documented one-shot: create the force file, run once.
    service.force_file.touch()
    forced = service.run()
    assert forced.returncode == 0, forced.stderr
    assert not service.force_file.exists()
    assert service.status["forced"] is True and service.status["intel_rows"] == 0
    assert parse(service.intel.read_bytes())[0] == []
    client.close()


def test_a_key_drop_is_refused_with_memcached_only(service):
    service.double.add_events([PLAIN])
    service.config["zeek_intel_path"] = None
    assert service.run().returncode == 0
    service.config["filters"] = {"event_ids": ["999999"]}
    refused = service.run()
    assert refused.returncode == 4
    assert "0 memcached keys where the last one had 20" in service.status["last_error"]
    assert service.run("--force").returncode == 0


@pytest.fixture
def entry(lib, monkeypatch):
    """The package's ``__main__`` imported in this process (removed again after the test)."""
    monkeypatch.syspath_prepend(str(lib))
    yield importlib.import_module(f"{PACKAGE}.__main__")
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (lambda _m: TypeError("'int' object is not subscriptable: 198.51.100.77"), "failed, unexpected TypeError at "),
        (lambda m: m.MispError("MISP answered: " + "198.51.100.77 " * 150000), "failed, nothing written (previous"),
    ],
    ids=["unexpected", "huge-message"],
)
def test_every_failure_lands_in_status_bounded(entry, tmp_path, monkeypatch, capsys, error, expected):
    key = tmp_path / "key"
    key.write_text("k" * 40)
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"last_success": 1, "last_error": None, "intel_rows": 5}))
    config = tmp_path / "misp-sync.json"
    config.write_text(
        json.dumps({"misp_url": "https://misp.example", "misp_key_file": str(key), "status_file": str(status)})
    )

    def broken(cfg, force=False, previous_keys=None):
        raise error(entry)

    monkeypatch.setattr(entry, "run", broken)
    assert entry.main(["--config", str(config)]) == 1
    written = json.loads(status.read_text())
    assert written["last_error"].startswith(expected)
    assert len(written["last_error"]) <= 500
    assert written["last_success"] == 1 and written["intel_rows"] == 5
    if "unexpected" in expected:
        assert "198.51.100.77" not in written["last_error"]
    assert len(capsys.readouterr().err) < 600


# An ssh that records when it ran, then answers as the receiver does (or never, for "stuck").
FAKE_SSH = """#!{python}
import json, sys, time
target = sys.argv[-2].split("@")[1]
start = time.time()
data = sys.stdin.buffer.read()
time.sleep(30 if target == "stuck" else 0.5)
with open({log!r}, "a") as log:
    log.write(json.dumps([target, start, time.time()]) + "\\n")
print(f"replaced misp.intel ({{len(data)}} bytes)")
"""


def test_pushes_run_in_parallel_and_a_stuck_sensor_is_bounded(entry, tmp_path, monkeypatch):
    bin_dir, log = tmp_path / "bin", tmp_path / "ssh.log"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(FAKE_SSH.format(python=sys.executable, log=str(log)))
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    intel = tmp_path / "misp.intel"
    intel.write_bytes(GOOD)
    names = ["s1", "s2", "stuck", "s3", "s4"]
    spec = {"identity": "id", "known_hosts": "kh", "timeout": 2, "parallel": 2}
    targets = [{"name": n, "host": n, "port": 22, "user": "wlcg-intel"} for n in names]
    answers = entry.push({"zeek_intel_path": str(intel), "push": dict(spec, targets=targets)})
    assert answers == {
        **{n: f"replaced misp.intel ({len(GOOD)} bytes)" for n in names if n != "stuck"},
        "stuck": "error: no answer within 2 seconds",
    }
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(r[0] for r in runs) == ["s1", "s2", "s3", "s4"]
    # Never more than two at once, and the pool did run two at once.
    overlaps = [sum(1 for o in runs if o[1] < r[1] < o[2]) + 1 for r in runs]
    assert max(overlaps) == 2


# ------------------------------------------------------------------------- heartbeat
WRITER_PASSWORD = "Writer-pw:with spaces-0123"  # noqa: S105 - a test credential
UUID_HEX = re.compile(r"^[0-9a-f]{32}$")


def tls_files(directory: Path, name: str) -> dict[str, Path]:
    """A CA of its own and a certificate it signed for localhost/127.0.0.1 (PEM files)."""
    from certs import cert_pem, certificate, key_pem, subject
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate(f"{name} CA", ca_key, subject(f"{name} CA"), ca_key, True)
    sans = (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = certificate("localhost", key, subject(f"{name} CA"), ca_key, False, sans)
    files = {"ca": cert_pem(ca), "cert": cert_pem(cert), "key": key_pem(key)}
    paths = {kind: directory / f"{name}-{kind}.pem" for kind in files}
    for kind, data in files.items():
        paths[kind].write_bytes(data)
    return paths


class SearchReceiver(HttpDouble):
    """The search tier's document API as the heartbeat meets it: HTTPS, basic auth for the
    writer; records every request, answers as Elasticsearch does, or ``status``/``reply`` as
    set, after ``delay`` seconds."""

    methods = frozenset({"PUT", "POST"})

    def __init__(self, tls: dict[str, Path]):
        self._init_http("127.0.0.1", 0, (str(tls["cert"]), str(tls["key"])), public_name="localhost")
        self.requests: list[dict] = []
        self.status: int | None = None
        self.reply: bytes = b""
        self.delay = 0.0

    def handle(self, method, raw_path, headers, body):
        self.requests.append({"method": method, "path": raw_path, "headers": dict(headers), "doc": json.loads(body)})
        time.sleep(self.delay)
        if self.status is not None:
            return self.status, self.reply, {}
        if headers.get("Authorization") != basic_auth("soc_writer", WRITER_PASSWORD):
            return 401, b'{"error":{"type":"security_exception","reason":"unable to authenticate"},"status":401}', {}
        stream, doc_id = raw_path.lstrip("/").split("/_create/")
        return 201, json.dumps({"_index": f".ds-{stream}-000001", "_id": doc_id, "result": "created"}).encode(), {}


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def site_ca(tmp_path) -> dict[str, Path]:
    return tls_files(tmp_path, "site")


@pytest.fixture
def receiver(site_ca):
    with SearchReceiver(site_ca) as double:
        double.start()
        yield double


def with_heartbeat(service: Service, hosts: list[str], ca: Path, password: str = WRITER_PASSWORD, timeout=5):
    """The heartbeat section the role writes, the password on the key file's second line."""
    service.config["heartbeat"] = {
        "hosts": hosts,
        "data_stream": "status-default",
        "username": "soc_writer",
        "password_file": "-",
        "ca_path": str(ca),
        "timeout": timeout,
        "host_name": "sync-1.example.org",
    }
    service.stdin = f"{service.double.key}\n{password}\n"


def iso_seconds(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_heartbeat_of_a_successful_run(service, receiver, site_ca):
    service.double.add_events([PLAIN])
    with_heartbeat(service, [receiver.url], site_ca["ca"])
    done = service.run()
    assert done.returncode == 0, done.stderr
    assert "heartbeat" not in done.stderr
    status = service.status
    assert status["heartbeat_error"] is None
    (request,) = receiver.requests
    stream, op, doc_id = request["path"].lstrip("/").split("/")
    assert (request["method"], stream, op) == ("PUT", "status-default", "_create") and UUID_HEX.match(doc_id)
    assert request["headers"]["Authorization"] == basic_auth("soc_writer", WRITER_PASSWORD)
    assert request["headers"]["Content-Type"] == "application/json"
    doc = request["doc"]
    event = doc.pop("event")
    # Nanoseconds; start and end are cut to milliseconds.
    assert abs(event.pop("duration") - (iso_seconds(event["end"]) - iso_seconds(event["start"])) * 1e9) < 2e6
    assert event == {
        "kind": "metric",
        "module": "misp_sync",
        "dataset": "misp_sync.status",
        "outcome": "success",
        "start": event["start"],
        "end": doc["@timestamp"],
    }
    assert int(iso_seconds(event["start"])) == status["last_success"]
    assert doc.pop("@timestamp").endswith("Z")
    assert doc == {
        "host": {"name": "sync-1.example.org"},
        "service": {"type": "misp_sync"},
        "misp_sync": {
            "exit_code": 0,
            "last_success": event["start"][:19] + ".000Z",
            "attributes": 20,
            "pages": status["pages"],
            "intel_rows": 20,
            "intel": {"Intel::ADDR": 20},
            "intel_changed": True,
            "memcached_keys": 20,
            "memcached": {"ip-src": 20},
            "memcached_keys_changed": 20,
            "forced": False,
        },
    }


def test_heartbeat_of_a_failed_run_names_the_error_and_the_last_success(service, receiver, site_ca):
    service.double.add_events([PLAIN])
    with_heartbeat(service, [receiver.url], site_ca["ca"])
    assert service.run().returncode == 0
    last_success = service.status["last_success"]
    service.double.stop()  # MISP is down
    done = service.run()
    assert done.returncode == 1, done.stderr
    status = service.status
    assert status["heartbeat_error"] is None and status["last_success"] == last_success
    doc = receiver.requests[-1]["doc"]
    assert doc["event"]["outcome"] == "failure"
    assert doc["error"] == {"message": status["last_error"]}
    assert "unreachable" in doc["error"]["message"]
    # The counts in status.json are the last success's, not this run's: left out.
    expected = datetime.datetime.fromtimestamp(last_success, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert doc["misp_sync"] == {"exit_code": 1, "last_success": expected}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((401, b"Unauthorized"), "HTTP 401: Unauthorized"),
        (
            (503, b'{"error":{"type":"cluster_block_exception","reason":"blocked"}}'),
            "HTTP 503: cluster_block_exception: blocked",
        ),
        (None, "ConnectionError: "),
    ],
    ids=["refused", "unavailable", "down"],
)
def test_a_heartbeat_not_taken_changes_neither_the_run_nor_its_exit_code(service, receiver, site_ca, answer, expected):
    service.double.add_events([PLAIN])
    with_heartbeat(service, [receiver.url], site_ca["ca"])
    if answer is None:
        receiver.stop()
    else:
        receiver.status, receiver.reply = answer
    done = service.run()
    assert done.returncode == 0, done.stderr
    status = service.status
    assert status["last_error"] is None and status["intel_rows"] == 20
    assert status["heartbeat_error"].startswith(f"{receiver.url}: {expected}"), status["heartbeat_error"]
    assert f"misp-sync: heartbeat not written: {status['heartbeat_error']}" in done.stderr
    # The next heartbeat that is written clears it.
    receiver.status = None
    receiver.start()
    assert service.run().returncode == 0
    assert service.status["heartbeat_error"] is None


def test_the_hosts_are_tried_in_turn_with_tls_verified(service, receiver, site_ca, tmp_path):
    """An unverifiable certificate and a closed port are passed over; the next host takes it."""
    service.double.add_events([PLAIN])
    with SearchReceiver(tls_files(tmp_path, "other")) as stranger:
        stranger.start()
        with_heartbeat(service, [stranger.url, closed_port(), receiver.url], site_ca["ca"])
        done = service.run()
    assert done.returncode == 0, done.stderr
    assert service.status["heartbeat_error"] is None
    assert stranger.requests == [] and len(receiver.requests) == 1
    assert "certificate verify failed" in done.stderr and "Connection refused" in done.stderr
    assert f"misp-sync: heartbeat written to {receiver.url} after {stranger.url}: SSLError" in done.stderr


def closed_port() -> str:
    from search.engine import free_port

    return f"https://127.0.0.1:{free_port()}"


def test_the_heartbeat_is_bounded_in_time(service, receiver, site_ca):
    service.double.add_events([PLAIN])
    with_heartbeat(service, [receiver.url], site_ca["ca"], timeout=2)
    receiver.delay = 30
    started = time.monotonic()
    done = service.run()
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 20
    assert service.status["heartbeat_error"] == "no search host took the document within 2 seconds"


def test_the_password_stays_out_of_messages_and_the_status(service, receiver, site_ca):
    """A server that quotes the request back (a proxy's error page, say)."""
    service.double.add_events([PLAIN])
    with_heartbeat(service, [receiver.url], site_ca["ca"])
    receiver.status, receiver.reply = 400, f"bad request from soc_writer:{WRITER_PASSWORD}".encode()
    done = service.run()
    assert done.returncode == 0
    assert WRITER_PASSWORD not in done.stderr + done.stdout + service.status_path.read_text()
    assert "soc_writer:***" in service.status["heartbeat_error"]


def test_the_secrets_come_from_their_files_in_order(entry, tmp_path, monkeypatch):
    """``-`` takes the next line of standard input (the key file: the key, then the password),
    a path its file's first line."""
    config = tmp_path / "misp-sync.json"
    password_file = tmp_path / "password"
    password_file.write_text(" pw with spaces \nignored\n")
    heartbeat = {"password_file": "-"}
    config.write_text(json.dumps({"misp_key_file": "-", "heartbeat": heartbeat}))
    monkeypatch.setattr(sys, "stdin", io.StringIO("k" * 40 + "\n pw with spaces \n"))
    cfg = entry.load_config(str(config))
    assert (cfg["misp_key"], cfg["heartbeat"]["password"]) == ("k" * 40, " pw with spaces ")
    config.write_text(json.dumps({"misp_key_file": "-", "heartbeat": {"password_file": str(password_file)}}))
    monkeypatch.setattr(sys, "stdin", io.StringIO("k" * 40 + "\n"))
    assert entry.load_config(str(config))["heartbeat"]["password"] == " pw with spaces "  # noqa: S105


# The heartbeat into a real OpenSearch with its security plugin: the index template and shared
# mappings the elasticsearch role applies to the status family, and a user with the role's
# soc_writer privileges on every family.
def search_setup(node, password: str) -> None:
    defaults = yaml.safe_load((ROOT / "roles/elasticsearch/defaults/main.yml").read_text())
    families = defaults["elasticsearch_index_families"]
    assert "status" in [f["name"] for f in families]
    roles = yaml.safe_load((ROOT / "roles/elasticsearch/vars/main.yml").read_text())["__elasticsearch_soc_roles"]
    (writer,) = [r["opensearch"] for r in roles if r["name"] == "soc_writer"]
    patterns = [f"{f['name']}-*" for f in families]
    permissions = [{"index_patterns": patterns, "allowed_actions": i["privileges"]} for i in writer["indices"]]
    role = {"cluster_permissions": writer["cluster"], "index_permissions": permissions}
    mappings = json.loads((ROOT / "roles/elasticsearch/files/ecs-mappings.json").read_text())
    template = {
        "index_patterns": ["status-*"],
        "composed_of": ["hb-ecs-mappings"],
        "template": {"settings": {"number_of_replicas": 0}},
        "data_stream": {},
        "priority": 200,
    }
    for path, body in [
        ("_plugins/_security/api/roles/hb_writer", role),
        ("_plugins/_security/api/internalusers/hb_writer", {"password": password}),
        ("_plugins/_security/api/rolesmapping/hb_writer", {"users": ["hb_writer"]}),
        ("_component_template/hb-ecs-mappings", mappings),
        ("_index_template/hb-status", template),
    ]:
        status, answer = node.call("PUT", path, body)
        assert status in (200, 201), (path, answer)


@pytest.mark.xdist_group(SECURE_OPENSEARCH)
def test_the_heartbeat_lands_in_the_status_data_stream_as_the_writer(service, secure_opensearch):
    node = secure_opensearch
    password = f"Hb-{secrets.token_urlsafe(16)}-9x"
    search_setup(node, password)
    service.double.add_events([PLAIN])
    with_heartbeat(service, [node.url], Path(node.ca_path), password=password)
    service.config["heartbeat"]["username"] = "hb_writer"
    done = service.run()
    assert done.returncode == 0, done.stderr
    assert service.status["heartbeat_error"] is None, service.status["heartbeat_error"]
    service.double.stop()
    assert service.run().returncode == 1
    assert service.status["heartbeat_error"] is None
    status, streams = node.call("GET", "_data_stream/status-default")
    assert status == 200 and [s["name"] for s in streams["data_streams"]] == ["status-default"], streams
    node.call("POST", "status-default/_refresh")
    status, found = node.call("POST", "status-default/_search", {"sort": [{"@timestamp": "asc"}]})
    docs = [hit["_source"] for hit in found["hits"]["hits"]]
    assert [d["event"]["outcome"] for d in docs] == ["success", "failure"], found
    # Every field the heartbeat writes has the type the shared mappings give it.
    status, mapping = node.call("GET", "status-default/_mapping")
    (index,) = mapping.values()
    props = index["mappings"]["properties"]
    assert props["@timestamp"]["type"] == "date"
    types = {
        name: props[name.partition(".")[0]]["properties"][name.partition(".")[2]]["type"]
        for name in (
            "event.kind", "event.outcome", "event.duration", "event.start", "host.name", "service.type",
            "error.message", "misp_sync.last_success", "misp_sync.intel_rows", "misp_sync.intel_changed",
        )
    }  # fmt: skip
    assert types == {
        "event.kind": "keyword",
        "event.outcome": "keyword",
        "event.duration": "long",
        "event.start": "date",
        "host.name": "keyword",
        "service.type": "keyword",
        "error.message": "text",
        "misp_sync.last_success": "date",
        "misp_sync.intel_rows": "long",
        "misp_sync.intel_changed": "boolean",
    }
    # The writer adds documents and does nothing else.
    assert node.call("GET", "status-default/_search", user="hb_writer", password=password)[0] == 403


# ------------------------------------------------------------------------- receiver
HEADER = b"#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url\tmeta.do_notice\n"
GOOD = HEADER + b"192.0.2.1\tIntel::ADDR\tMISP (u) - CIRCL\tC2\thttps://m/events/view/1\tT\n"


def receive(tmp_path: Path, data: bytes) -> tuple[subprocess.CompletedProcess, Path]:
    target = tmp_path / "misp.intel"
    done = subprocess.run(
        [sys.executable, str(RECEIVER), str(target)], input=data, capture_output=True, timeout=60, check=False
    )
    return done, target


def test_receiver_replaces_the_file_with_a_well_formed_one(tmp_path):
    done, target = receive(tmp_path, GOOD)
    assert done.returncode == 0 and done.stdout == b"updated\n"
    assert target.read_bytes() == GOOD
    assert receive(tmp_path, GOOD)[0].stdout == b"unchanged\n"
    assert receive(tmp_path, HEADER)[0].returncode == 0  # an empty list is a valid file


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"#fields indicator\n", "no #fields header"),
        (GOOD[:-1], "does not end with a newline"),
        (GOOD + b"\xff\xfe\tIntel::ADDR\ts\t-\t-\tT\n", "not valid UTF-8"),
        (b"#fields\tindicator\tindicator_type\n192.0.2.1\tIntel::ADDR\n", "lacks meta.source"),
        (b"#fields\tindicator\tindicator_type\tmeta.source\tmeta.source\n", "invalid or repeated names"),
        (GOOD + b"192.0.2.2\tIntel::ADDR\tMISP\n", "line 3: 3 fields where the header names 6"),
        (GOOD + b"192.0.2.2\tIntel::JA3\ts\t-\t-\tT\n", "line 3: unknown indicator type"),
        (GOOD + b"\tIntel::ADDR\ts\t-\t-\tT\n", "line 3: an empty field"),
        (GOOD + HEADER, "line 3: a second header or comment"),
        (GOOD + b"<html>\n", "line 3: 1 fields where the header names 6"),
    ],
    ids=["no-header", "cut", "utf8", "no-source", "repeated", "width", "type", "empty", "second-header", "html"],
)
def test_receiver_refuses_a_malformed_file_and_keeps_the_live_one(tmp_path, data, reason):
    receive(tmp_path, GOOD)
    done, target = receive(tmp_path, data)
    assert done.returncode == 1
    assert reason in done.stderr.decode() and "the live file is kept" in done.stderr.decode()
    assert target.read_bytes() == GOOD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["misp.intel"]


def test_receiver_knows_the_same_types_as_the_writer():
    spec = importlib.util.spec_from_file_location("intel_receive", RECEIVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.TYPES == INTEL_TYPES
