# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import re
from typing import Any

DOCUMENTATION = r"""
name: version_upgrade_problem
short_description: Why a move from the installed version to the wanted one is not a supported upgrade
version_added: 0.1.0
description:
  - Roles that pin a vendor's version call it before they install anything, so that a typo in a
    version or a version from another branch fails the play instead of breaking a cluster.
  - Empty when there is nothing installed, nothing wanted, the same version, or a supported upgrade -
    a newer version of the same major, or the next major from the last minor of the one before, as
    the vendors document for rolling upgrades.
  - Otherwise a sentence naming the variable - a downgrade (which the vendors do not support, as a
    node's data, once written by a newer version, cannot be read by an older one), a skipped major,
    or a major upgrade from a minor that is not the last one (e.g. Elasticsearch 7.x to 8 only from
    7.17).
  - Versions are compared by their leading C(x.y.z) digits; a Debian epoch (C(1:)) and a package
    revision (C(-1), C(-1.el9)) are ignored.
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
options:
  _input:
    description: The installed version (empty - nothing installed).
    type: str
    required: true
  wanted:
    description: The version the role is asked to install (empty - no pinned version).
    type: str
    required: true
  upgrade_from:
    description:
      - For each major version, the minor version from which a rolling upgrade to it starts, e.g.
        C(7.17) for C(8). A major missing here cannot be upgraded to by the role.
    type: dict
    required: true
  variable:
    description: The variable that sets the wanted version, named in the message.
    type: str
    default: version
"""

EXAMPLES = r"""
- name: Refuse a downgrade or a skipped major
  ansible.builtin.assert:
    that: __problem | length == 0
    fail_msg: "{{ __problem }}"
  vars:
    __problem: >-
      {{ installed | wlcg.soc.version_upgrade_problem(elasticsearch_version, {8: '7.17', 9: '8.19'},
                                                      'elasticsearch_version') }}
"""

RETURN = r"""
_value:
  description: Empty if the move is allowed, else why not.
  type: str
"""

_VERSION = re.compile(r"^(?:\d+:)?(\d+)\.(\d+)\.(\d+)")


def _parse(version: str) -> tuple[int, int, int] | None:
    match = _VERSION.match(str(version).strip())
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def version_upgrade_problem(
    installed: str,
    wanted: str,
    upgrade_from: dict[Any, str],
    variable: str = "version",
) -> str:
    old, new = _parse(installed or ""), _parse(wanted or "")
    if old is None or new is None or old == new:
        return ""
    if new < old:
        return (
            f"{variable} ({wanted}) is older than the installed {installed}: a node cannot go back to an "
            "older version (its data may already be in the newer format). Restore from a snapshot onto a "
            f"new cluster instead, or set {variable} to {installed} or newer."
        )
    if new[0] == old[0]:
        return ""
    starts = {int(major): str(minor) for major, minor in (upgrade_from or {}).items()}
    if new[0] not in starts:
        return (
            f"{variable} ({wanted}): no rolling upgrade to major version {new[0]} is known to the role "
            f"(it knows upgrades to {', '.join(str(m) for m in sorted(starts)) or 'none'})."
        )
    start = _parse(starts[new[0]] + ".0")
    if start is None or start[0] != old[0] or old[:2] < start[:2]:
        return (
            f"{variable} ({wanted}) cannot be reached from the installed {installed} in one rolling upgrade: "
            f"an upgrade to {new[0]}.x starts from {starts[new[0]]}.x. Upgrade to the newest "
            f"{starts[new[0]]}.x first."
        )
    return ""


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"version_upgrade_problem": version_upgrade_problem}
