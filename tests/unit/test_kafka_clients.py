"""Kafka's clients - the filebeat, logstash and nfacctd roles - find the brokers of the kafka
group from each broker's own inventory variables when their broker lists are empty."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

CLIENTS = {
    "filebeat": ("filebeat_kafka_hosts", "__filebeat_kafka_hosts"),
    "logstash": ("logstash_kafka_hosts", "__logstash_kafka_hosts"),
    "nfacctd": ("nfacctd_kafka_brokers", "__nfacctd_kafka_brokers"),
}
INVENTORY = {
    "all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "children": {
            "kafka": {
                "vars": {"kafka_port": 9192},
                "hosts": {
                    "kafka1": {},
                    "kafka2": {"kafka_advertised_host": "k2.example.org"},
                    "quorum1": {"kafka_process_roles": ["controller"]},
                },
            },
            "clients": {"hosts": {"client": {}}},
        },
    }
}


def resolved(tmp_path, role: str, extra: dict) -> list[str]:
    """The role's broker list on the client host, with its defaults and vars loaded."""
    (tmp_path / "hosts.yml").write_text(json.dumps(INVENTORY))
    internal = CLIENTS[role][1]
    play = [
        {
            "hosts": "client",
            "gather_facts": False,
            "vars_files": [str(ROOT / f"roles/{role}/defaults/main.yml"), str(ROOT / f"roles/{role}/vars/main.yml")],
            "tasks": [{"ansible.builtin.debug": {"msg": f"BROKERS<<{{{{ {internal} | join(' ') }}}}>>"}}],
        }
    ]
    (tmp_path / "play.yml").write_text(json.dumps(play))
    cmd = ["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml"), "-e", json.dumps(extra)]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split("BROKERS<<", 1)[1].split(">>", 1)[0].split()


@pytest.mark.parametrize("role", list(CLIENTS))
def test_brokers_from_the_kafka_group(tmp_path, collections_path, role):
    assert resolved(tmp_path, role, {}) == ["kafka1:9192", "k2.example.org:9192"]


@pytest.mark.parametrize("role", list(CLIENTS))
def test_brokers_given_win(tmp_path, collections_path, role):
    assert resolved(tmp_path, role, {CLIENTS[role][0]: ["broker.example.org:9093"]}) == ["broker.example.org:9093"]
