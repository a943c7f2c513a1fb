"""The filebeat role: its input checks (before any change), filebeat.yml, the unit and its
hardening rendered for both families, and the contract with the search tier (each Zeek log's
event.dataset is one the ingest router knows).

The role runs in check mode on this machine with fake facts, so nothing changes on it;
the templates are rendered into a temporary directory and parsed.
"""

from __future__ import annotations

import json
from pathlib import Path

import filebeat_reference
import yaml
import zeek_logs
from conftest import ALMA9, DEBIAN12, ROOT, probes_task, read_probes, role_play, template_task
from role_checks import input_check_tests

ROLE = ROOT / "roles/filebeat"
INGEST = ROOT / "roles/elasticsearch/files/ingest"

HOST = {
    "fqdn": "soc-sensor01.example.org",
    "default_ipv4": {"address": "192.0.2.40", "interface": "eth0"},
}
DEB = dict(DEBIAN12, **HOST)
ALMA = dict(ALMA9, **HOST)

# A sensor that is also a flow collector, shipping to two Logstash hosts.
SITE = {
    "filebeat_zeek": True,
    "filebeat_flows": True,
    "filebeat_logstash_hosts": ["ls1.example.org:5044", "ls2.example.org:5044"],
}

# The role's first task that would change the host: the checks come before it.
FIRST_CHANGE = "Install the tools the role uses"

OTHER_GOOD_INPUT = {
    "zeek-only": {"filebeat_flows": False},
    "flows-only": {"filebeat_zeek": False},
    "mirror": {
        "filebeat_install_method": "mirror",
        "filebeat_mirror_url": "https://mirror.example.org/elastic/8.x/apt",
        "filebeat_mirror_key_url": "https://mirror.example.org/elastic/GPG-KEY-elasticsearch",
    },
    "archive-url": {
        "filebeat_install_method": "archive",
        "filebeat_version": "8.19.7",
        "filebeat_archive_src": "https://mirror.example.org/filebeat-8.19.7-linux-x86_64.tar.gz",
        "filebeat_archive_checksum": "sha512:" + "0" * 128,
    },
    "archive-controller": {
        "filebeat_install_method": "archive",
        "filebeat_version": "8.19.7",
        "filebeat_archive_src": "/srv/dist/filebeat-8.19.7-linux-x86_64.tar.gz",
    },
    "preinstalled": {"filebeat_install_method": "preinstalled"},
    "kafka": {"filebeat_output": "kafka", "filebeat_kafka_hosts": ["kafka1.example.org:9093"]},
    "disk-queue": {"filebeat_queue": "disk", "filebeat_queue_disk_max_size": "20GB"},
    "site-certificate": {
        "filebeat_tls_certificate": "/pki/f.crt",
        "filebeat_tls_key": "/pki/f.key",
        "filebeat_tls_ca": "/pki/ca.crt",
    },
    "extra-settings": {"filebeat_extra_settings": {"logging.metrics.enabled": False, "name": "sensor-1"}},
    "short-logs-list": {"filebeat_zeek_logs": ["conn", "intel", "notice"], "filebeat_version": "8.19.7"},
}
BAD_INPUT = [
    ({"filebeat_install_method": "snap"}, "value of filebeat_install_method must be one of"),
    ({"filebeat_zeek": False, "filebeat_flows": False}, "Filebeat has nothing to read on case"),
    ({"filebeat_zeek_logs": ["conn", "conn"]}, 'filebeat_zeek_logs (["conn", "conn"]) must list Zeek log names'),
    ({"filebeat_zeek_logs": ["conn.log"]}, "must list Zeek log names (conn, dns, ...:"),
    ({"filebeat_zeek_log_dir": "logs/current"}, 'filebeat_zeek_log_dir ("logs/current") must be the absolute path'),
    ({"filebeat_flows_group": ""}, 'filebeat_flows_group ("") the group that may read them'),
    ({"filebeat_close_inactive": "5 minutes"}, 'filebeat_close_inactive ("5 minutes"), filebeat_ignore_older'),
    ({"filebeat_ignore_older": "5m"}, "filebeat_ignore_older (5m) must be longer than filebeat_close_inactive (5m)"),
    (
        {"filebeat_clean_inactive": "48h"},
        "filebeat_clean_inactive (48h) must be longer than filebeat_ignore_older (48h) plus filebeat_scan_interval",
    ),
    (
        {"filebeat_logstash_hosts": []},
        "filebeat_logstash_group (logstash) are used on filebeat_logstash_port, and it has no host(s)",
    ),
    ({"filebeat_logstash_hosts": ["https://ls1:5044"]}, 'filebeat_logstash_hosts (["https://ls1:5044"]) must list'),
    ({"filebeat_output": "kafka"}, "filebeat_output is kafka: filebeat_kafka_hosts ([]) must list the brokers"),
    ({"filebeat_output": "elasticsearch"}, "value of filebeat_output must be one of: logstash, kafka"),
    ({"filebeat_monitoring_port": 70000}, "filebeat_monitoring_port (70000) one or 0 (off)"),
    ({"filebeat_bulk_max_size": 0}, "filebeat_bulk_max_size (0) and filebeat_queue_mem_events"),
    ({"filebeat_queue_disk_max_size": "lots"}, 'filebeat_queue_disk_max_size ("lots") must be a size'),
    ({"filebeat_tls_certificate": "/pki/f.crt"}, "filebeat_tls_certificate, filebeat_tls_key and filebeat_tls_ca go"),
    ({"filebeat_user": "root"}, 'filebeat_user ("root") must be the name of an unprivileged system user'),
    ({"filebeat_version": "9.0.0"}, "of major version 8 (filebeat_major_version)"),
    ({"filebeat_install_method": "archive"}, 'filebeat_version ("") must be a version such as 8.19.7'),
    (
        {"filebeat_install_method": "archive", "filebeat_version": "8.19.7", "filebeat_archive_src": "https://x/f.tgz"},
        'with filebeat_archive_checksum ("") as ALGORITHM:HEX',
    ),
    ({"filebeat_install_method": "mirror"}, "filebeat_install_method is mirror: set filebeat_mirror_url"),
    (
        {"filebeat_extra_settings": {"output.logstash.hosts": ["x:1"], "queue.mem.events": 1}},
        "may not set those the role writes (filebeat.inputs, filebeat.registry, filebeat.shutdown_timeout, queue,"
        " output, http, logging.level, logging.to_files): output.logstash.hosts, queue.mem.events",
    ),
    ({"filebeat_extra_settings": {"bad key": 1}}, "must map Filebeat setting names"),
    ({"filebeat_log_level": "trace"}, "value of filebeat_log_level must be one of"),
]


PLATFORMS = {"debian12": DEB, "alma9": ALMA}
globals().update(input_check_tests("filebeat", SITE, PLATFORMS, OTHER_GOOD_INPUT, BAD_INPUT, FIRST_CHANGE))


# ------------------------------------------------------------------ rendering

TEMPLATES = ["filebeat.yml", "hardening.conf", "archive.service"]
PROBES = ["__filebeat_repo_url", "__filebeat_repo_key_url", "__filebeat_bin", "__filebeat_reader_groups"]


def render(playbook, tmp_path: Path, family: str, facts: dict, extra: dict, logstash: list[str] = ()) -> dict:
    """Render the role's templates with a family's settings; return them by name, and the probes."""
    add_hosts = "".join(
        f"""
    - ansible.builtin.add_host:
        name: {host}
        groups: [logstash]
"""
        for host in logstash
    )
    probes = probes_task(tmp_path, PROBES)
    templates = template_task(ROLE, tmp_path, {f"{t}.j2": t for t in TEMPLATES})
    res = playbook(role_play(ROLE, family, add_hosts + templates + probes), facts, extra, check=False)
    assert res.rc == 0, res.out
    out: dict = {name: (tmp_path / name).read_text() for name in TEMPLATES}
    out["probes"] = read_probes(tmp_path)
    return out


def settings(text: str) -> dict:
    """The YAML a template produced, after its Ansible managed header; a filebeat.yml is also
    checked against Filebeat's reference (every key, type and documented constraint)."""
    assert "# Ansible managed" in text.splitlines()[:3], text.splitlines()[:3]
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    if "filebeat.inputs" in data:
        filebeat_reference.validate(data)
        assert filebeat_reference.documented_constraints(data) == []
    return data


def test_debian_sensor_and_collector(playbook, tmp_path):
    out = render(playbook, tmp_path, "Debian", DEB, {"filebeat_zeek": True, "filebeat_flows": True}, ["ls1", "ls2"])
    conf = settings(out["filebeat.yml"])
    logs = yaml.safe_load((ROLE / "defaults/main.yml").read_text())["filebeat_zeek_logs"]
    inputs = conf["filebeat.inputs"]
    assert [i["id"] for i in inputs] == [f"wlcg-soc-zeek-{log}" for log in logs] + [
        "wlcg-soc-flows-netflow",
        "wlcg-soc-flows-sflow",
    ]
    for item in inputs:
        assert item["type"] == "filestream" and item["fields_under_root"] is True
        assert item["file_identity.native"] is None
        assert item["close.on_state_change.renamed"] is False and item["clean_removed"] is False
    by_id = {i["id"]: i for i in inputs}
    for log in logs:
        item = by_id[f"wlcg-soc-zeek-{log}"]
        assert item["paths"] == [f"/var/log/zeek/current/{log}.log"]
        assert item["fields"] == {"event": {"dataset": zeek_logs.dataset(log), "module": "zeek"}}
    assert by_id["wlcg-soc-flows-netflow"]["paths"] == ["/var/lib/wlcg-soc/flows/nfacctd-*.json"]
    assert by_id["wlcg-soc-flows-netflow"]["fields"]["event"] == {"dataset": "netflow.flow", "module": "netflow"}
    assert by_id["wlcg-soc-flows-sflow"]["fields"]["event"]["dataset"] == "sflow.flow"
    output = conf["output.logstash"]
    assert output["hosts"] == ["ls1:5044", "ls2:5044"] and output["loadbalance"] is True
    assert output["ssl.verification_mode"] == "full"
    assert output["ssl.certificate_authorities"] == ["/etc/filebeat/certs/ca.crt"]
    assert (output["ssl.certificate"], output["ssl.key"]) == (
        "/etc/filebeat/certs/filebeat.crt",
        "/etc/filebeat/certs/filebeat.key",
    )
    assert conf["queue.mem"] == {"events": 4096, "flush.min_events": 2048, "flush.timeout": "1s"}
    assert (conf["http.enabled"], conf["http.host"], conf["http.port"]) == (True, "localhost", 5066)
    assert "output.kafka" not in conf and "queue.disk" not in conf
    probes = out["probes"]
    assert probes["__filebeat_repo_url"] == "https://artifacts.elastic.co/packages/8.x/apt"
    assert probes["__filebeat_bin"] == "/usr/share/filebeat/bin/filebeat"
    assert probes["__filebeat_reader_groups"] == ["zeek", "nfacctd"]
    unit = out["hardening.conf"]
    assert "User=filebeat\n" in unit and "CapabilityBoundingSet=\n" in unit and "NoNewPrivileges=yes" in unit
    assert "ReadWritePaths=/var/lib/filebeat /var/log/filebeat\n" in unit and "ProtectSystem=strict" in unit


def test_redhat_archive_kafka_and_disk_queue(playbook, tmp_path):
    extra = {
        "filebeat_zeek": True,
        "filebeat_flows": False,
        "filebeat_zeek_logs": ["conn", "intel"],
        "filebeat_install_method": "archive",
        "filebeat_version": "8.19.7",
        "filebeat_output": "kafka",
        "filebeat_kafka_hosts": ["kafka1.example.org:9093"],
        "filebeat_queue": "disk",
        "filebeat_monitoring_port": 0,
        "filebeat_extra_settings": {"logging.metrics.enabled": False},
        # The inventory's own settings of the zeek role, which Filebeat follows.
        "zeek_log_dir": "/srv/zeek/logs",
        "zeek_group": "zeekers",
    }
    out = render(playbook, tmp_path, "RedHat", ALMA, extra)
    conf = settings(out["filebeat.yml"])
    assert [i["paths"] for i in conf["filebeat.inputs"]] == [
        ["/srv/zeek/logs/current/conn.log"],
        ["/srv/zeek/logs/current/intel.log"],
    ]
    kafka = conf["output.kafka"]
    assert kafka["hosts"] == ["kafka1.example.org:9093"] and kafka["topic"] == "wlcg-soc.%{[event.module]}"
    assert kafka["ssl.verification_mode"] == "full" and "output.logstash" not in conf
    assert conf["queue.disk"] == {"max_size": "10GB", "path": "/var/lib/filebeat/diskqueue"}
    assert conf["http.enabled"] is False and conf["logging.metrics.enabled"] is False
    probes = out["probes"]
    assert probes["__filebeat_repo_url"] == "https://artifacts.elastic.co/packages/8.x/yum"
    assert probes["__filebeat_bin"] == "/opt/wlcg-soc/filebeat/filebeat"
    assert probes["__filebeat_reader_groups"] == ["zeekers"]
    assert (
        "ExecStart=/opt/wlcg-soc/filebeat/filebeat --environment systemd -c /etc/filebeat/filebeat.yml"
        in (out["archive.service"])
    )


def test_every_routed_zeek_dataset_is_shipped():
    """The ingest router's datasets are each the dataset of a log the role ships by default."""
    router = json.loads((INGEST / "wlcg-soc-zeek.json").read_text())
    routed = {p["pipeline"]["name"].removeprefix("wlcg-soc-") for p in router["processors"] if "pipeline" in p}
    logs = yaml.safe_load((ROLE / "defaults/main.yml").read_text())["filebeat_zeek_logs"]
    assert routed <= {zeek_logs.dataset(log) for log in logs}, routed - {zeek_logs.dataset(log) for log in logs}
