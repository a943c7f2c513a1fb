"""Verify the filebeat role on sensor, shipping to go-lumber's Beats server on pipe.

The data is real: the JSON logs Zeek wrote that zat's and parsezeeklogs' source
distributions ship (tests/zeek_logs.py), appended to zeekctl's live log directory as the
zeek user, and the flow files the real nfacctd and sfacctd write for traffic the sensor's
pmacctd probes export. Every line must arrive at the receiver once, tagged as the role
documents, also across a zeekctl rotation of conn.log.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml
from conftest import default_address

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests"))
import zeek_logs  # noqa: E402

# The logs the role ships by default, from its defaults (the scenario keeps them).
SHIPPED = yaml.safe_load((REPO / "roles/filebeat/defaults/main.yml").read_text())["filebeat_zeek_logs"]
VERSION = "8.19.7"
LIVE = "/var/log/zeek/current"
FLOW_DIR = "/var/lib/wlcg-soc/flows"
EVENTS = "/var/lib/lumberjack-receiver/events.jsonl"
FEED = "/root/feed"
CERTS = "/etc/filebeat/certs"
# nfacctd's and sfacctd's files and how the role tags them: prefix, dataset, module.
FLOW_INPUTS = [("nfacctd", "netflow.flow", "netflow"), ("sfacctd", "sflow.flow", "sflow")]
# The UDP traffic the probes export: (collector, destination port, export protocol version).
FLOWS = [("nfacctd", 40009, 9), ("sfacctd", 40013, 5)]
HARDENING = {
    "User": "filebeat",
    "Group": "filebeat",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "RestrictSUIDSGID": "yes",
    "MemoryDenyWriteExecute": "yes",
    "UMask": "0027",
}


@pytest.fixture(scope="module")
def sensor():
    return testinfra.get_host("podman://sensor")


@pytest.fixture(scope="module")
def pipe():
    return testinfra.get_host("podman://pipe")


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if result := check():
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def copy_to(container: str, files: dict[str, list[str]]) -> None:
    """Put each list of lines into <FEED>/<name> on the container (root's, 0700)."""
    with tempfile.TemporaryDirectory() as tmp:
        feed = Path(tmp) / "feed"
        feed.mkdir()
        for name, lines in files.items():
            (feed / name).write_text("".join(line + "\n" for line in lines))
        podman = shutil.which("podman")
        assert podman, "podman is needed on the controller"
        subprocess.run([podman, "exec", container, "rm", "-rf", FEED], check=True)
        subprocess.run([podman, "cp", str(feed), f"{container}:{FEED}"], check=True)
        subprocess.run([podman, "exec", container, "chmod", "-R", "go-rwx", FEED], check=True)


def as_zeek(sensor, script: str) -> None:
    """Run shell commands in zeekctl's live log directory as the zeek user, with the umask
    that keeps its logs to the zeek group (0640); root feeds it the files of FEED on stdin
    where a command reads `-`."""
    res = sensor.run("cd %s && runuser -u zeek -- sh -ec %s", LIVE, f"umask 027\n{script}")
    assert res.rc == 0, res.stderr


def append_as_zeek(sensor, pairs: list[tuple[str, str]]) -> None:
    """Append <FEED>/<source> to the live log <log>.log for each (source, log), as zeek."""
    for source, log in pairs:
        res = sensor.run("runuser -u zeek -- sh -ec %s < %s/%s", f"umask 027; cat >> {LIVE}/{log}.log", FEED, source)
        assert res.rc == 0, res.stderr


def received(pipe) -> list[dict]:
    text = pipe.run(f"cat {EVENTS}").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def lines_by_path(events: list[dict], prefix: str) -> Counter:
    return Counter(
        (e["log"]["file"]["path"], e["message"]) for e in events if e["log"]["file"]["path"].startswith(prefix)
    )


def flow_lines(sensor) -> Counter:
    """Every complete line of the collectors' files, by file (a line still being written,
    without its newline yet, is left for the next look, as Filebeat leaves it)."""
    out: Counter = Counter()
    for prefix, _dataset, _module in FLOW_INPUTS:
        for path in sensor.run(f"ls {FLOW_DIR}/{prefix}-*.json").stdout.split():
            complete = sensor.file(path).content_string.rpartition("\n")[0]
            out.update((path, line) for line in complete.splitlines() if line.strip())
    return out


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[str]]:
    logs = zeek_logs.json_logs()
    for name, lines in logs.items():
        assert len(set(lines)) == len(lines), f"{name}: repeated lines would hide a duplicate or a loss"
    return logs


@pytest.fixture(scope="module")
def conn_parts(corpus) -> list[list[str]]:
    """conn.log's lines in four parts: the first fed with the other logs, the rest across
    the rotation."""
    lines = corpus["conn"]
    size = -(-len(lines) // 4)
    parts = [lines[n : n + size] for n in range(0, len(lines), size)]
    assert len(parts) == 4 and all(parts)
    return parts


@pytest.fixture(scope="module")
def fed(sensor, pipe, corpus, conn_parts) -> dict[str, list[str]]:
    """Append every log of the corpus (conn.log's first part only) to the live directory,
    as zeek; send the traffic the flow probes export. Returns what was appended, by log."""
    files = {name: lines for name, lines in corpus.items() if name != "conn"}
    files |= {f"conn-{n}": part for n, part in enumerate(conn_parts, 1)}
    copy_to("sensor", files)
    appended = {name: lines for name, lines in corpus.items() if name != "conn"} | {"conn": conn_parts[0]}
    append_as_zeek(sensor, [(name, name) for name in corpus if name != "conn"] + [("conn-1", "conn")])
    target = default_address(pipe)
    sender = (
        "import socket\n"
        "for sport, dport in ((50009, 40009), (50013, 40013)):\n"
        "    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:\n"
        "        s.bind(('0.0.0.0', sport))\n"
        "        for _ in range(20):\n"
        f"            s.sendto(b'x' * 100, ({target!r}, dport))\n"
    )
    sensor.check_output("python3 -c %s", sender)
    return appended


# --- the package, the user, the files ---------------------------------------------------


def test_package_from_the_mirror_held_at_the_version(sensor):
    assert sensor.check_output("dpkg-query -W -f '${Version}' filebeat") == VERSION
    assert "filebeat" in sensor.check_output("apt-mark showhold").split()
    sources = sensor.file("/etc/apt/sources.list.d/wlcg-soc-filebeat.sources").content_string
    assert "URIs: http://127.0.0.1:8080" in sources
    assert "Signed-By: /etc/apt/keyrings/wlcg-soc-filebeat.asc" in sources
    # The vendor's unit and binary, from the package.
    owned = sensor.check_output("dpkg -L filebeat").splitlines()
    assert "/lib/systemd/system/filebeat.service" in owned
    assert "/usr/share/filebeat/bin/filebeat" in owned


def test_user_reads_through_the_log_groups_only(sensor):
    user = sensor.user("filebeat")
    assert user.exists and user.group == "filebeat"
    assert 0 < user.uid < 1000, "a system user, not root"
    assert user.shell == "/usr/sbin/nologin"
    assert set(sensor.check_output("id -nG filebeat").split()) == {"filebeat", "zeek", "nfacctd"}


def test_configuration_file(sensor):
    conf = sensor.file("/etc/filebeat/filebeat.yml")
    assert (conf.user, conf.group, conf.mode) == ("root", "filebeat", 0o640)
    d = sensor.file("/etc/filebeat")
    assert (d.user, d.group, d.mode) == ("root", "filebeat", 0o750)
    config = yaml.safe_load(conf.content_string)
    assert config["output.logstash"]["hosts"] == ["pipe:5044"]
    assert config["output.logstash"]["ssl.verification_mode"] == "full"
    assert config["queue.mem"]["events"] == 4096
    ids = [item["id"] for item in config["filebeat.inputs"]]
    assert ids == [f"wlcg-soc-zeek-{log}" for log in SHIPPED] + ["wlcg-soc-flows-netflow", "wlcg-soc-flows-sflow"]


def test_client_key_and_certificate(sensor):
    key = sensor.file(f"{CERTS}/filebeat.key")
    assert (key.user, key.group, key.mode) == ("root", "filebeat", 0o640)
    subject = sensor.check_output(f"openssl x509 -in {CERTS}/filebeat.crt -noout -subject -nameopt RFC2253")
    assert subject == "subject=CN=sensor"
    res = sensor.run(f"openssl verify -CAfile {CERTS}/ca.crt {CERTS}/filebeat.crt")
    assert res.rc == 0, res.stdout + res.stderr


# --- the service --------------------------------------------------------------------------


def test_service_runs_the_vendor_unit_with_the_drop_in(sensor):
    svc = sensor.service("filebeat")
    assert svc.is_running and svc.is_enabled
    out = sensor.check_output("systemctl show filebeat -p FragmentPath -p DropInPaths")
    props = dict(line.split("=", 1) for line in out.splitlines())
    assert props["FragmentPath"] in ("/lib/systemd/system/filebeat.service", "/usr/lib/systemd/system/filebeat.service")
    assert props["DropInPaths"] == "/etc/systemd/system/filebeat.service.d/50-wlcg-soc.conf"
    pid = sensor.check_output("systemctl show -P MainPID filebeat")
    argv = sensor.file(f"/proc/{pid}/cmdline").content.split(b"\0")[:-1]
    # The stand-in is a script: its interpreter, then the vendor unit's command line, the
    # environment variables expanded.
    assert [a.decode() for a in argv[1:]] == [
        "/usr/share/filebeat/bin/filebeat",
        "--environment",
        "systemd",
        "-c",
        "/etc/filebeat/filebeat.yml",
        "--path.home",
        "/usr/share/filebeat",
        "--path.config",
        "/etc/filebeat",
        "--path.data",
        "/var/lib/filebeat",
        "--path.logs",
        "/var/log/filebeat",
    ]


def test_service_hardening(sensor):
    out = sensor.check_output("systemctl show filebeat -p %s", ",".join(HARDENING))
    got = dict(line.split("=", 1) for line in out.splitlines())
    assert got == HARDENING


def test_process_has_no_privileges(sensor):
    pid = sensor.check_output("systemctl show -P MainPID filebeat")
    lines = sensor.file(f"/proc/{pid}/status").content_string.splitlines()
    status = {k: v.strip() for k, v in (line.split(":", 1) for line in lines)}
    uid, gid = sensor.user("filebeat").uid, sensor.group("filebeat").gid
    assert status["Uid"].split() == [str(uid)] * 4
    assert status["Gid"].split() == [str(gid)] * 4
    assert status["CapEff"] == status["CapPrm"] == status["CapBnd"] == status["CapAmb"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1"
    groups = {sensor.group(name).gid for name in ("filebeat", "zeek", "nfacctd")}
    assert set(map(int, status["Groups"].split())) == groups


def test_monitoring_endpoint_on_localhost_only(sensor):
    listening = sensor.check_output("ss -H -l -n -t").splitlines()
    ours = [line.split()[3] for line in listening if line.split()[3].endswith(":5066")]
    assert ours == ["127.0.0.1:5066"], listening


def test_test_output_as_the_service_user(sensor):
    """`filebeat test output` as filebeat: its key, the CA, the receiver's name and the
    mutual TLS handshake all work for the service user."""
    res = sensor.run(
        "runuser -u filebeat -- /usr/share/filebeat/bin/filebeat test output -c /etc/filebeat/filebeat.yml "
        "--path.home /usr/share/filebeat --path.config /etc/filebeat --path.data /var/lib/filebeat"
    )
    assert res.rc == 0, res.stdout + res.stderr
    assert "logstash: pipe:5044..." in res.stdout
    assert "talk to server... OK" in res.stdout


# --- the data -----------------------------------------------------------------------------


def check_event_fields(event: dict, dataset: str, module: str, hostname: str) -> None:
    assert event["event"] == {"dataset": dataset, "module": module}, event
    assert event["host"]["name"] == hostname
    assert event["input"]["type"] == "filestream"
    assert event["agent"]["type"] == "filebeat"


def test_zeek_lines_arrive_once(sensor, pipe, fed):
    expected = Counter((f"{LIVE}/{log}.log", line) for log in fed if log in SHIPPED for line in fed[log])
    assert set(fed) - set(SHIPPED), "the corpus has no log the role leaves out"

    def complete() -> list[dict] | None:
        events = received(pipe)
        return events if lines_by_path(events, f"{LIVE}/") >= expected else None

    events = wait_for(complete, 120, f"the {sum(expected.values())} Zeek lines at the receiver")
    got = lines_by_path(events, f"{LIVE}/")
    assert got == expected, f"extra or repeated: {list((got - expected).items())[:3]}"
    hostname = sensor.check_output("hostname")
    for event in events:
        path = event["log"]["file"]["path"]
        if path.startswith(f"{LIVE}/"):
            log = path.removeprefix(f"{LIVE}/").removesuffix(".log")
            check_event_fields(event, zeek_logs.dataset(log), "zeek", hostname)
    assert any(e["event"]["dataset"] == "zeek.connection" for e in events)


def test_the_logs_left_out_are_not_read(sensor, pipe, fed):
    left_out = sorted(set(fed) - set(SHIPPED))
    paths = {e["log"]["file"]["path"] for e in received(pipe)}
    assert not {f"{LIVE}/{log}.log" for log in left_out} & paths
    for log in left_out:
        assert sensor.file(f"{LIVE}/{log}.log").size > 0


def test_zeek_logs_are_the_zeek_groups_only(sensor, fed):
    conn = sensor.file(f"{LIVE}/conn.log")
    assert (conn.user, conn.group, conn.mode) == ("zeek", "zeek", 0o640)
    assert sensor.file(LIVE).linked_to == "/var/spool/zeek/logger-1"


def test_rotation_loses_and_duplicates_nothing(sensor, pipe, fed, conn_parts):
    """zeekctl's rotation: the logger renames conn.log to conn.<time>.log and opens a new
    conn.log; the archiver gzips the renamed file into <LogDir>/<date>/ and deletes it.
    Lines written just before the rename are read through the open file."""
    now = dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y-%m-%d-%H-%M-%S")
    archive = f"/var/log/zeek/{now:%Y-%m-%d}"
    rotated = f"conn.{stamp}.log"
    append_as_zeek(sensor, [("conn-2", "conn")])
    as_zeek(sensor, f"mv conn.log {rotated}")
    append_as_zeek(sensor, [("conn-3", "conn")])
    as_zeek(
        sensor,
        f"mkdir -p {archive}\ngzip -c {rotated} > {archive}/conn.{now:%H:%M:%S}-{now:%H:%M:%S}.log.gz\nrm {rotated}",
    )
    append_as_zeek(sensor, [("conn-4", "conn")])
    expected = Counter((f"{LIVE}/conn.log", line) for part in conn_parts for line in part)

    def complete() -> Counter | None:
        got = lines_by_path(received(pipe), f"{LIVE}/conn.log")
        return got if got >= expected else None

    got = wait_for(complete, 120, "every conn.log line across the rotation")
    assert got == expected, f"repeated: {list((got - expected).items())[:3]}"
    paths = {e["log"]["file"]["path"] for e in received(pipe)}
    assert not [p for p in paths if "conn." in p and not p.endswith("/conn.log")], paths


def test_mutual_tls(sensor, pipe):
    """The receiver takes the role's client certificate only: none, or one the site CA did
    not sign, is refused (the receiver logs why), the server verified by name."""
    base = f"openssl s_client -connect pipe:5044 -servername pipe -CAfile {CERTS}/ca.crt -verify_return_error"
    ok = sensor.run(f"sleep 2 | {base} -cert {CERTS}/filebeat.crt -key {CERTS}/filebeat.key")
    assert ok.rc == 0, ok.stdout + ok.stderr
    assert "Verify return code: 0 (ok)" in ok.stdout
    none = sensor.run(f"sleep 2 | {base}")
    assert none.rc != 0 and "alert certificate required" in none.stderr, none.stderr
    sensor.check_output(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=sensor "
        "-keyout /root/intruder.key -out /root/intruder.crt 2>/dev/null"
    )
    other = sensor.run(f"sleep 2 | {base} -cert /root/intruder.crt -key /root/intruder.key")
    assert other.rc != 0 and "alert unknown ca" in other.stderr, other.stderr
    journal = pipe.check_output("journalctl -u lumberjack-receiver --no-pager -o cat")
    assert "tls: client didn't provide a certificate" in journal
    assert "certificate signed by unknown authority" in journal


def test_flow_lines_arrive_once(sensor, pipe, fed):
    """The real collectors' files: nfacctd's NetFlow v9 and sfacctd's sFlow records of the
    traffic sent, each line once, tagged per collector."""
    target = default_address(pipe)

    def exported() -> Counter | None:
        lines = flow_lines(sensor)
        records = [(path, json.loads(line)) for path, line in lines]
        for prefix, port, version in FLOWS:
            if not any(
                path.startswith(f"{FLOW_DIR}/{prefix}-")
                and r.get("ip_dst") == target
                and r.get("port_dst") == port
                and r.get("export_proto_version") == version
                for path, r in records
            ):
                return None
        return lines

    wait_for(exported, 120, "the collectors to write the flows")

    def arrived() -> tuple[Counter, list[dict]] | None:
        lines, events = flow_lines(sensor), received(pipe)
        return (lines, events) if lines_by_path(events, f"{FLOW_DIR}/") == lines else None

    _lines, events = wait_for(arrived, 90, "every flow line at the receiver, once")
    hostname = sensor.check_output("hostname")
    flows = [e for e in events if e["log"]["file"]["path"].startswith(f"{FLOW_DIR}/")]
    for prefix, dataset, module in FLOW_INPUTS:
        ours = [e for e in flows if e["log"]["file"]["path"].startswith(f"{FLOW_DIR}/{prefix}-")]
        assert ours, prefix
        for event in ours:
            check_event_fields(event, dataset, module, hostname)


def test_stats_count_the_acknowledged_events(sensor, pipe, corpus):
    """Last: /stats counts every event the receiver acknowledged, none failed; the
    receiver holds exactly the lines written, each once."""
    stats_url = "http://localhost:5066/stats"
    script = f"import urllib.request; print(urllib.request.urlopen({stats_url!r}, timeout=10).read().decode())"
    zeek = Counter((f"{LIVE}/{log}.log", line) for log in corpus if log in SHIPPED for line in corpus[log])
    deadline = time.monotonic() + 60
    while True:
        events = received(pipe)
        stats = json.loads(sensor.check_output("python3 -c %s", script))
        written = zeek + flow_lines(sensor)
        got = Counter((e["log"]["file"]["path"], e["message"]) for e in events)
        acked = stats["libbeat"]["output"]["events"]["acked"]
        if (acked == len(events) and got == written) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert acked == len(events)
    assert got == written, (list((got - written).items())[:3], list((written - got).items())[:3])
    out = stats["libbeat"]["output"]
    assert out["type"] == "logstash"
    assert out["events"]["failed"] == 0 and out["write"]["errors"] == 0
    assert stats["filebeat"]["events"]["active"] == 0
