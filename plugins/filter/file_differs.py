# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import hashlib
from typing import Any

DOCUMENTATION = r"""
name: file_differs
short_description: Whether a file that ansible.builtin.find read differs from what a role would write
version_added: 0.1.0
description:
  - Roles read the files they manage with one M(ansible.builtin.find) call (C(get_checksum=true))
    and write only those for which this filter is true, instead of a copy or template task per file
    that costs a module run on every host at every run.
  - True when the file is missing from the find results, or its SHA-1 checksum, mode, owner or
    group is not the wanted one. A wrong true only costs the write task a module run (which then
    reports no change); false means the file is exactly as wanted.
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
options:
  _input:
    description: The C(files) list that M(ansible.builtin.find) returned, with C(get_checksum=true).
    type: list
    elements: dict
    required: true
  path:
    description: The file's path, as find reports it (absolute).
    type: str
    required: true
  content:
    description: The content the role writes (the rendered template, or the file's text).
    type: str
    required: true
  mode:
    description: The wanted mode, in octal as find reports it.
    type: str
    default: "0644"
  owner:
    description: The wanted owner's name.
    type: str
    default: root
  group:
    description: The wanted group's name.
    type: str
    default: root
"""

EXAMPLES = r"""
- name: Write the journald settings
  ansible.builtin.template:
    src: journald.conf.j2
    dest: /etc/systemd/journald.conf.d/50-wlcg-soc.conf
    owner: root
    group: root
    mode: "0644"
  when: >-
    __found.files | wlcg.soc.file_differs('/etc/systemd/journald.conf.d/50-wlcg-soc.conf',
                                          lookup('ansible.builtin.template', 'journald.conf.j2'))
"""

RETURN = r"""
_value:
  description: True if the file must be written.
  type: bool
"""


def file_differs(
    files: list[dict[str, Any]],
    path: str,
    content: str,
    mode: str = "0644",
    owner: str = "root",
    group: str = "root",
) -> bool:
    found = next((f for f in files if f.get("path") == path), None)
    if found is None:
        return True
    wanted = hashlib.sha1(str(content).encode("utf-8"), usedforsecurity=False).hexdigest()
    return (found.get("checksum"), found.get("mode"), found.get("pw_name"), found.get("gr_name")) != (
        wanted,
        str(mode).zfill(4),
        owner,
        group,
    )


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"file_differs": file_differs}
