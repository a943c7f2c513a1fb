"""The Zeek double's log writing (tests/zeek_double): what the lab's pipelines read."""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

DOUBLE = Path(__file__).resolve().parents[1] / "zeek_double"

CONN = [
    {"ts": 1507220435.123456, "uid": "C1", "id.orig_h": "10.0.0.1", "proto": "tcp"},
    {"ts": 1507220436.5, "uid": "C2", "id.orig_h": "10.0.0.2", "proto": "udp"},
]
DNS = [{"ts": "2024-05-01T10:00:00.000000Z", "uid": "C1", "query": "example.org"}]


def corpus(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "conn.log").write_text("".join(json.dumps(r) + "\n" for r in CONN))
    (directory / "dns.log").write_text("".join(json.dumps(r) + "\n" for r in DNS))
    return directory


def wait_for_lines(path: Path, count: int) -> list[dict]:
    for _attempt in range(100):
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return [json.loads(line) for line in path.read_text().splitlines()]
        time.sleep(0.1)
    raise AssertionError(f"{path}: fewer than {count} lines")


def test_replay_stamps_each_record_now_in_its_own_format(tmp_path):
    before = time.time()
    corpus_dir, out = corpus(tmp_path / "corpus"), tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(DOUBLE / "replay.py"), str(corpus_dir), str(out), "--seconds", "0.3"])
    try:
        conn = wait_for_lines(tmp_path / "out/conn.log", 2)
        dns = wait_for_lines(tmp_path / "out/dns.log", 1)
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    after = time.time()
    assert [{k: v for k, v in r.items() if k != "ts"} for r in conn] == [
        {k: v for k, v in r.items() if k != "ts"} for r in CONN
    ]
    assert all(isinstance(r["ts"], float) and before <= r["ts"] <= after for r in conn)
    assert conn[0]["ts"] <= conn[1]["ts"]
    moment = datetime.datetime.strptime(dns[0]["ts"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    assert before - 1 <= moment <= after
    assert dns[0]["query"] == "example.org"


@pytest.mark.parametrize("logger", [True, False], ids=["logger", "manager-writes"])
def test_zeekctl_start_points_current_at_the_log_node(tmp_path, logger):
    prefix = tmp_path / "zeek"
    (prefix / "lib/zeekctl-double").mkdir(parents=True)
    for path in DOUBLE.glob("*.py"):
        shutil.copy(path, prefix / "lib/zeekctl-double" / path.name)
    shutil.copytree(DOUBLE / "bin", prefix / "bin")
    (prefix / "etc").mkdir()
    spool, logs = tmp_path / "spool", tmp_path / "logs"
    spool.mkdir()
    logs.mkdir()
    (prefix / "etc/zeekctl.cfg").write_text(f"SpoolDir = {spool}\nLogDir = {logs}\n")
    nodes = "[manager]\ntype=manager\nhost=localhost\n\n[worker-1]\ntype=worker\nhost=localhost\ninterface=lo\n"
    if logger:
        nodes = "[logger-1]\ntype=logger\nhost=localhost\n\n" + nodes
    (prefix / "etc/node.cfg").write_text(nodes)
    corpus(prefix / "share/zeek-double/replay")
    zeekctl = [sys.executable, str(prefix / "lib/zeekctl-double/zeekctl.py")]
    # The nodes outlive zeekctl (as under systemd): no pipe for them to hold open.
    subprocess.run([*zeekctl, "start"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        writer = "logger-1" if logger else "manager"
        assert (logs / "current").resolve() == spool / writer
        # The first record of each log at once (the rest spread over a minute).
        assert wait_for_lines(logs / "current/conn.log", 1)[0]["uid"] == "C1"
        # Only the log node writes.
        assert sorted(p.name for p in spool.glob("*/")) == [writer]
    finally:
        subprocess.run([*zeekctl, "stop"], check=True, stdout=subprocess.DEVNULL)
