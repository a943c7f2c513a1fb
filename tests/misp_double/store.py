"""The MISP database of the double: events with their attributes, objects and tags,
organisations, sightings, and the per-attribute index that restSearch filters."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from .php import (
    GALAXY_RE,
    MispError,
    as_bool,
    like_regex,
    php_int,
    php_is_numeric,
    php_strval,
    split_value,
    timestamp_of,
)

# Default category and to_ids per type for attributes added without them, used only
# when no describeTypes.json is given (MispAttribute::generateTypeDefinitions).
_FALLBACK_TYPE_DEFAULTS = {
    "ip-src": ("Network activity", True),
    "ip-dst": ("Network activity", True),
    "ip-src|port": ("Network activity", True),
    "ip-dst|port": ("Network activity", True),
    "domain": ("Network activity", True),
    "hostname": ("Network activity", True),
    "domain|ip": ("Network activity", True),
    "url": ("Network activity", True),
    "user-agent": ("Network activity", False),
    "md5": ("Payload delivery", True),
    "sha1": ("Payload delivery", True),
    "sha256": ("Payload delivery", True),
    "filename": ("Payload delivery", True),
    "filename|md5": ("Payload delivery", True),
    "email-src": ("Payload delivery", True),
    "x509-fingerprint-sha1": ("Network activity", True),
    "ja3-fingerprint-md5": ("Network activity", True),
    "comment": ("Other", False),
    "text": ("Other", False),
    "link": ("External analysis", False),
}


class EventRec:
    """Per-event data precomputed for restSearch."""

    __slots__ = (
        "date",
        "id",
        "info",
        "orgc_id",
        "out",
        "publish_ts",
        "published",
        "tag_ids",
        "tags_all",
        "tags_exportable",
        "threat_level_id",
        "ts",
        "uuid",
    )


# Record tuple layout (one per attribute, sorted by attribute id).
R_ID, R_EV, R_ATTR, R_OBJ, R_TYPE, R_CAT, R_TOIDS, R_DEL, R_TS, R_V1, R_V2, R_TAGS, R_UUID = range(13)
_EMPTY: frozenset[int] = frozenset()


class MispStore:
    """The MISP database of the double: events, tags, organisations and sightings."""

    def __init__(self, org_name: str, describe_types: dict | None):
        self.lock = threading.RLock()
        self.events: dict[int, dict] = {}
        self.event_by_uuid: dict[str, int] = {}
        self.attr_by_uuid: dict[str, tuple[int, dict, dict | None]] = {}
        self.attr_ids: set[int] = set()
        self.object_ids: set[int] = set()
        self.next_event_id = 1
        self.next_attr_id = 1
        self.next_object_id = 1
        self.tags: dict[str, dict] = {}  # lower-case name -> tag
        self.tags_by_id: dict[int, dict] = {}
        self.orgs: dict[str, dict] = {}  # uuid -> org
        # id -> row of MISP's `sightings` table, every column a string as MISP's
        # database layer (PDO::ATTR_STRINGIFY_FETCHES) returns it.
        self.sightings: dict[int, dict] = {}
        self.next_sighting_id = 1
        self.describe_types = describe_types
        self.local_org = self.org({"name": org_name, "uuid": str(uuidlib.uuid4())})
        self.generation = 0
        self._index: tuple[int, list, list] | None = None
        self._cache: OrderedDict[str, tuple[float, list]] = OrderedDict()

    # ----------------------------------------------------------- reference data
    def org(self, spec: dict | None) -> dict:
        spec = spec or {}
        org_uuid = spec.get("uuid")
        name = spec.get("name") or "ORGNAME"
        if org_uuid and org_uuid in self.orgs:
            return self.orgs[org_uuid]
        for existing in self.orgs.values():
            if not org_uuid and existing["name"] == name:
                return existing
        org = {
            "id": str(len(self.orgs) + 1),
            "name": name,
            "uuid": org_uuid or str(uuidlib.uuid4()),
            "local": True,
        }
        self.orgs[org["uuid"]] = org
        return org

    def tag(self, name: str, colour: str | None = None, exportable: Any = True) -> dict:
        key = name.lower()
        if key not in self.tags:
            tag = {
                "id": str(len(self.tags) + 1),
                "name": name,
                "colour": colour or "#" + _md5_hex(name)[:6],
                "exportable": as_bool(exportable),
                "user_id": "0",
                "hide_tag": False,
                "numerical_value": None,
                "is_galaxy": bool(GALAXY_RE.search(name)),
                "is_custom_galaxy": False,
                "local_only": False,
            }
            self.tags[key] = tag
            self.tags_by_id[int(tag["id"])] = tag
        return self.tags[key]

    def tag_entry(self, spec: dict | str, local: Any = None) -> dict:
        if isinstance(spec, str):
            spec = {"name": spec}
        tag = self.tag(spec["name"], spec.get("colour"), spec.get("exportable", True))
        entry = dict(tag)
        entry["local"] = as_bool(spec.get("local", False) if local is None else local)
        entry["relationship_type"] = spec.get("relationship_type")
        return entry

    def tag_ids_like(self, names: list) -> list[int]:
        """Tag::findTagIdsByTagNames: numeric = tag id, else ``Tag.name LIKE name``."""
        ids: list[int] = []
        for name in names:
            if php_is_numeric(name):
                ids.append(php_int(name))
                continue
            rx = like_regex(php_strval(name), True)
            ids.extend(int(t["id"]) for t in self.tags.values() if rx.fullmatch(t["name"]))
        return list(dict.fromkeys(ids))

    # ----------------------------------------------------------- writes
    def touch(self) -> None:
        self.generation += 1
        self._index = None
        self._cache.clear()

    def new_attr_id(self, wanted: Any = None) -> int:
        if wanted not in (None, "") and php_is_numeric(wanted):
            candidate = php_int(wanted)
            if candidate > 0 and candidate not in self.attr_ids:
                self.attr_ids.add(candidate)
                self.next_attr_id = max(self.next_attr_id, candidate + 1)
                return candidate
        while self.next_attr_id in self.attr_ids:
            self.next_attr_id += 1
        candidate = self.next_attr_id
        self.attr_ids.add(candidate)
        self.next_attr_id += 1
        return candidate

    def new_object_id(self, wanted: Any = None) -> int:
        if wanted not in (None, "") and php_is_numeric(wanted):
            candidate = php_int(wanted)
            if candidate > 0 and candidate not in self.object_ids:
                self.object_ids.add(candidate)
                self.next_object_id = max(self.next_object_id, candidate + 1)
                return candidate
        while self.next_object_id in self.object_ids:
            self.next_object_id += 1
        candidate = self.next_object_id
        self.object_ids.add(candidate)
        self.next_object_id += 1
        return candidate

    def add_sighting(
        self, attribute_id: int, event_id: int, date_sighting: int, sighting_type: str, source: str
    ) -> dict:
        """A new row of the `sightings` table (Sighting::save, by the local org)."""
        sighting = {
            "id": str(self.next_sighting_id),
            "attribute_id": str(attribute_id),
            "event_id": str(event_id),
            "org_id": self.local_org["id"],
            "date_sighting": str(date_sighting),
            "uuid": str(uuidlib.uuid4()),
            "source": source,
            "type": sighting_type,
        }
        self.sightings[self.next_sighting_id] = sighting
        self.next_sighting_id += 1
        return sighting

    def org_by_id(self, org_id: str) -> dict:
        return next(o for o in self.orgs.values() if o["id"] == org_id)

    def type_defaults(self, attr_type: str) -> tuple[str | None, bool]:
        if self.describe_types:
            sane = self.describe_types.get("sane_defaults", {}).get(attr_type)
            if sane:
                return sane.get("default_category"), bool(sane.get("to_ids"))
        return _FALLBACK_TYPE_DEFAULTS.get(attr_type, (None, False))

    def normalise_attribute(self, raw: dict, event_id: int, event_ts: int, obj: dict | None, keep_id: bool) -> dict:
        attr_type = raw.get("type", "")
        category, default_ids = self.type_defaults(attr_type)
        uuid = raw.get("uuid") or str(uuidlib.uuid4())
        if uuid in self.attr_by_uuid:
            uuid = str(uuidlib.uuid4())
        attr = {
            "id": str(self.new_attr_id(raw.get("id") if keep_id else None)),
            "type": attr_type,
            "category": raw.get("category") or category or "Other",
            "to_ids": as_bool(raw["to_ids"]) if "to_ids" in raw else default_ids,
            "uuid": uuid,
            "event_id": str(event_id),
            "distribution": php_strval(raw.get("distribution", "5")) or "5",
            "timestamp": str(timestamp_of(raw.get("timestamp"), event_ts)),
            "comment": raw.get("comment") or "",
            "sharing_group_id": php_strval(raw.get("sharing_group_id", "0")) or "0",
            "deleted": as_bool(raw.get("deleted", False)),
            "disable_correlation": as_bool(raw.get("disable_correlation", False)),
            "object_id": obj["id"] if obj else "0",
            "object_relation": raw.get("object_relation") if obj else None,
            "first_seen": raw.get("first_seen"),
            "last_seen": raw.get("last_seen"),
            "value": php_strval(raw.get("value", "")),
            "Galaxy": [],
            "ShadowAttribute": [],
        }
        tags = [self.tag_entry(t) for t in raw.get("Tag") or [] if t.get("name")]
        if tags:
            attr["Tag"] = tags
        self.attr_by_uuid[uuid] = (event_id, attr, obj)
        return attr

    def normalise_object(self, raw: dict, event_id: int, event_ts: int, keep_id: bool) -> dict:
        obj = {
            "id": str(self.new_object_id(raw.get("id") if keep_id else None)),
            "name": raw.get("name", ""),
            "meta-category": raw.get("meta-category", raw.get("meta_category", "")),
            "description": raw.get("description", ""),
            "template_uuid": raw.get("template_uuid", ""),
            "template_version": php_strval(raw.get("template_version", "")),
            "event_id": str(event_id),
            "uuid": raw.get("uuid") or str(uuidlib.uuid4()),
            "timestamp": str(timestamp_of(raw.get("timestamp"), event_ts)),
            "distribution": php_strval(raw.get("distribution", "5")) or "5",
            "sharing_group_id": php_strval(raw.get("sharing_group_id", "0")) or "0",
            "comment": raw.get("comment") or "",
            "deleted": as_bool(raw.get("deleted", False)),
            "first_seen": raw.get("first_seen"),
            "last_seen": raw.get("last_seen"),
            "ObjectReference": [],
            "Attribute": [],
        }
        obj["Attribute"] = [
            self.normalise_attribute(a, event_id, event_ts, obj, keep_id) for a in raw.get("Attribute") or []
        ]
        return obj

    def store_event(self, raw: dict, keep_ids: bool = True, now: int | None = None) -> dict:
        """Store an event given as MISP exports it ({"Event": {...}} or the inner dict)."""
        now = int(time.time()) if now is None else now
        raw = raw.get("Event", raw) if isinstance(raw, dict) else raw
        wanted = raw.get("id")
        if keep_ids and php_is_numeric(wanted) and php_int(wanted) not in self.events:
            event_id = php_int(wanted)
        else:
            while self.next_event_id in self.events:
                self.next_event_id += 1
            event_id = self.next_event_id
        self.next_event_id = max(self.next_event_id, event_id + 1)
        event_uuid = raw.get("uuid") or str(uuidlib.uuid4())
        if event_uuid in self.event_by_uuid:
            raise MispError(
                404,
                "Event already exists, if you would like to edit it, use the url in the location header.",
                "/events/add",
            )
        orgc = self.org(raw.get("Orgc")) if raw.get("Orgc") else self.local_org
        org = self.org(raw.get("Org")) if raw.get("Org") else self.local_org
        event_ts = timestamp_of(raw.get("timestamp"), now)
        published = as_bool(raw.get("published", False))
        event = {
            "id": str(event_id),
            "orgc_id": orgc["id"],
            "org_id": org["id"],
            "date": raw.get("date") or dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d"),
            "threat_level_id": php_strval(raw.get("threat_level_id", "4")) or "4",
            "info": raw.get("info", ""),
            "published": published,
            "uuid": event_uuid,
            "attribute_count": "0",
            "analysis": php_strval(raw.get("analysis", "0")) or "0",
            "timestamp": str(event_ts),
            "distribution": php_strval(raw.get("distribution", "0")) or "0",
            "proposal_email_lock": False,
            "locked": as_bool(raw.get("locked", False)),
            "publish_timestamp": str(timestamp_of(raw.get("publish_timestamp"), 0)),
            "sharing_group_id": php_strval(raw.get("sharing_group_id", "0")) or "0",
            "disable_correlation": as_bool(raw.get("disable_correlation", False)),
            "extends_uuid": raw.get("extends_uuid") or "",
            "protected": raw.get("protected"),
            "Org": {k: org[k] for k in ("id", "name", "uuid", "local")},
            "Orgc": {k: orgc[k] for k in ("id", "name", "uuid", "local")},
            "Attribute": [],
            "ShadowAttribute": [],
            "RelatedEvent": [],
            "Galaxy": [],
            "Object": [],
            "EventReport": [],
            "CryptographicKey": [],
            "Tag": [],
        }
        self.events[event_id] = event
        self.event_by_uuid[event_uuid] = event_id
        event["Attribute"] = [
            self.normalise_attribute(a, event_id, event_ts, None, keep_ids) for a in raw.get("Attribute") or []
        ]
        event["Object"] = [self.normalise_object(o, event_id, event_ts, keep_ids) for o in raw.get("Object") or []]
        event["Tag"] = [self.tag_entry(t) for t in raw.get("Tag") or [] if t.get("name")]
        self.recount(event)
        self.touch()
        return event

    @staticmethod
    def iter_attributes(event: dict) -> Iterator[tuple[dict, dict | None]]:
        for attr in event["Attribute"]:
            yield attr, None
        for obj in event["Object"]:
            for attr in obj["Attribute"]:
                yield attr, obj

    def recount(self, event: dict) -> None:
        event["attribute_count"] = str(sum(1 for a, _obj in self.iter_attributes(event) if not a["deleted"]))

    def unpublish(self, event: dict, now: int) -> None:
        """Event::unpublishEvent: published = 0, timestamp = now."""
        event["published"] = False
        event["timestamp"] = str(now)

    # ----------------------------------------------------------- index
    def index(self) -> tuple[list[EventRec], list[tuple]]:
        if self._index is not None and self._index[0] == self.generation:
            return self._index[1], self._index[2]
        events: list[EventRec] = []
        records: list[tuple] = []
        for event_id in sorted(self.events):
            event = self.events[event_id]
            rec = EventRec()
            rec.id = event_id
            rec.uuid = event["uuid"]
            rec.published = bool(event["published"])
            rec.publish_ts = php_int(event["publish_timestamp"])
            rec.ts = php_int(event["timestamp"])
            rec.date = event["date"]
            rec.orgc_id = php_int(event["orgc_id"])
            rec.info = event["info"]
            rec.threat_level_id = php_int(event["threat_level_id"])
            rec.tag_ids = frozenset(int(t["id"]) for t in event["Tag"])
            # MispAttribute restSearch selects Event.org_id, Event.distribution and
            # Event.publish_timestamp, fetchAttributes contains id, info, org_id,
            # orgc_id, uuid.
            rec.out = {
                "org_id": event["org_id"],
                "distribution": event["distribution"],
                "publish_timestamp": event["publish_timestamp"],
                "id": event["id"],
                "info": event["info"],
                "orgc_id": event["orgc_id"],
                "uuid": event["uuid"],
            }
            inherited = []
            for t in event["Tag"]:
                tag = self.tags_by_id[int(t["id"])]
                inherited.append(
                    (
                        tag["exportable"],
                        {
                            "id": tag["id"],
                            "name": tag["name"],
                            "colour": tag["colour"],
                            "numerical_value": tag["numerical_value"],
                            "inherited": 1,
                        },
                    )
                )
            rec.tags_all = [d for _exportable, d in inherited]
            rec.tags_exportable = [d for exp, d in inherited if exp]
            events.append(rec)
            for attr, obj in self.iter_attributes(event):
                value1, value2 = split_value(attr["type"], attr["value"])
                tags = attr.get("Tag")
                records.append(
                    (
                        int(attr["id"]),
                        rec,
                        attr,
                        obj,
                        attr["type"],
                        attr["category"],
                        attr["to_ids"],
                        attr["deleted"],
                        php_int(attr["timestamp"]),
                        value1,
                        value2,
                        frozenset(int(t["id"]) for t in tags) if tags else _EMPTY,
                        attr["uuid"],
                    )
                )
        records.sort(key=lambda r: r[R_ID])
        self._index = (self.generation, events, records)
        return events, records

    def cached(self, key: str, ttl: float, compute: Callable[[], list]) -> list:
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < ttl:
            self._cache.move_to_end(key)
            return hit[1]
        result = compute()
        self._cache[key] = (time.monotonic(), result)
        while len(self._cache) > 16:
            self._cache.popitem(last=False)
        return result


def _md5_hex(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
