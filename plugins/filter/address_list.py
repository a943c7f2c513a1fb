# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DOCUMENTATION = r"""
name: address_list
short_description: Addresses from a list or from comma-separated text
version_added: 0.1.0
description:
  - Returns the addresses of a setting that takes one address, several as comma-separated
    text, or a list of them (such as C(memcached_listen_address)).
  - Each address is bare (an IPv6 address without its brackets), without blanks and in lower
    case; empty entries and repeats are left out, the order is kept.
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
options:
  _input:
    description: An address, comma-separated addresses, or a list of addresses.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: The addresses memcached listens on
  ansible.builtin.debug:
    msg: "{{ '192.0.2.10, [2001:DB8::10]' | wlcg.soc.address_list }}"  # ['192.0.2.10', '2001:db8::10']
"""

RETURN = r"""
_value:
  description: The addresses, bare and in lower case.
  type: list
  elements: str
"""


def address_list(value: Any) -> list[str]:
    if isinstance(value, str):
        entries: list[Any] = value.split(",")
    elif value is None:
        entries = []
    elif isinstance(value, Mapping) or not hasattr(value, "__iter__"):
        raise TypeError(f"address_list takes a list of addresses or comma-separated text, not {value!r}")
    else:
        entries = list(value)
    addresses: list[str] = []
    for entry in entries:
        address = str(entry).strip().strip("[] ").lower()
        if address and address not in addresses:
            addresses.append(address)
    return addresses


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"address_list": address_list}
