# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from typing import Any

DOCUMENTATION = r"""
name: elasticsearch_heap_mb
short_description: A search node's JVM heap in MiB
version_added: 0.1.0
description:
  - Returns the configured heap when it is above 0; otherwise half the host's memory, at most
    31744 MiB (31 GiB, below which the JVM keeps compressed object pointers) and at least 256 MiB.
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
options:
  _input:
    description: The configured heap in MiB (C(elasticsearch_heap_mb)); 0 derives it.
    type: int
    required: true
  memtotal_mb:
    description: The host's memory in MiB (the C(memtotal_mb) fact).
    type: int
    required: true
"""

EXAMPLES = r"""
- name: Heap of a 16 GiB host
  ansible.builtin.debug:
    msg: "{{ 0 | wlcg.soc.elasticsearch_heap_mb(16384) }}"  # 8192
"""

RETURN = r"""
_value:
  description: The heap in MiB.
  type: int
"""

MAX_HEAP_MB = 31744
MIN_HEAP_MB = 256


def elasticsearch_heap_mb(configured: int | str, memtotal_mb: int | str) -> int:
    if int(configured) > 0:
        return int(configured)
    return max(min(int(memtotal_mb) // 2, MAX_HEAP_MB), MIN_HEAP_MB)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"elasticsearch_heap_mb": elasticsearch_heap_mb}
