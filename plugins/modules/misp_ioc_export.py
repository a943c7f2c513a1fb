#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: misp_ioc_export
short_description: Export MISP indicators to a Zeek intel file and to memcached
version_added: 0.1.0
description:
  - Pages through MISP's C(/attributes/restSearch) and exports the matching indicators
    into a Zeek Intelligence Framework file and/or into memcached as flow-enrichment
    keys C(ip-src-<ip>) and C(ip-dst-<ip>).
  - The mapping to Zeek intel types follows MISP's own Zeek export (composite types
    split, networks as C(Intel::SUBNET), URL scheme stripped, no C(Intel::JA3), tabs and
    newlines turned into spaces, duplicates merged).
  - Nothing is written until every page has arrived, so a MISP outage fails the task and
    leaves the intel file and the keys as they were.
  - The intel file is replaced atomically (temporary file, fsync, rename), as Zeek
    re-reads it when its inode changes.
  - memcached keys are set on every listed server with a TTL. Keys are re-set on each
    run to refresh the TTL; only keys that were missing or held another value count as
    a change. Values are JSON objects whose C(misp) list names the events (C(event_id),
    C(event_uuid), C(info), C(type)), newest first, at most 10; C(info) is cut at 256
    characters so that a value always fits a memcached item.
  - One attribute never stops the export. Values that cannot be written (malformed
    attributes, text that is not valid UTF-8, addresses with a zone id, indicators that
    start with C(#), which Zeek would read as a comment) are counted per reason in
    RV(not_exported) and left out. Characters that would break a line or field become
    spaces. IPv4-mapped IPv6 addresses are exported as the IPv4 address.
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - wlcg.soc.misp
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  to_ids:
    description: Export only attributes marked for IDS.
    type: bool
    default: true
  published:
    description: Export only attributes of published events.
    type: bool
    default: true
  publish_window:
    description:
      - Only events published within this window (MISP's C(publish_timestamp), e.g.
        C(30d), C(24h)). An empty string exports regardless of publication time.
    type: str
    default: 30d
  tags_include:
    description: Export only attributes whose event or attribute has one of these tags (C(%) is a wildcard).
    type: list
    elements: str
    default: []
  tags_exclude:
    description: Leave out attributes whose event or attribute has one of these tags.
    type: list
    elements: str
    default: [tlp:red]
  types:
    description:
      - MISP attribute types to ask for. Empty asks for every type that maps to Zeek
        intel or memcached; types without a mapping are counted in RV(not_exported).
    type: list
    elements: str
    default: []
  event_ids:
    description: Only these MISP event ids.
    type: list
    elements: str
    default: []
  orgs:
    description: Only events created by these organisations (names or ids).
    type: list
    elements: str
    default: []
  exclude_events:
    description:
      - MISP events (ids or uuids) never to export, whatever the other filters select.
    type: list
    elements: str
    default: []
  exclude_values:
    description:
      - Indicators never to export (e.g. the site's own addresses, a partner's domain),
        compared case-insensitively after normalisation (addresses in canonical form, URLs
        without scheme). An entry that is a network, such as C(192.0.2.0/24), excludes every
        address and network inside it. Counted as C(excluded value) in RV(not_exported).
    type: list
    elements: str
    default: []
  min_prefix_ipv4:
    description:
      - IPv4 networks wider than this prefix length are not exported (counted in
        RV(not_exported)), so that C(0.0.0.0/0) in an event cannot make every connection a hit.
    type: int
    default: 8
  min_prefix_ipv6:
    description: IPv6 networks wider than this prefix length are not exported.
    type: int
    default: 32
  max_drop:
    description:
      - The largest fraction (0 to below 1) of the intel file's rows that an export may lose.
        An export with no rows, or that many fewer rows than the intel file there, fails and
        writes nothing (lost rights, a wrong filter or a restored MISP database look like
        that), unless O(force) is set.
    type: float
    default: 0.5
  force:
    description: Write the export however much smaller it is than the intel file there (see O(max_drop)).
    type: bool
    default: false
  enforce_warninglist:
    description:
      - Let MISP leave out values on its enabled warninglists (MISP's C(enforceWarninglist)),
        such as public DNS resolvers and top domains, so that they never reach Zeek or
        memcached. Which lists apply is MISP's setting.
    type: bool
    default: true
  page_size:
    description: Attributes per restSearch page.
    type: int
    default: 10000
  max_pages:
    description:
      - Most restSearch pages one run fetches; the run fails when MISP still has more
        after this many (the default allows 10 million attributes at the default
        O(page_size)).
      - Independently of it, the run fails when MISP sends more attributes than asked
        for or than its C(X-Result-Count) announced, repeats a page, or announces a total
        and keeps sending full pages past it. MISP's C(X-Result-Count) is the page's count
        when paging (plus one when the page is full), so it bounds each page, not the run.
    type: int
    default: 1000
  fetch_timeout:
    description:
      - Seconds the whole fetch from MISP (all pages) may take; the run fails when it is
        exceeded, even while an answer is still arriving. O(timeout) bounds each wait for
        data only.
    type: float
    default: 1800
  source_name:
    description:
      - Name of this MISP instance in C(meta.source), which reads
        C(<source_name> (<event uuid>) - <organisation>) as in MISP's Zeek export.
    type: str
    default: MISP
  zeek_intel_path:
    description: Zeek intel file to write. Its directory must exist.
    type: path
  do_notice:
    description:
      - Add a C(meta.do_notice) column with this value (needs Zeek's
        C(policy/frameworks/intel/do_notice)). Unset leaves the column out.
    type: bool
  memcached_servers:
    description: memcached servers as C(host:port); every key goes to every server.
    type: list
    elements: str
    default: []
  memcached_ttl:
    description:
      - Lifetime of the keys in seconds; make it a few times the sync interval so that
        indicators removed from MISP age out.
    type: int
    default: 2700
notes:
  - At least one of O(zeek_intel_path) and O(memcached_servers) is required.
seealso:
  - module: wlcg.soc.zeek_intel
  - module: wlcg.soc.misp_event
"""

EXAMPLES = r"""
- name: Export the last 30 days of IDS indicators to Zeek and memcached
  wlcg.soc.misp_ioc_export:
    misp_url: https://misp.example.org
    misp_key: "{{ vault_misp_sync_key }}"
    ca_path: /etc/pki/tls/certs/site-ca.pem
    zeek_intel_path: /var/lib/wlcg-soc/intel/misp.intel
    owner: zeek
    mode: "0644"
    memcached_servers:
      - soc-pipe01.example.org:11211
    memcached_ttl: 2700

- name: Only TLP:WHITE and TLP:GREEN network indicators of one organisation
  wlcg.soc.misp_ioc_export:
    misp_url: https://misp.example.org
    misp_key: "{{ vault_misp_sync_key }}"
    tags_include: [tlp:white, tlp:green, tlp:clear]
    types: [ip-src, ip-dst, domain, hostname, url]
    orgs: [CERN]
    zeek_intel_path: /opt/zeek/share/zeek/site/intel/misp.intel
"""

RETURN = r"""
attributes:
  description: Attributes MISP returned.
  returned: success
  type: int
  sample: 1234
pages:
  description: restSearch pages fetched.
  returned: success
  type: int
  sample: 1
intel:
  description: Intel rows per Zeek type.
  returned: success
  type: dict
  sample: {"Intel::ADDR": 120, "Intel::DOMAIN": 40, "Intel::FILE_HASH": 300}
intel_rows:
  description: Rows in the intel file.
  returned: success
  type: int
  sample: 460
intel_changed:
  description: Whether the intel file differed from the export (and was replaced).
  returned: success
  type: bool
memcached:
  description: memcached keys per kind.
  returned: success
  type: dict
  sample: {"ip-src": 20, "ip-dst": 95}
memcached_keys:
  description: memcached keys exported.
  returned: success
  type: int
  sample: 115
memcached_keys_changed:
  description: (server, key) pairs that were missing or held another value.
  returned: success
  type: int
  sample: 0
not_exported:
  description: Attributes or values left out, per reason.
  returned: success
  type: dict
  sample: {"unsupported type ja3-fingerprint-md5": 2, "invalid address": 1, "IPv4 network wider than /8": 1}
trimmed:
  description: Values shortened to fit a memcached item, per field.
  returned: success
  type: dict
  sample: {"event info in a memcached value": 3}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.wlcg.soc.plugins.module_utils.memcache import (
    PYMEMCACHE_IMPORT_ERROR,
    MemcacheError,
    MemcacheSink,
)
from ansible_collections.wlcg.soc.plugins.module_utils.misp import (
    PYMISP_IMPORT_ERROR,
    MispError,
    connect,
    misp_argument_spec,
)
from ansible_collections.wlcg.soc.plugins.module_utils.misp_ioc import (
    DropRefused,
    Filters,
    IntelWriteError,
    Policy,
    apply,
    collect,
    filter_argument_spec,
    summary,
)

# Above this many lines, the diff shows counts instead of the whole file.
DIFF_MAX_LINES = 2000


def _diff(path, before, after):
    def text(data):
        if data is None:
            return ""
        lines = data.count(b"\n")
        if lines > DIFF_MAX_LINES:
            return f"({lines - 1} intel rows; too many to show)\n"
        return data.decode("utf-8", errors="replace")

    return {"before": text(before), "after": text(after), "before_header": path, "after_header": path}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **misp_argument_spec(),
            **filter_argument_spec(),
            **Policy.argument_spec(),
            force=dict(type="bool", default=False),
            page_size=dict(type="int", default=10000),
            max_pages=dict(type="int", default=1000),
            fetch_timeout=dict(type="float", default=1800),
            source_name=dict(type="str", default="MISP"),
            zeek_intel_path=dict(type="path"),
            do_notice=dict(type="bool"),
            memcached_servers=dict(type="list", elements="str", default=[]),
            memcached_ttl=dict(type="int", default=2700),
        ),
        required_one_of=[("zeek_intel_path", "memcached_servers")],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    p = module.params
    if PYMISP_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("pymisp"), exception=str(PYMISP_IMPORT_ERROR))
    if p["memcached_servers"] and PYMEMCACHE_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("pymemcache"), exception=str(PYMEMCACHE_IMPORT_ERROR))
    if p["page_size"] < 1:
        module.fail_json(msg=f"page_size must be at least 1, got {p['page_size']}")
    if p["max_pages"] < 1:
        module.fail_json(msg=f"max_pages must be at least 1, got {p['max_pages']}")
    if p["fetch_timeout"] <= 0:
        module.fail_json(msg=f"fetch_timeout must be a positive number of seconds, got {p['fetch_timeout']}")
    if p["memcached_ttl"] < 1:
        module.fail_json(msg=f"memcached_ttl must be a positive number of seconds, got {p['memcached_ttl']}")

    filters = Filters.from_options(p)
    try:
        policy = Policy.from_options(p)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    sink = None
    try:
        misp = connect(p["misp_url"], p["misp_key"], p["validate_certs"], p["ca_path"], p["timeout"])
        export = collect(
            misp,
            p["misp_url"],
            filters,
            p["page_size"],
            p["source_name"],
            policy,
            p["max_pages"],
            p["fetch_timeout"],
        )
        if p["memcached_servers"]:
            sink = MemcacheSink(p["memcached_servers"], p["memcached_ttl"], min(p["timeout"], 30))
        outcome = apply(
            export,
            p["zeek_intel_path"],
            p["do_notice"],
            sink,
            check_mode=module.check_mode,
            max_drop=1 if p["force"] else policy.max_drop,
        )
    except DropRefused as exc:
        module.fail_json(msg=f"{exc} (force: true)", not_exported=dict(export.skipped))
    except (MispError, MemcacheError, IntelWriteError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"cannot write {p['zeek_intel_path']}: {exc}")
    finally:
        if sink is not None:
            sink.close()

    result = summary(export, outcome)
    changed = outcome.intel_changed or outcome.keys_changed > 0
    if p["zeek_intel_path"]:
        if module._diff and outcome.intel_changed:
            result["diff"] = _diff(p["zeek_intel_path"], outcome.intel_before, outcome.intel_after)
        if not module.check_mode or not outcome.intel_changed:
            file_args = module.load_file_common_arguments(p, path=p["zeek_intel_path"])
            changed = module.set_fs_attributes_if_different(file_args, changed)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
