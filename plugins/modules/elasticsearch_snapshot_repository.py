#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: elasticsearch_snapshot_repository
short_description: Register a snapshot repository in Elasticsearch or OpenSearch
version_added: 0.1.0
description:
  - Registers, updates or removes a snapshot repository (C(PUT _snapshot/<name>)), the
    same API on Elasticsearch 8.x/9.x and OpenSearch 2.x.
  - The repository is compared with what the server returns (settings flat, values as
    strings) and written only when it differs.
  - After a write, and in every run with O(verify=always), the repository is verified
    (C(POST _snapshot/<name>/_verify)); every master-eligible and data node must reach
    it. When one cannot, the task fails with the server's reason and the repository is
    put back as it was before the task (or removed, if the task created it), so a
    repository that worked is never replaced by one that does not.
  - Removing a repository leaves its snapshots where they are.
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - wlcg.soc.http_client
  - wlcg.soc.elasticsearch
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Before and after are the repository (type and settings) as JSON.
  platform:
    platforms: posix
options:
  name:
    description: Name of the repository.
    type: str
    required: true
  type:
    description:
      - Repository type. V(fs) is a shared file system mounted at the same path on every
        node and listed in C(path.repo); others (V(s3), V(azure), V(gcs), V(hdfs)) need
        their plugin.
    type: str
    default: fs
  settings:
    description:
      - The repository's settings, e.g. C(location), C(compress),
        C(max_snapshot_bytes_per_sec), C(readonly). An V(fs) repository needs C(location).
    type: dict
    default: {}
  verify:
    description:
      - V(on_change) verifies the repository after the task wrote it; V(always) in every
        run (it writes a test file from each node into the repository); V(never) skips it.
    type: str
    choices: [on_change, always, never]
    default: on_change
  state:
    description: Whether the repository should be registered.
    type: str
    choices: [present, absent]
    default: present
notes:
  - The connecting user needs C(manage) (Elasticsearch) or C(cluster:admin/repository/*)
    (OpenSearch, e.g. the C(manage_snapshots) action group) on the cluster.
seealso:
  - module: wlcg.soc.elasticsearch_index_template
"""

EXAMPLES = r"""
- name: The SOC's snapshots on the shared file system every node mounts
  wlcg.soc.elasticsearch_snapshot_repository:
    hosts: https://search01.example.org:9200
    ca_path: /etc/pki/tls/certs/site-ca.pem
    username: admin
    password: "{{ vault_elasticsearch_admin_password }}"
    name: soc-snapshots
    settings:
      location: /srv/search-snapshots/soc
      compress: true
  delegate_to: localhost
"""

RETURN = r"""
operation:
  description: What the module did (or, in check mode, would do).
  returned: always
  type: str
  choices: [create, update, delete, none]
  sample: create
engine:
  description: The engine that answered.
  returned: success
  type: str
  sample: opensearch
engine_version:
  description: Its version, when the server tells it.
  returned: success
  type: str
  sample: 2.19.4
repository:
  description: The repository after the task, its type and flat settings; in check mode the desired one.
  returned: success and state=present
  type: dict
  sample: {"type": "fs", "settings": {"location": "/srv/search-snapshots/soc", "compress": "true"}}
verified_nodes:
  description: Names of the nodes that verified the repository, when it was verified.
  returned: when verified
  type: list
  elements: str
  sample: [search01, search02, search03]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wlcg.soc.plugins.module_utils.reconcile import reconcile
from ansible_collections.wlcg.soc.plugins.module_utils.search_client import (
    SEARCH_MODULE_KWARGS,
    SearchError,
    client_from_params,
    compare_repository,
    name_problem,
    path_part,
    search_argument_spec,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **search_argument_spec(),
            name=dict(type="str", required=True),
            type=dict(type="str", default="fs"),
            settings=dict(type="dict", default={}),
            verify=dict(type="str", choices=["on_change", "always", "never"], default="on_change"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
        **SEARCH_MODULE_KWARGS,
    )
    p = module.params
    name = p["name"]
    problem = name_problem("name", "repository", name, allow_leading_underscore=False)
    if problem:
        module.fail_json(msg=problem)
    if p["state"] == "present" and p["type"] == "fs" and not p["settings"].get("location"):
        module.fail_json(msg=f"settings.location is required for the fs repository {name!r}")
    result = dict(changed=False, operation="none")
    path = f"_snapshot/{path_part(name)}"
    desired = {"type": p["type"], "settings": p["settings"]}
    try:
        client = client_from_params(p)
        info = client.connect()
        result.update(engine=info["engine"], engine_version=info["version"])

        def read():
            data = client.request("GET", path, missing_ok=True)
            return (data or {}).get(name)

        stored = read()
        _before, after = reconcile(
            module,
            result,
            header=f"snapshot repository {name}",
            warning=f"the server stores repository {name} differently from the task, so the next run will "
            "report a change again (see the diff)",
            desired=desired,
            read=read,
            stored=stored,
            compare=compare_repository,
            # Registered unverified, then verified below: a repository some node cannot
            # reach does not replace the one that worked.
            write=lambda _stored: client.request("PUT", path, body=desired, params={"verify": "false"}),
            delete=lambda _stored: client.request("DELETE", path),
        )
        if after is not None:
            result["repository"] = after
        written = result["operation"] in ("create", "update")
        wanted = p["verify"] == "always" or (p["verify"] == "on_change" and written)
        if p["state"] == "present" and wanted and not module.check_mode:
            try:
                verified = client.request("POST", f"{path}/_verify")
            except SearchError:
                if written and stored is not None:
                    client.request("PUT", path, body=stored, params={"verify": "false"})
                elif written:
                    client.request("DELETE", path)
                raise
            result["verified_nodes"] = sorted(n.get("name", i) for i, n in (verified.get("nodes") or {}).items())
    except SearchError as exc:
        module.fail_json(msg=f"snapshot repository {name}: {exc}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
