#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: elasticsearch_role_mapping
short_description: Map users and groups to a role on Elasticsearch or OpenSearch
version_added: 0.1.0
description:
  - Gives a role to users by name and to the groups of an external realm (LDAP, PKI,
    SAML, OpenID), which OpenSearch calls backend roles.
  - On OpenSearch this is the role's mapping (C(_plugins/_security/api/rolesmapping/<role>)),
    with its C(users), C(backend_roles) and C(hosts).
  - On Elasticsearch it is a role mapping named O(name) (C(_security/role_mapping/<name>))
    that gives O(role) to users whose C(username) is one of O(users) or who are in one of
    the C(groups) O(backend_roles); or, for any other rule, the rule as O(rules).
    Elasticsearch applies role mappings to realm users (LDAP, PKI, SAML...), not to users
    of its native realm; give those their roles with M(wlcg.soc.elasticsearch_user).
  - The mapping is wholly what the task says and is written only when it differs.
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
    details: Before and after are the mapping in the form of RV(mapping), as JSON.
  platform:
    platforms: posix
options:
  role:
    description: The role given.
    type: str
    required: true
  name:
    description:
      - Elasticsearch only. Name of the role mapping; O(role) when not given. OpenSearch
        has one mapping per role, named as the role.
    type: str
  users:
    description: Users (by name, or the subject DN of a client certificate) who get O(role).
    type: list
    elements: str
    default: []
  backend_roles:
    description: Groups (OpenSearch backend roles; Elasticsearch C(groups), e.g. LDAP group DNs) that get O(role).
    type: list
    elements: str
    default: []
  mapped_hosts:
    description:
      - OpenSearch only. Hosts (names or addresses) whose requests get O(role) (the
        mapping's C(hosts)).
    type: list
    elements: str
    default: []
  rules:
    description:
      - Elasticsearch only. The mapping's rules as the API takes them (C(field), C(any),
        C(all), C(except)), instead of O(users) and O(backend_roles).
    type: dict
  enabled:
    description: Elasticsearch only. Whether the mapping applies.
    type: bool
  metadata:
    description: Elasticsearch only. Free metadata of the mapping.
    type: dict
  state:
    description: Whether the mapping should exist.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: wlcg.soc.elasticsearch_role
  - module: wlcg.soc.elasticsearch_user
"""

EXAMPLES = r"""
- name: The site's security team (an LDAP group) are SOC analysts
  wlcg.soc.elasticsearch_role_mapping:
    hosts: https://search01.example.org:9200
    username: admin
    password: "{{ vault_elasticsearch_admin_password }}"
    role: soc_analyst
    backend_roles: ["cn=security-team,ou=groups,dc=example,dc=org"]
  delegate_to: localhost

- name: Elasticsearch, any rule
  wlcg.soc.elasticsearch_role_mapping:
    hosts: https://es01.example.org:9200
    api_key: "{{ vault_elasticsearch_api_key }}"
    name: pki-soc-analysts
    role: soc_analyst
    rules:
      all:
        - field: {realm.name: pki1}
        - field: {dn: "*,ou=soc,dc=example,dc=org"}
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
mapping:
  description:
    - The mapping after the task (OpenSearch C(users), C(backend_roles), C(hosts);
      Elasticsearch C(roles), C(rules), C(enabled), C(metadata)); in check mode the
      desired one. Absent when there is none.
  returned: success
  type: dict
  sample: {"users": ["soc_writer"], "backend_roles": [], "hosts": []}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wlcg.soc.plugins.module_utils.search_client import (
    SEARCH_MODULE_KWARGS,
    SearchError,
    name_problem,
    search_argument_spec,
)
from ansible_collections.wlcg.soc.plugins.module_utils.search_security import (
    connect,
    engine_options_check,
    reconcile_object,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **search_argument_spec(),
            role=dict(type="str", required=True),
            name=dict(type="str"),
            users=dict(type="list", elements="str", default=[]),
            backend_roles=dict(type="list", elements="str", default=[]),
            mapped_hosts=dict(type="list", elements="str", default=[]),
            rules=dict(type="dict"),
            enabled=dict(type="bool"),
            metadata=dict(type="dict"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
        **SEARCH_MODULE_KWARGS,
    )
    p = module.params
    role = p["role"]
    problem = name_problem("role", "role", role)
    if problem:
        module.fail_json(msg=problem)
    result = dict(changed=False, operation="none")
    try:
        api = connect(module, result)
        engine_options_check("role_mapping", api.engine, p)
        if p["name"] is not None and not api.es and p["name"] != role:
            raise SearchError("name: OpenSearch names a role's mapping after the role; leave name out")
        desired = api.mapping_desired(p) if p["state"] == "present" else None
        # The neutral form is the API's own here.
        after = reconcile_object(
            module, result, api, "role_mapping", p["name"] or role, desired, api.mapping_neutral, dict
        )
        if after is not None:
            result["mapping"] = after
    except SearchError as exc:
        module.fail_json(msg=f"role mapping {p['name'] or role}: {exc}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
