"""Verify the memcached role on memcached-server, as memcached-client sees it too."""

from __future__ import annotations

import json
import time

import pytest
import testinfra

CONF = "/etc/memcached.conf"
DROPIN = "/etc/systemd/system/memcached.service.d/50-wlcg-soc.conf"
PORT = 11211
KEY = "ip-src-192.0.2.1"


@pytest.fixture(scope="module")
def server():
    return testinfra.get_host("podman://memcached-server")


@pytest.fixture(scope="module")
def client():
    return testinfra.get_host("podman://memcached-client")


@pytest.fixture(scope="module")
def address(server) -> str:
    """The server's pipeline address: the source of its default route."""
    route = json.loads(server.check_output("ip -j -4 route get 192.0.2.1"))
    return route[0]["prefsrc"]


@pytest.fixture(scope="module")
def pid(server) -> int:
    return int(server.check_output("systemctl show -p MainPID --value memcached"))


def mc(client, *args: str):
    command = "python3 /usr/local/lib/memcache-client.py memcached-server" + " %s" * (len(args) + 1)
    return client.run(command, str(PORT), *args)


def test_systemd_is_running(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), state
    failed = host.run("systemctl --failed --no-legend --plain").stdout.strip()
    assert failed == "", failed


def test_service(server, client):
    assert server.package("memcached").is_installed
    svc = server.service("memcached")
    assert svc.is_running and svc.is_enabled
    assert not client.package("memcached").is_installed


def test_listens_on_the_pipeline_address_only(server, address):
    # ss cannot name memcached's sockets here (no CAP_SYS_PTRACE in the container): by port.
    tcp = server.check_output("ss -H -l -n -t").splitlines()
    mine = sorted(line.split()[3] for line in tcp if line.split()[3].endswith(f":{PORT}"))
    assert mine == [f"{address}:{PORT}"], tcp


def test_no_udp(server):
    udp = server.check_output("ss -H -l -n -u").splitlines()
    assert not [line for line in udp if line.split()[3].endswith(f":{PORT}")], udp
    # Nor on any other port: no UDP socket belongs to memcached's user.
    uid = server.check_output("id -u memcache")
    owners = server.check_output("awk 'FNR > 1 {print $8}' /proc/net/udp /proc/net/udp6").split()
    assert uid not in owners, "memcached holds a UDP socket"


def test_loopback_is_not_served(server):
    res = server.run(f"timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{PORT}'")
    assert res.rc != 0, "memcached answers on 127.0.0.1"


def test_client_reaches_the_server_by_name(server, client, address):
    assert client.check_output("getent hosts memcached-server").split()[0] == address


def test_client_sets_and_gets_a_key_with_ttl(client):
    # Set and read back in one exec: each `podman exec` can take seconds on a loaded host,
    # longer than a short TTL. The TTL is counted from our own clock, not from the exec.
    ttl = 5
    start = time.monotonic()
    mc_py = "python3 /usr/local/lib/memcache-client.py memcached-server"
    res = client.run(f"{mc_py} {PORT} set %s misp-event-4242 {ttl} && {mc_py} {PORT} get %s", KEY, KEY)
    assert res.rc == 0 and res.stdout.split() == ["STORED", "misp-event-4242"], (res.stdout, res.stderr)
    time.sleep(max(0.0, ttl + 2 - (time.monotonic() - start)))
    res = mc(client, "get", KEY)
    assert res.rc == 0 and res.stdout.strip() == "", "the key outlived its TTL"


def test_running_settings(client, address):
    """What memcached itself reports, from the client: the role's and the inventory's settings."""
    stats = dict(line.split(" ", 1) for line in mc(client, "stats", "settings").stdout.splitlines())
    assert stats["inter"] == address
    assert stats["tcpport"] == str(PORT)
    assert stats["udpport"] == "0"
    assert stats["maxbytes"] == str(256 * 1024 * 1024)
    assert stats["maxconns"] == "1024"
    assert stats["item_size_max"] == str(2 * 1024 * 1024)
    assert stats["num_threads"] == "2"
    assert stats["reqs_per_event"] == "40"


def test_config_file(server, address):
    conf = server.file(CONF)
    assert (conf.user, conf.group, conf.mode) == ("root", "root", 0o644)
    text = conf.content_string
    assert text.startswith("#") and "# Ansible managed" in text.splitlines()[:3]
    lines = [line for line in text.splitlines() if line.startswith("-")]
    assert lines == [
        f"-l {address}",
        f"-p {PORT}",
        "-U 0",
        "-m 256",
        "-c 1024",
        "-I 2m",
        "-u memcache",
        "-P /run/memcached/memcached.pid",
        "-t 2",
        "--max-reqs-per-event=40",
    ]


def test_dropin_file(server):
    dropin = server.file(DROPIN)
    assert (dropin.user, dropin.group, dropin.mode) == ("root", "root", 0o644)
    assert "# Ansible managed" in dropin.content_string.splitlines()[:3]


def test_runs_unprivileged(server, pid):
    assert server.check_output(f"ps -o user= -p {pid}") == "memcache"
    assert server.check_output(f"ps -o comm= -p {pid}") == "memcached"
    lines = server.file(f"/proc/{pid}/status").content_string.splitlines()
    status = {k: v.strip() for k, v in (line.split(":", 1) for line in lines)}
    # No capability left, none to regain: the bounding set holds only what -u needed.
    assert status["CapEff"] == status["CapPrm"] == status["CapAmb"] == "0000000000000000"
    assert status["CapBnd"] == "00000000000000c0"  # CAP_SETGID, CAP_SETUID
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"  # SystemCallFilter and friends are loaded


def test_hardening_configured(server):
    want = {
        "User": "",  # the unit starts as root; memcached drops to memcache itself
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "PrivateIPC": "yes",
        "ProtectHostname": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "ProtectClock": "yes",
        "ProtectProc": "invisible",
        "ProcSubset": "pid",
        "MemoryDenyWriteExecute": "yes",
        "LockPersonality": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "cap_setgid cap_setuid",
        "AmbientCapabilities": "",
        "SystemCallArchitectures": "native",
        "UMask": "0077",
        "LimitNOFILE": "1024",
        "ReadWritePaths": "/run/memcached",
    }
    props = ",".join([*want, "RestrictAddressFamilies"])
    out = server.check_output(f"systemctl show memcached -p {props}")
    got = dict(line.split("=", 1) for line in out.splitlines())
    assert {k: got[k] for k in want} == want
    assert set(got["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}


def test_sandbox_in_effect(server, pid):
    """The service's own mount namespace: read-only system, private /tmp, no homes."""
    mounts = {}
    for line in server.file(f"/proc/{pid}/mountinfo").content_string.splitlines():
        fields = line.split()
        mounts[fields[4]] = (fields[3], fields[5].split(","))
    assert "ro" in mounts["/"][1], mounts["/"]
    assert "rw" in mounts["/run/memcached"][1], mounts.get("/run/memcached")
    private_tmp = mounts["/tmp"]  # noqa: S108 (the service's view of /tmp)
    assert "systemd-private-" in private_tmp[0], private_tmp
    assert "/root" in mounts and "/home" in mounts
    assert server.file("/run/memcached/memcached.pid").content_string.strip() == str(pid)
