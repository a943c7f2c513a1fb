# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A server's own settings, read from ``hostvars`` by the filters that tell its clients where
it is (wlcg.soc.memcached_servers, kafka_brokers, elasticsearch_seed_hosts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def own_setting(own: Mapping[str, Any], name: str, default: Any) -> Any:
    """The host's ``name``, or ``default`` where it is unset, null, empty or cannot be known in
    this run (e.g. a value templated from facts not gathered on that host)."""
    try:
        value = own.get(name, default)
    except Exception:  # (any templating error of another host's variable)
        return default
    return default if value is None or value == "" else value


def host_port(address: str, port: Any) -> str:
    """``address:port``, an IPv6 address in brackets."""
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    return f"{address}:{int(port)}"
