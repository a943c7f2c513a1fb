"""The memcached role's input checks (before any change) and its RedHat-family branch.

Every run here is in check mode on this machine with fake facts, so nothing changes
and the platform can be any we like.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import (
    ALMA9,
    DEBIAN12,
    ROOT,
    UNSUPPORTED,
    Case,
    assert_platform_refused,
    checks_play,
    role_play,
    template_task,
    unsupported_platforms,
)

ROLE = ROOT / "roles/memcached"

# What the setup module reports on a host of the pipeline network with 4 GB.
HOST = {
    "memtotal_mb": 3931,
    "default_ipv4": {"address": "192.0.2.10", "interface": "eth0"},
    "all_ipv4_addresses": ["192.0.2.10", "198.51.100.7"],
    "all_ipv6_addresses": ["2001:db8::10", "fe80::1"],
}
DEB = dict(DEBIAN12, **HOST)
ALMA = dict(ALMA9, **HOST)

APPLY = """
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: wlcg.soc.memcached
"""
# Stop right after the input checks: the rest would touch this machine's packages.
VALIDATE = checks_play("memcached")
FIRST_CHANGE = "Install memcached"
WILDCARD = "0.0.0.0"  # noqa: S104 (refused unless asked for)
TEMPLATES = ["memcached.conf", "sysconfig-memcached", "hardening.conf"]


GOOD_INPUT = [
    {"memcached_listen_address": ["192.0.2.10", "2001:db8::10", "127.0.0.1"]},
    {"memcached_listen_address": "192.0.2.10, [2001:db8::10]"},
    {"memcached_listen_address": WILDCARD, "memcached_allow_wildcard": True},
    {"memcached_memory_mb": 3931, "memcached_max_item_size": "512K"},
    {
        "memcached_extra_options": [
            "-t 4",
            "-vv",
            "--max-reqs-per-event=40",
            "-o modern,lru_crawler",
        ]
    },
]
GOOD_IDS = ["list", "string", "wildcard-opt-in", "all-ram", "extra-options"]
# An address of another host: the message names this one, so its host is localhost.
ELSEWHERE = {"memcached_listen_address": "203.0.113.5"}
BAD_INPUT = [
    # The wildcard, in its spellings, without the opt-in.
    ({"memcached_listen_address": WILDCARD}, "memcached_listen_address contains 0.0.0.0"),
    (
        {"memcached_listen_address": ["192.0.2.10", "::"]},
        "memcached_listen_address contains ::,",
    ),
    ({"memcached_listen_address": "[::]"}, "memcached_allow_wildcard to true"),
    (
        {
            "memcached_listen_address": [WILDCARD, "192.0.2.10"],
            "memcached_allow_wildcard": True,
        },
        "mixes a wildcard address with others",
    ),
    ({"memcached_listen_address": ""}, "memcached_listen_address is empty"),
    ({"memcached_listen_address": {"ip": "192.0.2.10"}}, "memcached_listen_address ({"),
    (
        {"memcached_listen_address": "cache.example.org"},
        "entry 'cache.example.org' is not an IPv4",
    ),
    ({"memcached_listen_address": "192.0.2.300"}, "entry '192.0.2.300' is not an IPv4"),
    (ELSEWHERE, "entry 203.0.113.5 is not an address of localhost"),
    ({"memcached_port": "memcache"}, "memcached_port"),
    ({"memcached_port": 70000}, "memcached_port (70000) must be a TCP port number"),
    ({"memcached_allow_wildcard": "perhaps"}, "memcached_allow_wildcard"),
    (
        {"memcached_memory_mb": 8192},
        "memcached_memory_mb (8192) must be a number of megabytes from 1",
    ),
    ({"memcached_memory_mb": "lots"}, "memcached_memory_mb"),
    (
        {"memcached_max_connections": 10},
        "memcached_max_connections (10) must be a number from 128",
    ),
    (
        {"memcached_max_item_size": "1g"},
        "memcached_max_item_size (1g) must be a multiple of 512k",
    ),
    ({"memcached_max_item_size": "1000k"}, "memcached_max_item_size (1000k)"),
    ({"memcached_max_item_size": "256k"}, "memcached_max_item_size (256k)"),
    (
        {"memcached_memory_mb": 2, "memcached_max_item_size": "2m"},
        "at most half of memcached_memory_mb (2 MB)",
    ),
    ({"memcached_extra_options": "-t 4"}, "memcached_extra_options"),
    (
        {"memcached_extra_options": ["-t 4; rm -rf /"]},
        "memcached_extra_options item '-t 4; rm -rf /': write",
    ),
    ({"memcached_extra_options": ["-t4"]}, "memcached_extra_options item '-t4': write"),
    ({"memcached_extra_options": ["-U 11211"]}, "'-U 11211' sets an option the role manages"),
    ({"memcached_extra_options": ["--udp-port=11211"]}, "'--udp-port=11211' sets an option"),
    ({"memcached_extra_options": ["--listen 0.0.0.0"]}, "'--listen 0.0.0.0' sets an option"),
    ({"memcached_extra_options": ["--lis=0.0.0.0"]}, "'--lis=0.0.0.0' sets an option"),
    ({"memcached_extra_options": ["-m 4096"]}, "'-m 4096' sets an option"),
    ({"memcached_extra_options": ["-u root"]}, "'-u root' sets an option"),
]
NO_ROUTE = dict(DEB, default_ipv4={})


@pytest.fixture(scope="module")
def checks(playbook_cases):
    """Every input-check case below, in two ansible-playbook runs (one host per case): the
    checks alone, and the role, which stops at its checks."""
    return {
        VALIDATE: playbook_cases(VALIDATE, [(DEB, None), (ALMA, None)] + [(DEB, extra) for extra in GOOD_INPUT]),
        APPLY: playbook_cases(
            APPLY,
            [(dict(DEB, **platform), None) for platform in UNSUPPORTED.values()]
            + [Case(DEB, extra, host="localhost" if extra == ELSEWHERE else None) for extra, _needle in BAD_INPUT]
            + [(NO_ROUTE, None)],
        ),
    }


@pytest.mark.parametrize("facts", [DEB, ALMA], ids=["debian12", "alma9"])
def test_defaults_pass_checks(checks, facts):
    res = checks[VALIDATE].get(facts)
    assert res.rc == 0, res.out


@pytest.mark.parametrize("extra", GOOD_INPUT, ids=GOOD_IDS)
def test_good_input_passes_checks(checks, extra):
    res = checks[VALIDATE].get(DEB, extra)
    assert res.rc == 0, res.out


@unsupported_platforms
def test_unsupported_family_fails_first(checks, platform):
    facts = dict(DEB, **platform)
    assert_platform_refused(checks[APPLY].get(facts), "memcached", facts, FIRST_CHANGE)


@pytest.mark.parametrize(("extra", "needle"), BAD_INPUT)
def test_bad_input_names_the_variable(checks, extra, needle):
    res = checks[APPLY].get(DEB, extra)
    assert res.rc != 0, res.out
    assert needle in res.out, res.out
    assert FIRST_CHANGE not in res.out, res.out


def test_no_default_route_needs_an_address(checks):
    res = checks[APPLY].get(NO_ROUTE)
    assert res.rc != 0, res.out
    assert "memcached_listen_address is empty. Its default, the default IPv4" in res.out, res.out
    assert FIRST_CHANGE not in res.out, res.out


def test_family_vars_define_the_same_keys():
    debian = yaml.safe_load((ROLE / "vars/Debian.yml").read_text())
    redhat = yaml.safe_load((ROLE / "vars/RedHat.yml").read_text())
    assert debian.keys() == redhat.keys()


def render(playbook, tmp_path: Path, family: str, facts: dict, extra: dict) -> dict[str, str]:
    """Render the role's templates with a family's settings; return them by template name."""
    text = role_play(ROLE, family, template_task(ROLE, tmp_path, {f"{t}.j2": t for t in TEMPLATES}))
    res = playbook(text, facts, extra, check=False)
    assert res.rc == 0, res.out
    return {name: (tmp_path / name).read_text() for name in TEMPLATES}


def test_redhat_branch_renders(playbook, tmp_path):
    out = render(playbook, tmp_path, "RedHat", ALMA, {"memcached_extra_options": ["-t 4"]})
    sysconfig = out["sysconfig-memcached"]
    assert sysconfig.startswith("#")
    assert "# Ansible managed" in sysconfig.splitlines()[:3]
    settings = [line for line in sysconfig.splitlines() if not line.startswith("#")]
    assert settings == [
        'PORT="11211"',
        'USER="memcached"',
        'MAXCONN="1024"',
        'CACHESIZE="1024"',
        'OPTIONS="-l 192.0.2.10 -U 0 -I 1m -t 4"',
    ]
    dropin = out["hardening.conf"]
    assert "# Ansible managed" in dropin.splitlines()[:3]
    assert "\n[Service]\n" in dropin
    assert "ProtectSystem=strict\n" in dropin
    assert "CapabilityBoundingSet=\nCapabilityBoundingSet=CAP_SETGID CAP_SETUID\n" in dropin
    assert "LimitNOFILE=1024\n" in dropin
    # The EL unit keeps no pidfile: no writable path, which would not exist there.
    assert "ReadWritePaths" not in dropin


def test_debian_branch_renders(playbook, tmp_path):
    extra = {"memcached_listen_address": ["192.0.2.10", "2001:DB8::10"], "memcached_port": 11311}
    out = render(playbook, tmp_path, "Debian", DEB, extra)
    conf = out["memcached.conf"]
    assert "# Ansible managed" in conf.splitlines()[:3]
    options = [line for line in conf.splitlines() if line.startswith("-")]
    assert options == [
        "-l 192.0.2.10,[2001:db8::10]",
        "-p 11311",
        "-U 0",
        "-m 1024",
        "-c 1024",
        "-I 1m",
        "-u memcache",
        "-P /run/memcached/memcached.pid",
    ]
    assert "ReadWritePaths=/run/memcached\n" in out["hardening.conf"]
