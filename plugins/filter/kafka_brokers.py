# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.wlcg.soc.plugins.plugin_utils.hostvars import host_port, own_setting

DOCUMENTATION = r"""
name: kafka_brokers
short_description: The C(host:port) of Kafka brokers, from their own settings
version_added: 0.1.0
description:
  - For each host that runs the C(kafka) role, returns where its clients reach it, from that
    host's own variables (its inventory, C(group_vars) and C(host_vars)), so that a port set on
    the Kafka group reaches every client (Filebeat, nfacctd, Logstash).
  - The name is the host's C(kafka_advertised_host) (the name in its certificate, which clients
    check), or its inventory name where that is unset or empty. The port is its C(kafka_port),
    or O(port).
  - Hosts that are controllers only (C(kafka_process_roles) without C(broker)) are left out.
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
extends_documentation_fragment:
  - wlcg.soc.hostvars
options:
  _input:
    description: Inventory host names of the Kafka nodes.
    type: list
    elements: str
    required: true
  port:
    description: The port of hosts that do not set C(kafka_port).
    type: int
    default: 9092
"""

EXAMPLES = r"""
- name: Every broker of the inventory
  ansible.builtin.debug:
    msg: "{{ groups['kafka'] | wlcg.soc.kafka_brokers(hostvars) }}"
"""

RETURN = r"""
_value:
  description: One C(host:port) per broker.
  type: list
  elements: str
"""


def kafka_brokers(hosts: Iterable[str], hostvars: Mapping[str, Mapping[str, Any]], port: int = 9092) -> list[str]:
    brokers = []
    for host in hosts:
        own = hostvars[host]
        if "broker" not in own_setting(own, "kafka_process_roles", ["broker"]):
            continue
        name = str(own_setting(own, "kafka_advertised_host", host))
        brokers.append(host_port(name, own_setting(own, "kafka_port", port)))
    return brokers


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"kafka_brokers": kafka_brokers}
