#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kibana_saved_objects
short_description: Import Kibana or OpenSearch Dashboards saved objects (dashboards, visualizations...)
version_added: 0.1.0
description:
  - Makes sure saved objects (dashboards, visualizations, Lens charts, saved searches, data
    views...) exist in a Kibana space as given in an export file (O(src)) or in O(objects),
    through the saved objects import API (C(POST /api/saved_objects/_import)).
  - Idempotent. The stored copies are read first with C(POST /api/saved_objects/_bulk_get)
    and compared with the desired objects on their C(attributes) and C(references) only.
    What Kibana adds or rewrites on its own is ignored (C(updated_at), C(created_at),
    C(version), C(namespaces), C(coreMigrationVersion), C(typeMigrationVersion),
    C(migrationVersion), C(managed), C(originId)...), references are compared in any order,
    and attributes holding JSON text (C(panelsJSON), C(visState), C(searchSourceJSON)...)
    are compared decoded, so a different layout of that text is no change.
  - Only objects that are missing or differ are imported, in one request; nothing is
    written when all match. Objects that exist and differ are overwritten when
    O(overwrite=true) and left alone (reported in RV(kept)) when O(overwrite=false).
  - Kibana answers an import with HTTP 200 even when objects fail, listing them in
    C(errors). The module fails then, naming each failed object and its reason
    (C(missing_references) with the missing references, C(conflict), C(unsupported_type),
    C(unknown) with Kibana's message), and returns them in RV(errors). Kibana writes none of
    the objects when any of them has a conflict or missing references, and writes the others
    after other errors; RV(imported) and C(changed) tell which happened.
  - Kibana migrates objects exported by an older version when they are imported, so the
    stored copy differs from the file and every run would import them again. The module
    warns about such objects; export them again from the Kibana they are deployed to.
  - Kibana writes into any space identifier, even one that does not exist (the objects then
    stay invisible). The module checks with C(GET /api/spaces/space/<space>) that O(space)
    exists first.
  - Check mode reads and compares, and reports what would be imported; it also predicts the
    missing references (of the types Kibana checks, data views and saved searches) and the
    objects Kibana cannot read, and fails as the import would. With C(--diff) the
    differences are shown per object, JSON text decoded.
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
  src:
    description:
      - Export file (NDJSON, one saved object a line, as C(Stack Management > Saved Objects >
        Export) or C(POST /api/saved_objects/_export) write it) on the host that runs the
        module. The export details line and blank lines are skipped.
    type: path
  objects:
    description:
      - Saved objects, each a dict with C(type), C(id), C(attributes) and optionally
        C(references) and the migration fields of an export (C(coreMigrationVersion),
        C(typeMigrationVersion)). Added to those of O(src).
    type: list
    elements: dict
  space:
    description:
      - Kibana space to import into (its identifier). Unset means the default space.
      - OpenSearch Dashboards has no spaces; leave it unset with O(engine=opensearch).
    type: str
  overwrite:
    description:
      - Whether objects that exist with other content are replaced. With C(false) only
        missing objects are created.
    type: bool
    default: true
  state:
    description:
      - Only C(present) is supported; objects are never deleted.
    type: str
    choices: [present]
    default: present
notes:
  - At least one of O(src) and O(objects) is required; every object needs a C(type) and an
    C(id), and a C(type:id) may appear only once.
  - The import is one request; Kibana limits it to C(savedObjects.maxImportExportSize)
    objects (10000) and C(savedObjects.maxImportPayloadBytes) (26 MB).
seealso:
  - module: wlcg.soc.kibana_data_view
  - name: Kibana import objects API
    description: The API this module calls.
    link: https://www.elastic.co/guide/en/kibana/current/saved-objects-api-import.html
"""

EXAMPLES = r"""
- name: Import the SOC dashboards into the security space
  wlcg.soc.kibana_saved_objects:
    url: https://kibana.example.org:5601
    username: soc-deployer
    password: "{{ vault_kibana_deployer_password }}"
    ca_path: /etc/pki/tls/certs/site-ca.pem
    src: /var/lib/wlcg-soc/kibana/zeek-overview.ndjson
    space: security

- name: Create missing objects only, never replace edited ones
  wlcg.soc.kibana_saved_objects:
    url: https://kibana.example.org:5601
    api_key: "{{ vault_kibana_api_key }}"
    src: /var/lib/wlcg-soc/kibana/flows.ndjson
    overwrite: false

- name: One data view and a saved search, inline, into OpenSearch Dashboards
  wlcg.soc.kibana_saved_objects:
    url: https://dashboards.example.org:5601
    username: admin
    password: "{{ vault_dashboards_admin_password }}"
    engine: opensearch
    objects:
      - type: index-pattern
        id: wlcg-soc-zeek
        attributes:
          title: zeek-*
          timeFieldName: "@timestamp"
      - type: search
        id: wlcg-soc-zeek-intel
        attributes:
          title: Zeek intel hits
          columns: [source.ip, destination.ip, threat.indicator.name]
          kibanaSavedObjectMeta:
            searchSourceJSON: >-
              {"query":{"query":"event.dataset:zeek.intel","language":"kuery"},"filter":[],
              "indexRefName":"kibanaSavedObjectMeta.searchSourceJSON.index"}
        references:
          - name: kibanaSavedObjectMeta.searchSourceJSON.index
            type: index-pattern
            id: wlcg-soc-zeek
"""

RETURN = r"""
space:
  description: The space the objects were compared with and imported into.
  returned: always
  type: str
  sample: security
created:
  description: Objects (C(type:id)) that did not exist and were (or in check mode would be) imported.
  returned: success
  type: list
  elements: str
  sample: ["dashboard:wlcg-soc-zeek-overview"]
updated:
  description: Objects that existed with other content and were (or would be) overwritten.
  returned: success
  type: list
  elements: str
  sample: ["visualization:wlcg-soc-zeek-top-talkers"]
unchanged:
  description: Objects whose stored copy already matches.
  returned: success
  type: list
  elements: str
  sample: ["index-pattern:wlcg-soc-zeek"]
kept:
  description: Objects that exist with other content but were left alone because O(overwrite=false).
  returned: success
  type: list
  elements: str
  sample: []
imported:
  description: Objects Kibana reports as written by the import (empty in check mode, and when Kibana wrote none).
  returned: always
  type: list
  elements: str
  sample: ["dashboard:wlcg-soc-zeek-overview"]
errors:
  description:
    - Objects that failed, as Kibana reports them in the import answer (C(id), C(type),
      C(meta.title), C(error.type) and details such as C(error.references)), or, in check
      mode, as predicted.
  returned: failure
  type: list
  elements: dict
  sample:
    - id: wlcg-soc-zeek-intel
      type: search
      meta: {title: Zeek intel hits}
      error: {type: missing_references, references: [{type: index-pattern, id: wlcg-soc-zeek}]}
success_count:
  description:
    - Kibana's C(successCount) of the import, that is the objects it reports as imported, or
      that it would have imported had no object failed.
  returned: when an import was made
  type: int
  sample: 5
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wlcg.soc.plugins.module_utils.kibana import (
    DEFAULT_SPACE,
    KIBANA_MUTUALLY_EXCLUSIVE,
    KIBANA_REQUIRED_TOGETHER,
    RESOLVABLE_ERRORS,
    VALIDATED_REFERENCE_TYPES,
    KibanaError,
    check_object,
    check_space_id,
    client_from_params,
    comparable,
    describe_import_error,
    for_import,
    kibana_argument_spec,
    object_key,
    parse_ndjson,
)
from ansible_collections.wlcg.soc.plugins.module_utils.reconcile import diff_of


def _desired(module):
    p = module.params
    objects = []
    if p["src"]:
        try:
            with open(p["src"], encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise KibanaError(f"cannot read src {p['src']}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise KibanaError(f"src {p['src']} is not UTF-8 text: {exc}") from None
        objects.extend(parse_ndjson(text, p["src"]))
    for index, obj in enumerate(p["objects"] or []):
        objects.append(check_object(obj, f"objects[{index}]"))
    seen = set()
    for obj in objects:
        key = object_key(obj)
        if key in seen:
            raise KibanaError(f"saved object {key} is given more than once")
        seen.add(key)
    if not objects:
        raise KibanaError("no saved objects to import (src is empty and objects is empty)")
    return objects


def _failed_entry(obj, error):
    """An entry of ``errors`` as Kibana's import answer has them."""
    return {"id": obj["id"], "type": obj["type"], "meta": {"title": obj["attributes"].get("title")}, "error": error}


def _predicted_errors(client, pairs, space):
    """What importing the (object, stored copy) ``pairs`` would report, as far as it can be
    known without importing."""
    desired = [obj for obj, _found in pairs]
    errors = []
    for obj, found in pairs:
        problem = found.get("error") or {}
        if problem and problem.get("statusCode") != 404:
            error = {"type": "unknown", "message": problem.get("message"), "statusCode": problem.get("statusCode")}
            errors.append(_failed_entry(obj, error))
    given = {object_key(o) for o in desired}
    wanted = {}
    for obj in desired:
        for ref in obj.get("references") or []:
            if ref.get("type") in VALIDATED_REFERENCE_TYPES and object_key(ref) not in given:
                wanted[object_key(ref)] = {"type": ref["type"], "id": ref["id"]}
    missing = set()
    if wanted:
        for ref, found in zip(wanted.values(), client.bulk_get(list(wanted.values()), space)):
            if (found.get("error") or {}).get("statusCode") == 404:
                missing.add(object_key(ref))
    for obj in desired:
        refs = [
            {"type": r["type"], "id": r["id"]}
            for r in obj.get("references") or []
            if object_key(r) in missing and r.get("type") in VALIDATED_REFERENCE_TYPES
        ]
        if refs:
            errors.append(_failed_entry(obj, {"type": "missing_references", "references": refs}))
    return errors


def _sort(module, desired, stored, result):
    """Sort the desired objects by what their stored copies (``stored``, in the same order)
    call for into ``result``'s created / updated / unchanged / kept; returns the (object,
    stored copy) pairs to import and the compared form of each before and after."""
    pairs, before, after = [], {}, {}
    for obj, found in zip(desired, stored):
        key = object_key(obj)
        error = found.get("error")
        if error:
            # Missing (404), or Kibana cannot read it (e.g. a type it does not know): the import says why.
            result["created"].append(key)
            pairs.append((obj, found))
            if error.get("statusCode") == 404:
                after[key] = comparable(obj)
            continue
        want, have = comparable(obj), comparable(found)
        if want == have:
            result["unchanged"].append(key)
            continue
        if not module.params["overwrite"]:
            result["kept"].append(key)
            continue
        result["updated"].append(key)
        pairs.append((obj, found))
        before[key], after[key] = have, want
        given, stored_version = obj.get("typeMigrationVersion"), found.get("typeMigrationVersion")
        if given and stored_version and given != stored_version:
            module.warn(
                f"{key}: Kibana stores it as typeMigrationVersion {stored_version}, the file has {given}; "
                "Kibana migrates such objects on import, so they differ on every run: export them "
                "again from this Kibana"
            )
    return pairs, before, after


def _report_import(module, client, answer, count, space, result):
    """Exit with what Kibana's import ``answer`` says it wrote, or fail naming each object it did not."""
    errors = answer.get("errors") or []
    successes = answer.get("successResults") or []
    nothing_written = any((e.get("error") or {}).get("type") in RESOLVABLE_ERRORS for e in errors)
    result["imported"] = [] if nothing_written else [object_key(s) for s in successes]
    result["success_count"] = answer.get("successCount", 0)
    result["changed"] = bool(result["imported"])
    if errors or answer.get("success") is not True:
        lines = "; ".join(describe_import_error(e) for e in errors) or "no errors listed"
        written = (
            "Kibana wrote none of them"
            if nothing_written or not result["imported"]
            else f"Kibana wrote the other {len(result['imported'])}"
        )
        module.fail_json(
            msg=f"{client.product} at {client.url} could not import {len(errors)} of {count} "
            f"saved object(s) into space {space} ({written}): {lines}",
            errors=errors,
            **result,
        )
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **kibana_argument_spec(),
            src=dict(type="path"),
            objects=dict(type="list", elements="dict"),
            space=dict(type="str"),
            overwrite=dict(type="bool", default=True),
            state=dict(type="str", choices=["present"], default="present"),
        ),
        required_one_of=[("src", "objects")],
        mutually_exclusive=KIBANA_MUTUALLY_EXCLUSIVE,
        required_together=KIBANA_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    p = module.params
    space = p["space"] or DEFAULT_SPACE
    result = dict(changed=False, space=space, created=[], updated=[], unchanged=[], kept=[], imported=[])
    try:
        check_space_id(p["space"])
        desired = _desired(module)
        client = client_from_params(p)
        client.check_space(p["space"])
        pairs, before, after = _sort(module, desired, client.bulk_get(desired, p["space"]), result)
        if module._diff and (before or after):
            result["diff"] = diff_of(f"{client.product} saved objects, space {space}", before or None, after or None)
        if not pairs:
            module.exit_json(**result)
        if module.check_mode:
            result["changed"] = True
            predicted = _predicted_errors(client, pairs, p["space"])
            if predicted:
                lines = "; ".join(describe_import_error(e) for e in predicted)
                module.fail_json(
                    msg=f"check mode: the import into space {space} would fail for {len(predicted)} object(s): {lines}",
                    errors=predicted,
                    **result,
                )
            module.exit_json(**result)
        ndjson = "\n".join(json.dumps(for_import(o), sort_keys=True) for o, _found in pairs) + "\n"
        answer = client.import_objects(ndjson.encode("utf-8"), p["space"], overwrite=p["overwrite"])
    except KibanaError as exc:
        module.fail_json(msg=str(exc), **result)
    _report_import(module, client, answer, len(pairs), space, result)


if __name__ == "__main__":
    main()
