# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The memcached contract of MISP address indicators, in one place: the MISP sync writes
these keys (misp_ioc), the enrichment in Logstash reads them (the logstash role's pipelines,
through the filter wlcg.soc.misp_memcached_lookups).

A key is ``<direction>-<address>``: the direction is the MISP type's (``ip-src`` for
``ip-src`` and ``ip-src|port``, ``ip-dst`` likewise), the address in its canonical text
form. Its value is UTF-8 JSON, ``{"misp": [{"event_id": int, "event_uuid": str, "info":
str, "type": str}, ...]}``, newest event first. An address of the traffic is looked up under
both directions: a source address may match an ``ip-dst`` indicator and the reverse."""

from __future__ import annotations

DIRECTIONS = ("ip-src", "ip-dst")


def key(direction: str, address: str) -> str:
    """The memcached key of ``address`` as an indicator of ``direction``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    return f"{direction}-{address}"
