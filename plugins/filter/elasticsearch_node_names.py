# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DOCUMENTATION = r"""
name: elasticsearch_node_names
short_description: The node names of search cluster hosts
version_added: 0.1.0
description:
  - Returns each host's C(elasticsearch_node_name), or its inventory name where that is unset
    or empty (the role's default), in the given order.
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
extends_documentation_fragment:
  - wlcg.soc.hostvars
options:
  _input:
    description: Inventory host names.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: The initial master nodes, comma-separated
  ansible.builtin.debug:
    msg: "{{ groups['elasticsearch'] | wlcg.soc.elasticsearch_node_names(hostvars) | join(',') }}"
"""

RETURN = r"""
_value:
  description: One node name per host.
  type: list
  elements: str
"""


def elasticsearch_node_names(hosts: Iterable[str], hostvars: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [str(hostvars[host].get("elasticsearch_node_name") or host) for host in hosts]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"elasticsearch_node_names": elasticsearch_node_names}
