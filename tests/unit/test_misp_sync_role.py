"""The misp_sync role's input checks (before any change), its platform check (the shared one,
for the sync host and the sensors' receiver entry point), and its RedHat-family branch.

Every run here is in check mode on this machine with fake facts, or renders the role's
templates into a temporary directory.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import (
    ALMA9,
    DEBIAN12,
    FIXTURES,
    ROOT,
    UNSUPPORTED,
    assert_platform_refused,
    checks_play,
    role_play,
    template_task,
    unsupported_platforms,
)

ROLE = ROOT / "roles/misp_sync"

GOOD = {
    "misp_sync_url": "https://misp.example.org",
    "misp_sync_key": "k" * 40,
    "misp_sync_memcached_servers": ["192.0.2.10:11211", "[2001:db8::10]:11211"],
    "misp_sync_sensors": [],
}
APPLY = """
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: wlcg.soc.misp_sync
"""
# Stop right after the input checks: the rest would touch this machine's packages.
VALIDATE = checks_play("misp_sync")
RECEIVER = APPLY + "        tasks_from: receiver\n"
FIRST_CHANGE = "Install the packages"
SEARCH = "https://search.example.org:9200"
WRITER_UNSET = "misp_sync_heartbeat_password must be the password of misp_sync_heartbeat_username (soc_writer)"
RECEIVER_FIRST_CHANGE = "Install SSH and Python"


BAD_INPUT = [
    ({"misp_sync_url": "misp.example.org"}, "misp_sync_url must be the MISP base URL"),
    ({"misp_sync_key": ""}, "not empty and not a CHANGE-ME placeholder"),
    ({"misp_sync_key": "CHANGE-ME-please"}, "not empty and not a CHANGE-ME placeholder"),
    ({"misp_sync_interval_minutes": 0}, "misp_sync_interval_minutes (0)"),
    ({"misp_sync_memcached_ttl": 60}, "misp_sync_memcached_ttl (60) longer than one interval"),
    ({"misp_sync_publish_window": "a month"}, "misp_sync_publish_window (a month)"),
    ({"misp_sync_memcached_servers": ["memcached01"]}, "misp_sync_memcached_servers entry memcached01"),
    ({"misp_sync_sensors": ["nosuchsensor"]}, "misp_sync_sensors entry nosuchsensor is not a host"),
    ({"misp_sync_min_prefix_ipv4": 33}, "misp_sync_min_prefix_ipv4 (33) must be 0-32"),
    ({"misp_sync_max_drop": 1}, "misp_sync_max_drop (1) a fraction"),
    ({"misp_sync_memory_max": "lots"}, "misp_sync_memory_max (lots) a systemd size"),
    ({"misp_sync_push_parallel": 0}, "misp_sync_push_parallel (0) must be at least 1"),
    # An entry must not close sshd's from="..." option nor add one.
    ({"misp_sync_push_from": ["192.0.2.1", '10.0.0.1",command="sh']}, 'misp_sync_push_from entry "10.0.0.1\\",'),
    ({"misp_sync_push_from": ["192.0.2.1,192.0.2.2"]}, 'misp_sync_push_from entry "192.0.2.1,192.0.2.2" must be'),
    ({"misp_sync_push_from": ["192.0.2.0/24 "]}, 'misp_sync_push_from entry "192.0.2.0/24 " must be'),
    ({"misp_sync_push_hosts": ["nosuchsync"]}, "misp_sync_push_hosts entry nosuchsync is not a host"),
    # The heartbeat is on with a host, by default the site's soc_elasticsearch_hosts.
    ({"misp_sync_heartbeat_hosts": [SEARCH]}, WRITER_UNSET),
    ({"soc_elasticsearch_hosts": [SEARCH], "misp_sync_heartbeat_password": "CHANGE-ME-writer"}, WRITER_UNSET),
    ({"misp_sync_heartbeat_hosts": [SEARCH], "misp_sync_heartbeat_password": "two\nlines"}, WRITER_UNSET),
    (
        {"misp_sync_heartbeat_hosts": ["http://search.example.org:9200"], "misp_sync_heartbeat_password": "pw"},
        'misp_sync_heartbeat_hosts entry "http://search.example.org:9200" must be an https URL',
    ),
    ({"misp_sync_heartbeat_timeout": 0}, "misp_sync_heartbeat_timeout (0) must be at least 1"),
    ({"misp_sync_heartbeat_data_stream": "Status"}, 'misp_sync_heartbeat_data_stream ("Status") a data stream'),
]
BAD_IDS = [
    "url",
    "empty-key",
    "placeholder-key",
    "interval",
    "ttl",
    "window",
    "memcached",
    "sensor",
    "prefix",
    "drop",
    "memory",
    "push-parallel",
    "push-from-quote",
    "push-from-comma",
    "push-from-space",
    "push-hosts",
    "heartbeat-no-password",
    "heartbeat-placeholder",
    "heartbeat-two-lines",
    "heartbeat-http",
    "heartbeat-timeout",
    "heartbeat-stream",
]


@pytest.fixture(scope="module")
def checks(playbook_cases):
    """Every input-check case below, in three ansible-playbook runs (one host per case): the
    checks alone, the role, and its receiver entry point, which stop at their checks."""
    unsupported = [(dict(DEBIAN12, **platform), GOOD) for platform in UNSUPPORTED.values()]
    return {
        VALIDATE: playbook_cases(VALIDATE, [(DEBIAN12, GOOD), (ALMA9, GOOD)]),
        APPLY: playbook_cases(APPLY, unsupported + [(DEBIAN12, dict(GOOD, **extra)) for extra, _needle in BAD_INPUT]),
        RECEIVER: playbook_cases(RECEIVER, unsupported),
    }


@pytest.mark.parametrize("facts", [DEBIAN12, ALMA9], ids=["debian12", "alma9"])
def test_good_input_passes_checks(checks, facts):
    res = checks[VALIDATE].get(facts, GOOD)
    assert res.rc == 0, res.out


@unsupported_platforms
def test_unsupported_platform_fails_first(checks, platform):
    facts = dict(DEBIAN12, **platform)
    assert_platform_refused(checks[APPLY].get(facts, GOOD), "misp_sync", facts, FIRST_CHANGE)


@unsupported_platforms
def test_receiver_refuses_unsupported_platform_first(checks, platform):
    facts = dict(DEBIAN12, **platform)
    assert_platform_refused(checks[RECEIVER].get(facts, GOOD), "misp_sync", facts, RECEIVER_FIRST_CHANGE)


@pytest.mark.parametrize(("extra", "needle"), BAD_INPUT, ids=BAD_IDS)
def test_bad_input_names_the_variable(checks, extra, needle):
    res = checks[APPLY].get(DEBIAN12, dict(GOOD, **extra))
    assert res.rc != 0, res.out
    assert needle in res.out, res.out
    assert FIRST_CHANGE not in res.out, res.out


def test_the_key_stays_out_of_the_output(playbook):
    key = "s3cr3t-automation-key-0123456789abcdef"
    res = playbook(APPLY, DEBIAN12, dict(GOOD, misp_sync_key=key + " with a space"))
    assert res.rc != 0, res.out
    assert key not in res.out, res.out


def test_the_heartbeat_password_stays_out_of_the_output(playbook):
    secret = "s3cr3t-writer-pw-0123456789"  # noqa: S105 - made up
    res = playbook(
        APPLY,
        DEBIAN12,
        dict(
            GOOD,
            misp_sync_heartbeat_hosts=[f"https://soc_writer:{secret}@search.example.org:9200"],
            misp_sync_heartbeat_password=secret + "\n",
        ),
    )
    assert res.rc != 0, res.out
    assert 'misp_sync_heartbeat_hosts entry "https://***@search.example.org:9200" must be' in res.out, res.out
    assert secret not in res.out, res.out


def test_family_vars_define_the_same_keys():
    debian = yaml.safe_load((ROLE / "vars/Debian.yml").read_text())
    redhat = yaml.safe_load((ROLE / "vars/RedHat.yml").read_text())
    assert debian.keys() == redhat.keys()


TEMPLATES = {"misp-sync.json": "misp-sync.json.j2", "misp-sync.service": "misp-sync.service.j2"}


def render(playbook, tmp_path: Path, family: str, facts: dict, extra: dict) -> dict[str, str]:
    text = role_play(ROLE, family, template_task(ROLE, tmp_path, {src: dest for dest, src in TEMPLATES.items()}))
    res = playbook(text, facts, dict(GOOD, **extra), check=False)
    assert res.rc == 0, res.out
    return {name: (tmp_path / name).read_text() for name in TEMPLATES}


def test_redhat_branch_renders(playbook, tmp_path):
    out = render(playbook, tmp_path, "RedHat", ALMA9, {})
    config = json.loads(out["misp-sync.json"])
    assert "Ansible managed" in config["_comment"]
    # EL's CA bundle verifies the MISP server.
    assert config["validate_certs"] is True
    assert config["ca_path"] == "/etc/pki/tls/certs/ca-bundle.crt"
    assert config["misp_url"] == GOOD["misp_sync_url"]
    assert config["misp_key_file"] == "-"
    assert config["memcached_servers"] == GOOD["misp_sync_memcached_servers"]
    # No filter set: the sync client's own defaults (TLP:RED left out) apply.
    assert config["filters"] == {}
    unit = out["misp-sync.service"]
    assert "# Ansible managed" in unit.splitlines()[:3]
    assert "\nUser=misp-sync\n" in unit
    assert "\nStandardInput=file:/etc/wlcg-soc/misp-sync.key\n" in unit
    assert "\nExecStart=/opt/wlcg-soc/misp-sync/venv/bin/python -m wlcg_soc_misp_sync " in unit


def test_debian_branch_uses_the_debian_ca_bundle(playbook, tmp_path):
    out = render(playbook, tmp_path, "Debian", DEBIAN12, {})
    config = json.loads(out["misp-sync.json"])
    assert config["ca_path"] == "/etc/ssl/certs/ca-certificates.crt"


def timeout_start(unit: str) -> int:
    return int(re.search(r"^TimeoutStartSec=(\d+)$", unit, re.M).group(1))


def test_the_runtime_bound_covers_the_fetch_the_writes_and_the_pushes(playbook, tmp_path):
    out = render(playbook, tmp_path, "Debian", DEBIAN12, {})
    config = json.loads(out["misp-sync.json"])
    # No sensor: the fetch (one 15-minute interval) and the writes.
    assert config["fetch_timeout"] == 900
    assert timeout_start(out["misp-sync.service"]) == 900 + 300
    assert "\nMemoryMax=2G\n" in out["misp-sync.service"]
    sensors = [f"sensor-{i}" for i in range(17)]
    extra = {"misp_sync_sensors": sensors, "misp_sync_fetch_timeout": 600, "misp_sync_push_timeout": 60}
    out = render(playbook, tmp_path, "Debian", DEBIAN12, extra)
    config = json.loads(out["misp-sync.json"])
    assert (config["push"]["timeout"], config["push"]["parallel"]) == (60, 8)
    assert len(config["push"]["targets"]) == 17
    # 17 sensors, 8 at once: three rounds of at most 60 seconds.
    assert timeout_start(out["misp-sync.service"]) == 600 + 300 + 3 * 60


HEARTBEAT = {"soc_elasticsearch_hosts": [SEARCH, "https://search2.example.org:9200"]}
WRITER_PASSWORD = "Writer-pw 0123456789"  # noqa: S105 - made up


def test_the_heartbeat_section_names_its_password_file_not_the_password(playbook, tmp_path):
    out = render(playbook, tmp_path, "Debian", DEBIAN12, dict(HEARTBEAT, misp_sync_heartbeat_password=WRITER_PASSWORD))
    config = json.loads(out["misp-sync.json"])
    assert config["heartbeat"] == {
        "hosts": HEARTBEAT["soc_elasticsearch_hosts"],
        "data_stream": "status-default",
        "username": "soc_writer",
        "password_file": "-",
        "ca_path": "/etc/ssl/certs/ca-certificates.crt",
        "timeout": 10,
        "host_name": "localhost",
    }
    assert WRITER_PASSWORD not in out["misp-sync.json"] + out["misp-sync.service"]
    # The fetch, the writes, then the heartbeat's bound.
    assert timeout_start(out["misp-sync.service"]) == 900 + 300 + 10
    # No host, no heartbeat: no section, and the bound as before.
    out = render(playbook, tmp_path, "Debian", DEBIAN12, {"misp_sync_heartbeat_password": WRITER_PASSWORD})
    assert "heartbeat" not in json.loads(out["misp-sync.json"])
    assert timeout_start(out["misp-sync.service"]) == 900 + 300


@pytest.mark.parametrize(("extra", "lines"), [({}, 1), (HEARTBEAT, 2)], ids=["key", "key-and-password"])
def test_the_key_file_holds_the_key_then_the_heartbeat_password(playbook, tmp_path, extra, lines):
    """What systemd hands to the service: root's alone, the key, then the password."""
    key_file = tmp_path / "misp-sync.key"
    tasks = f"""
    - ansible.builtin.include_role:
        name: wlcg.soc.misp_sync
        tasks_from: configure
      vars:
        __misp_sync_key_file: {key_file}
        __misp_sync_config: {tmp_path}/misp-sync.json
"""
    variables = dict(GOOD, misp_sync_heartbeat_password=WRITER_PASSWORD, **extra)
    res = playbook(role_play(ROLE, "Debian", tasks), DEBIAN12, variables, check=False)
    assert res.rc == 0, res.out
    assert key_file.read_text() == "\n".join([GOOD["misp_sync_key"], WRITER_PASSWORD][:lines]) + "\n"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert WRITER_PASSWORD not in res.out + (tmp_path / "misp-sync.json").read_text()


# The push keys on the sensors (tasks/authorize.yml), run for real on this machine: two sync
# hosts and a sensor, all local, each sync host with its own state directory and addresses.
PUSH_PLAY = """
- hosts: misp_sync
  gather_facts: false
  tasks:
    - wlcg_soc_facts:
        facts: "{{ fake_facts }}"
    - ansible.builtin.include_role:
        name: wlcg.soc.misp_sync
        tasks_from: authorize
"""
SYNC_HOSTS = {
    "sync-a": {"ansible_host": "192.0.2.11", "fake_facts": {"all_ipv4_addresses": ["192.0.2.11"]}},
    "sync-b": {
        "ansible_host": "sync-b.example.org",
        "fake_facts": {"all_ipv4_addresses": ["198.51.100.12"], "all_ipv6_addresses": ["2001:db8::12", "fe80::12"]},
        "misp_sync_push_from": ["203.0.113.0/24"],
    },
}
PUSH_FROM = {"sync-a": "192.0.2.11", "sync-b": "198.51.100.12,2001:db8::12,203.0.113.0/24"}


@pytest.fixture
def push(tmp_path, collections_path):
    """Run PUSH_PLAY with the sync hosts given (the misp_sync group); returns the output and
    the sensor's authorized_keys."""
    keys = tmp_path / "sensor/.ssh/authorized_keys"

    def run(sync_hosts=("sync-a", "sync-b"), *args: str, extra: dict | None = None) -> tuple[str, str]:
        local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        hosts = {name: dict(SYNC_HOSTS[name], misp_sync_state_dir=str(tmp_path / name), **local) for name in sync_hosts}
        for name in sync_hosts:  # the role's install.yml makes it
            (tmp_path / name / "ssh").mkdir(parents=True, exist_ok=True)
        inventory = tmp_path / "hosts.json"
        groups = {"misp_sync": {"hosts": hosts}}
        inventory.write_text(json.dumps({"all": {"hosts": {"sensor": local}, "children": groups}}))
        (tmp_path / "play.yml").write_text(PUSH_PLAY)
        variables = {
            "misp_sync_sensors": ["sensor"],
            "misp_sync_user": "root",
            "misp_sync_sensor_user": "root",
            "__misp_sync_sensor_home": str(tmp_path / "sensor"),
            **(extra or {}),
        }
        env = dict(
            os.environ,
            ANSIBLE_COLLECTIONS_PATH=collections_path,
            ANSIBLE_ACTION_PLUGINS=str(FIXTURES / "action"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_RETRY_FILES_ENABLED="0",
        )
        cmd = ["ansible-playbook", "-i", str(inventory), "play.yml", "-e", json.dumps(variables), *args]
        res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
        out = res.stdout + res.stderr
        assert res.returncode == 0, out
        return out, keys.read_text() if keys.is_file() else ""

    return run


def key_lines(tmp_path: Path, authorized_keys: str) -> dict[str, str]:
    """The sensor's authorized_keys by sync host (the comment line before each key), each key
    checked against that host's public key."""
    lines = authorized_keys.splitlines()
    found = {}
    for comment, line in itertools.pairwise(lines):
        if comment.startswith("# sync-"):
            host = comment[2:]
            public = (tmp_path / host / "ssh/id_ed25519.pub").read_text().split()[:2]
            # The key's comment: misp_sync_user (root here) at the sync host.
            assert line.endswith(" ".join(public) + f" root@{host}"), line
            found[host] = line
    assert len([line for line in lines if not line.startswith("#")]) == len(found), authorized_keys
    return found


def changed(out: str) -> dict[str, int]:
    return {host: int(n) for host, n in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", out, re.M)}


def test_push_keys_of_two_sync_hosts_coexist_restricted(push, tmp_path):
    out, keys = push()
    found = key_lines(tmp_path, keys)
    assert set(found) == {"sync-a", "sync-b"}, keys
    receiver = (
        'command="/usr/bin/python3 /usr/local/libexec/wlcg-soc-intel-receive.py /var/lib/wlcg-soc/intel/misp.intel"'
    )
    for host, line in found.items():
        assert line.startswith(f'restrict,from="{PUSH_FROM[host]}",{receiver} ssh-ed25519 '), line
    assert (tmp_path / "sensor/.ssh/authorized_keys").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "sensor/.ssh").stat().st_mode & 0o777 == 0o700

    # Idempotent; a run of one sync host keeps the other's key.
    out, again = push()
    assert changed(out) == {"sync-a": 0, "sync-b": 0}, out
    assert again == keys
    out, alone = push(("sync-a", "sync-b"), "--limit", "sync-b")
    assert changed(out) == {"sync-b": 0}, out
    assert alone == keys

    # Check mode: a new address is reported, nothing is written.
    nat = {"misp_sync_push_from": ["10.1.0.0/16"]}
    out, checked = push(("sync-a", "sync-b"), "--check", "--limit", "sync-a", extra=nat)
    assert changed(out)["sync-a"] > 0, out
    assert checked == keys

    # A sync host no longer listed loses its key at the next run of another.
    out, after = push(("sync-b",))
    assert set(key_lines(tmp_path, after)) == {"sync-b"}, after
    assert key_lines(tmp_path, after)["sync-b"] == found["sync-b"]
