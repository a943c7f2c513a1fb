#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: elasticsearch_user
short_description: Manage users of Elasticsearch's native realm or OpenSearch's security plugin
version_added: 0.1.0
description:
  - Creates, updates or deletes a user in Elasticsearch's native realm
    (C(_security/user)) or among the internal users of the OpenSearch security plugin
    (C(_plugins/_security/api/internalusers)).
  - Only the options given are managed; the others keep what the server stores (so a
    task may set just the password of a built-in user).
  - The password is never read back, shown in a diff or returned. Whether it differs is
    learnt by authenticating as the user with O(user_password); it is written only when
    that fails (or, with O(update_password=on_create), only when the user is created).
  - Elasticsearch's built-in users (such as C(kibana_system)) keep their roles; only their
    password and O(enabled) can be managed. OpenSearch's static and hidden users cannot be
    changed; its reserved users only with the admin certificate (O(client_cert)), which
    the server checks.
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
    details:
      - Before and after are the user without its password as JSON; a password that is
        going to be written shows as a changed C(password) line of asterisks.
  platform:
    platforms: posix
options:
  name:
    description: The user's name.
    type: str
    required: true
  user_password:
    description:
      - The user's password. Keep it in Ansible Vault. Required to create a user.
      - OpenSearch rejects passwords its password policy finds weak; Elasticsearch needs at
        least 6 characters.
    type: str
  update_password:
    description:
      - V(always) makes the stored password O(user_password) (checked by a login);
        V(on_create) sets it only when the user is created.
    type: str
    choices: [always, on_create]
    default: always
  roles:
    description:
      - Roles of the user (Elasticsearch C(roles); OpenSearch C(opendistro_security_roles),
        the roles given directly rather than through a role mapping).
    type: list
    elements: str
  backend_roles:
    description:
      - OpenSearch only. Backend roles of the user, for role mappings by backend role.
    type: list
    elements: str
  full_name:
    description:
      - A readable name (Elasticsearch C(full_name); OpenSearch C(description)).
    type: str
  email:
    description: Elasticsearch only. The user's e-mail address.
    type: str
  metadata:
    description:
      - Elasticsearch C(metadata) (keys starting with C(_) are the engine's own and may not
        be given); OpenSearch C(attributes), whose values must be strings.
    type: dict
  enabled:
    description:
      - Elasticsearch only. Whether the user may log in. The password of a user that is
        and stays disabled cannot be checked by a login, so it is left as it is.
    type: bool
  state:
    description: Whether the user should exist.
    type: str
    choices: [present, absent]
    default: present
notes:
  - The connecting user needs C(manage_security) on Elasticsearch, and the security REST
    API (C(all_access) or C(security_rest_api_access)) on OpenSearch.
  - Changing the password of the user the task connects as makes the task's own later
    requests fail; change it with another user.
seealso:
  - module: wlcg.soc.elasticsearch_role
  - module: wlcg.soc.elasticsearch_role_mapping
  - module: wlcg.soc.elasticsearch_api_key
"""

EXAMPLES = r"""
- name: The pipelines' writer, with its password from the vault
  wlcg.soc.elasticsearch_user:
    hosts: https://search01.example.org:9200
    ca_path: /etc/pki/tls/certs/site-ca.pem
    username: admin
    password: "{{ vault_elasticsearch_admin_password }}"
    name: soc_writer
    user_password: "{{ vault_elasticsearch_logstash_password }}"
    roles: [soc_writer]
    full_name: Logstash pipelines
  delegate_to: localhost

- name: Kibana's own user keeps its built-in role; only the password is set
  wlcg.soc.elasticsearch_user:
    hosts: https://search01.example.org:9200
    username: elastic
    password: "{{ vault_elasticsearch_elastic_password }}"
    name: kibana_system
    user_password: "{{ vault_kibana_system_password }}"
  delegate_to: localhost

- name: A user that is no longer needed
  wlcg.soc.elasticsearch_user:
    hosts: https://search01.example.org:9200
    username: admin
    password: "{{ vault_elasticsearch_admin_password }}"
    name: old_reader
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
password_changed:
  description: Whether the password was (or, in check mode, would be) written.
  returned: success
  type: bool
  sample: false
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
user:
  description:
    - The user after the task, without its password, in the same form on both engines
      (C(roles), C(full_name), C(metadata), and C(backend_roles) on OpenSearch, C(email)
      and C(enabled) on Elasticsearch). Absent when the user does not exist.
  returned: success
  type: dict
  sample: {"roles": ["soc_writer"], "backend_roles": [], "full_name": "Logstash pipelines", "metadata": {}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wlcg.soc.plugins.module_utils.reconcile import diff_of
from ansible_collections.wlcg.soc.plugins.module_utils.search_client import (
    SEARCH_MODULE_KWARGS,
    SearchError,
    name_problem,
    search_argument_spec,
)
from ansible_collections.wlcg.soc.plugins.module_utils.search_security import (
    MASK,
    SecurityApi,
    check_metadata,
    connect,
    engine_options_check,
    login_works,
)

FIELDS = ("roles", "backend_roles", "full_name", "email", "metadata", "enabled")
NEW_USER = {
    "elasticsearch": {"roles": [], "full_name": None, "email": None, "metadata": {}, "enabled": True},
    "opensearch": {"roles": [], "backend_roles": [], "full_name": None, "metadata": {}},
}


def check_input(params: dict, engine: str) -> None:
    engine_options_check("user", engine, params)
    metadata = params.get("metadata") or {}
    if engine == "elasticsearch":
        check_metadata(metadata)
    else:
        odd = [k for k, v in metadata.items() if not isinstance(v, str)]
        if odd:
            raise SearchError(f"metadata: OpenSearch attributes are strings; not so for {', '.join(map(str, odd))}")


def password_differs(module, api: SecurityApi, stored, before: dict | None, after: dict) -> bool:
    p = module.params
    if stored is None:
        return True
    if p["user_password"] is None or p["update_password"] == "on_create":  # noqa: S105 - a choice, not a password
        return False
    if api.es and before is not None and not before.get("enabled", True) and not after.get("enabled", True):
        return False  # a disabled user cannot log in: nothing to check, nothing to gain
    return not login_works(p, api.engine, p["name"], p["user_password"])


def apply(api: SecurityApi, name: str, stored, before, after, password: str | None) -> None:
    if stored is not None and api.reserved(stored):
        # Elasticsearch takes only these two changes for a built-in user.
        if password is not None:
            api.set_password(name, password)
        if before.get("enabled") != after.get("enabled"):
            api.set_enabled(name, after["enabled"])
        return
    api.write("user", name, api.user_body(after, password))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **search_argument_spec(),
            name=dict(type="str", required=True),
            user_password=dict(type="str", no_log=True),
            update_password=dict(type="str", choices=["always", "on_create"], default="always", no_log=False),
            roles=dict(type="list", elements="str"),
            backend_roles=dict(type="list", elements="str"),
            full_name=dict(type="str"),
            email=dict(type="str"),
            metadata=dict(type="dict"),
            enabled=dict(type="bool"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
        **SEARCH_MODULE_KWARGS,
    )
    p = module.params
    name = p["name"]
    problem = name_problem("name", "user", name)
    if problem:
        module.fail_json(msg=problem)
    result = dict(changed=False, operation="none")
    try:
        api = connect(module, result)
        check_input(p, api.engine)
        stored = api.read("user", name)
        before = api.user_neutral(stored) if stored is not None else None
        if p["state"] == "absent":
            after, operation, new_password = None, "delete" if stored is not None else "none", False
        else:
            if stored is None and p["user_password"] is None:
                raise SearchError("user_password is required to create the user")
            after = dict(before if before is not None else NEW_USER[api.engine])
            after.update({k: p[k] for k in FIELDS if p[k] is not None and k in after})
            new_password = password_differs(module, api, stored, before, after)
            if stored is not None and api.reserved(stored):
                changing = sorted(k for k in after if after[k] != before[k] and not (api.es and k == "enabled"))
                if not api.es and new_password:
                    changing.append("user_password")
                if changing:
                    what = "only its password and enabled" if api.es else "nothing"
                    raise SearchError(
                        f"is built in (reserved): {what} can be managed through the API, not {', '.join(changing)}"
                    )
            operation = "create" if stored is None else "update" if (after != before or new_password) else "none"
        result.update(operation=operation, changed=operation != "none")
        if p["state"] == "present":
            result["password_changed"] = bool(new_password) and operation != "none"
        if module._diff and operation != "none":
            shown_before = dict(before, password=MASK) if before is not None else None
            shown_after = None
            if after is not None:
                shown_after = dict(after, password=MASK + (" (new)" if new_password else ""))
            result["diff"] = diff_of(f"user {name}", shown_before, shown_after)
        if not module.check_mode:
            if operation in ("create", "update"):
                apply(api, name, stored, before, after, p["user_password"] if new_password else None)
                stored_now = api.read("user", name)
                after = api.user_neutral(stored_now) if stored_now is not None else None
            elif operation == "delete":
                api.delete("user", name)
        if after is not None:
            result["user"] = after
    except SearchError as exc:
        module.fail_json(msg=f"user {name}: {exc}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
