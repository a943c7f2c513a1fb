#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: elasticsearch_api_key
short_description: Manage an Elasticsearch API key by name
version_added: 0.1.0
description:
  - Keeps one active API key of the connecting user under O(name)
    (C(POST /_security/api_key)). It creates it when the user has none, updates its
    privileges and metadata in place (C(PUT /_security/api_key/<id>)) when they differ,
    or invalidates every key of that name and owner with O(state=absent).
  - The secret is shown once, by the task that creates the key (RV(encoded),
    RV(api_key)); store it then (in a vault or a protected file), and run such a task with
    C(no_log) so that it is not logged.
  - Elasticsearch only; OpenSearch 2 has no API keys (the task fails and says so).
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
    details: Before and after are the key's role descriptors and metadata as JSON, never the secret.
  platform:
    platforms: posix
options:
  name:
    description: Name of the key.
    type: str
    required: true
  role_descriptors:
    description:
      - The key's privileges, role name to role (C(cluster), C(indices), ...), as
        Elasticsearch takes them; at most those of the owner. Empty gives the key all of
        the owner's privileges at the time of use.
    type: dict
    default: {}
  metadata:
    description: Free metadata of the key; keys starting with C(_) are Elasticsearch's own.
    type: dict
    default: {}
  expiration:
    description:
      - Lifetime of a key created by the task, such as C(90d); none by default. It does
        not change an existing key; to renew one, invalidate it (O(state=absent)) and
        create it again.
    type: str
  state:
    description: Whether a key of this name should be active.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Connect as the key's owner with O(username) and O(password); Elasticsearch updates a
    key only for its owner, and not through an API key.
seealso:
  - module: wlcg.soc.elasticsearch_role
  - module: wlcg.soc.elasticsearch_user
"""

EXAMPLES = r"""
- name: ElastAlert2 reads alerts with a key of its own
  wlcg.soc.elasticsearch_api_key:
    hosts: https://es01.example.org:9200
    username: soc_alerting
    password: "{{ vault_elasticsearch_elastalert_password }}"
    name: elastalert
    role_descriptors:
      alerts_reader:
        indices:
          - names: [zeek-*, alerts-*]
            privileges: [read, view_index_metadata]
    metadata: {service: elastalert2}
  delegate_to: localhost
  no_log: true
  register: elastalert_key
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
  sample: elasticsearch
engine_version:
  description: Its version, when the server tells it.
  returned: success
  type: str
  sample: 8.19.21
id:
  description: Id of the active key.
  returned: when a key exists after the task (in check mode, when one existed)
  type: str
  sample: VuaCfGcBCdbkQm-e5aOx
api_key:
  description: The secret of a key the task created. Only then.
  returned: when created
  type: str
encoded:
  description: Base64 of C(id:api_key), what an C(Authorization) header of type C(ApiKey) carries. Only when created.
  returned: when created
  type: str
key:
  description: The key's role descriptors (normalised as roles are by M(wlcg.soc.elasticsearch_role)) and metadata.
  returned: success and state=present
  type: dict
  sample:
    role_descriptors:
      alerts_reader: {"cluster": [], "indices": [{"names": ["alerts-*"], "privileges": ["read"]}], "run_as": [],
                      "description": null, "metadata": {}}
    metadata: {"service": "elastalert2"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wlcg.soc.plugins.module_utils.reconcile import diff_of
from ansible_collections.wlcg.soc.plugins.module_utils.search_client import (
    SEARCH_MODULE_KWARGS,
    SearchError,
    path_part,
    search_argument_spec,
)
from ansible_collections.wlcg.soc.plugins.module_utils.search_security import check_metadata, connect


def active_keys(client, name: str) -> list[dict]:
    """The owner's valid keys of this name, newest first."""
    data = client.request(
        "GET", "_security/api_key", params={"name": name, "owner": "true", "active_only": "true"}, missing_ok=True
    )
    keys = [k for k in (data or {}).get("api_keys") or [] if k.get("name") == name and not k.get("invalidated")]
    return sorted(keys, key=lambda k: k.get("creation") or 0, reverse=True)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **search_argument_spec(),
            name=dict(type="str", required=True),
            role_descriptors=dict(type="dict", default={}),
            metadata=dict(type="dict", default={}),
            expiration=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
        **SEARCH_MODULE_KWARGS,
    )
    p = module.params
    name = p["name"]
    if not name.strip():
        module.fail_json(msg="name must not be empty")
    result = dict(changed=False, operation="none")
    try:
        api = connect(module, result)
        client = api.client
        if not api.es:
            raise SearchError("OpenSearch 2 has no API keys; give the service a user of its own (elasticsearch_user)")
        for role, descriptor in p["role_descriptors"].items():
            if not isinstance(descriptor, dict):
                raise SearchError(f"role_descriptors.{role} must be a role (a dict), got {type(descriptor).__name__}")
        check_metadata(p["metadata"])

        def form(descriptors: dict, metadata: dict) -> dict:
            return {
                "role_descriptors": {r: api.role_neutral(d) for r, d in (descriptors or {}).items()},
                "metadata": {k: v for k, v in (metadata or {}).items() if not str(k).startswith("_")},
            }

        keys = active_keys(client, name)
        if len(keys) > 1 and p["state"] == "present":
            module.warn(f"{len(keys)} active API keys are named {name}; the newest ({keys[0].get('id')}) is managed")
        current = keys[0] if keys else None
        before = form(current.get("role_descriptors"), current.get("metadata")) if current else None
        after = form(p["role_descriptors"], p["metadata"]) if p["state"] == "present" else None
        if p["state"] == "absent":
            operation = "delete" if keys else "none"
        elif current is None:
            operation = "create"
        else:
            operation = "none" if before == after else "update"
        result.update(operation=operation, changed=operation != "none")
        if module._diff and operation != "none":
            result["diff"] = diff_of(f"API key {name}", before, after)
        if current is not None:
            result["id"] = current.get("id")
        body = {"role_descriptors": p["role_descriptors"], "metadata": p["metadata"]}
        if not module.check_mode:
            if operation == "create":
                if p["expiration"]:
                    body["expiration"] = p["expiration"]
                created = client.request("POST", "_security/api_key", body=dict(body, name=name))
                result.update(id=created.get("id"), api_key=created.get("api_key"), encoded=created.get("encoded"))
            elif operation == "update":
                client.request("PUT", f"_security/api_key/{path_part(current['id'])}", body=body)
            elif operation == "delete":
                client.request("DELETE", "_security/api_key", body={"name": name, "owner": True})
            if operation in ("create", "update"):
                now = active_keys(client, name)
                if now:
                    after = form(now[0].get("role_descriptors"), now[0].get("metadata"))
        if after is not None:
            result["key"] = after
    except SearchError as exc:
        module.fail_json(msg=f"API key {name}: {exc}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
