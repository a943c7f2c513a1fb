#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: elasticsearch_ingest_pipeline
short_description: Manage ingest pipelines in Elasticsearch or OpenSearch
version_added: 0.1.0
description:
  - Creates, updates or deletes an ingest pipeline (C(PUT _ingest/pipeline/<id>)), the
    same API on Elasticsearch 8.x/9.x and OpenSearch 2.x.
  - The desired O(body) is compared with what the server returns (without the
    bookkeeping dates Elasticsearch 9 adds); the pipeline is written only when they
    differ, so a second run changes nothing.
  - A pipeline the server rejects (an unknown processor, a missing option) fails the
    task with the server's reason.
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
    details: Before and after are the pipeline as JSON.
  platform:
    platforms: posix
options:
  id:
    description: Id of the pipeline.
    type: str
    required: true
  body:
    description:
      - The pipeline as the API takes it, C(description), C(processors),
        C(on_failure), C(version) and (Elasticsearch only) C(_meta).
      - Required with O(state=present).
    type: dict
  state:
    description: Whether the pipeline should exist.
    type: str
    choices: [present, absent]
    default: present
notes:
  - The processors the pipeline uses must be available on every ingest node (most are
    in the C(ingest-common) module that the full distributions include).
seealso:
  - module: wlcg.soc.elasticsearch_index_template
  - module: wlcg.soc.elasticsearch_lifecycle_policy
"""

EXAMPLES = r"""
- name: Parse the event time of Zeek's JSON logs
  wlcg.soc.elasticsearch_ingest_pipeline:
    hosts: https://es01.example.org:9200
    username: soc_admin
    password: "{{ vault_elasticsearch_soc_admin_password }}"
    ca_path: /etc/pki/tls/certs/site-ca.pem
    id: zeek
    body:
      description: Zeek JSON logs
      version: 3
      processors:
        - date:
            field: ts
            formats: [UNIX]
            target_field: "@timestamp"
        - remove:
            field: ts
      on_failure:
        - set:
            field: error.message
            value: "{{ '{{' }} _ingest.on_failure_message {{ '}}' }}"
  delegate_to: localhost

- name: Drop a pipeline that is no longer used
  wlcg.soc.elasticsearch_ingest_pipeline:
    hosts: https://es01.example.org:9200
    api_key: "{{ vault_elasticsearch_api_key }}"
    id: bro
    state: absent
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
pipeline:
  description:
    - The pipeline as stored after the task; in check mode, the desired one. Absent
      when it does not exist.
  returned: success
  type: dict
  sample: {"description": "Zeek JSON logs", "processors": [{"remove": {"field": "ts"}}]}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wlcg.soc.plugins.module_utils.reconcile import reconcile
from ansible_collections.wlcg.soc.plugins.module_utils.search_client import (
    SEARCH_MODULE_KWARGS,
    SearchError,
    client_from_params,
    compare_pipeline,
    name_problem,
    path_part,
    search_argument_spec,
)


def read(client, pipeline_id):
    data = client.request("GET", f"_ingest/pipeline/{path_part(pipeline_id)}", missing_ok=True)
    return None if data is None else data.get(pipeline_id)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **search_argument_spec(),
            id=dict(type="str", required=True),
            body=dict(type="dict"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ("body",))],
        supports_check_mode=True,
        **SEARCH_MODULE_KWARGS,
    )
    p = module.params
    pipeline_id = p["id"]
    problem = name_problem("id", "pipeline", pipeline_id)
    if problem:
        module.fail_json(msg=problem)
    if p["state"] == "present" and "processors" not in p["body"]:
        module.fail_json(msg=f"body of pipeline {pipeline_id!r} needs processors (a list, may be empty)")
    result = dict(changed=False, operation="none")
    path = f"_ingest/pipeline/{path_part(pipeline_id)}"
    try:
        client = client_from_params(p)
        info = client.connect()
        result.update(engine=info["engine"], engine_version=info["version"])
        _before, after = reconcile(
            module,
            result,
            header=f"ingest pipeline {pipeline_id}",
            warning=f"the server stores pipeline {pipeline_id} differently from the body, so the next run "
            "will report a change again; write the body as the server returns it (see the diff)",
            desired=p["body"],
            read=lambda: read(client, pipeline_id),
            compare=compare_pipeline,
            write=lambda stored: client.request("PUT", path, body=p["body"]),
            delete=lambda stored: client.request("DELETE", path),
        )
        if after is not None:
            result["pipeline"] = after
    except SearchError as exc:
        module.fail_json(msg=f"ingest pipeline {pipeline_id}: {exc}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
