"""The Filebeat stand-in (tests/filebeat_standin/filebeat.py) against a real Beats-protocol
server: go-lumber's (tests/lumberjack_receiver, built with Go), with mutual TLS, fed with
real Zeek JSON logs (tests/zeek_logs.py). The stand-in runs as a process with Filebeat's
command line, exactly as the vendor unit starts it on a test host."""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import filebeat_reference as ref
import pytest
import yaml
import zeek_logs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TESTS = Path(__file__).resolve().parents[1]
STANDIN = TESTS / "filebeat_standin" / "filebeat.py"
BUILD = TESTS / "lumberjack_receiver" / "build.sh"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except OSError:  # a server still starting (connection refused)
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# --- certificates -----------------------------------------------------------------------


class Pki:
    """A CA with a server certificate for 127.0.0.1/localhost and a client certificate,
    plus a second, unrelated CA with its own client certificate."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca, ca_key = self._ca("wlcg-soc test CA")
        self.other_ca, other_key = self._ca("unrelated CA")
        self.server = self._leaf("server", ca_key, server=True)
        self.client = self._leaf("filebeat", ca_key, server=False)
        self.other_client = self._leaf("intruder", other_key, server=False, issuer=self.other_ca)

    def _write(self, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
        path = self.root / f"{name}.crt"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            key_path = self.root / f"{name}.key"
            key_path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            key_path.chmod(0o600)
        return path

    def _builder(self, subject: str, issuer: x509.Name, public: Any) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )

    def _ca(self, name: str) -> tuple[Path, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            self._builder(name, subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        path = self._write(name.replace(" ", "-"), cert, key)
        self._ca_certs = getattr(self, "_ca_certs", {})
        self._ca_certs[path] = cert
        return path, key

    def _leaf(
        self, name: str, ca_key: ec.EllipticCurvePrivateKey, server: bool, issuer: Path | None = None
    ) -> tuple[Path, Path]:
        ca_cert = self._ca_certs[issuer or self.ca]
        key = ec.generate_private_key(ec.SECP256R1())
        usage = x509.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.ExtendedKeyUsageOID.CLIENT_AUTH
        builder = self._builder(name, ca_cert.subject, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert_path = self._write(name, builder.sign(ca_key, hashes.SHA256()), key)
        return cert_path, self.root / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


# --- the receiver (go-lumber) -------------------------------------------------------------


@pytest.fixture(scope="session")
def receiver_binary() -> str:
    # Go is a test dependency like Maven (tests/deps.sh checks for it): no silent skip.
    assert shutil.which("go"), "Go >= 1.21 is needed to build tests/lumberjack_receiver (tests/deps.sh)"
    out = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


class Receiver:
    def __init__(self, binary: str, workdir: Path, pki: Pki, port: int, client_ca: Path | None = None) -> None:
        self.binary, self.workdir, self.pki, self.port = binary, workdir, pki, port
        self.client_ca = client_ca or pki.ca
        self.out = workdir / f"received-{port}.jsonl"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Receiver:
        ready = self.workdir / f"ready-{self.port}"
        ready.unlink(missing_ok=True)
        cert, key = self.pki.server
        cmd = [self.binary, "-listen", f"127.0.0.1:{self.port}", "-cert", str(cert), "-key", str(key)]
        cmd += ["-client-ca", str(self.client_ca), "-out", str(self.out), "-ready", str(ready)]
        with (self.workdir / f"receiver-{self.port}.log").open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        wait_for(ready.exists, 10, "the receiver to listen")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def events(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line]

    def wait_count(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        return wait_for(lambda: (e := self.events()) and len(e) >= count and e, timeout, f"{count} events")


@pytest.fixture
def receivers(receiver_binary: str, tmp_path: Path, pki: Pki) -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def make(port: int | None = None, client_ca: Path | None = None) -> Receiver:
        receiver = Receiver(receiver_binary, tmp_path, pki, port or free_port(), client_ca).start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


# --- the stand-in -----------------------------------------------------------------------


class Standin:
    """filebeat.py started as the vendor unit starts Filebeat."""

    def __init__(self, home: Path, config: dict[str, Any]) -> None:
        self.home = home
        self.data = home / "data"
        self.config_file = home / "filebeat.yml"
        self.config_file.write_text("# Ansible managed\n" + yaml.safe_dump(config, sort_keys=False))
        self.config_file.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "filebeat.log"

    def command(self, *words: str) -> list[str]:
        paths = ["--path.home", str(self.home), "--path.config", str(self.home), "--path.data", str(self.data)]
        return [sys.executable, str(STANDIN), *words, "-c", str(self.config_file), *paths]

    def run(self, *words: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.command(*words), *extra], capture_output=True, text=True, check=False, timeout=60)

    def start(self) -> Standin:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*self.command(), "--environment", "systemd"], stdout=log, stderr=log)
        return self

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        self.proc = None
        return rc

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def registry(self) -> dict[str, Any]:
        path = self.data / "registry" / "filebeat" / "stand-in-states.json"
        return json.loads(path.read_text()) if path.exists() else {}


def config(pki: Pki, ports: list[int], inputs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    cert, key = pki.client
    output = {
        "hosts": [f"127.0.0.1:{p}" for p in ports],
        "loadbalance": True,
        "worker": 1,
        "ssl.enabled": True,
        "ssl.certificate_authorities": [str(pki.ca)],
        "ssl.certificate": str(cert),
        "ssl.key": str(key),
        "ssl.verification_mode": "full",
        "backoff.init": "200ms",
        "backoff.max": "1s",
        "timeout": "10s",
    }
    output.update(extra.pop("output", {}))
    return {
        "filebeat.inputs": inputs,
        "filebeat.shutdown_timeout": "5s",
        "filebeat.registry.flush": "0s",
        "queue.mem": {"events": 4096, "flush.min_events": 512, "flush.timeout": "200ms"},
        "output.logstash": output,
        "logging.level": "info",
        "logging.to_files": False,
        **extra,
    }


def zeek_input(name: str, paths: list[str], dataset: str, **options: Any) -> dict[str, Any]:
    item = {
        "type": "filestream",
        "id": f"wlcg-soc-zeek-{name}",
        "paths": paths,
        "fields_under_root": True,
        "fields": {"event": {"dataset": dataset, "module": "zeek"}},
        "file_identity.native": None,
        "prospector.scanner.check_interval": "200ms",
        "backoff.init": "100ms",
        "backoff.max": "200ms",
        "close.on_state_change.inactive": "5m",
        "close.on_state_change.renamed": False,
        "close.on_state_change.removed": False,
        "clean_removed": True,
    }
    item.update(options)
    return item


@pytest.fixture
def standins(tmp_path: Path) -> Iterator[Callable[..., Standin]]:
    started: list[Standin] = []

    def make(cfg: dict[str, Any], home: Path | None = None) -> Standin:
        home = home or tmp_path / f"filebeat-{len(started)}"
        home.mkdir(exist_ok=True)
        standin = Standin(home, cfg)
        started.append(standin)
        return standin

    yield make
    for standin in started:
        standin.kill()


@pytest.fixture(scope="module")
def zeek() -> dict[str, list[str]]:
    return zeek_logs.json_logs()


@pytest.fixture(scope="module")
def zeek_lines(zeek: dict[str, list[str]]) -> list[str]:
    """Every distinct line of every real Zeek JSON log (~870): volume for the tests that
    need more lines than one log has."""
    return list(dict.fromkeys(line for name in sorted(zeek) for line in zeek[name]))


def append(path: Path, lines: list[str]) -> None:
    with path.open("a") as handle:
        handle.writelines(line + "\n" for line in lines)
        handle.flush()


def stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as response:
        return json.load(response)


# --- tests ------------------------------------------------------------------------------


def test_zeek_lines_arrive_as_filebeat_events(receivers, standins, tmp_path, pki, zeek) -> None:
    receiver = receivers()
    logs = tmp_path / "zeek" / "current"
    logs.mkdir(parents=True)
    conn, dns = zeek["conn"][:60], zeek["dns"][:80]
    append(logs / "conn.log", conn)
    http_port = free_port()
    cfg = config(
        pki,
        [receiver.port],
        [
            zeek_input("conn", [str(logs / "conn.log")], "zeek.connection"),
            zeek_input("dns", [str(logs / "dns.log")], "zeek.dns"),
        ],
        **{"http.enabled": True, "http.host": "127.0.0.1", "http.port": http_port, "name": "sensor-1"},
    )
    standin = standins(cfg).start()
    receiver.wait_count(len(conn))
    append(logs / "dns.log", dns)  # a file that appears after the start is picked up too
    events = receiver.wait_count(len(conn) + len(dns))

    by_file: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_file.setdefault(event["log"]["file"]["path"], []).append(event)
    for name, lines, dataset in (("conn", conn, "zeek.connection"), ("dns", dns, "zeek.dns")):
        got = sorted(by_file[str(logs / f"{name}.log")], key=lambda e: e["log"]["offset"])
        assert [e["message"] for e in got] == lines
        offsets = [sum(len(line.encode()) + 1 for line in lines[:n]) for n in range(len(lines))]
        assert [e["log"]["offset"] for e in got] == offsets
        for event in got:
            assert event["event"] == {"dataset": dataset, "module": "zeek"}
            assert event["input"] == {"type": "filestream"}
            assert event["@metadata"] == {"beat": "filebeat", "type": "_doc", "version": ref.VERSION}
            assert event["agent"]["type"] == "filebeat" and event["agent"]["version"] == ref.VERSION
            assert event["agent"]["name"] == event["host"]["name"] == "sensor-1"
            assert event["ecs"] == {"version": "8.0.0"}
            assert TIMESTAMP.match(event["@timestamp"])
            assert "fields" not in event  # fields_under_root

    # A line still being written waits for its newline.
    partial = zeek["conn"][60]
    with (logs / "conn.log").open("a") as handle:
        handle.write(partial[:40])
    time.sleep(1.5)
    assert len(receiver.events()) == len(conn) + len(dns)
    with (logs / "conn.log").open("a") as handle:
        handle.write(partial[40:] + "\n")
    assert receiver.wait_count(len(conn) + len(dns) + 1)[-1]["message"] == partial

    total = len(conn) + len(dns) + 1
    numbers = wait_for(
        lambda: (s := stats(http_port))["filebeat"]["events"]["done"] == total and s, 10, "/stats to count"
    )
    assert numbers["filebeat"]["events"]["added"] == total and numbers["filebeat"]["events"]["active"] == 0
    assert numbers["libbeat"]["output"]["events"]["acked"] == total
    assert numbers["libbeat"]["output"]["events"]["failed"] == 0
    assert numbers["libbeat"]["pipeline"]["events"]["published"] == total
    assert numbers["filebeat"]["harvester"]["running"] == numbers["filebeat"]["harvester"]["open_files"] == 2
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=5) as response:
        beat = json.load(response)
    assert beat["beat"] == "filebeat" and beat["version"] == ref.VERSION and beat["name"] == "sensor-1"
    assert standin.stop() == 0


def test_zeekctl_rotation_loses_nothing(receivers, standins, tmp_path, pki, zeek_lines) -> None:
    """zeekctl renames current/conn.log out of the paths, its archiver then moves and
    gzips it: the open harvester follows the renamed file to its end, the new conn.log
    is read from its start."""
    receiver = receivers()
    current, archive = tmp_path / "current", tmp_path / "logs" / "2024-01-01"
    current.mkdir()
    archive.mkdir(parents=True)
    lines = zeek_lines
    first, late, second = lines[:100], lines[100:200], lines[200:300]
    log = current / "conn.log"
    append(log, first)
    item = zeek_input("conn", [str(log)], "zeek.connection")
    item.update({"backoff.init": "500ms", "backoff.max": "1s", "close.on_state_change.inactive": "2s"})
    standin = standins(config(pki, [receiver.port], [item])).start()
    receiver.wait_count(len(first))

    # The last lines before rotation land just before the rename: unread when it happens.
    append(log, late)
    rotated = current / "conn.00:00:00-01:00:00.log"
    log.rename(rotated)
    append(log, second)
    received = receiver.wait_count(300)
    time.sleep(3)  # past close.on_state_change.inactive: the rotated file's harvester closes
    with rotated.open("rb") as src, gzip.open(archive / "conn.00:00:00-01:00:00.log.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    rotated.unlink()
    time.sleep(1)
    received = receiver.events()
    assert sorted(e["message"] for e in received) == sorted(first + late + second)  # each line once
    before = set(first + late)
    assert [e["message"] for e in received if e["message"] in before] == first + late  # in file order
    assert standin.stop() == 0
    states = standin.registry()
    # clean_removed dropped the rotated file's state once its harvester was done; the new
    # conn.log is at its end.
    assert [s["source"] for s in states.values()] == [str(log)]
    assert next(iter(states.values()))["offset"] == log.stat().st_size


def test_receiver_outage_and_restart_lose_nothing(receivers, standins, tmp_path, pki, zeek_lines) -> None:
    port = free_port()
    receiver = receivers(port)
    log = tmp_path / "conn.log"
    lines = zeek_lines[:250]
    append(log, lines[:100])
    http_port = free_port()
    cfg = config(
        pki,
        [port],
        [zeek_input("conn", [str(log)], "zeek.connection")],
        **{"http.enabled": True, "http.host": "127.0.0.1", "http.port": http_port},
    )
    standin = standins(cfg).start()
    receiver.wait_count(100)

    def acked(count: int) -> None:
        # The stand-in has seen the ACK: stopping the receiver now cannot lose one in flight.
        wait_for(lambda: stats(http_port)["filebeat"]["events"]["done"] == count, 10, f"{count} ACKs")

    acked(100)
    receiver.stop()  # Logstash down: the stand-in retries with backoff, nothing is dropped
    append(log, lines[100:150])
    wait_for(lambda: stats(http_port)["libbeat"]["output"]["events"]["failed"] > 0, 10, "failed sends")
    receiver.start()
    receiver.wait_count(150)
    acked(150)
    receiver.stop()
    append(log, lines[150:200])
    time.sleep(1)
    assert standin.stop() == 0  # stopped while the receiver is down: lines 150-200 not acked
    offset = next(iter(standin.registry().values()))["offset"]
    assert offset == sum(len(line.encode()) + 1 for line in lines[:150])

    append(log, lines[200:250])
    receiver.start()
    standin.start()
    received = receiver.wait_count(250)
    time.sleep(1)
    received = receiver.events()
    assert [e["message"] for e in received] == lines  # at least once, and no acked line twice
    assert standin.stop() == 0


def test_mutual_tls_is_required(receivers, standins, tmp_path, pki) -> None:
    good = receivers()
    strange = receivers(client_ca=pki.other_ca)  # does not trust our client's CA
    inputs = [zeek_input("conn", [str(tmp_path / "conn.log")], "zeek.connection")]

    ok = standins(config(pki, [good.port], inputs)).run("test", "output")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "handshake... OK" in ok.stdout and "talk to server... OK" in ok.stdout

    refused = standins(config(pki, [strange.port], inputs)).run("test", "output")
    assert refused.returncode == 1 and "ERROR" in refused.stdout

    no_cert = config(pki, [good.port], inputs)
    del no_cert["output.logstash"]["ssl.certificate"], no_cert["output.logstash"]["ssl.key"]
    anonymous = standins(no_cert).run("test", "output")
    assert anonymous.returncode == 1 and "ERROR" in anonymous.stdout

    # The client checks the server too: a CA that did not sign the receiver's certificate.
    wrong_ca = config(pki, [good.port], inputs, output={"ssl.certificate_authorities": [str(pki.other_ca)]})
    untrusted = standins(wrong_ca).run("test", "output")
    assert untrusted.returncode == 1 and "certificate verify failed" in untrusted.stdout

    # An unknown client certificate sends nothing at run time either.
    intruder_cert, intruder_key = pki.other_client
    (tmp_path / "conn.log").write_text('{"uid": "C1"}\n')
    bad = config(
        pki,
        [good.port],
        inputs,
        output={"ssl.certificate": str(intruder_cert), "ssl.key": str(intruder_key)},
        **{"http.enabled": True, "http.host": "127.0.0.1", "http.port": (http_port := free_port())},
    )
    standin = standins(bad).start()
    wait_for(lambda: stats(http_port)["libbeat"]["output"]["events"]["failed"] > 0, 15, "refused sends")
    assert good.events() == []
    assert standin.stop() == 0


ROLE_CONFIG = """\
# Ansible managed
filebeat.inputs:
  - type: filestream
    id: wlcg-soc-zeek-conn
    paths: [/var/log/zeek/current/conn.log]
    fields_under_root: true
    fields: {event: {dataset: zeek.connection, module: zeek}}
    file_identity.native: ~
    prospector.scanner.check_interval: 10s
    close.on_state_change.inactive: 5m
    close.on_state_change.renamed: false
    close.on_state_change.removed: false
    clean_removed: true
    ignore_older: 48h
    clean_inactive: 72h
  - type: filestream
    id: wlcg-soc-flows-netflow
    paths: [/var/lib/wlcg-soc/flows/nfacctd-*.json]
    fields_under_root: true
    fields: {event: {dataset: netflow.flow, module: netflow}}
filebeat.registry.path: /var/lib/filebeat/registry
filebeat.shutdown_timeout: 5s
queue.mem: {events: 4096, flush.min_events: 2048, flush.timeout: 1s}
output.logstash:
  hosts: ["ls1.example.org:5044", "ls2.example.org:5044"]
  loadbalance: true
  worker: 1
  ssl.enabled: true
  ssl.certificate_authorities: [/etc/filebeat/certs/ca.crt]
  ssl.certificate: /etc/filebeat/certs/filebeat.crt
  ssl.key: /etc/filebeat/certs/filebeat.key
  ssl.verification_mode: full
http.enabled: true
http.host: localhost
http.port: 5066
logging.level: info
logging.to_files: false
"""


def _test_config(tmp_path: Path, text: str, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "filebeat.yml"
    path.write_text(text)
    path.chmod(0o600)
    cmd = [sys.executable, str(STANDIN), "test", "config", "-c", str(path), "--path.home", str(tmp_path), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)


def test_test_config_accepts_the_role_config_and_refuses_unknown_keys(tmp_path: Path) -> None:
    ok = _test_config(tmp_path, ROLE_CONFIG)
    assert ok.returncode == 0 and ok.stdout.strip() == "Config OK", ok.stderr
    # Documented but not enforced by Filebeat: reported, not refused.
    assert "close.on_state_change.removed is disabled, so clean_removed must be too" in ok.stderr

    typo = _test_config(
        tmp_path, ROLE_CONFIG.replace("close.on_state_change.inactive", "close.on_state_change.inactiv")
    )
    assert typo.returncode == 1 and "unknown key 'close.on_state_change.inactiv'" in typo.stderr
    output_typo = _test_config(tmp_path, ROLE_CONFIG.replace("loadbalance", "load_balance"))
    assert output_typo.returncode == 1 and "'output.logstash.load_balance'" in output_typo.stderr
    duplicate = _test_config(tmp_path, ROLE_CONFIG.replace("wlcg-soc-flows-netflow", "wlcg-soc-zeek-conn"))
    assert duplicate.returncode == 1 and 'duplicated IDs: "wlcg-soc-zeek-conn"' in duplicate.stderr
    bad_mode = _test_config(tmp_path, ROLE_CONFIG.replace("verification_mode: full", "verification_mode: partial"))
    assert bad_mode.returncode == 1 and "ssl.verification_mode" in bad_mode.stderr
    queue = _test_config(tmp_path, ROLE_CONFIG.replace("flush.min_events: 2048", "flush.min_events: 8192"))
    assert queue.returncode == 1 and "flush.min_events must be less events" in queue.stderr

    # Dotted keys are go-ucfg's shorthand for nesting: both spellings are one configuration.
    nested = ROLE_CONFIG.replace(
        "queue.mem: {events: 4096, flush.min_events: 2048, flush.timeout: 1s}",
        "queue:\n  mem:\n    events: 4096\n    flush: {min_events: 2048, timeout: 1s}",
    )
    assert ref.expand(yaml.safe_load(nested)) == ref.expand(yaml.safe_load(ROLE_CONFIG))
    assert _test_config(tmp_path, nested).returncode == 0
    assert ref.expand({"output.logstash": {"ssl.enabled": True}}) == {
        "output": {"logstash": {"ssl": {"enabled": True}}}
    }


def test_strict_perms(tmp_path: Path) -> None:
    path = tmp_path / "filebeat.yml"
    path.write_text(ROLE_CONFIG)
    path.chmod(0o664)
    cmd = [sys.executable, str(STANDIN), "test", "config", "-c", str(path)]
    refused = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    assert refused.returncode == 1
    assert f'config file ("{path}") can only be writable by the owner but the permissions are "-rw-rw-r--"' in (
        refused.stderr
    )
    relaxed = subprocess.run([*cmd, "--strict.perms=false"], capture_output=True, text=True, check=False, timeout=30)
    assert relaxed.returncode == 0 and "Config OK" in relaxed.stdout
    if os.geteuid() == 0:
        path.chmod(0o644)
        os.chown(path, 65534, 65534)
        foreign = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
        assert foreign.returncode == 1 and "must be owned by the user identifier (uid=0) or root" in foreign.stderr


def test_version_and_reference_table() -> None:
    out = subprocess.run(
        [sys.executable, str(STANDIN), "version"], capture_output=True, text=True, check=False, timeout=30
    )
    assert out.returncode == 0 and out.stdout.startswith(f"filebeat version {ref.VERSION} ")
    assert ref.duration("1h30m") == 5400 and ref.duration("500ms") == 0.5 and ref.duration(-1) == -1
    assert ref.bytesize("10GB") == 10**10 and ref.bytesize("512MiB") == 512 * 2**20
    for key, option in ref.OPTIONS.items():
        assert option.page.startswith("https://www.elastic.co/"), key


# --- output.kafka against a real broker ---------------------------------------------------


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The test process's broker (tests/kafka_broker.py), shared with the other module."""
    from kafka_broker import shared

    broker = shared(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


def kafka_config(broker: Any, inputs: list[dict[str, Any]], topic: str, **ssl: Any) -> dict[str, Any]:
    """filebeat.yml as the role renders it for a Kafka output, with mutual TLS."""
    output = {
        "hosts": [broker.bootstrap],
        "topic": topic,
        "required_acks": -1,
        "compression": "lz4",
        "client_id": "sensor1",
        "bulk_max_size": 512,
        "ssl.enabled": True,
        "ssl.certificate_authorities": [str(broker.pki["ca"])],
        "ssl.certificate": str(broker.pki["client_crt"]),
        "ssl.key": str(broker.pki["client_key"]),
        "ssl.verification_mode": "full",
        "backoff.init": "200ms",
        "backoff.max": "1s",
        "timeout": "10s",
        **ssl,
    }
    return {
        "filebeat.inputs": inputs,
        "filebeat.shutdown_timeout": "5s",
        "filebeat.registry.flush": "0s",
        "queue.mem": {"events": 4096, "flush.min_events": 512, "flush.timeout": "200ms"},
        "output.kafka": output,
        "logging.level": "info",
        "logging.to_files": False,
    }


def consume(broker: Any, topic: str, expected: int, timeout: float = 30) -> list[Any]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, **broker.client_tls(), group_id=None, auto_offset_reset="earliest")
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(records) < expected:
            for part in consumer.poll(timeout_ms=500).values():
                records += part
        # Anything more (a duplicate) would be on the topic by now.
        for part in consumer.poll(timeout_ms=1000).values():
            records += part
    finally:
        consumer.close()
    return records


def test_kafka_output_delivers_every_line_once(kafka, standins, tmp_path, zeek) -> None:
    kafka.create_topic("wlcg-soc.zeek", partitions=2)
    lines = zeek["conn"]
    log = tmp_path / "conn.log"
    append(log, lines)
    inputs = [zeek_input("conn", [str(log)], "zeek.connection")]
    filebeat = standins(kafka_config(kafka, inputs, "wlcg-soc.%{[event.module]}"))
    checked = filebeat.run("test", "config")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    filebeat.start()
    try:
        records = consume(kafka, "wlcg-soc.zeek", len(lines))
        size = log.stat().st_size
        wait_for(lambda: [s for s in filebeat.registry().values() if s.get("offset") == size], 20, "the registry")
    finally:
        assert filebeat.stop() == 0, filebeat.log.read_text()
    values = [json.loads(r.value) for r in records]
    assert sorted(v["message"] for v in values) == sorted(lines)  # every line exactly once
    for value in values:
        assert value["@metadata"] == {"beat": "filebeat", "type": "_doc", "version": ref.VERSION}
        assert value["event"] == {"dataset": "zeek.connection", "module": "zeek"}
        assert value["log"]["file"]["path"] == str(log) and isinstance(value["log"]["offset"], int)
        assert value["input"] == {"type": "filestream"} and value["agent"]["type"] == "filebeat"
        assert dt.datetime.fromisoformat(value["@timestamp"].replace("Z", "+00:00"))


def test_kafka_output_refuses_a_broker_of_another_ca(kafka, standins, tmp_path, zeek) -> None:
    kafka.create_topic("wlcg-soc-refused.zeek")
    log = tmp_path / "conn.log"
    append(log, zeek["conn"][:10])
    inputs = [zeek_input("conn", [str(log)], "zeek.connection")]
    cfg = kafka_config(kafka, inputs, "wlcg-soc-refused.%{[event.module]}",
                       **{"ssl.certificate_authorities": [str(kafka.pki["other_ca"])]})  # fmt: skip
    filebeat = standins(cfg).start()
    try:
        wait_for(lambda: "certificate verify failed" in filebeat.log.read_text(), 30, "the refused handshake")
        time.sleep(1)
    finally:
        assert filebeat.stop() == 0, filebeat.log.read_text()
    assert "Failed to connect to broker" in filebeat.log.read_text()
    assert consume(kafka, "wlcg-soc-refused.zeek", 1, timeout=3) == []
    assert all(state.get("offset", 0) == 0 for state in filebeat.registry().values())
