"""The nfacctd role's input checks (before any change) and its RedHat-family branch.

Every run here is in check mode on this machine with fake facts, so nothing changes
and the platform can be any we like.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import (
    ALMA9,
    DEBIAN12,
    ROOT,
    UNSUPPORTED,
    assert_platform_refused,
    checks_play,
    role_play,
    template_task,
    unsupported_platforms,
)

ROLE = ROOT / "roles/nfacctd"

# What the setup module reports on a collector with two networks.
HOST = {
    "default_ipv4": {"address": "192.0.2.10", "interface": "eth0"},
    "all_ipv4_addresses": ["192.0.2.10", "198.51.100.7"],
    "all_ipv6_addresses": ["2001:db8::10", "fe80::1"],
}
DEB = dict(DEBIAN12, **HOST)
ALMA = dict(ALMA9, **HOST)
RHEL = dict(ALMA, distribution="RedHat", distribution_version="9.5")

APPLY = """
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: wlcg.soc.nfacctd
"""
# Stop right after the input checks: the rest would touch this machine's packages.
VALIDATE = checks_play("nfacctd")
FIRST_CHANGE = "Install pmacct"
WILDCARD = "0.0.0.0"  # noqa: S104 (refused unless asked for)
DAEMON_TEMPLATES = {"pmacct.conf": ".conf", "collector.service": ".service"}
OTHER_TEMPLATES = ["allowed-exporters.lst", "kafka.conf", "nfacctd-cleanup.service", "nfacctd-cleanup.timer"]


GOOD_INPUT = [
    {"nfacctd_listen_address": "198.51.100.7", "nfacctd_port": 9995},
    {"nfacctd_listen_address": "[2001:DB8::10]", "nfacctd_allowed_exporters": ["2001:db8::/32"]},
    {"nfacctd_listen_address": "127.0.0.1"},
    {"nfacctd_listen_address": WILDCARD, "nfacctd_allow_wildcard": True},
    {"nfacctd_listen_address": "::", "nfacctd_allow_wildcard": True, "nfacctd_allowed_exporters": ["192.0.2.1"]},
    {"nfacctd_allowed_exporters": ["192.0.2.1", "198.51.100.0/24"], "nfacctd_firewall": "firewalld"},
    {"nfacctd_sflow_enabled": True, "nfacctd_port": 6343, "nfacctd_sflow_port": 6344},
    {"nfacctd_port": 6343},  # sFlow off: its port is free
    {"nfacctd_rotate_minutes": 1440, "nfacctd_refresh_seconds": 3600, "nfacctd_retention_days": 90},
    {"nfacctd_output_dir": "/srv/flows", "nfacctd_reader_group": "filebeat"},
    {
        "nfacctd_output": "kafka",
        "nfacctd_kafka_brokers": ["kafka1.example.org:9093", "[2001:db8::20]:9093"],
        "nfacctd_kafka_config": {"security.protocol": "ssl", "socket.keepalive.enable": True},
    },
    {
        "nfacctd_extra_settings": {
            "nfacctd_renormalize": True,
            "aggregate_primitives[netflow]": "/etc/x.lst",
            "print_cache_entries[netflow]": 259991,
        }
    },
    {"nfacctd_sflow_extra_settings": {"sfacctd_renormalize": True}},
]
GOOD_IDS = [
    "other-address",
    "ipv6",
    "loopback",
    "wildcard-opt-in",
    "ipv6-wildcard",
    "exporters",
    "sflow",
    "netflow-on-6343",
    "daily",
    "dir-and-group",
    "kafka",
    "extra",
    "sflow-extra",
]
BAD_INPUT = [
    # Ports: the argument spec refuses what is not a number, the checks the rest.
    ({"nfacctd_port": "netflow"}, "nfacctd_port"),
    ({"nfacctd_port": "20 55"}, "nfacctd_port"),
    ({"nfacctd_port": 70000}, "nfacctd_port (70000) must be a UDP port number"),
    ({"nfacctd_port": 0}, "nfacctd_port (0) must be a UDP port number"),
    ({"nfacctd_sflow_port": "sflow"}, "nfacctd_sflow_port"),
    ({"nfacctd_sflow_port": 65536}, "nfacctd_sflow_port (65536) must be a UDP port number"),
    (
        {"nfacctd_sflow_enabled": True, "nfacctd_sflow_port": 2055},
        "nfacctd_port and nfacctd_sflow_port are both 2055",
    ),
    # The listen address.
    ({"nfacctd_listen_address": WILDCARD}, "nfacctd_listen_address is 0.0.0.0, every address"),
    ({"nfacctd_listen_address": "[::]"}, "nfacctd_listen_address is ::, every address"),
    ({"nfacctd_listen_address": ""}, 'nfacctd_listen_address ("") must be one address'),
    ({"nfacctd_listen_address": "flows.example.org"}, "nfacctd_listen_address 'flows.example.org' is not an"),
    ({"nfacctd_listen_address": "192.0.2.300"}, "nfacctd_listen_address '192.0.2.300' is not an IPv4"),
    ({"nfacctd_listen_address": "192.0.2.10,198.51.100.7"}, "nfacctd_listen_address '192.0.2.10,198.51"),
    ({"nfacctd_listen_address": "203.0.113.5"}, "nfacctd_listen_address 203.0.113.5 is not an address of"),
    ({"nfacctd_allow_wildcard": "perhaps"}, "nfacctd_allow_wildcard"),
    # Exporters.
    ({"nfacctd_allowed_exporters": ["router.example.org"]}, "entry 'router.example.org' is not an IPv4"),
    ({"nfacctd_allowed_exporters": ["192.0.2.0/33"]}, "entry '192.0.2.0/33' is not an IPv4"),
    ({"nfacctd_allowed_exporters": ["2001:db8::/129"]}, "entry '2001:db8::/129' is not an IPv4"),
    ({"nfacctd_allowed_exporters": ["192.0.2.1; rm -rf /"]}, "entry '192.0.2.1; rm -rf /' is not"),
    ({"nfacctd_allowed_exporters": ["2001:db8::1"]}, "entry '2001:db8::1' is IPv6, but nfacctd_listen_address"),
    ({"nfacctd_allowed_exporters": {"a": 1}}, "nfacctd_allowed_exporters"),
    # Output.
    ({"nfacctd_output": "syslog"}, "nfacctd_output"),
    ({"nfacctd_output_dir": "/var/lib"}, "nfacctd_output_dir (/var/lib) must be an absolute path"),
    ({"nfacctd_output_dir": "/"}, "nfacctd_output_dir (/) must be"),
    ({"nfacctd_output_dir": "flows"}, "must be an absolute path"),
    ({"nfacctd_output_dir": "/srv/flows/"}, "nfacctd_output_dir (/srv/flows/) must be"),
    ({"nfacctd_output_dir": "/srv/../etc"}, "nfacctd_output_dir (/srv/../etc) must be"),
    ({"nfacctd_output_dir": "/srv/my flows"}, "nfacctd_output_dir (/srv/my flows) must be"),
    ({"nfacctd_rotate_minutes": 7}, "nfacctd_rotate_minutes (7) must be a number of minutes that divides a day"),
    ({"nfacctd_rotate_minutes": 2880}, "nfacctd_rotate_minutes (2880)"),
    ({"nfacctd_rotate_minutes": "hourly"}, "nfacctd_rotate_minutes"),
    ({"nfacctd_refresh_seconds": 1}, "nfacctd_refresh_seconds (1) must be a number of seconds from 5"),
    (
        {"nfacctd_rotate_minutes": 5, "nfacctd_refresh_seconds": 600},
        "nfacctd_refresh_seconds (600) must be a number of seconds from 5 to 3600, and at most one file",
    ),
    ({"nfacctd_retention_days": 0}, "nfacctd_retention_days (0) must be a number of days from 1"),
    ({"nfacctd_retention_days": "a week"}, "nfacctd_retention_days"),
    ({"nfacctd_reader_group": "Filebeat Readers"}, "nfacctd_reader_group (Filebeat Readers) must"),
    ({"nfacctd_reader_group": "root"}, "nfacctd_reader_group (root) must"),
    ({"nfacctd_user": "root"}, "nfacctd_user (root) and"),
    ({"nfacctd_user": "pm acct"}, "nfacctd_user (pm acct) and"),
    # Records.
    ({"nfacctd_aggregate": []}, "nfacctd_aggregate ([]) must be a non-empty list"),
    ({"nfacctd_aggregate": ["src_host", "dst host"]}, "nfacctd_aggregate ("),
    ({"nfacctd_sflow_aggregate": ["src_host", "DST_HOST"]}, "nfacctd_sflow_aggregate ("),
    ({"nfacctd_extra_settings": {"daemonize": True}}, "nfacctd_extra_settings key 'daemonize' is a setting"),
    ({"nfacctd_extra_settings": {"nfacctd_ip": WILDCARD}}, "key 'nfacctd_ip' is a setting the role manages"),
    ({"nfacctd_extra_settings": {"print_refresh_time[netflow]": 5}}, "key 'print_refresh_time[netflow]' is"),
    ({"nfacctd_extra_settings": {"kafka_topic": "x"}}, "key 'kafka_topic' is a setting"),
    ({"nfacctd_extra_settings": {"kafka_broker_host": "x"}}, "key 'kafka_broker_host' is a setting"),
    ({"nfacctd_extra_settings": {"print_output_file": "/srv/x.json"}}, "key 'print_output_file' is a setting"),
    ({"nfacctd_extra_settings": {"plugins": "memory"}}, "key 'plugins' is a setting"),
    ({"nfacctd_sflow_extra_settings": {"sfacctd_port": 1}}, "nfacctd_sflow_extra_settings key 'sfacctd_port'"),
    ({"nfacctd_extra_settings": {"Debug": True}}, "nfacctd_extra_settings must map pmacct settings"),
    (
        {"nfacctd_extra_settings": {"nfacctd_renormalize": "true\ndaemonize: true"}},
        "nfacctd_extra_settings must map pmacct settings",
    ),
    ({"nfacctd_extra_settings": {"networks_file": ["a", "b"]}}, "nfacctd_extra_settings must map"),
    ({"nfacctd_extra_settings": ["nfacctd_renormalize"]}, "nfacctd_extra_settings"),
    # Kafka.
    ({"nfacctd_output": "kafka"}, "nfacctd_kafka_brokers ([]) must list the Kafka brokers as host:port"),
    ({"nfacctd_output": "kafka", "nfacctd_kafka_brokers": ["kafka1"]}, "nfacctd_kafka_brokers ("),
    (
        {"nfacctd_output": "kafka", "nfacctd_kafka_brokers": ["ssl://kafka1:9093"]},
        "nfacctd_kafka_brokers (",
    ),
    (
        {"nfacctd_output": "kafka", "nfacctd_kafka_brokers": ["k:9092"], "nfacctd_kafka_topic": "soc flows"},
        "nfacctd_kafka_topic (soc flows) must be a Kafka topic name",
    ),
    (
        {"nfacctd_output": "kafka", "nfacctd_kafka_brokers": ["k:9092"], "nfacctd_sflow_kafka_topic": "a/b"},
        "nfacctd_sflow_kafka_topic (a/b) must be a Kafka topic name",
    ),
    (
        {
            "nfacctd_output": "kafka",
            "nfacctd_kafka_brokers": ["k:9092"],
            "nfacctd_kafka_config": {"ssl.ca.location": "/a\nglobal, x, y"},
        },
        "nfacctd_kafka_config must map librdkafka settings",
    ),
    # Firewall, EPEL.
    ({"nfacctd_firewall": "iptables"}, "nfacctd_firewall"),
    ({"nfacctd_firewall": "firewalld", "nfacctd_firewalld_zone": "dmz; drop"}, "nfacctd_firewalld_zone (dmz;"),
    ({"nfacctd_epel_manage": "perhaps"}, "nfacctd_epel_manage"),
    ({"nfacctd_sflow_enabled": "perhaps"}, "nfacctd_sflow_enabled"),
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
            + [(DEB, extra) for extra, _needle in BAD_INPUT]
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
    assert_platform_refused(checks[APPLY].get(facts), "nfacctd", facts, FIRST_CHANGE)


@pytest.mark.parametrize(("extra", "needle"), BAD_INPUT)
def test_bad_input_names_the_variable(checks, extra, needle):
    res = checks[APPLY].get(DEB, extra)
    assert res.rc != 0, res.out
    assert needle in res.out, res.out
    assert FIRST_CHANGE not in res.out, res.out


def test_no_default_route_needs_an_address(checks):
    res = checks[APPLY].get(NO_ROUTE)
    assert res.rc != 0, res.out
    assert "Its default, the default IPv4 address, is unknown on this host" in res.out, res.out
    assert FIRST_CHANGE not in res.out, res.out


def test_family_vars_define_the_same_keys():
    debian = yaml.safe_load((ROLE / "vars/Debian.yml").read_text())
    redhat = yaml.safe_load((ROLE / "vars/RedHat.yml").read_text())
    assert debian.keys() == redhat.keys()


def render(playbook, tmp_path: Path, family: str, facts: dict, extra: dict) -> dict[str, str]:
    """Render the role's templates with a family's settings; return them by file name."""
    daemon_task = """
    - wlcg_soc_render:
        src: "{role}/templates/{src}.j2"
        dest: "{tmp}/{{{{ item.name }}}}{suffix}"
        mode: "0644"
      loop: "{{{{ __nfacctd_daemons }}}}"
"""
    daemon_tasks = "".join(
        daemon_task.format(role=ROLE, src=src, tmp=tmp_path, suffix=suffix) for src, suffix in DAEMON_TEMPLATES.items()
    )
    others = template_task(ROLE, tmp_path, {f"{t}.j2": t for t in OTHER_TEMPLATES})
    packages = f"""
    - wlcg_soc_render:
        content: "{{{{ __nfacctd_packages | to_json }}}} {{{{ __nfacctd_epel_release }}}}"
        dest: "{tmp_path}/packages"
        mode: "0644"
"""
    text = role_play(ROLE, family, daemon_tasks + others + packages)
    res = playbook(text, facts, extra, check=False)
    assert res.rc == 0, res.out
    return {p.name: p.read_text() for p in tmp_path.iterdir() if p.is_file() and p.name != "play.yml"}


def settings(conf: str) -> list[str]:
    """A pmacct configuration's settings, without comments and blank lines."""
    return [line for line in conf.splitlines() if line and not line.startswith("!")]


def test_redhat_branch_renders(playbook, tmp_path):
    out = render(playbook, tmp_path, "RedHat", ALMA, {})
    assert out["packages"] == '["pmacct", "iproute"] epel-release'
    conf = out["nfacctd.conf"]
    assert conf.startswith("!")
    assert "! Ansible managed" in conf.splitlines()[:3]
    assert settings(conf) == [
        "daemonize: false",
        "nfacctd_ip: 192.0.2.10",
        "nfacctd_port: 2055",
        "nfacctd_time_new: true",
        "timestamps_utc: true",
        "timestamps_rfc3339: true",
        "files_umask: 027",
        "plugins: print[netflow]",
        "aggregate[netflow]: src_host, dst_host, src_port, dst_port, proto, tos, tcpflags, in_iface, out_iface,"
        " peer_src_ip, sampling_rate, export_proto_version, timestamp_start, timestamp_end",
        "print_output[netflow]: json",
        "print_output_file[netflow]: /var/lib/wlcg-soc/flows/nfacctd-%Y%m%d-%H%M.json",
        "print_output_file_append[netflow]: true",
        "print_refresh_time[netflow]: 60",
        "print_history[netflow]: 60m",
        "print_history_roundoff[netflow]: mh",
    ]
    # sFlow is off by default: nfacctd only.
    assert "sfacctd.conf" not in out and "sfacctd.service" not in out
    unit = out["nfacctd.service"]
    assert "# Ansible managed" in unit.splitlines()[:3]
    for line in (
        "User=nfacctd",
        "ExecStart=/usr/sbin/nfacctd -f /etc/wlcg-soc/nfacctd/nfacctd.conf",
        "KillSignal=SIGINT",
        "KillMode=control-group",
        "StateDirectory=nfacctd",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/wlcg-soc/flows",
        "WantedBy=multi-user.target",
    ):
        assert f"\n{line}\n" in unit, line
    cleanup = out["nfacctd-cleanup.service"]
    assert (
        "\nExecStart=/usr/bin/find /var/lib/wlcg-soc/flows -maxdepth 1 -type f"
        " ( -name nfacctd-*.json -o -name sfacctd-*.json ) -mmin +10080 -print -delete\n"
    ) in cleanup
    assert "\nUser=nfacctd\n" in cleanup and "\nReadWritePaths=/var/lib/wlcg-soc/flows\n" in cleanup
    assert "\nOnCalendar=hourly\n" in out["nfacctd-cleanup.timer"]


def test_rhel_takes_epel_from_fedora(playbook, tmp_path):
    out = render(playbook, tmp_path, "RedHat", RHEL, {})
    assert out["packages"].endswith(" https://dl.fedoraproject.org/pub/epel/epel-release-latest-9.noarch.rpm")


def test_sflow_kafka_and_privileged_port_render(playbook, tmp_path):
    extra = {
        "nfacctd_listen_address": "2001:DB8::10",
        "nfacctd_port": 995,
        "nfacctd_sflow_enabled": True,
        "nfacctd_allowed_exporters": ["2001:DB8::/32"],
        "nfacctd_output": "kafka",
        "nfacctd_kafka_brokers": ["kafka1.example.org:9093", "[2001:db8::20]:9093"],
        "nfacctd_kafka_config": {"security.protocol": "ssl", "enable.ssl.certificate.verification": True},
        "nfacctd_sflow_extra_settings": {"sfacctd_renormalize": True, "sfacctd_counter_file": "/dev/null"},
    }
    out = render(playbook, tmp_path, "Debian", DEB, extra)
    nf, sf = settings(out["nfacctd.conf"]), settings(out["sfacctd.conf"])
    assert "nfacctd_ip: 2001:db8::10" in nf and "nfacctd_port: 995" in nf
    assert "nfacctd_allow_file: /etc/wlcg-soc/nfacctd/allowed-exporters.lst" in nf
    assert nf[nf.index("plugins: kafka[netflow]") + 2 :] == [
        "kafka_output[netflow]: json",
        "kafka_topic[netflow]: flows.netflow",
        "kafka_broker_host[netflow]: kafka1.example.org:9093,[2001:db8::20]:9093",
        "kafka_refresh_time[netflow]: 60",
        "kafka_config_file[netflow]: /etc/wlcg-soc/nfacctd/kafka.conf",
    ]
    assert sf[:3] == ["daemonize: false", "sfacctd_ip: 2001:db8::10", "sfacctd_port: 6343"]
    assert "sfacctd_allow_file: /etc/wlcg-soc/nfacctd/allowed-exporters.lst" in sf
    assert "sfacctd_time_new: true" in sf
    assert not [line for line in sf if line.startswith("nfacctd_")]
    assert sf[sf.index("plugins: kafka[sflow]") + 1] == (
        "aggregate[sflow]: src_host, dst_host, src_port, dst_port, proto, tos, tcpflags, in_iface, out_iface,"
        " peer_src_ip, sampling_rate, export_proto_version"
    )
    assert "kafka_topic[sflow]: flows.sflow" in sf
    assert sf[-2:] == ["sfacctd_renormalize: true", "sfacctd_counter_file: /dev/null"]
    assert settings(out["allowed-exporters.lst"]) == ["2001:db8::/32"]
    assert settings(out["kafka.conf"]) == [
        "global, security.protocol, ssl",
        "global, enable.ssl.certificate.verification, true",
    ]
    # Port 995 needs the one capability; Kafka output needs no writable flow directory.
    unit = out["nfacctd.service"]
    assert "\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n" in unit
    assert "ReadWritePaths" not in unit
    sunit = out["sfacctd.service"]
    assert "\nCapabilityBoundingSet=\nAmbientCapabilities=\n" in sunit
    assert "StateDirectory" not in sunit
    assert "\nExecStart=/usr/sbin/sfacctd -f /etc/wlcg-soc/nfacctd/sfacctd.conf\n" in sunit


def test_single_broker_and_short_intervals_render(playbook, tmp_path):
    extra = {
        "nfacctd_output": "kafka",
        "nfacctd_kafka_brokers": ["[2001:db8::20]:9093"],
        "nfacctd_rotate_minutes": 5,
    }
    nf = settings(render(playbook, tmp_path, "Debian", DEB, extra)["nfacctd.conf"])
    assert "kafka_broker_host[netflow]: 2001:db8::20" in nf
    assert "kafka_broker_port[netflow]: 9093" in nf
    assert not [line for line in nf if line.startswith("kafka_config_file")]
    extra = {"nfacctd_rotate_minutes": 15, "nfacctd_refresh_seconds": 30, "nfacctd_retention_days": 2}
    out = render(playbook, tmp_path, "Debian", DEB, extra)
    nf = settings(out["nfacctd.conf"])
    assert "print_history[netflow]: 15m" in nf
    assert "print_history_roundoff[netflow]: m" in nf
    assert "print_refresh_time[netflow]: 30" in nf
    assert re.search(r" -mmin \+2880 ", out["nfacctd-cleanup.service"])
