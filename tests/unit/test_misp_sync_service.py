"""The sync service as the misp_sync role installs and runs it, and the sensors' receiver.

The package is assembled as the role does (the collection's module_utils and the role's
``__main__.py`` in ``wlcg_soc_misp_sync``), run with ``python -m`` and the key on standard
input, against the MISP API double and a real memcached.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.wlcg.soc.plugins.module_utils.zeek_intel import INTEL_TYPES, parse
from conftest import ROOT, misp_event
from pymemcache.client.base import Client

ROLE = ROOT / "roles/misp_sync"
PACKAGE = "wlcg_soc_misp_sync"
RECEIVER = ROLE / "files/intel-receive.py"


def role_code() -> list[tuple[str, Path | None]]:
    """(file name, source) of the sync package as the role's vars list it (None: empty file)."""
    names = yaml.safe_load((ROLE / "vars/main.yml").read_text())["__misp_sync_module_utils"]
    return [(n, ROOT / "plugins/module_utils" / n) for n in names] + [
        ("__main__.py", ROLE / "files/__main__.py"),
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

    def run(self, *args: str, path: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
        self.config_path.write_text(json.dumps(self.config))
        return subprocess.run(
            [sys.executable, "-m", PACKAGE, "--config", str(self.config_path), *args],
            input=self.double.key,
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
