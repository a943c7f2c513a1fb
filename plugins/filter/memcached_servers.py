# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.wlcg.soc.plugins.filter.address_list import address_list
from ansible_collections.wlcg.soc.plugins.plugin_utils.hostvars import host_port, own_setting

DOCUMENTATION = r"""
name: memcached_servers
short_description: The C(host:port) of memcached servers, from their own settings
version_added: 0.1.0
description:
  - For each host that runs the C(memcached) role, returns where its clients reach it,
    from that host's own variables (its inventory, C(group_vars) and C(host_vars)), so that
    a value set on the serving group reaches every client.
  - The address is the first entry of the host's C(memcached_listen_address) (a list or a
    comma-separated string), or its inventory name where that is unset, empty, a wildcard
    address or not known in this run (it derives from facts not gathered); IPv6 addresses get
    brackets. The port is its C(memcached_port), or O(port).
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
extends_documentation_fragment:
  - wlcg.soc.hostvars
options:
  _input:
    description: Inventory host names of the memcached servers.
    type: list
    elements: str
    required: true
  port:
    description: The port of hosts that do not set C(memcached_port).
    type: int
    default: 11211
"""

EXAMPLES = r"""
- name: Every memcached server of the inventory
  ansible.builtin.debug:
    msg: "{{ groups['memcached'] | wlcg.soc.memcached_servers(hostvars) }}"
"""

RETURN = r"""
_value:
  description: One C(host:port) per server.
  type: list
  elements: str
"""

# 0.0.0.0, ::, ::0.0.0.0 and other spellings of "every address".
WILDCARD = re.compile(r"^[0.:]+$")


def _first_address(listen: Any) -> str:
    try:
        addresses = address_list(listen)
    except TypeError:  # (not an address setting: that host's own checks refuse it)
        return ""
    return addresses[0] if addresses and not WILDCARD.match(addresses[0]) else ""


def memcached_servers(hosts: Iterable[str], hostvars: Mapping[str, Mapping[str, Any]], port: int = 11211) -> list[str]:
    servers = []
    for host in hosts:
        own = hostvars[host]
        address = _first_address(own_setting(own, "memcached_listen_address", None)) or host
        servers.append(host_port(address, own_setting(own, "memcached_port", port)))
    return servers


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"memcached_servers": memcached_servers}
