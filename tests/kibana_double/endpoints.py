"""The Kibana double's API endpoints, answered as Kibana 8 and OpenSearch Dashboards 2 do
(see ``server`` for the sources)."""

from __future__ import annotations

import copy
import email.parser
import email.policy
import json
import re
import uuid as uuidlib
from typing import Any

from .store import (
    MAX_IMPORT_EXPORT_SIZE,
    RESOLVABLE_ERRORS,
    SPACE_PREFIX,
    VALIDATED_REFERENCE_TYPES,
    ApiError,
    KibanaStore,
    stable_json,
)

# Keys of the data view spec (rest_api_routes/schema.ts dataViewSpecSchema).
DATA_VIEW_KEYS = {
    "title",
    "version",
    "id",
    "type",
    "timeFieldName",
    "sourceFilters",
    "fields",
    "typeMeta",
    "fieldFormats",
    "fieldAttrs",
    "runtimeFieldMap",
    "allowNoIndex",
    "namespaces",
    "name",
    "allowHidden",
}
DATA_VIEW_UPDATE_KEYS = {
    "title",
    "type",
    "typeMeta",
    "timeFieldName",
    "sourceFilters",
    "fieldFormats",
    "fields",
    "allowNoIndex",
    "runtimeFieldMap",
    "name",
}


def _bool_param(query: dict, name: str) -> bool:
    values = query.get(name)
    if not values:
        return False
    value = values[-1]
    if value in ("true", "false"):
        return value == "true"
    raise ApiError(400, f"[request query.{name}]: expected value of type [boolean] but got [string]")


class KibanaApi(KibanaStore):
    """The API endpoints over the store: status, spaces, saved objects (single, bulk get,
    find, export, import) and data views. ``KibanaDouble`` serves them over HTTP."""

    # 404 for saved object requests into unknown spaces (Kibana writes into them).
    strict_spaces = False

    def _route(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> tuple[int, bytes, dict]:
        namespace = "default"
        match = SPACE_PREFIX.match(path)
        if match and self.engine == "elasticsearch":
            namespace, path = match.group(1), match.group(2) or "/"
        segments = [s for s in path.split("/") if s]
        if self.engine == "elasticsearch" and segments[:3] == ["api", "spaces", "space"]:
            return self._spaces(method, segments[3:], body)
        if segments[:1] == ["api"] and segments[1:2] == ["status"] and method == "GET":
            return 200, _dumps(self._status()), {}
        if namespace not in self.spaces and self.strict_spaces:
            raise ApiError(404, f"Saved object [space/{namespace}] not found")
        if segments[:2] == ["api", "saved_objects"]:
            return self._saved_objects(method, segments[2:], query, headers, body, namespace)
        if self.engine == "elasticsearch" and segments[:2] == ["api", "data_views"]:
            return self._data_views(method, segments[2:], body, namespace)
        raise ApiError(404, "Not Found")

    def _status(self) -> dict:
        if self.engine == "elasticsearch":
            return {
                "name": "kibana-double",
                "uuid": "5b2de169-2785-441b-ae8c-186a1936b17d",
                "version": {"number": self.version, "build_flavor": "traditional"},
                "status": {"overall": {"level": "available", "summary": "All services are available"}},
            }
        return {
            "name": "dashboards-double",
            "version": {"number": self.version},
            "status": {"overall": {"state": "green"}},
        }

    # ----------------------------------------------------------- spaces
    def _spaces(self, method: str, rest: list[str], body: bytes) -> tuple[int, bytes, dict]:
        if method == "GET" and not rest:
            return 200, _dumps(list(self.spaces.values())), {}
        if method == "GET" and len(rest) == 1:
            space = self.spaces.get(rest[0])
            if not space:
                raise ApiError(404, f"Saved object [space/{rest[0]}] not found")
            return 200, _dumps(space), {}
        if method == "POST" and not rest:
            data = _json_body(body)
            if not isinstance(data, dict) or not data.get("id") or not data.get("name"):
                raise ApiError(400, "[request body.id]: expected value of type [string] but got [undefined]")
            if not re.match(r"^[a-z0-9_\-]+$", str(data["id"])):
                raise ApiError(400, "[request body.id]: must be lower case, a-z, 0-9, '_', and '-' are allowed")
            if data["id"] in self.spaces:
                raise ApiError(409, f"A space with the identifier {data['id']} already exists.")
            space = {"id": data["id"], "name": data["name"], "disabledFeatures": data.get("disabledFeatures", [])}
            for key in ("description", "color", "initials", "imageUrl"):
                if key in data:
                    space[key] = data[key]
            self.spaces[data["id"]] = space
            return 200, _dumps(space), {}
        raise ApiError(404, "Not Found")

    # ----------------------------------------------------------- saved objects
    def _saved_objects(
        self, method: str, rest: list[str], query: dict, headers: dict, body: bytes, namespace: str
    ) -> tuple[int, bytes, dict]:
        if rest == ["_import"] and method == "POST":
            return 200, _dumps(self._import(query, headers, body, namespace)), {}
        if rest == ["_bulk_get"] and method == "POST":
            return 200, _dumps(self._bulk_get(_json_body(body), namespace)), {}
        if rest == ["_find"] and method == "GET":
            return 200, _dumps(self._find(query, namespace)), {}
        if rest == ["_export"] and method == "POST":
            text = self._export(_json_body(body), namespace)
            return (
                200,
                text.encode(),
                {"Content-Type": "application/ndjson", "Content-Disposition": 'attachment; filename="export.ndjson"'},
            )
        if len(rest) in (1, 2) and not rest[0].startswith("_"):
            return self._single(method, rest, query, body, namespace)
        raise ApiError(404, "Not Found")

    def _out(self, stored: dict) -> dict:
        return copy.deepcopy(stored)

    def _single(
        self, method: str, rest: list[str], query: dict, body: bytes, namespace: str
    ) -> tuple[int, bytes, dict]:
        obj_type = rest[0]
        obj_id = rest[1] if len(rest) == 2 else None
        if method == "GET" and obj_id:
            return 200, _dumps(self._out(self._get(namespace, obj_type, obj_id))), {}
        if method == "DELETE" and obj_id:
            self._get(namespace, obj_type, obj_id)
            del self.objects[(namespace, obj_type, obj_id)]
            return 200, b"{}", {}
        if method == "POST":
            if obj_type not in self.types:
                raise ApiError(400, f"Unsupported saved object type: '{obj_type}': Bad Request")
            data = _json_body(body)
            if not isinstance(data, dict) or not isinstance(data.get("attributes"), dict):
                raise ApiError(400, "[request body.attributes]: expected value of type [object] but got [undefined]")
            obj = {
                "type": obj_type,
                "id": obj_id or str(uuidlib.uuid4()),
                "attributes": data["attributes"],
                "references": data.get("references") or [],
            }
            stored = self._store(namespace, obj, overwrite=_bool_param(query, "overwrite"))
            return 200, _dumps(self._out(stored)), {}
        if method == "PUT" and obj_id:
            current = self._get(namespace, obj_type, obj_id)
            data = _json_body(body)
            if not isinstance(data, dict) or not isinstance(data.get("attributes"), dict):
                raise ApiError(400, "[request body.attributes]: expected value of type [object] but got [undefined]")
            merged = dict(current, attributes=dict(current["attributes"], **data["attributes"]))
            if "references" in data:
                merged["references"] = data["references"]
            stored = self._store(namespace, merged, overwrite=True)
            answer = {k: stored[k] for k in ("id", "type", "updated_at", "version", "namespaces")}
            answer["attributes"] = data["attributes"]
            if "references" in data:
                answer["references"] = data["references"]
            return 200, _dumps(answer), {}
        raise ApiError(404, "Not Found")

    def _bulk_get(self, data: Any, namespace: str) -> dict:
        if not isinstance(data, list):
            raise ApiError(400, f"[request body]: expected value of type [array] but got [{_js_type(data)}]")
        out = []
        for index, item in enumerate(data):
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("type"), str)
                or not isinstance(item.get("id"), str)
            ):
                raise ApiError(400, f"[request body.{index}.type]: expected value of type [string] but got [undefined]")
            try:
                found = self._out(self._get(namespace, item["type"], item["id"]))
            except ApiError as err:
                out.append({"id": item["id"], "type": item["type"], "error": err.body()})
                continue
            fields = item.get("fields")
            if fields:
                found["attributes"] = {k: v for k, v in found["attributes"].items() if k in fields}
            out.append(found)
        return {"saved_objects": out}

    def _find(self, query: dict, namespace: str) -> dict:
        types = [t for value in query.get("type", []) for t in value.split(",") if t]
        if not types:
            raise ApiError(400, "[request query.type]: expected at least one defined value but got [undefined]")
        try:
            per_page = int(query.get("per_page", ["20"])[-1])
            page = int(query.get("page", ["1"])[-1])
        except ValueError:
            raise ApiError(400, "[request query.per_page]: expected value of type [number] but got [string]") from None
        search = query.get("search", [None])[-1]
        fields = [f for value in query.get("search_fields", []) for f in value.split(",") if f] or ["title"]
        hits = [
            o
            for (ns, t, _i), o in sorted(self.objects.items())
            if ns == namespace and t in types and _matches(o, search, fields)
        ]
        start = (page - 1) * per_page
        chosen = [dict(self._out(o), score=0) for o in hits[start : start + per_page]]
        return {"page": page, "per_page": per_page, "total": len(hits), "saved_objects": chosen}

    def _export(self, data: Any, namespace: str) -> str:
        if not isinstance(data, dict):
            raise ApiError(400, f"[request body]: expected a plain object value, but found [{_js_type(data)}] instead.")
        types = data.get("type")
        types = [types] if isinstance(types, str) else (types or [])
        objects = data.get("objects") or []
        if not types and not objects:
            raise ApiError(400, "Either `type` or `objects` are required.")
        if types and objects:
            raise ApiError(400, 'Can\'t specify both "types" and "objects" properties when exporting')
        if objects:
            bad = [o for o in objects if o.get("type") not in self.types]
            if bad:
                listed = ", ".join(f"{o.get('type')}:{o.get('id')}" for o in bad)
                raise ApiError(400, f"Trying to export object(s) with non-exportable types: {listed}")
            found, failed = [], []
            for item in objects:
                try:
                    found.append(self._out(self._get(namespace, item["type"], item["id"])))
                except ApiError as err:
                    failed.append({"id": item["id"], "type": item["type"], "error": err.body()})
            if failed:
                raise ApiError(400, "Error fetching objects to export", {"attributes": {"objects": failed}})
        else:
            bad = [t for t in types if t not in self.types]
            if bad:
                raise ApiError(400, f"Trying to export non-exportable type(s): {', '.join(bad)}")
            found = [
                self._out(o)
                for (ns, t, _i), o in sorted(self.objects.items(), key=lambda kv: kv[0][2])
                if ns == namespace and t in types
            ]
        missing: list[dict] = []
        if data.get("includeReferencesDeep"):
            found, missing = self._collect_references(found, namespace)
        exported = [{k: v for k, v in o.items() if k != "namespaces"} for o in _sort_objects(found)]
        lines = [stable_json(o) for o in exported]
        if not data.get("excludeExportDetails"):
            details: dict[str, Any] = {
                "exportedCount": len(exported),
                "missingRefCount": len(missing),
                "missingReferences": missing,
            }
            if self.engine == "elasticsearch":
                details.update(excludedObjects=[], excludedObjectsCount=0)
            lines.append(stable_json(details))
        return "\n".join(lines)

    def _collect_references(self, objects: list[dict], namespace: str) -> tuple[list[dict], list[dict]]:
        seen = {(o["type"], o["id"]) for o in objects}
        queue = list(objects)
        out = list(objects)
        missing = []
        while queue:
            obj = queue.pop(0)
            for ref in obj.get("references") or []:
                key = (ref["type"], ref["id"])
                if key in seen:
                    continue
                seen.add(key)
                found = self.objects.get((namespace, ref["type"], ref["id"]))
                if found:
                    out.append(self._out(found))
                    queue.append(found)
                else:
                    missing.append({"id": ref["id"], "type": ref["type"]})
        return out, missing

    # ----------------------------------------------------------- import
    def _import(self, query: dict, headers: dict, body: bytes, namespace: str) -> dict:
        overwrite = _bool_param(query, "overwrite")
        create_new_copies = _bool_param(query, "createNewCopies")
        compatibility = _bool_param(query, "compatibilityMode") if self.engine == "elasticsearch" else False
        if overwrite and create_new_copies:
            raise ApiError(400, "[request query]: cannot use [overwrite] with [createNewCopies]")
        if create_new_copies and compatibility:
            raise ApiError(400, "[request query]: cannot use [createNewCopies] with [compatibilityMode]")
        content_type = headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise ApiError(415, "Unsupported Media Type")
        filename, content = _multipart_file(content_type, body)
        if content is None:
            raise ApiError(400, "[request body.file]: expected value of type [Stream] but got [undefined]")
        extension = _extname(filename or "").lower()
        if extension != ".ndjson":
            raise ApiError(400, f"Invalid file extension {extension}")
        objects = []
        for line in content.decode("utf-8", "replace").split("\n"):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise ApiError(400, f"Unexpected token in JSON at position {exc.pos}") from None
            if isinstance(obj, dict) and obj.get("exportedCount"):
                continue
            objects.append(obj)
        if len(objects) > MAX_IMPORT_EXPORT_SIZE:
            raise ApiError(400, f"Can't import more than {MAX_IMPORT_EXPORT_SIZE} objects")
        self.imports.append((namespace, overwrite, [f"{o.get('type')}:{o.get('id')}" for o in objects]))
        return self._import_objects(objects, namespace, overwrite, create_new_copies)

    def _failure(self, obj: dict, error: dict) -> dict:
        title = (obj.get("attributes") or {}).get("title")
        out: dict[str, Any] = {"id": obj.get("id"), "type": obj.get("type")}
        if self.engine == "opensearch":
            out["title"] = title
        out["meta"] = {"title": title}
        out["error"] = error
        return out

    def _import_objects(self, objects: list[dict], namespace: str, overwrite: bool, new_copies: bool) -> dict:
        errors: list[dict] = []
        entries = [f"{o.get('type')}:{o.get('id')}" for o in objects]
        dupes = sorted({e for e in entries if entries.count(e) > 1}, key=entries.index)
        if dupes:
            raise ApiError(400, f"Non-unique import objects detected: [{','.join(dupes)}]")
        # collect_saved_objects: unsupported types
        collected = []
        for obj in objects:
            if obj.get("type") in self.types:
                collected.append(obj)
            else:
                errors.append(self._failure(obj, {"type": "unsupported_type"}))
        # validate_references: references to data views and saved searches must exist
        in_file = {(o["type"], o["id"]) for o in collected}
        for obj in collected:
            missing = [
                {"type": r["type"], "id": r["id"]}
                for r in obj.get("references") or []
                if r.get("type") in VALIDATED_REFERENCE_TYPES
                and (r["type"], r["id"]) not in in_file
                and (namespace, r["type"], r["id"]) not in self.objects
            ]
            if missing:
                errors.append(self._failure(obj, {"type": "missing_references", "references": missing}))
        # check_conflicts or regenerate_ids
        pending_overwrites = set()
        destination: dict[tuple[str, str], str] = {}
        if new_copies:
            destination = {(o["type"], o["id"]): str(uuidlib.uuid4()) for o in collected}
        else:
            for obj in collected:
                if (namespace, obj["type"], obj["id"]) in self.objects:
                    if overwrite:
                        pending_overwrites.add((obj["type"], obj["id"]))
                    else:
                        errors.append(self._failure(obj, {"type": "conflict"}))
        # create_saved_objects
        failed = {(e["type"], e["id"]) for e in errors}
        to_create = [o for o in collected if (o["type"], o["id"]) not in failed]
        write = not any(e["error"]["type"] in RESOLVABLE_ERRORS for e in errors)
        success_results = []
        for obj in to_create:
            key = (obj["type"], obj["id"])
            new = copy.deepcopy(obj)
            if key in destination:
                new["id"] = destination[key]
                new.pop("originId", None)
                new["references"] = [
                    dict(r, id=destination.get((r["type"], r["id"]), r["id"])) for r in new.get("references") or []
                ]
            if write:
                self._store(namespace, new, overwrite=True)
            attributes = obj.get("attributes") or {}
            title = attributes.get("title")
            if obj["type"] == "index-pattern" and self.engine == "elasticsearch":
                title = attributes.get("name") or title
            result: dict[str, Any] = {
                "type": obj["type"],
                "id": obj["id"],
                "meta": {"title": title, "icon": self.types[obj["type"]][1]},
            }
            if key in pending_overwrites:
                result["overwrite"] = True
            if key in destination:
                result["destinationId"] = destination[key]
            success_results.append(result)
        for error in errors:
            icon = self.types.get(error["type"], (None, None))[1]
            error["meta"] = dict(error["meta"], icon=icon) if icon else error["meta"]
        answer: dict[str, Any] = {"successCount": len(success_results), "success": not errors}
        if self.engine == "elasticsearch":
            answer["warnings"] = []
        if success_results:
            answer["successResults"] = success_results
        if errors:
            answer["errors"] = errors
        return answer

    # ----------------------------------------------------------- data views (Kibana)
    def _data_view_spec(self, stored: dict) -> dict:
        attributes = stored["attributes"]

        def decoded(name: str, default: Any) -> Any:
            value = attributes.get(name)
            if isinstance(value, str):
                try:
                    return json.loads(value)
                except ValueError:
                    return default
            return value if value is not None else default

        spec: dict[str, Any] = {
            "id": stored["id"],
            "version": stored["version"],
            "title": attributes.get("title"),
            "sourceFilters": decoded("sourceFilters", []),
            "fields": {},
            "typeMeta": decoded("typeMeta", {}),
            "fieldFormats": decoded("fieldFormatMap", {}),
            "runtimeFieldMap": decoded("runtimeFieldMap", {}),
            "fieldAttrs": decoded("fieldAttrs", {}),
            "allowNoIndex": bool(attributes.get("allowNoIndex", False)),
            "name": attributes.get("name") or attributes.get("title"),
            "allowHidden": bool(attributes.get("allowHidden", False)),
        }
        if attributes.get("timeFieldName"):
            spec["timeFieldName"] = attributes["timeFieldName"]
        return spec

    def _data_views(self, method: str, rest: list[str], body: bytes, namespace: str) -> tuple[int, bytes, dict]:
        if method == "GET" and not rest:
            views = [
                {
                    "id": o["id"],
                    "namespaces": o["namespaces"],
                    "title": o["attributes"].get("title"),
                    "typeMeta": {},
                    "name": o["attributes"].get("name") or o["attributes"].get("title"),
                }
                for (ns, t, _i), o in sorted(self.objects.items())
                if ns == namespace and t == "index-pattern"
            ]
            return 200, _dumps({"data_view": views}), {}
        if rest[:1] != ["data_view"]:
            raise ApiError(404, "Not Found")
        ident = rest[1] if len(rest) == 2 else None
        if method == "GET" and ident:
            stored = self._get(namespace, "index-pattern", ident)
            return 200, _dumps({"data_view": dict(self._data_view_spec(stored), namespaces=[namespace])}), {}
        if method == "DELETE" and ident:
            self._get(namespace, "index-pattern", ident)
            del self.objects[(namespace, "index-pattern", ident)]
            return 200, b"", {"Content-Type": "application/json"}
        if method == "POST" and not ident:
            return 200, _dumps(self._create_data_view(_json_body(body), namespace)), {}
        if method == "POST" and ident:
            return 200, _dumps(self._update_data_view(ident, _json_body(body), namespace)), {}
        raise ApiError(404, "Not Found")

    def _create_data_view(self, data: Any, namespace: str) -> dict:
        if not isinstance(data, dict):
            raise ApiError(400, f"[request body]: expected a plain object value, but found [{_js_type(data)}] instead.")
        for key in data:
            if key not in ("override", "refresh_fields", "data_view"):
                raise ApiError(400, f"[request body.{key}]: definition for this key is missing")
        spec = data.get("data_view")
        if not isinstance(spec, dict):
            raise ApiError(400, "[request body.data_view.title]: expected value of type [string] but got [undefined]")
        for key in spec:
            if key not in DATA_VIEW_KEYS:
                raise ApiError(400, f"[request body.data_view.{key}]: definition for this key is missing")
        if not isinstance(spec.get("title"), str):
            raise ApiError(400, "[request body.data_view.title]: expected value of type [string] but got [undefined]")
        name = spec.get("name") or spec["title"]
        dupes = [
            o
            for (ns, t, _i), o in self.objects.items()
            if ns == namespace
            and t == "index-pattern"
            and (o["attributes"].get("name") or o["attributes"]["title"]) == name
        ]
        if dupes:
            if not data.get("override"):
                raise ApiError(400, f"Duplicate data view: {name}")
            for dupe in dupes:
                del self.objects[(namespace, "index-pattern", dupe["id"])]
        attributes: dict[str, Any] = {
            "title": spec["title"],
            "name": name,
            "fieldAttrs": json.dumps(spec.get("fieldAttrs", {})),
            "fieldFormatMap": json.dumps(spec.get("fieldFormats", {})),
            "fields": "[]",
            "runtimeFieldMap": json.dumps(spec.get("runtimeFieldMap", {})),
            "sourceFilters": json.dumps(spec.get("sourceFilters", [])),
            "allowHidden": bool(spec.get("allowHidden", False)),
        }
        if spec.get("timeFieldName"):
            attributes["timeFieldName"] = spec["timeFieldName"]
        if spec.get("allowNoIndex"):
            attributes["allowNoIndex"] = True
        obj = {"type": "index-pattern", "id": spec.get("id") or str(uuidlib.uuid4()), "attributes": attributes}
        stored = self._store(namespace, obj, overwrite=False)
        return {"data_view": dict(self._data_view_spec(stored), namespaces=[namespace])}

    def _update_data_view(self, ident: str, data: Any, namespace: str) -> dict:
        if not isinstance(data, dict) or not isinstance(data.get("data_view"), dict):
            raise ApiError(
                400, "[request body.data_view]: expected a plain object value, but found [undefined] instead."
            )
        for key in data:
            if key not in ("refresh_fields", "data_view"):
                raise ApiError(400, f"[request body.{key}]: definition for this key is missing")
        spec = data["data_view"]
        for key in spec:
            if key not in DATA_VIEW_UPDATE_KEYS:
                raise ApiError(400, f"[request body.data_view.{key}]: definition for this key is missing")
        stored = self._get(namespace, "index-pattern", ident)
        attributes = dict(stored["attributes"])
        changed = False
        for key, attribute in (("title", "title"), ("timeFieldName", "timeFieldName"), ("name", "name")):
            if key in spec and spec[key] != attributes.get(attribute):
                attributes[attribute] = spec[key]
                changed = True
        for key, attribute in (
            ("sourceFilters", "sourceFilters"),
            ("fieldFormats", "fieldFormatMap"),
            ("runtimeFieldMap", "runtimeFieldMap"),
            ("typeMeta", "typeMeta"),
        ):
            if key in spec:
                attributes[attribute] = json.dumps(spec[key])
                changed = True
        if changed:
            stored = self._store(namespace, dict(stored, attributes=attributes), overwrite=True)
        return {"data_view": self._data_view_spec(stored)}


def _js_type(value: Any) -> str:
    if isinstance(value, list):
        return "Array"
    if isinstance(value, dict):
        return "Object"
    if value is None:
        return "null"
    return type(value).__name__


def _json_body(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ApiError(400, f"Invalid request payload JSON format: {exc}") from None


def _extname(filename: str) -> str:
    """Node's path.extname."""
    base = filename.rsplit("/", 1)[-1]
    dot = base.rfind(".")
    return "" if dot <= 0 else base[dot:]


def _multipart_file(content_type: str, body: bytes) -> tuple[str | None, bytes | None]:
    """(filename, content) of the multipart field named ``file``."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        return None, None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_filename(), part.get_payload(decode=True) or b""
    return None, None


def _matches(obj: dict, search: str | None, fields: list[str]) -> bool:
    if not search:
        return True
    term = search.strip()
    prefix = term.endswith("*")
    term = term.rstrip("*").strip('"').lower()
    for field in fields:
        value = str((obj.get("attributes") or {}).get(field.split("^")[0], "")).lower()
        if (
            (prefix and any(w.startswith(term) for w in [value, *value.split()]))
            or term == value
            or term in value.split()
        ):
            return True
    return False


def _sort_objects(objects: list[dict]) -> list[dict]:
    """sort_objects.ts: every object after the objects it refers to (depth first), else in order."""
    index = {(o["type"], o["id"]): o for o in objects}
    done: set[tuple[str, str]] = set()
    out: list[dict] = []

    def visit(obj: dict, path: set) -> None:
        key = (obj["type"], obj["id"])
        if key in done or key in path:
            return
        path = path | {key}
        for ref in obj.get("references") or []:
            target = index.get((ref["type"], ref["id"]))
            if target:
                visit(target, path)
        done.add(key)
        out.append(obj)

    for obj in objects:
        visit(obj, set())
    return out


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
