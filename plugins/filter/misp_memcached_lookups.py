# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError
from ansible_collections.wlcg.soc.plugins.module_utils.misp_memcached import DIRECTIONS, key

DOCUMENTATION = r"""
name: misp_memcached_lookups
short_description: The memcached lookups of an address in the MISP sync's keys, for Logstash
version_added: 0.1.0
description:
  - Returns the C(get) hash of Logstash's memcached filter that looks the address in a field up
    under every key the MISP sync (C(wlcg.soc.misp_sync), module C(wlcg.soc.misp_ioc_export))
    may have written for it - C(ip-src-<address>) and C(ip-dst-<address>) - each into its own
    field under O(target), named by the direction.
  - The key format is defined once, in the collection's C(misp_memcached) module utility, which
    the sync uses to write the keys.
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
options:
  _input:
    description: The Logstash field reference of the address, e.g. C([source][ip]).
    type: str
    required: true
  target:
    description: The Logstash field reference under which each direction's value is put.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: A memcached filter of a Logstash pipeline (in a template)
  ansible.builtin.debug:
    msg: "{{ '[source][ip]' | wlcg.soc.misp_memcached_lookups('[misp_lookup][source]') }}"
    # {"ip-src-%{[source][ip]}": "[misp_lookup][source][ip-src]",
    #  "ip-dst-%{[source][ip]}": "[misp_lookup][source][ip-dst]"}
"""

RETURN = r"""
_value:
  description: Memcached key (a Logstash sprintf format) to the field that receives its value.
  type: dict
"""

# A Logstash field reference: one or more [name] parts (a name may hold dots or @).
FIELD_REFERENCE = re.compile(r"^(\[[^\[\]\s]+\])+$")


def misp_memcached_lookups(address_field: str, target: str) -> dict[str, str]:
    for name, value in (("the address field", address_field), ("target", target)):
        if not isinstance(value, str) or not FIELD_REFERENCE.match(value):
            raise AnsibleFilterError(f"{name} must be a Logstash field reference such as [source][ip], got {value!r}")
    return {key(direction, f"%{{{address_field}}}"): f"{target}[{direction}]" for direction in DIRECTIONS}


class FilterModule:
    def filters(self):
        return {"misp_memcached_lookups": misp_memcached_lookups}
