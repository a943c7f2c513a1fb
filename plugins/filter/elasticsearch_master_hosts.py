# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DOCUMENTATION = r"""
name: elasticsearch_master_hosts
short_description: The master-eligible hosts of a search cluster
version_added: 0.1.0
description:
  - Returns the hosts of a cluster that are master-eligible (C(cluster_manager)-eligible on
    OpenSearch), in the given order.
  - A host is master-eligible unless its C(elasticsearch_node_roles) is set and holds neither
    C(master) nor C(cluster_manager); a host that does not set it has the role's default roles,
    which include C(master).
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
extends_documentation_fragment:
  - wlcg.soc.hostvars
options:
  _input:
    description: The cluster's inventory host names.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Seed from the master-eligible hosts
  ansible.builtin.debug:
    msg: "{{ groups['elasticsearch'] | wlcg.soc.elasticsearch_master_hosts(hostvars) }}"
"""

RETURN = r"""
_value:
  description: The master-eligible host names.
  type: list
  elements: str
"""

MASTER_ROLES = ("master", "cluster_manager")


def elasticsearch_master_hosts(hosts: Iterable[str], hostvars: Mapping[str, Mapping[str, Any]]) -> list[str]:
    masters = []
    for host in hosts:
        roles = hostvars[host].get("elasticsearch_node_roles")
        if roles is None or any(role in roles for role in MASTER_ROLES):
            masters.append(host)
    return masters


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"elasticsearch_master_hosts": elasticsearch_master_hosts}
