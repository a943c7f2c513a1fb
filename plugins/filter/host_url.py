# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from typing import Any

DOCUMENTATION = r"""
name: host_url
short_description: A base URL from a host and a port
version_added: 0.1.0
description:
  - Returns C(scheme://host:port), with an IPv6 address in brackets.
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
options:
  _input:
    description: A host name or an IPv4 or IPv6 address (with or without brackets).
    type: str
    required: true
  port:
    description: The port.
    type: int
    required: true
  scheme:
    description: The URL scheme.
    type: str
    default: https
"""

EXAMPLES = r"""
- name: A node's REST API
  ansible.builtin.debug:
    msg: "{{ '2001:db8::1' | wlcg.soc.host_url(9200) }}"  # https://[2001:db8::1]:9200
"""

RETURN = r"""
_value:
  description: The URL, without a trailing slash.
  type: str
"""


def host_url(host: str, port: int | str, scheme: str = "https") -> str:
    host = str(host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{int(port)}"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"host_url": host_url}
