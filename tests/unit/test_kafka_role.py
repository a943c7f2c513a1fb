"""The kafka role's input checks (before any change), and its templates rendered for a
three-node group (each node's settings from its own inventory variables and those of the
others) and for the RedHat family."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ALMA9, DEBIAN12, FIXTURES, ROOT
from role_checks import input_check_tests

ROLE = ROOT / "roles/kafka"
HOST = {"fqdn": "kafka-a.example.org", "default_ipv4": {"address": "192.0.2.21", "interface": "eth0"}}
DEB = dict(DEBIAN12, **HOST)
ALMA = dict(ALMA9, **HOST)
FIRST_CHANGE = "Install Java and the tools the role uses"
# The checks' hosts (one per case) are the group.
SITE = {"kafka_group": "all"}

OTHER_GOOD_INPUT = {
    "archive": {"kafka_install_method": "archive", "kafka_archive_src": "/srv/dist/kafka_2.13-4.4.0.tgz"},
    "archive-url": {
        "kafka_install_method": "archive",
        "kafka_archive_src": "https://mirror.example.org/kafka/kafka_2.13-4.4.0.tgz",
        "kafka_archive_checksum": "sha512:" + "ab" * 64,
    },
    "preinstalled": {"kafka_install_method": "preinstalled", "kafka_home": "/opt/kafka"},
    "mirror": {"kafka_mirror_url": "https://mirror.example.org/apache/kafka/", "kafka_version": "4.1.1"},
    "cluster-id": {"kafka_cluster_id": "MkU3OEVBNTcwNTJENDM2Qk"},
    "node-id": {"kafka_node_id": 99},
    "topics": {
        "kafka_topics": [
            {"name": "wlcg-soc.zeek", "partitions": 12, "retention_hours": 24, "config": {"compression.type": "lz4"}},
            {"name": "flows.netflow", "retention_bytes": -1, "min_insync_replicas": 1, "replication_factor": 1},
        ],
    },
    "extra": {"kafka_extra_settings": {"num.network.threads": 8, "log.segment.bytes": 536870912}},
    "client-auth": {"kafka_tls_client_auth": "requested"},
}
BAD_INPUT = [
    ({"kafka_version": "3.9.0"}, 'kafka_version ("3.9.0") must be a Kafka version of 4.0.0 or later'),
    ({"kafka_install_method": "archive"}, 'kafka_install_method is archive: kafka_archive_src ("") must be'),
    (
        {"kafka_install_method": "archive", "kafka_archive_src": "https://example.org/kafka_2.13-4.4.0.tgz"},
        'kafka_install_method is archive: kafka_archive_src ("https://example.org/kafka_2.13-4.4.0.tgz")',
    ),
    ({"kafka_install_method": "preinstalled"}, 'kafka_install_method is preinstalled: kafka_home ("") must be'),
    ({"kafka_archive_checksum": "md5:00"}, "kafka_install_method is download: kafka_mirror_url"),
    ({"kafka_install_method": "yum"}, "value of kafka_install_method must be one of: download, archive, preinstalled"),
    ({"kafka_group": "kafka"}, "is not in the inventory group kafka_group (kafka)"),
    ({"kafka_process_roles": []}, "kafka_process_roles ([]) must list broker, controller or both"),
    ({"kafka_cluster_id": "short"}, 'kafka_cluster_id ("short") must be 22 characters'),
    ({"kafka_port": 9093}, "kafka_port (9093) and kafka_controller_port (9093) must be two different TCP ports"),
    ({"kafka_advertised_host": "a b"}, 'kafka_advertised_host ("a b") a host name or address'),
    ({"kafka_tls_key": "/pki/k.key"}, "kafka_tls_certificate, kafka_tls_key and kafka_tls_ca go together"),
    ({"kafka_tls_client_auth": "maybe"}, "value of kafka_tls_client_auth must be one of: required, requested, none"),
    ({"kafka_heap_mb": 128}, "kafka_heap_mb (128) must be at least 256"),
    ({"kafka_data_dirs": ["data"]}, 'kafka_data_dirs (["data"]) must list absolute paths'),
    ({"kafka_min_insync_replicas": 9}, "kafka_min_insync_replicas (9) at most the replication factor"),
    ({"kafka_topic_retention_bytes": 1000}, "kafka_topic_retention_bytes (1000) -1 (by time only)"),
    ({"kafka_topics": [{"name": "zeek logs"}]}, 'kafka_topics (["zeek logs"]) must list topics by unique name'),
    ({"kafka_topics": [{"name": "a"}, {"name": "a"}]}, 'kafka_topics (["a", "a"]) must list topics by unique name'),
    ({"kafka_topics": [{"name": "a", "partitions": 0}]}, "partitions at least 1"),
    ({"kafka_topics": [{"name": "a", "retention": 1}]}, "kafka_topics"),
    (
        {"kafka_extra_settings": {"listeners": "PLAINTEXT://:9092", "num.io.threads": 8}},
        "may not set those the role writes (process.roles, node.id,",
    ),
]

globals().update(
    input_check_tests("kafka", SITE, {"debian12": DEB, "alma9": ALMA}, OTHER_GOOD_INPUT, BAD_INPUT, FIRST_CHANGE)
)


# ------------------------------------------------------------------ rendering

TEMPLATES = ["server.properties", "admin.properties", "log4j2.properties", "kafka.service"]
NODES = ["kafka-a", "kafka-b", "kafka-c"]


def render_group(tmp_path: Path, family: str, facts: dict, host_vars: dict[str, dict], extra: dict) -> dict:
    """Render the templates on each host of a three-node kafka group, as the role would (its
    defaults at the lowest precedence, the inventory's host variables above them); return
    {host: {template: text}}."""
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    inventory = {
        "all": {
            "vars": dict(defaults, ansible_connection="local", ansible_python_interpreter=sys.executable),
            "children": {"kafka": {"hosts": {h: host_vars.get(h, {}) for h in NODES}}},
        }
    }
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    for host in NODES:
        (tmp_path / host).mkdir()
    items = [{"src": f"{t}.j2", "dest": t} for t in TEMPLATES]
    play = [
        {
            "hosts": "kafka",
            "gather_facts": True,
            "vars_files": [str(ROLE / "vars/main.yml"), str(ROLE / f"vars/{family}.yml")],
            "tasks": [
                {
                    "wlcg_soc_render": {
                        "src": f"{ROLE}/templates/{{{{ item.src }}}}",
                        "dest": f"{tmp_path}/{{{{ inventory_hostname }}}}/{{{{ item.dest }}}}",
                        "mode": "0644",
                    },
                    "loop": items,
                }
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    env = dict(
        os.environ,
        ANSIBLE_LIBRARY=str(FIXTURES / "library"),
        ANSIBLE_ACTION_PLUGINS=str(FIXTURES / "action"),
        ANSIBLE_FACTS_MODULES="fake_facts",
        WLCG_SOC_FAKE_FACTS=json.dumps(facts),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="0",
    )
    cmd = ["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")]
    cmd += ["-e", json.dumps(extra)] if extra else []
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return {h: {t: (tmp_path / h / t).read_text() for t in TEMPLATES} for h in NODES}


def properties(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory, collections_path):
    host_vars = {"kafka-c": {"kafka_node_id": 7, "kafka_controller_port": 19093, "kafka_advertised_host": "kc.example"}}
    extra = {"kafka_extra_settings": {"num.io.threads": 16, "log.cleaner.enable": True}}
    return render_group(tmp_path_factory.mktemp("three"), "Debian", DEB, host_vars, extra)


def test_three_nodes_share_the_quorum(three_nodes):
    voters = "1@kafka-a:9093,2@kafka-b:9093,7@kc.example:19093"
    ids = {"kafka-a": "1", "kafka-b": "2", "kafka-c": "7"}
    for host, out in three_nodes.items():
        conf = properties(out["server.properties"])
        assert conf["controller.quorum.voters"] == voters, host
        assert conf["node.id"] == ids[host]
        assert conf["process.roles"] == "broker,controller"
        assert "controller.quorum.bootstrap.servers" not in conf


def test_three_nodes_listeners_and_tls(three_nodes):
    conf = properties(three_nodes["kafka-c"]["server.properties"])
    assert conf["listeners"] == "CLIENTS://:9092,CONTROLLER://:19093"
    assert conf["advertised.listeners"] == "CLIENTS://kc.example:9092"
    assert conf["listener.security.protocol.map"] == "CLIENTS:SSL,CONTROLLER:SSL"
    assert conf["inter.broker.listener.name"] == "CLIENTS"
    assert conf["controller.listener.names"] == "CONTROLLER"
    assert conf["ssl.keystore.type"] == conf["ssl.truststore.type"] == "PEM"
    assert conf["ssl.keystore.location"] == "/etc/kafka/certs/kafka-keystore.pem"
    assert conf["ssl.truststore.location"] == "/etc/kafka/certs/ca.crt"
    assert conf["ssl.client.auth"] == "required"
    assert conf["listener.name.controller.ssl.client.auth"] == "required"
    admin = properties(three_nodes["kafka-a"]["admin.properties"])
    assert admin["security.protocol"] == "SSL"
    assert admin["ssl.keystore.location"] == "/etc/kafka/certs/kafka-keystore.pem"


def test_three_nodes_replication(three_nodes):
    conf = properties(three_nodes["kafka-a"]["server.properties"])
    assert conf["default.replication.factor"] == "3"
    assert conf["offsets.topic.replication.factor"] == "3"
    assert conf["transaction.state.log.replication.factor"] == "3"
    assert conf["min.insync.replicas"] == "2"
    assert conf["transaction.state.log.min.isr"] == "2"
    assert conf["auto.create.topics.enable"] == "false"
    assert conf["log.retention.hours"] == "72"
    assert conf["log.dirs"] == "/var/lib/kafka/data"
    assert conf["num.io.threads"] == "16" and conf["log.cleaner.enable"] == "true"


def test_three_nodes_unit(three_nodes):
    unit = three_nodes["kafka-b"]["kafka.service"]
    assert "# Ansible managed" in unit.splitlines()[:3]
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert exec_start.startswith("ExecStart=/usr/bin/java -Xms1024m -Xmx1024m ")
    assert exec_start.endswith(' -cp "/opt/wlcg-soc/kafka/libs/*" kafka.Kafka /etc/kafka/server.properties')
    assert "-Dlog4j2.configurationFile=/etc/kafka/log4j2.properties" in exec_start
    for line in ("User=kafka", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/kafka/data"):
        assert line in unit.splitlines(), line
    assert "Description=Apache Kafka (KRaft node 2)" in unit


def test_redhat_single_node_renders(tmp_path, collections_path):
    """One node (the others brokers only), the RedHat family's variables, a heap and options."""
    host_vars = {h: {"kafka_process_roles": ["broker"]} for h in NODES[1:]}
    extra = {"kafka_heap_mb": 512, "kafka_jvm_options": ["-XX:+AlwaysPreTouch"], "kafka_tls_client_auth": "none"}
    out = render_group(tmp_path, "RedHat", ALMA, host_vars, extra)
    conf = properties(out["kafka-a"]["server.properties"])
    assert conf["controller.quorum.voters"] == "1@kafka-a:9093"
    assert conf["ssl.client.auth"] == "none"
    broker = properties(out["kafka-b"]["server.properties"])
    assert broker["process.roles"] == "broker"
    assert broker["listeners"] == "CLIENTS://:9092"
    unit = out["kafka-a"]["kafka.service"]
    assert "-Xms512m -Xmx512m" in unit and " -XX:+AlwaysPreTouch -cp " in unit
    redhat = yaml.safe_load((ROLE / "vars/RedHat.yml").read_text())
    assert redhat["__kafka_java_package"] == "java-17-openjdk-headless"


def test_cluster_id_is_stable_and_valid(tmp_path, collections_path):
    """The derived cluster id: 22 characters of URL-safe Base64, the same on every run."""
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [str(ROLE / "defaults/main.yml"), str(ROLE / "vars/main.yml")],
            "tasks": [{"ansible.builtin.debug": {"msg": "ID={{ __kafka_cluster_id }}="}}],
        }
    ]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0")
    cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local", str(tmp_path / "play.yml")]
    ids = set()
    for _run in range(2):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        ids.add(done.stdout.split("ID=", 1)[1].split("=", 1)[0])
    assert len(ids) == 1
    (cluster_id,) = ids
    assert len(cluster_id) == 22
    assert all(c.isalnum() or c in "-_" for c in cluster_id)
