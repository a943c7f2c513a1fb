"""The Kibana double's saved objects and spaces: what each product stores, with the
version and migration fields it adds, and its error bodies (``ApiError``)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
import threading
from typing import Any

KIBANA_VERSION = "8.15.0"
DASHBOARDS_VERSION = "2.19.0"
CORE_MIGRATION_VERSION = "8.8.0"
MAX_IMPORT_EXPORT_SIZE = 10000
DEFAULT_SPACE = {
    "id": "default",
    "name": "Default",
    "description": "This is your default space!",
    "color": "#00bfb3",
    "disabledFeatures": [],
    "_reserved": True,
}
# Importable types (with the type's latest migration version and management icon).
KIBANA_TYPES = {
    "config": ("8.9.0", "advancedSettingsApp"),
    "index-pattern": ("8.0.0", "indexPatternApp"),
    "search": ("8.0.0", "discoverApp"),
    "visualization": ("8.5.0", "visualizeApp"),
    "lens": ("8.9.0", "lensApp"),
    "dashboard": ("8.9.0", "dashboardApp"),
    "map": ("8.4.0", "gisApp"),
    "tag": ("8.0.0", "tag"),
    "query": ("8.0.0", "search"),
}
DASHBOARDS_TYPES = {
    "config": ("7.9.0", "advancedSettingsApp"),
    "index-pattern": ("7.6.0", "indexPatternApp"),
    "search": ("7.9.3", "discoverApp"),
    "visualization": ("7.10.0", "visualizeApp"),
    "dashboard": ("7.9.3", "dashboardApp"),
    "query": ("7.0.0", "search"),
    "url": ("7.0.0", "link"),
}
VALIDATED_REFERENCE_TYPES = ("index-pattern", "search")
RESOLVABLE_ERRORS = ("conflict", "ambiguous_conflict", "missing_references")
SPACE_PREFIX = re.compile(r"^/s/([a-z0-9_\-]+)(/.*)?$")
# Keys of the data view spec (rest_api_routes/schema.ts dataViewSpecSchema).


class ApiError(Exception):
    """An error answered as a hapi Boom payload."""

    def __init__(self, status: int, message: str, extra: dict | None = None, content_type: str = "json"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra or {}
        self.content_type = content_type

    def body(self) -> dict:
        out = {"statusCode": self.status, "error": _status_name(self.status), "message": self.message}
        out.update(self.extra)
        return out


def _status_name(status: int) -> str:
    return {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        409: "Conflict",
        415: "Unsupported Media Type",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }.get(status, "Error")


def not_found(obj_type: str, obj_id: str) -> ApiError:
    return ApiError(404, f"Saved object [{obj_type}/{obj_id}] not found")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _version(seq: int) -> str:
    """Kibana's object version: base64 of ``[seq_no, primary_term]``."""
    return base64.b64encode(json.dumps([seq, 1], separators=(",", ":")).encode()).decode()


def stable_json(value: Any) -> str:
    """json-stable-stringify: keys sorted, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _vkey(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in version.split("."))
    except ValueError:
        return ()


class KibanaStore:
    """Saved objects by (namespace, type, id) and spaces, of the product of one search engine
    (``engine``: Kibana for elasticsearch, OpenSearch Dashboards for opensearch)."""

    def __init__(self, engine: str):
        if engine not in ("elasticsearch", "opensearch"):
            raise ValueError("engine is elasticsearch (Kibana) or opensearch (OpenSearch Dashboards)")
        self.engine = engine
        self.version = KIBANA_VERSION if engine == "elasticsearch" else DASHBOARDS_VERSION
        self.types = KIBANA_TYPES if engine == "elasticsearch" else DASHBOARDS_TYPES
        self.spaces: dict[str, dict] = {"default": dict(DEFAULT_SPACE)}
        # (namespace, type, id) -> stored object
        self.objects: dict[tuple[str, str, str], dict] = {}
        # One entry per import request that got past validation: (space, overwrite, ["type:id", ...]).
        self.imports: list[tuple[str, bool, list[str]]] = []
        self.lock = threading.RLock()
        self._seq = 0

    # ----------------------------------------------------------- test helpers
    def add_space(self, space_id: str, name: str | None = None) -> dict:
        with self.lock:
            space = {"id": space_id, "name": name or space_id, "disabledFeatures": []}
            self.spaces[space_id] = space
            return space

    def stored(self, obj_type: str, obj_id: str, space: str = "default") -> dict | None:
        """A copy of a stored object as ``GET /api/saved_objects/<type>/<id>`` returns it, or None."""
        with self.lock:
            found = self.objects.get((space, obj_type, obj_id))
            return copy.deepcopy(found) if found else None

    def put_object(self, obj: dict, space: str = "default") -> dict:
        """Store an object directly (as if created in the UI)."""
        with self.lock:
            return copy.deepcopy(self._store(space, obj, overwrite=True))

    def object_keys(self, space: str = "default") -> set[str]:
        with self.lock:
            return {f"{t}:{i}" for (ns, t, i) in self.objects if ns == space}

    @property
    def writes(self) -> list[tuple[str, str]]:
        """(method, path) of the requests that may change state."""
        return [
            (m, p)
            for m, p, _h in self.requests
            if m in ("POST", "PUT", "DELETE") and not p.split("?")[0].endswith(("/_bulk_get", "/_export"))
        ]

    # ----------------------------------------------------------- storage
    def _store(self, namespace: str, obj: dict, overwrite: bool) -> dict:
        key = (namespace, obj["type"], obj["id"])
        existing = self.objects.get(key)
        if existing and not overwrite:
            raise ApiError(409, f"Saved object [{obj['type']}/{obj['id']}] conflict")
        self._seq += 1
        now = _now()
        latest = self.types.get(obj["type"], ("8.0.0", ""))[0]
        stored: dict[str, Any] = {
            "id": obj["id"],
            "type": obj["type"],
            "namespaces": [namespace],
            "updated_at": now,
            "version": _version(self._seq),
            "attributes": copy.deepcopy(obj.get("attributes") or {}),
            "references": copy.deepcopy(obj.get("references") or []),
        }
        if self.engine == "elasticsearch":
            stored["created_at"] = existing.get("created_at", now) if existing else now
            stored["managed"] = bool(obj.get("managed", False))
            stored["coreMigrationVersion"] = CORE_MIGRATION_VERSION
            given = obj.get("typeMigrationVersion") or ""
            stored["typeMigrationVersion"] = given if _vkey(given) > _vkey(latest) else latest
        else:
            stored["migrationVersion"] = {obj["type"]: latest}
        if obj.get("originId"):
            stored["originId"] = obj["originId"]
        self.objects[key] = stored
        return stored

    def _get(self, namespace: str, obj_type: str, obj_id: str) -> dict:
        if obj_type not in self.types:
            raise ApiError(400, f"Unsupported saved object type: '{obj_type}': Bad Request")
        found = self.objects.get((namespace, obj_type, obj_id))
        if not found:
            raise not_found(obj_type, obj_id)
        return found
