#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: elasticsearch_role
short_description: Manage roles of Elasticsearch or of OpenSearch's security plugin
version_added: 0.1.0
description:
  - Creates, updates or deletes a role (C(_security/role) on Elasticsearch,
    C(_plugins/_security/api/roles) on OpenSearch) from one description of its cluster
    and index privileges.
  - The role is wholly what the task says; what the server stores is read back into the
    same form (with the server's defaults left out) and written only when it differs, so
    a second run changes nothing.
  - Privilege names are the engine's own and are passed as given, e.g. C(create_doc),
    C(read), C(monitor) on Elasticsearch; action groups such as C(crud), C(read),
    C(cluster_monitor) or actions such as C(indices:data/write/index) on OpenSearch.
  - Built-in roles (Elasticsearch's reserved roles, OpenSearch's static ones) cannot be
    changed or deleted; the task fails naming the role. OpenSearch's reserved roles take
    changes made with the admin certificate (O(client_cert)), which the server checks.
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
    details: Before and after are the role in the form of RV(role), as JSON.
  platform:
    platforms: posix
options:
  name:
    description: Name of the role.
    type: str
    required: true
  cluster:
    description:
      - Cluster privileges (Elasticsearch C(cluster); OpenSearch C(cluster_permissions)).
    type: list
    elements: str
    default: []
  indices:
    description:
      - Index privileges (Elasticsearch C(indices); OpenSearch C(index_permissions)).
    type: list
    elements: dict
    default: []
    suboptions:
      names:
        description: Index names or patterns (OpenSearch C(index_patterns)).
        type: list
        elements: str
        required: true
      privileges:
        description: Index privileges (OpenSearch C(allowed_actions)).
        type: list
        elements: str
        required: true
      fields:
        description:
          - Field-level security, the fields granted (all when not given).
        type: list
        elements: str
      except_fields:
        description:
          - Field-level security, fields withheld. On OpenSearch (C(~field) in C(fls))
            it cannot be combined with O(indices[].fields).
        type: list
        elements: str
      query:
        description:
          - Document-level security, the query (an object, or its JSON text) that a
            document must match (Elasticsearch C(query); OpenSearch C(dls)).
        type: raw
      allow_restricted_indices:
        description: Elasticsearch only. Whether O(indices[].names) may match restricted indices.
        type: bool
        default: false
      masked_fields:
        description: OpenSearch only. Fields whose values are shown hashed.
        type: list
        elements: str
  run_as:
    description: Elasticsearch only. Users this role may act on behalf of.
    type: list
    elements: str
    default: []
  tenants:
    description: OpenSearch only. Dashboards tenant permissions.
    type: list
    elements: dict
    default: []
    suboptions:
      patterns:
        description: Tenant names or patterns (C(tenant_patterns)).
        type: list
        elements: str
        required: true
      privileges:
        description: C(kibana_all_read) or C(kibana_all_write) (C(allowed_actions)).
        type: list
        elements: str
        required: true
  description:
    description: What the role is for (Elasticsearch 8.15 or later; OpenSearch).
    type: str
  metadata:
    description:
      - Elasticsearch only. Free metadata; keys starting with C(_) are the engine's own
        and may not be given.
    type: dict
    default: {}
  state:
    description: Whether the role should exist.
    type: str
    choices: [present, absent]
    default: present
notes:
  - The connecting user needs C(manage_security) on Elasticsearch, and the security REST
    API on OpenSearch.
seealso:
  - module: wlcg.soc.elasticsearch_user
  - module: wlcg.soc.elasticsearch_role_mapping
"""

EXAMPLES = r"""
- name: The pipelines may add documents to the SOC's indices, nothing else (Elasticsearch)
  wlcg.soc.elasticsearch_role:
    hosts: https://es01.example.org:9200
    username: admin
    password: "{{ vault_elasticsearch_admin_password }}"
    name: soc_writer
    description: Logstash writes Zeek logs, flows and alerts
    cluster: [monitor]
    indices:
      - names: [zeek-*, flows-*, alerts-*]
        privileges: [create_doc, auto_configure]
  delegate_to: localhost

- name: The same on OpenSearch, in its action names
  wlcg.soc.elasticsearch_role:
    hosts: https://search01.example.org:9200
    ca_path: /etc/pki/tls/certs/site-ca.pem
    username: admin
    password: "{{ vault_elasticsearch_admin_password }}"
    name: soc_writer
    cluster: [cluster_monitor, indices:data/write/bulk]
    indices:
      - names: [zeek-*, flows-*, alerts-*]
        privileges: [indices:data/write/index, indices:data/write/bulk*, create_index, indices:admin/mapping/put]
  delegate_to: localhost

- name: Analysts read everything but the payloads
  wlcg.soc.elasticsearch_role:
    hosts: https://search01.example.org:9200
    username: admin
    password: "{{ vault_elasticsearch_admin_password }}"
    name: soc_analyst
    indices:
      - names: [zeek-*]
        privileges: [read]
        except_fields: [smtp.body]
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
  sample: elasticsearch
engine_version:
  description: Its version, when the server tells it.
  returned: success
  type: str
  sample: 8.19.21
role:
  description:
    - The role after the task in the same form on both engines (C(cluster), C(indices)
      with C(names), C(privileges) and, where set, C(field_security) C(grant)/C(except)
      and C(query); C(description); C(run_as) and C(metadata) on Elasticsearch,
      C(tenants) on OpenSearch). In check mode, the desired one. Absent when the role
      does not exist.
  returned: success
  type: dict
  sample: {"cluster": ["monitor"], "indices": [{"names": ["zeek-*"], "privileges": ["create_doc"]}],
           "run_as": [], "description": null, "metadata": {}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wlcg.soc.plugins.module_utils.search_client import (
    SEARCH_MODULE_KWARGS,
    SearchError,
    name_problem,
    search_argument_spec,
)
from ansible_collections.wlcg.soc.plugins.module_utils.search_security import (
    check_metadata,
    connect,
    engine_options_check,
    reconcile_object,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **search_argument_spec(),
            name=dict(type="str", required=True),
            cluster=dict(type="list", elements="str", default=[]),
            indices=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    names=dict(type="list", elements="str", required=True),
                    privileges=dict(type="list", elements="str", required=True),
                    fields=dict(type="list", elements="str"),
                    except_fields=dict(type="list", elements="str"),
                    query=dict(type="raw"),
                    allow_restricted_indices=dict(type="bool", default=False),
                    masked_fields=dict(type="list", elements="str"),
                ),
            ),
            run_as=dict(type="list", elements="str", default=[]),
            tenants=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    patterns=dict(type="list", elements="str", required=True),
                    privileges=dict(type="list", elements="str", required=True),
                ),
            ),
            description=dict(type="str"),
            metadata=dict(type="dict", default={}),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
        **SEARCH_MODULE_KWARGS,
    )
    p = module.params
    name = p["name"]
    problem = name_problem("name", "role", name)
    if problem:
        module.fail_json(msg=problem)
    result = dict(changed=False, operation="none")
    try:
        api = connect(module, result)
        engine_options_check("role", api.engine, p)
        check_metadata(p["metadata"])
        after = reconcile_object(
            module, result, api, "role", name, api.role_desired(p), api.role_neutral, api.role_body
        )
        if after is not None:
            result["role"] = after
    except SearchError as exc:
        module.fail_json(msg=f"role {name}: {exc}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
