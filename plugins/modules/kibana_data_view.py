#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kibana_data_view
short_description: Manage a Kibana data view (an OpenSearch Dashboards index pattern)
version_added: 0.1.0
description:
  - Makes sure a data view exists with the given index pattern (O(title)), display name and
    time field, or that it does not exist.
  - With O(engine=elasticsearch) it uses Kibana's data views API (C(/api/data_views)); with
    O(engine=opensearch) it manages the C(index-pattern) saved object of OpenSearch
    Dashboards through C(/api/saved_objects/index-pattern/<id>), as Dashboards has no data
    views API.
  - The data view is found by O(id) when given (recommended, as other saved objects refer to
    data views by id). Without O(id) it is found by its name (O(name), or O(title) when no
    name is given) on Kibana, by its title on OpenSearch Dashboards; a new one then gets an
    id chosen by the server.
  - An existing data view whose title, name or time field differ is updated in place
    (C(POST /api/data_views/data_view/<id>)); its id, fields and other settings stay.
    Nothing is written when all match.
  - Check mode reports what would change; C(--diff) shows the managed settings before and after.
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - wlcg.soc.http_client
  - wlcg.soc.kibana
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  title:
    description:
      - The index pattern the data view reads, e.g. C(zeek-*) or C(zeek-*,flows-*).
      - Required with O(state=present).
    type: str
  name:
    description:
      - Display name of the data view (Kibana 8.4 and later). Kibana shows the title when
        it has none. Not supported with O(engine=opensearch).
    type: str
  id:
    description:
      - Identifier of the data view. Given to a new data view, and used to find an existing one.
    type: str
  time_field:
    description:
      - Timestamp field for time filtering, usually C(@timestamp). Unset leaves the time
        field as it is (Kibana's API cannot remove one).
    type: str
  space:
    description:
      - Kibana space of the data view (its identifier). Unset means the default space.
        Not supported with O(engine=opensearch).
    type: str
  state:
    description:
      - C(present) creates or updates the data view, C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Deleting a data view leaves the visualizations and searches that use it broken;
    Kibana does not check.
seealso:
  - module: wlcg.soc.kibana_saved_objects
  - name: Kibana data views API
    description: The API this module calls on Kibana.
    link: https://www.elastic.co/guide/en/kibana/current/data-views-api.html
"""

EXAMPLES = r"""
- name: Zeek logs data view in the security space
  wlcg.soc.kibana_data_view:
    url: https://kibana.example.org:5601
    username: soc-deployer
    password: "{{ vault_kibana_deployer_password }}"
    space: security
    id: wlcg-soc-zeek
    title: zeek-*
    name: Zeek logs
    time_field: "@timestamp"

- name: Flow records index pattern on OpenSearch Dashboards
  wlcg.soc.kibana_data_view:
    url: https://dashboards.example.org:5601
    username: admin
    password: "{{ vault_dashboards_admin_password }}"
    engine: opensearch
    id: wlcg-soc-flows
    title: flows-*
    time_field: event.start

- name: Remove an old data view
  wlcg.soc.kibana_data_view:
    url: https://kibana.example.org:5601
    api_key: "{{ vault_kibana_api_key }}"
    id: old-logstash
    state: absent
"""

RETURN = r"""
operation:
  description: What the module did (or, in check mode, would do).
  returned: success
  type: str
  choices: [create, update, delete, none]
  sample: update
data_view:
  description:
    - The managed settings of the data view after the task (before it, for O(state=absent)).
    - Empty when there is none.
  returned: success
  type: dict
  sample: {"id": "wlcg-soc-zeek", "title": "zeek-*", "name": "Zeek logs", "time_field": "@timestamp"}
space:
  description: The space of the data view.
  returned: always
  type: str
  sample: security
"""

import json
from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wlcg.soc.plugins.module_utils.kibana import (
    DEFAULT_SPACE,
    KIBANA_MUTUALLY_EXCLUSIVE,
    KIBANA_REQUIRED_TOGETHER,
    KibanaError,
    check_space_id,
    client_from_params,
    kibana_argument_spec,
)
from ansible_collections.wlcg.soc.plugins.module_utils.reconcile import reconcile


def _view(obj):
    """The managed settings of a data view (``{}`` for none)."""
    if not obj:
        return {}
    view = {"id": obj.get("id"), "title": obj.get("title")}
    if obj.get("name") is not None:
        view["name"] = obj.get("name")
    if obj.get("timeFieldName") is not None:
        view["time_field"] = obj.get("timeFieldName")
    return view


class KibanaDataViews:
    """Kibana 8: the data views API."""

    def __init__(self, client, space):
        self.client = client
        self.space = space

    def get(self, ident):
        path = f"/api/data_views/data_view/{quote(ident, safe='')}"
        data = self.client.json("GET", path, space=self.space, missing_ok=True)
        return None if data is None else data.get("data_view")

    def find(self, name):
        listing = self.client.json("GET", "/api/data_views", space=self.space).get("data_view") or []
        matches = [v for v in listing if (v.get("name") or v.get("title")) == name]
        if len(matches) > 1:
            ids = ", ".join(v["id"] for v in matches)
            raise KibanaError(f"more than one data view is named {name!r} ({ids}): set id")
        return self.get(matches[0]["id"]) if matches else None

    def create(self, ident, title, name, time_field):
        spec = {"title": title}
        if ident:
            spec["id"] = ident
        if name:
            spec["name"] = name
        if time_field:
            spec["timeFieldName"] = time_field
        body = {"data_view": spec, "override": False}
        return self.client.json("POST", "/api/data_views/data_view", space=self.space, json_body=body)["data_view"]

    def update(self, ident, changes):
        spec = {}
        for key, field in (("title", "title"), ("name", "name"), ("time_field", "timeFieldName")):
            if key in changes:
                spec[field] = changes[key]
        body = {"data_view": spec, "refresh_fields": False}
        path = f"/api/data_views/data_view/{quote(ident, safe='')}"
        return self.client.json("POST", path, space=self.space, json_body=body, idempotent=True)["data_view"]

    def delete(self, ident):
        path = f"/api/data_views/data_view/{quote(ident, safe='')}"
        self.client.request("DELETE", path, space=self.space, ok=(200, 204, 404))


class DashboardsIndexPatterns:
    """OpenSearch Dashboards: ``index-pattern`` saved objects."""

    def __init__(self, client):
        self.client = client

    @staticmethod
    def _flat(obj):
        attributes = obj.get("attributes") or {}
        return {"id": obj.get("id"), "title": attributes.get("title"), "timeFieldName": attributes.get("timeFieldName")}

    def get(self, ident):
        path = f"/api/saved_objects/index-pattern/{quote(ident, safe='')}"
        data = self.client.json("GET", path, missing_ok=True)
        return None if data is None else self._flat(data)

    def find(self, title):
        query = {"type": "index-pattern", "search_fields": "title", "search": json.dumps(title), "per_page": 1000}
        found = self.client.json("GET", "/api/saved_objects/_find", query=query).get("saved_objects") or []
        matches = [o for o in found if (o.get("attributes") or {}).get("title") == title]
        if len(matches) > 1:
            ids = ", ".join(o["id"] for o in matches)
            raise KibanaError(f"more than one index pattern has the title {title!r} ({ids}): set id")
        return self._flat(matches[0]) if matches else None

    def create(self, ident, title, name, time_field):
        attributes = {"title": title}
        if time_field:
            attributes["timeFieldName"] = time_field
        path = "/api/saved_objects/index-pattern" + (f"/{quote(ident, safe='')}" if ident else "")
        return self._flat(self.client.json("POST", path, json_body={"attributes": attributes}))

    def update(self, ident, changes):
        attributes = {}
        if "title" in changes:
            attributes["title"] = changes["title"]
        if "time_field" in changes:
            attributes["timeFieldName"] = changes["time_field"]
        path = f"/api/saved_objects/index-pattern/{quote(ident, safe='')}"
        self.client.json("PUT", path, json_body={"attributes": attributes})
        return self.get(ident)

    def delete(self, ident):
        path = f"/api/saved_objects/index-pattern/{quote(ident, safe='')}"
        self.client.request("DELETE", path, ok=(200, 404))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **kibana_argument_spec(),
            title=dict(type="str"),
            name=dict(type="str"),
            id=dict(type="str"),
            time_field=dict(type="str"),
            space=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ("title",))],
        required_one_of=[("id", "title", "name")],
        mutually_exclusive=KIBANA_MUTUALLY_EXCLUSIVE,
        required_together=KIBANA_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    p = module.params
    space = p["space"] or DEFAULT_SPACE
    result = dict(changed=False, space=space, data_view={})
    for key in ("title", "name", "id", "time_field"):
        if p[key] is not None and not p[key].strip():
            module.fail_json(msg=f"{key} must not be empty", **result)
    dashboards = p["engine"] == "opensearch"
    if dashboards and p["name"]:
        module.fail_json(msg="name is not supported with engine=opensearch (index patterns there have only a title)")
    wanted = {"title": p["title"]}
    if p["name"] is not None:
        wanted["name"] = p["name"]
    if p["time_field"] is not None:
        wanted["time_field"] = p["time_field"]

    def compare(desired, stored):
        if not stored:
            return {}, dict(desired, id=p["id"] or "(assigned by the server)")
        return stored, dict(stored, **desired)

    def write(stored):
        if stored is None:
            return _view(api.create(p["id"], p["title"], p["name"], p["time_field"]))
        return _view(api.update(stored["id"], {k: v for k, v in wanted.items() if stored.get(k) != v}))

    try:
        check_space_id(p["space"])
        client = client_from_params(p)
        client.check_space(p["space"])
        api = DashboardsIndexPatterns(client) if dashboards else KibanaDataViews(client, p["space"])
        lookup = p["title"] if dashboards else (p["name"] or p["title"])
        before, after = reconcile(
            module,
            result,
            header=f"data view, space {space}",
            warning=f"{client.product} stores data view {lookup or p['id']} differently from the task's settings, "
            "so the next run will report a change again (see the diff)",
            desired=wanted,
            read=lambda: _view(api.get(p["id"]) if p["id"] else api.find(lookup)) or None,
            compare=compare,
            write=write,
            delete=lambda stored: api.delete(stored["id"]),
            read_back=False,
        )
        result["data_view"] = (before if p["state"] == "absent" else after) or {}
    except KibanaError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
