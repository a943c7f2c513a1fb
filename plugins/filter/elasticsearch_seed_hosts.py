# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.wlcg.soc.plugins.plugin_utils.hostvars import host_port, own_setting

DOCUMENTATION = r"""
name: elasticsearch_seed_hosts
short_description: Transport addresses of search cluster hosts, for discovery
version_added: 0.1.0
description:
  - Returns C(address:port) for each host, C([address]:port) for an IPv6 address.
  - The address is the host's C(elasticsearch_network_host), or its inventory name where that is
    unset or empty; the port its C(elasticsearch_transport_port), or O(port) where that is unset.
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
extends_documentation_fragment:
  - wlcg.soc.hostvars
options:
  _input:
    description: Inventory host names, usually the master-eligible ones.
    type: list
    elements: str
    required: true
  port:
    description: The transport port of hosts that do not set their own.
    type: int
    required: true
"""

EXAMPLES = r"""
- name: discovery.seed_hosts
  ansible.builtin.debug:
    msg: "{{ groups['elasticsearch'] | wlcg.soc.elasticsearch_seed_hosts(hostvars, 9300) }}"
"""

RETURN = r"""
_value:
  description: One C(address:port) per host.
  type: list
  elements: str
"""


def elasticsearch_seed_hosts(hosts: Iterable[str], hostvars: Mapping[str, Mapping[str, Any]], port: int) -> list[str]:
    seeds = []
    for host in hosts:
        own = hostvars[host]
        address = str(own_setting(own, "elasticsearch_network_host", host))
        seeds.append(host_port(address, own_setting(own, "elasticsearch_transport_port", port)))
    return seeds


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"elasticsearch_seed_hosts": elasticsearch_seed_hosts}
