#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: misp_event
short_description: Create, update and publish a MISP event with its indicators
version_added: 0.1.0
description:
  - Makes sure a MISP event exists with the given metadata, tags, attributes and
    objects, and optionally publishes it, so that site IoCs reach the MISP exports
    (for instance the Zeek and memcached export of M(wlcg.soc.misp_ioc_export)).
  - The event is found by O(uuid), or, without one, by O(info) among the events of the
    API key's organisation. A second run with the same input changes nothing.
  - Attributes are identified by type and value, objects by name and their attributes'
    relations and values, tags by name. Listed items that are missing are added, listed
    attributes whose C(to_ids), category or comment differ are updated; items that are not
    listed are left alone.
  - An event that changed is published again when O(published=true) (MISP marks an
    edited event unpublished).
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - wlcg.soc.misp
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  state:
    description: Whether the event should exist. C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  uuid:
    description: UUID of the event; used as its identity, and given to a new event.
    type: str
  info:
    description: The event's title (MISP C(info)). Required unless O(uuid) is given with O(state=absent).
    type: str
  distribution:
    description: Who may see the event.
    type: str
    choices: [your_organisation_only, this_community_only, connected_communities, all_communities]
    default: your_organisation_only
  threat_level:
    description: MISP threat level.
    type: str
    choices: [high, medium, low, undefined]
    default: undefined
  analysis:
    description: MISP analysis state.
    type: str
    choices: [initial, ongoing, completed]
    default: initial
  tags:
    description: Tags of the event, e.g. C(tlp:green).
    type: list
    elements: str
    default: []
  attributes:
    description: Attributes of the event.
    type: list
    elements: dict
    default: []
    suboptions:
      type:
        description: MISP attribute type, e.g. C(ip-dst|port), C(url), C(domain).
        type: str
        required: true
      value:
        description: The value; composite types use C(|), e.g. C(192.0.2.77|443).
        type: str
        required: true
      category:
        description: MISP category; MISP's default for the type when unset.
        type: str
      to_ids:
        description: Mark for IDS export.
        type: bool
        default: true
      comment:
        description: Comment.
        type: str
        default: ""
  objects:
    description: MISP objects, built from PyMISP's object templates (e.g. C(file), C(ip-port), C(url)).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Template name.
        type: str
        required: true
      attributes:
        description: The object's attributes.
        type: list
        elements: dict
        required: true
        suboptions:
          relation:
            description: Relation in the template, e.g. C(md5), C(ip), C(dst-port), C(url).
            type: str
            required: true
          value:
            description: The value.
            type: str
            required: true
          to_ids:
            description: Mark for IDS export; the template's default when unset.
            type: bool
  published:
    description: Publish the event (again, if it changed).
    type: bool
    default: false
seealso:
  - module: wlcg.soc.misp_ioc_export
"""

EXAMPLES = r"""
- name: The workshop's exercise as code
  wlcg.soc.misp_event:
    misp_url: https://misp.example.org
    misp_key: "{{ vault_misp_key }}"
    info: Bot contacting C2 from 172.19.0.77
    distribution: this_community_only
    threat_level: high
    analysis: ongoing
    tags: [tlp:green]
    attributes:
      - type: ip-dst|port
        value: 172.19.0.77|8080
      - type: url
        value: http://172.19.0.77:8080/payload.bin
    objects:
      - name: file
        attributes:
          - relation: filename
            value: payload.bin
          - relation: md5
            value: 0cc175b9c0f1b6a831c399e269772661
          - relation: sha1
            value: 86f7e437faa5a7fce15d1ddcb9eaeaea377667b8
    published: true
"""

RETURN = r"""
event:
  description: The event after the task (as MISP returned it, without attributes).
  returned: success and state is present
  type: dict
  sample: {"id": "1234", "uuid": "5e1b0c8a-...", "info": "Bot contacting C2", "published": true}
changes:
  description: What the task changed (or would change in check mode).
  returned: success
  type: list
  elements: str
  sample: ["create event", "add attribute ip-dst|port 172.19.0.77|8080", "publish"]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.wlcg.soc.plugins.module_utils.misp import (
    PYMISP_IMPORT_ERROR,
    MispError,
    call,
    connect,
    misp_argument_spec,
)

try:
    from pymisp import MISPAttribute, MISPEvent, MISPObject
    from pymisp.exceptions import PyMISPError
except ImportError:  # reported through PYMISP_IMPORT_ERROR
    pass

DISTRIBUTION = {
    "your_organisation_only": 0,
    "this_community_only": 1,
    "connected_communities": 2,
    "all_communities": 3,
}
THREAT_LEVEL = {"high": 1, "medium": 2, "low": 3, "undefined": 4}
ANALYSIS = {"initial": 0, "ongoing": 1, "completed": 2}


def _summary(event):
    """The managed fields of an event, for the diff."""
    if event is None:
        return {}
    return {
        "info": event.get("info"),
        "distribution": int(event.get("distribution", 0)),
        "threat_level_id": int(event.get("threat_level_id", 4)),
        "analysis": int(event.get("analysis", 0)),
        "published": bool(event.get("published")),
        "tags": sorted(t["name"] for t in event.get("Tag", [])),
        "attributes": sorted(
            f"{a['type']} {a['value']}{' (IDS)' if a.get('to_ids') else ''}" for a in event.get("Attribute", [])
        ),
        "objects": sorted(
            f"{o['name']}: " + ", ".join(sorted(f"{a['object_relation']}={a['value']}" for a in o.get("Attribute", [])))
            for o in event.get("Object", [])
        ),
    }


def _object_key(name, pairs):
    return name, frozenset(pairs)


def _find_event(module, misp, p):
    if p["uuid"]:
        found = call(misp, "event search", misp.search, controller="events", uuid=p["uuid"], pythonify=False)
    else:
        me = call(misp, "current user", misp.get_user, "me", pythonify=False)
        org_id = me.get("User", me).get("org_id")
        found = call(
            misp, "event search", misp.search, controller="events", eventinfo=p["info"], org=org_id, pythonify=False
        )
        found = [e for e in found if e.get("Event", e).get("info") == p["info"]]
        if len(found) > 1:
            ids = ", ".join(str(e.get("Event", e).get("id")) for e in found)
            module.fail_json(msg=f"several events of this organisation are titled {p['info']!r} ({ids}); give uuid")
    if not found:
        return None
    event = found[0].get("Event", found[0])
    # search() returns attributes but not always objects' attributes: read the event itself.
    full = call(misp, f"event {event['id']}", misp.get_event, event["id"], pythonify=False)
    return full.get("Event", full)


def _attribute_fields(a):
    fields = {"type": a["type"], "value": a["value"], "to_ids": a["to_ids"], "comment": a["comment"] or ""}
    if a["category"]:
        fields["category"] = a["category"]
    return fields


def _build_attribute(a):
    attr = MISPAttribute()
    attr.from_dict(**_attribute_fields(a))
    return attr


def _build_object(module, o):
    try:
        obj = MISPObject(o["name"])
        for a in o["attributes"]:
            kwargs = {"value": a["value"]}
            if a["to_ids"] is not None:
                kwargs["to_ids"] = a["to_ids"]
            obj.add_attribute(a["relation"], **kwargs)
    except PyMISPError as exc:
        module.fail_json(msg=f"object {o['name']!r}: {exc}")
    return obj


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **misp_argument_spec(),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            uuid=dict(type="str"),
            info=dict(type="str"),
            distribution=dict(type="str", choices=list(DISTRIBUTION), default="your_organisation_only"),
            threat_level=dict(type="str", choices=list(THREAT_LEVEL), default="undefined"),
            analysis=dict(type="str", choices=list(ANALYSIS), default="initial"),
            tags=dict(type="list", elements="str", default=[]),
            attributes=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    type=dict(type="str", required=True),
                    value=dict(type="str", required=True),
                    category=dict(type="str"),
                    to_ids=dict(type="bool", default=True),
                    comment=dict(type="str", default=""),
                ),
            ),
            objects=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    attributes=dict(
                        type="list",
                        elements="dict",
                        required=True,
                        options=dict(
                            relation=dict(type="str", required=True),
                            value=dict(type="str", required=True),
                            to_ids=dict(type="bool"),
                        ),
                    ),
                ),
            ),
            published=dict(type="bool", default=False),
        ),
        required_if=[("state", "present", ("info",))],
        required_one_of=[("uuid", "info")],
        supports_check_mode=True,
    )
    if PYMISP_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("pymisp"), exception=str(PYMISP_IMPORT_ERROR))
    p = module.params
    try:
        misp = connect(p["misp_url"], p["misp_key"], p["validate_certs"], p["ca_path"], p["timeout"])
        existing = _find_event(module, misp, p)
        result = _absent(module, misp, existing) if p["state"] == "absent" else _present(module, misp, p, existing)
    except MispError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


def _absent(module, misp, existing):
    if existing is None:
        return {"changed": False, "changes": []}
    if not module.check_mode:
        call(misp, f"delete event {existing['id']}", misp.delete_event, existing["id"])
    return {
        "changed": True,
        "changes": [f"delete event {existing['id']}"],
        "diff": {"before": _summary(existing), "after": {}},
    }


def _present(module, misp, p, existing):
    want = {
        "info": p["info"],
        "distribution": DISTRIBUTION[p["distribution"]],
        "threat_level_id": THREAT_LEVEL[p["threat_level"]],
        "analysis": ANALYSIS[p["analysis"]],
    }
    if existing is None:
        return _create(module, misp, p, want)
    update = _plan_update(existing, p, want)
    after = existing
    if update["changes"] and not module.check_mode:
        after = _apply_update(module, misp, existing, want, update)
    if module.check_mode and update["changes"]:
        after = None  # the diff shows the planned changes
    return _result(update["changes"], existing, after, want, p)


def _create(module, misp, p, want):
    event = MISPEvent()
    event.from_dict(**want)
    if p["uuid"]:
        event.uuid = p["uuid"]
    for tag in p["tags"]:
        event.add_tag(tag)
    for a in p["attributes"]:
        event.add_attribute(**_attribute_fields(a))
    for o in p["objects"]:
        event.add_object(_build_object(module, o))
    changes = ["create event"]
    changes += [f"add attribute {a['type']} {a['value']}" for a in p["attributes"]]
    changes += [f"add object {o['name']}" for o in p["objects"]]
    changes += [f"tag {t}" for t in p["tags"]]
    after = None
    if not module.check_mode:
        created = call(misp, "create event", misp.add_event, event, pythonify=False)
        after = created.get("Event", created)
    if p["published"]:
        changes.append("publish")
        if after is not None:
            call(misp, f"publish event {after['id']}", misp.publish, after["id"])
            after = call(misp, f"event {after['id']}", misp.get_event, after["id"], pythonify=False)["Event"]
    return _result(changes, None, after, want, p)


def _attribute_changes(existing, wanted):
    """Attributes to add, (current attribute, changed fields) to update, and their change lines."""
    have = {(a["type"], a["value"]): a for a in existing.get("Attribute", [])}
    add, update, changes = [], [], []
    for a in wanted:
        cur = have.get((a["type"], a["value"]))
        if cur is None:
            add.append(a)
            changes.append(f"add attribute {a['type']} {a['value']}")
            continue
        diff = {}
        if bool(cur.get("to_ids")) != a["to_ids"]:
            diff["to_ids"] = a["to_ids"]
        if (cur.get("comment") or "") != (a["comment"] or ""):
            diff["comment"] = a["comment"] or ""
        if a["category"] and cur.get("category") != a["category"]:
            diff["category"] = a["category"]
        if diff:
            update.append((cur, diff))
            changes.append(f"update attribute {a['type']} {a['value']}: " + ", ".join(sorted(diff)))
    return add, update, changes


def _plan_update(existing, p, want):
    """What differs between the event in MISP and the task, without touching MISP."""
    changes = []
    meta = {k: v for k, v in want.items() if str(existing.get(k)) != str(v)}
    if meta:
        changes.append("update " + ", ".join(f"{k}={v}" for k, v in sorted(meta.items())))
    have_tags = {t["name"] for t in existing.get("Tag", [])}
    new_tags = [t for t in p["tags"] if t not in have_tags]
    changes += [f"tag {t}" for t in new_tags]
    add_attrs, upd_attrs, attr_changes = _attribute_changes(existing, p["attributes"])
    changes += attr_changes
    have_objs = {
        _object_key(o["name"], ((x["object_relation"], x["value"]) for x in o.get("Attribute", [])))
        for o in existing.get("Object", [])
    }
    add_objs = [
        o
        for o in p["objects"]
        if _object_key(o["name"], ((x["relation"], x["value"]) for x in o["attributes"])) not in have_objs
    ]
    changes += [f"add object {o['name']}" for o in add_objs]
    publish = p["published"] and (bool(changes) or not existing.get("published"))
    if publish:
        changes.append("publish")
    return {
        "changes": changes,
        "meta": meta,
        "tags": new_tags,
        "add_attributes": add_attrs,
        "update_attributes": upd_attrs,
        "add_objects": add_objs,
        "publish": publish,
    }


def _apply_update(module, misp, existing, want, update):
    """Carry out ``_plan_update``'s plan; the event as MISP has it afterwards."""
    eid = existing["id"]
    if update["meta"]:
        event = MISPEvent()
        event.from_dict(id=eid, uuid=existing["uuid"], **{**{k: existing[k] for k in want}, **update["meta"]})
        call(misp, f"update event {eid}", misp.update_event, event, event_id=eid)
    for t in update["tags"]:
        call(misp, f"tag event {eid} with {t}", misp.tag, existing["uuid"], t)
    for a in update["add_attributes"]:
        call(misp, f"add attribute to event {eid}", misp.add_attribute, eid, _build_attribute(a))
    for cur, diff in update["update_attributes"]:
        attr = MISPAttribute()
        attr.from_dict(**{**cur, **diff})
        call(misp, f"update attribute {cur['id']}", misp.update_attribute, attr, cur["id"])
    for o in update["add_objects"]:
        call(misp, f"add object to event {eid}", misp.add_object, eid, _build_object(module, o))
    if update["publish"]:
        call(misp, f"publish event {eid}", misp.publish, eid)
    after = call(misp, f"event {eid}", misp.get_event, eid, pythonify=False)
    return after.get("Event", after)


def _result(changes, before, after, want, p):
    result = {"changed": bool(changes), "changes": changes}
    if after is not None:
        result["event"] = {k: after.get(k) for k in ("id", "uuid", "info", "published", "distribution", "timestamp")}
    result["diff"] = {
        "before": _summary(before),
        "after": _summary(after) if after is not None else {**want, "tags": sorted(p["tags"]), "planned": changes},
    }
    return result


if __name__ == "__main__":
    main()
