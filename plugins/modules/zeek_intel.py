#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: zeek_intel
short_description: Manage indicators in a site-local Zeek intel file
version_added: 0.1.0
description:
  - Adds, updates or removes indicators in a Zeek Intelligence Framework file, e.g. the
    site's own block list next to the MISP export.
  - Uses the same writer as M(wlcg.soc.misp_ioc_export); the file is replaced atomically
    (temporary file, fsync, rename) and only when its content changes.
  - Indicators are identified by value, type and source; other rows of the file are kept
    unless O(exclusive=true).
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  path:
    description: The intel file. Created when missing; its directory must exist.
    type: path
    required: true
  indicators:
    description: Indicators to add, update or remove.
    type: list
    elements: dict
    default: []
    suboptions:
      indicator:
        description: The value (address, network, domain, URL without scheme, hash, ...).
        type: str
        required: true
      type:
        description: Zeek intel type, with or without the C(Intel::) prefix.
        type: str
        required: true
        choices:
          - ADDR
          - SUBNET
          - URL
          - SOFTWARE
          - EMAIL
          - DOMAIN
          - USER_NAME
          - CERT_HASH
          - PUBKEY_HASH
          - FILE_HASH
          - FILE_NAME
          - Intel::ADDR
          - Intel::SUBNET
          - Intel::URL
          - Intel::SOFTWARE
          - Intel::EMAIL
          - Intel::DOMAIN
          - Intel::USER_NAME
          - Intel::CERT_HASH
          - Intel::PUBKEY_HASH
          - Intel::FILE_HASH
          - Intel::FILE_NAME
      source:
        description: C(meta.source), required by Zeek.
        type: str
        default: site
      desc:
        description: C(meta.desc).
        type: str
      url:
        description: C(meta.url), e.g. a ticket.
        type: str
      state:
        description: Whether the indicator should be in the file.
        type: str
        choices: [present, absent]
        default: present
  exclusive:
    description: Remove every row not listed with O(indicators[].state=present).
    type: bool
    default: false
  do_notice:
    description:
      - Add a C(meta.do_notice) column with this value for every row (needs Zeek's
        C(policy/frameworks/intel/do_notice)). Unset leaves the column out.
    type: bool
seealso:
  - module: wlcg.soc.misp_ioc_export
"""

EXAMPLES = r"""
- name: Site block list for Zeek
  wlcg.soc.zeek_intel:
    path: /var/lib/wlcg-soc/intel/site.intel
    owner: root
    mode: "0644"
    indicators:
      - indicator: 192.0.2.77
        type: ADDR
        desc: C2 reported by the WLCG security team
        url: https://tickets.example.org/SEC-123
      - indicator: 198.51.100.0/24
        type: SUBNET
      - indicator: evil.example.com
        type: DOMAIN
      - indicator: 203.0.113.5
        type: ADDR
        state: absent
"""

RETURN = r"""
rows:
  description: Rows in the file after the change.
  returned: success
  type: int
  sample: 3
added:
  description: Indicators added or updated, as C(type value).
  returned: success
  type: list
  elements: str
  sample: ["Intel::ADDR 192.0.2.77"]
removed:
  description: Indicators removed, as C(type value).
  returned: success
  type: list
  elements: str
  sample: ["Intel::ADDR 203.0.113.5"]
"""

import ipaddress

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wlcg.soc.plugins.module_utils.zeek_intel import (
    INTEL_TYPES,
    UNSET,
    IntelRow,
    clean,
    parse,
    read,
    render,
    rows_of,
    write_atomic,
)

BARE_TYPES = sorted(t.split("::", 1)[1] for t in INTEL_TYPES)


def _validate(module, item, index):
    itype = item["type"] if item["type"].startswith("Intel::") else "Intel::" + item["type"]
    value = clean(item["indicator"])
    where = f"indicators[{index}] ({item['indicator']!r})"
    if value == UNSET:
        module.fail_json(msg=f"{where}: the indicator is empty")
    try:
        if itype == "Intel::ADDR":
            value = str(ipaddress.ip_address(value))
        elif itype == "Intel::SUBNET":
            value = str(ipaddress.ip_network(value, strict=False))
    except ValueError as exc:
        module.fail_json(msg=f"{where}: not a valid {itype}: {exc}")
    source = clean(item["source"])
    if source == UNSET:
        module.fail_json(msg=f"{where}: source must not be empty (Zeek requires meta.source)")
    return IntelRow(value, itype, source, clean(item.get("desc")), clean(item.get("url")))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            indicators=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    indicator=dict(type="str", required=True),
                    type=dict(type="str", required=True, choices=BARE_TYPES + sorted(INTEL_TYPES)),
                    source=dict(type="str", default="site"),
                    desc=dict(type="str"),
                    url=dict(type="str"),
                    state=dict(type="str", choices=["present", "absent"], default="present"),
                ),
            ),
            exclusive=dict(type="bool", default=False),
            do_notice=dict(type="bool"),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    path = module.params["path"]
    wanted = [(_validate(module, item, i), item["state"]) for i, item in enumerate(module.params["indicators"])]

    try:
        before = read(path)
    except OSError as exc:
        module.fail_json(msg=f"cannot read {path}: {exc}")
    existing, _fields = parse(before or b"")
    rows = {}
    if not module.params["exclusive"]:
        for r in existing:
            if "indicator" in r and "indicator_type" in r:
                row = IntelRow(
                    r["indicator"],
                    r["indicator_type"],
                    r.get("meta.source", UNSET),
                    r.get("meta.desc", UNSET),
                    r.get("meta.url", UNSET),
                )
                rows[row[:3]] = row
    old_keys = {(r.get("indicator"), r.get("indicator_type"), r.get("meta.source", UNSET)) for r in existing}
    for row, state in wanted:
        if state == "present":
            rows[row[:3]] = row
        else:
            rows.pop(row[:3], None)

    after = render(rows_of(list(rows.values())), module.params["do_notice"])
    changed = before != after
    result = {
        "rows": len(rows),
        "added": sorted(f"{k[1]} {k[0]}" for k in set(rows) - old_keys),
        "removed": sorted(f"{k[1]} {k[0]}" for k in old_keys - set(rows) if k[0] is not None),
    }
    if changed and module._diff:
        result["diff"] = {
            "before": (before or b"").decode("utf-8", errors="replace"),
            "after": after.decode("utf-8"),
            "before_header": path,
            "after_header": path,
        }
    if changed and not module.check_mode:
        try:
            write_atomic(path, after)
        except OSError as exc:
            module.fail_json(msg=f"cannot write {path}: {exc}")
    if not module.check_mode or not changed:
        changed = module.set_fs_attributes_if_different(module.load_file_common_arguments(module.params), changed)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
