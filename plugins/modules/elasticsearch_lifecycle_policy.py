#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: elasticsearch_lifecycle_policy
short_description: Manage index lifecycle policies (ILM on Elasticsearch, ISM on OpenSearch)
version_added: 0.1.0
description:
  - On Elasticsearch, manages an index lifecycle management policy
    (C(PUT _ilm/policy/<name>)); on OpenSearch, an Index State Management policy
    (C(PUT _plugins/_ism/policies/<name>), updated with C(if_seq_no) and
    C(if_primary_term) of the stored version, as ISM requires).
  - The two engines take different policies (ILM phases and actions against ISM states
    and transitions), so O(policy) is written for the engine at hand; O(engine) or the
    server's answer to C(GET /) decides which API is used.
  - The desired O(policy) is compared with what the server returns, without its
    bookkeeping (ILM's C(version) and C(modified_date); ISM's C(policy_id),
    C(last_updated_time), C(schema_version), C(user)) and without the defaults it fills
    in (ILM's C(min_age) of C(0ms) and C(delete_searchable_snapshot); ISM's C(retry) of
    each action, C(error_notification), the C(last_updated_time) of each
    C(ism_template)). The policy is written only when they differ.
  - A policy the server rejects fails the task with the server's reason.
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
    details: Before and after are the normalised policy as JSON.
  platform:
    platforms: posix
options:
  name:
    description: Name (ILM) or id (ISM) of the policy.
    type: str
    required: true
  policy:
    description:
      - The policy, i.e. what goes under C(policy) in the API's request body (a dict
        with the single key C(policy) is taken as the whole request body).
      - ILM C(phases) (and C(_meta)); ISM C(description), C(default_state), C(states)
        (and C(ism_template), C(error_notification)).
      - Required with O(state=present).
    type: dict
  state:
    description: Whether the policy should exist.
    type: str
    choices: [present, absent]
    default: present
notes:
  - ISM is the OpenSearch C(index-management) plugin, part of the full distribution;
    ILM is part of Elasticsearch's default distribution.
  - Deleting an ILM policy that indices still use fails with the server's reason.
seealso:
  - module: wlcg.soc.elasticsearch_index_template
  - module: wlcg.soc.elasticsearch_ingest_pipeline
"""

EXAMPLES = r"""
- name: Roll the Zeek data streams over daily, delete after 90 days (Elasticsearch)
  wlcg.soc.elasticsearch_lifecycle_policy:
    hosts: https://es01.example.org:9200
    username: soc_admin
    password: "{{ vault_elasticsearch_soc_admin_password }}"
    name: zeek
    policy:
      phases:
        hot:
          actions:
            rollover:
              max_age: 1d
              max_primary_shard_size: 50gb
        delete:
          min_age: 90d
          actions:
            delete: {}
  delegate_to: localhost

- name: The same with ISM (OpenSearch)
  wlcg.soc.elasticsearch_lifecycle_policy:
    hosts: https://os01.example.org:9200
    username: soc_admin
    password: "{{ vault_opensearch_soc_admin_password }}"
    engine: opensearch
    name: zeek
    policy:
      description: Zeek logs, kept 90 days
      default_state: hot
      states:
        - name: hot
          actions:
            - rollover:
                min_index_age: 1d
          transitions:
            - state_name: delete
              conditions:
                min_index_age: 90d
        - name: delete
          actions:
            - delete: {}
      ism_template:
        - index_patterns: [zeek-*]
          priority: 100
  delegate_to: localhost
"""

RETURN = r"""
operation:
  description: What the module did (or, in check mode, would do).
  returned: always
  type: str
  choices: [create, update, delete, none]
  sample: none
api:
  description: Which lifecycle API was used.
  returned: success
  type: str
  choices: [ilm, ism]
  sample: ilm
engine:
  description: The engine that answered.
  returned: success
  type: str
  sample: elasticsearch
engine_version:
  description: Its version, when the server tells it.
  returned: success
  type: str
  sample: 8.19.21
policy:
  description:
    - The policy as stored after the task (normalised as for the comparison); in check
      mode, the desired one. Absent when it does not exist.
  returned: success
  type: dict
  sample: {"phases": {"hot": {"min_age": "0ms", "actions": {"rollover": {"max_age": "1d"}}}}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wlcg.soc.plugins.module_utils.reconcile import reconcile
from ansible_collections.wlcg.soc.plugins.module_utils.search_client import (
    SEARCH_MODULE_KWARGS,
    SearchError,
    client_from_params,
    compare_ilm,
    compare_ism,
    name_problem,
    path_part,
    search_argument_spec,
    unwrap_policy,
)


class Ilm:
    name = "ilm"
    compare = staticmethod(compare_ilm)

    def __init__(self, client, name):
        self.client, self.name_ = client, name
        self.path = f"_ilm/policy/{path_part(name)}"

    def read(self):
        data = self.client.request("GET", self.path, missing_ok=True)
        if data is None or self.name_ not in data:
            return None
        return data[self.name_].get("policy") or {}

    def write(self, policy, exists):
        self.client.request("PUT", self.path, body={"policy": policy})


class Ism:
    name = "ism"
    compare = staticmethod(compare_ism)

    def __init__(self, client, name):
        self.client, self.name_ = client, name
        self.path = f"_plugins/_ism/policies/{path_part(name)}"
        self.seq_no = self.primary_term = None

    def read(self):
        data = self.client.request("GET", self.path, missing_ok=True)
        if data is None or "policy" not in data:
            return None
        self.seq_no, self.primary_term = data.get("_seq_no"), data.get("_primary_term")
        return data["policy"]

    def write(self, policy, exists):
        params = None
        if exists:
            params = {"if_seq_no": self.seq_no, "if_primary_term": self.primary_term}
        self.client.request("PUT", self.path, body={"policy": policy}, params=params)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **search_argument_spec(),
            name=dict(type="str", required=True),
            policy=dict(type="dict"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ("policy",))],
        supports_check_mode=True,
        **SEARCH_MODULE_KWARGS,
    )
    p = module.params
    name = p["name"]
    problem = name_problem("name", "policy", name)
    if problem:
        module.fail_json(msg=problem)
    desired = unwrap_policy(p["policy"]) if p["policy"] is not None else None
    result = dict(changed=False, operation="none")
    try:
        client = client_from_params(p)
        info = client.connect()
        api = Ism(client, name) if info["engine"] == "opensearch" else Ilm(client, name)
        result.update(engine=info["engine"], engine_version=info["version"], api=api.name)
        _before, after = reconcile(
            module,
            result,
            header=f"{api.name} policy {name}",
            warning=f"the server stores policy {name} differently from the given one, so the next run "
            "will report a change again; write the policy as the server returns it (see the diff)",
            desired=desired,
            read=api.read,
            compare=api.compare,
            write=lambda stored: api.write(desired, exists=stored is not None),
            delete=lambda stored: client.request("DELETE", api.path),
        )
        if after is not None:
            result["policy"] = after
    except SearchError as exc:
        module.fail_json(msg=f"lifecycle policy {name}: {exc}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
