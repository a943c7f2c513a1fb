#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: elasticsearch_index_template
short_description: Manage composable index templates and component templates in Elasticsearch or OpenSearch
version_added: 0.1.0
description:
  - Creates, updates or deletes a composable index template (C(PUT _index_template/<name>))
    or a component template (C(PUT _component_template/<name>)). The API is the same on
    Elasticsearch 8.x/9.x and OpenSearch 2.x.
  - The desired O(body) is compared with what the server returns, both normalised the
    way the server stores a template (index settings flat with the C(index.) prefix and
    their values as strings, a single index pattern as a list, the defaults the server
    fills in such as C(data_stream.hidden) left out unless O(body) sets them); the
    template is written only when they differ, so a second run changes nothing.
  - A body the server rejects fails the task with the server's reason.
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
    details: Before and after are the normalised template as JSON.
  platform:
    platforms: posix
options:
  kind:
    description:
      - V(index) for a composable index template, V(component) for a component template
        that index templates list in C(composed_of).
    type: str
    choices: [index, component]
    default: index
  name:
    description: Name of the template.
    type: str
    required: true
  body:
    description:
      - The template as the API takes it. For V(index) C(index_patterns) (required),
        C(composed_of), C(priority), C(version), C(_meta), C(data_stream) and
        C(template) (C(settings), C(mappings), C(aliases)); for V(component) C(template),
        C(version) and C(_meta).
      - Required with O(state=present).
    type: dict
  state:
    description: Whether the template should exist.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Legacy templates (C(_template)) are not managed.
  - Deleting a component template that an index template still uses fails with the
    server's reason.
seealso:
  - module: wlcg.soc.elasticsearch_lifecycle_policy
  - module: wlcg.soc.elasticsearch_ingest_pipeline
"""

EXAMPLES = r"""
- name: Settings and mappings shared by the Zeek indices
  wlcg.soc.elasticsearch_index_template:
    hosts: [https://es01.example.org:9200, https://es02.example.org:9200]
    username: soc_admin
    password: "{{ vault_elasticsearch_soc_admin_password }}"
    ca_path: /etc/pki/tls/certs/site-ca.pem
    kind: component
    name: zeek-settings
    body:
      template:
        settings:
          number_of_shards: 2
          number_of_replicas: 1
          index.lifecycle.name: zeek
        mappings:
          dynamic: false
          properties:
            "@timestamp": {type: date}
            id:
              properties:
                orig_h: {type: ip}
                resp_h: {type: ip}
  delegate_to: localhost

- name: A data stream per Zeek log
  wlcg.soc.elasticsearch_index_template:
    hosts: https://es01.example.org:9200
    api_key: "{{ vault_elasticsearch_api_key }}"
    name: zeek
    body:
      index_patterns: [zeek-*]
      composed_of: [zeek-settings]
      priority: 200
      data_stream: {}
      _meta:
        managed_by: wlcg.soc
  delegate_to: localhost

- name: Remove an old template
  wlcg.soc.elasticsearch_index_template:
    hosts: https://es01.example.org:9200
    api_key: "{{ vault_elasticsearch_api_key }}"
    name: bro
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
operation:
  description: What the module did (or, in check mode, would do).
  returned: always
  type: str
  choices: [create, update, delete, none]
  sample: update
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
template:
  description:
    - The template as stored after the task (normalised as for the comparison);
      in check mode, the desired one. Absent when it does not exist.
  returned: success
  type: dict
  sample: {"index_patterns": ["zeek-*"], "priority": 200, "template": {"settings": {"index.number_of_shards": "1"}}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wlcg.soc.plugins.module_utils.reconcile import reconcile
from ansible_collections.wlcg.soc.plugins.module_utils.search_client import (
    SEARCH_MODULE_KWARGS,
    SearchError,
    client_from_params,
    compare_template,
    path_part,
    search_argument_spec,
)

RESPONSE_KEYS = {
    "index": ("index_templates", "index_template"),
    "component": ("component_templates", "component_template"),
}


def read(client, kind, name):
    """The stored template, or None."""
    data = client.request("GET", f"_{kind}_template/{path_part(name)}", missing_ok=True)
    if not data:
        return None
    many, one = RESPONSE_KEYS[kind]
    for item in data.get(many) or []:
        if item.get("name") == name:
            return item.get(one)
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **search_argument_spec(),
            kind=dict(type="str", choices=["index", "component"], default="index"),
            name=dict(type="str", required=True),
            body=dict(type="dict"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ("body",))],
        supports_check_mode=True,
        **SEARCH_MODULE_KWARGS,
    )
    p = module.params
    kind, name = p["kind"], p["name"]
    if not name.strip():
        module.fail_json(msg="name must not be empty")
    if kind == "index" and p["state"] == "present" and not p["body"].get("index_patterns"):
        module.fail_json(msg=f"body of index template {name!r} needs index_patterns")
    result = dict(changed=False, operation="none")
    path = f"_{kind}_template/{path_part(name)}"
    try:
        client = client_from_params(p)
        info = client.connect()
        result.update(engine=info["engine"], engine_version=info["version"])
        _before, after = reconcile(
            module,
            result,
            header=f"{kind} template {name}",
            warning=f"the server stores {kind} template {name} differently from the body, so the next run "
            "will report a change again; write the body as the server returns it (see the diff)",
            desired=p["body"],
            read=lambda: read(client, kind, name),
            compare=compare_template,
            write=lambda stored: client.request("PUT", path, body=p["body"]),
            delete=lambda stored: client.request("DELETE", path),
        )
        if after is not None:
            result["template"] = after
    except SearchError as exc:
        module.fail_json(msg=f"{kind} template {name}: {exc}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
