# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The option of the filters that read each host's own settings (its inventory, group_vars
    # and host_vars): elasticsearch_master_hosts, elasticsearch_node_names,
    # elasticsearch_seed_hosts, kafka_brokers, memcached_servers.
    DOCUMENTATION = r"""
options:
  hostvars:
    description: The variables of every host, by name (C(hostvars)).
    type: dict
    required: true
"""
