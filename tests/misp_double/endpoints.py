"""The MISP API endpoints of the double: servers, users, attributes and events (restSearch,
view, add, edit, publish, delete), objects and tags, answered as MISP's controllers do."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import time
import uuid as uuidlib
from typing import Any

from .php import (
    UUID_RE,
    MispError,
    as_bool,
    convert_filters,
    dissect_args,
    like_regex,
    php_empty,
    php_int,
    php_is_numeric,
    php_strval,
    split_value,
    status_name,
    timestamp_predicate,
)
from .search import (
    ATTRIBUTE_OUT_FIELDS,
    ATTRIBUTE_PARAMS,
    EVENT_PARAMS,
    EVENT_SEARCH_NOT_IMPLEMENTED,
    NOT_IMPLEMENTED_PARAMS,
    VALID_ATTRIBUTE_FORMATS,
    VALID_EVENT_FORMATS,
    AttributeSearch,
    harvest,
    misp_result_count,
    paging,
    search_headers,
    set_filters,
)
from .store import R_ATTR, R_EV, R_OBJ, R_TAGS, R_TYPE, R_UUID, MispStore

MISP_VERSION = "2.5.34"


class MispApi:
    """MISP's API endpoints over a ``MispStore``: routing, the controllers' answers and
    errors. ``MispDouble`` serves it over HTTP."""

    store: MispStore
    version: str
    url: str

    def _event(self, ident: Any, url: str) -> dict:
        text = php_strval(ident)
        if UUID_RE.match(text):
            event_id = self.store.event_by_uuid.get(text)
        else:
            event_id = php_int(text) if php_is_numeric(text) else None
        if event_id is None or event_id not in self.store.events:
            raise MispError(404, "Invalid event", url)
        return self.store.events[event_id]

    def _route(self, method: str, path: str, data: Any, raw: bytes) -> tuple[int, bytes, dict]:
        segments = [s for s in path.split("/") if s]
        named = {}
        positional = []
        for seg in segments[2:]:
            if ":" in seg and not UUID_RE.match(seg):
                k, _sep, v = seg.partition(":")
                named[k] = v
            else:
                positional.append(seg)
        if segments:
            segments[-1] = re.sub(r"\.json$", "", segments[-1])
        if positional:
            positional[-1] = re.sub(r"\.json$", "", positional[-1])
        controller = segments[0] if segments else ""
        action = segments[1] if len(segments) > 1 else ""
        if method == "HEAD":
            if controller == "events" and action == "view" and positional:
                with self.store.lock:
                    self._event(positional[0], path)
                return 200, b"", {}
            raise MispError(404, "Not Found", path)
        key = (controller, action)
        if key == ("servers", "getVersion"):
            return 200, _dumps(self._get_version()), {}
        if key == ("servers", "getPyMISPVersion"):
            return 200, _dumps({"version": self.version}), {}
        if key == ("users", "view"):
            if (positional or ["me"])[0] != "me":
                raise MispError(404, "Invalid user", path)
            return 200, _dumps(self._me()), {}
        if key == ("attributes", "describeTypes"):
            if not self.store.describe_types:
                raise MispError(404, "Not Found", path)
            return 200, _dumps({"result": self.store.describe_types}), {}
        if key in (("attributes", "restSearch"), ("events", "restSearch")):
            if method not in ("POST", "PUT"):
                raise MispError(
                    400,
                    "Restsearch queries using GET and no parameters are not allowed. If you "
                    "have passed parameters via a JSON body, make sure you use POST requests.",
                    path,
                )
            if php_empty(data):
                raise MispError(
                    400,
                    "Either specify the search terms in the url, or POST a json with the filter parameters.",
                    f"/{controller}/restSearch",
                )
            with self.store.lock:
                if controller == "attributes":
                    return self._attribute_rest_search(data)
                return self._event_rest_search(data)
        with self.store.lock:
            if key == ("events", "view"):
                if not positional:
                    raise MispError(404, "Invalid event", path)
                return 200, _dumps(self._view_event(positional[0], data, path)), {}
            if method not in ("POST", "PUT"):
                raise MispError(405, "This method is only accessible via POST requests.", path)
            if key == ("events", "add"):
                return 200, _dumps(self._add_event(data, path)), {}
            if key == ("events", "edit") and positional:
                return self._edit_event(positional[0], data, path)
            if key == ("events", "publish") and positional:
                return 200, _dumps(self._publish(positional[0], path)), {}
            if key == ("events", "delete") and positional:
                return 200, _dumps(self._delete_event(positional[0], path)), {}
            if key == ("objects", "add") and positional:
                return self._add_object(positional[0], data, path)
            if key == ("attributes", "add") and positional:
                return self._add_attribute(positional[0], data, path)
            if key == ("tags", "attachTagToObject"):
                return self._attach_tag(positional, data, path)
        raise MispError(404, "Not Found", path)

    # ----------------------------------------------------------- simple endpoints
    def _get_version(self) -> dict:
        return {
            "version": self.version,
            "pymisp_recommended_version": self.version,
            "perm_sync": True,
            "perm_sighting": True,
            "perm_galaxy_editor": True,
            "perm_analyst_data": True,
            "uuid": str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, self.url)),
            "request_encoding": ["gzip"],
            "filter_sightings": True,
        }

    def _me(self) -> dict:
        org = self.store.local_org
        perms = [
            "perm_add",
            "perm_modify",
            "perm_modify_org",
            "perm_publish",
            "perm_delegate",
            "perm_sync",
            "perm_admin",
            "perm_audit",
            "perm_auth",
            "perm_site_admin",
            "perm_regexp_access",
            "perm_tagger",
            "perm_template",
            "perm_sharing_group",
            "perm_tag_editor",
            "perm_sighting",
            "perm_object_template",
            "perm_publish_zmq",
            "perm_publish_kafka",
            "perm_decaying",
            "perm_galaxy_editor",
            "perm_warninglist",
            "perm_view_feed_correlations",
            "perm_analyst_data",
        ]
        role = {"id": "1", "name": "admin", **dict.fromkeys(perms, True)}
        role.update(
            {
                "default_role": False,
                "memory_limit": "",
                "max_execution_time": "",
                "restricted_to_site_admin": False,
                "enforce_rate_limit": False,
                "rate_limit_count": "0",
                "permission": "3",
                "permission_description": "publish",
            }
        )
        return {
            "User": {
                "id": "1",
                "password": "*****",
                "org_id": org["id"],
                "server_id": "0",
                "email": "admin@admin.test",
                "autoalert": False,
                "invited_by": "0",
                "gpgkey": None,
                "certif_public": "",
                "nids_sid": "4000000",
                "termsaccepted": True,
                "newsread": "0",
                "role_id": "1",
                "change_pw": False,
                "contactalert": False,
                "disabled": False,
                "expiration": None,
                "current_login": str(int(time.time())),
                "last_login": "0",
                "last_api_access": str(int(time.time())),
                "force_logout": False,
                "date_created": None,
                "date_modified": None,
                "external_auth_required": False,
                "external_auth_key": None,
                "notification_daily": False,
                "notification_weekly": False,
                "notification_monthly": False,
            },
            "Role": role,
            "UserSetting": [],
            "Organisation": {k: org[k] for k in ("id", "name", "uuid", "local")},
        }

    # ----------------------------------------------------------- attribute restSearch
    def _attribute_rest_search(self, data: Any) -> tuple[int, bytes, dict]:
        filters = harvest(data, ATTRIBUTE_PARAMS)
        return_format = filters.get("returnFormat")
        if php_empty(return_format):
            return_format = "json"
        if return_format == "download":
            return_format = "json"
        if not isinstance(return_format, str) or return_format not in VALID_ATTRIBUTE_FORMATS:
            raise MispError(404, "Invalid output format.", "/attributes/restSearch")
        if return_format != "json":
            raise MispError(
                501,
                f"Not implemented by the MISP double: returnFormat {return_format}",
                "/attributes/restSearch",
            )
        self._refuse_unimplemented(filters, "/attributes/restSearch")
        limit, page = paging(filters)
        now = int(time.time())
        cache_key = json.dumps(
            {k: v for k, v in filters.items() if k not in ("limit", "page")},
            sort_keys=True,
            default=str,
        )
        matches = self.store.cached(
            "attributes " + cache_key,
            self.cache_ttl,
            lambda: AttributeSearch(self.store, filters, now).run(),
        )
        if self.repeat_page is not None:
            page = min(page, self.repeat_page)
        if limit and not self.ignore_limit:
            start = limit * (page - 1) if page > 1 else 0
            chunk = matches[start : start + limit]
        else:
            chunk = matches
        rows = len(chunk)
        # MispAttribute::fetchAttributes drops warninglisted values after the paged
        # query: a page can come short, and X-Result-Count counts the rows before.
        if not php_empty(filters.get("enforceWarninglist")):
            hit = self.warninglists.hit
            chunk = [r for r in chunk if not hit(r[R_TYPE], r[R_ATTR]["value"])]
        count = misp_result_count(rows, limit, len(chunk)) if self.result_count is None else self.result_count
        out = self._attributes_out(chunk, filters)
        return 200, b'{"response": {"Attribute": ' + _dumps(out) + b"}}\n", search_headers(count)

    def _attributes_out(self, chunk: list[tuple], filters: dict) -> list[dict]:
        """The restSearch JSON of each record, as JsonExport writes it."""
        include_uuid = not php_empty(filters.get("includeEventUuid")) or not php_empty(
            filters.get("includeAttributeUuid")
        )
        include_event_tags = not php_empty(filters.get("includeEventTags"))
        include_all_tags = not php_empty(filters.get("includeAllTags"))
        tags_by_id = self.store.tags_by_id
        out = []
        append = out.append
        fields = ATTRIBUTE_OUT_FIELDS
        for r in chunk:
            attr = r[R_ATTR]
            item = {k: attr[k] for k in fields}
            if include_uuid:
                item["event_uuid"] = r[R_EV].uuid
            item["Event"] = r[R_EV].out
            obj = r[R_OBJ]
            if obj is not None:
                item["Object"] = {
                    "id": obj["id"],
                    "distribution": obj["distribution"],
                    "sharing_group_id": obj["sharing_group_id"],
                }
            tags = []
            if r[R_TAGS]:
                for entry in attr["Tag"]:
                    tag = tags_by_id[int(entry["id"])]
                    if tag["exportable"] or include_all_tags:
                        tags.append(
                            {
                                "id": tag["id"],
                                "name": tag["name"],
                                "colour": tag["colour"],
                                "numerical_value": tag["numerical_value"],
                                "is_galaxy": tag["is_galaxy"],
                                "local": entry["local"],
                            }
                        )
            if include_event_tags:
                tags.extend(r[R_EV].tags_all if include_all_tags else r[R_EV].tags_exportable)
            if tags:
                item["Tag"] = tags
            append(item)
        return out

    def _refuse_unimplemented(self, filters: dict, url: str) -> None:
        for name in NOT_IMPLEMENTED_PARAMS:
            if name in filters and not php_empty(filters[name]):
                raise MispError(501, f"Not implemented by the MISP double: {name}", url)

    # ----------------------------------------------------------- events
    def _event_out(self, event: dict, deleted: bool = False, metadata: bool = False) -> dict:
        out = copy.deepcopy(event)
        if metadata:
            for key in ("Attribute", "Object", "ShadowAttribute", "EventReport"):
                out.pop(key, None)
            return out
        if not deleted:
            out["Attribute"] = [a for a in out["Attribute"] if not a["deleted"]]
            out["Object"] = [o for o in out["Object"] if not o["deleted"]]
            for obj in out["Object"]:
                obj["Attribute"] = [a for a in obj["Attribute"] if not a["deleted"]]
        return out

    def _view_event(self, ident: str, data: Any, path: str) -> dict:
        event = self._event(ident, path)
        deleted = isinstance(data, dict) and not php_empty(data.get("deleted"))
        return {"Event": self._event_out(event, deleted=deleted)}

    def _event_rest_search(self, data: Any) -> tuple[int, bytes, dict]:
        filters = harvest(data, EVENT_PARAMS)
        return_format = filters.get("returnFormat") or "json"
        if return_format == "download":
            return_format = "json"
        if not isinstance(return_format, str) or return_format not in VALID_EVENT_FORMATS:
            raise MispError(404, "Invalid output format.", "/events/restSearch")
        if return_format != "json":
            raise MispError(
                501,
                f"Not implemented by the MISP double: returnFormat {return_format}",
                "/events/restSearch",
            )
        self._refuse_unimplemented(filters, "/events/restSearch")
        for name in EVENT_SEARCH_NOT_IMPLEMENTED:
            if name in filters and not php_empty(filters[name]):
                raise MispError(501, f"Not implemented by the MISP double: {name} (events)", "/events/restSearch")
        now = int(time.time())
        search = AttributeSearch(self.store, filters, now)
        events, records = self.store.index()
        preds = search.event_predicates()
        f = set_filters(filters)
        if "timestamp" in f:  # scope Event: Event.timestamp
            check = timestamp_predicate(f["timestamp"], now)
            if check:
                preds.append(lambda e, c=check: c(e.ts))
        selected = [e for e in events if all(p(e) for p in preds)]
        if not php_empty(f.get("uuid")):
            # Event::set_filter_uuid: event uuid OR an attribute uuid of the event.
            filt = convert_filters(f["uuid"])
            wanted = {php_strval(u) for u in filt.get("OR") or []}
            unwanted = {php_strval(u) for u in filt.get("NOT") or []}
            by_event: dict[int, set[str]] = {}
            for r in records:
                by_event.setdefault(r[R_EV].id, set()).add(r[R_UUID])
            if wanted:
                selected = [e for e in selected if e.uuid in wanted or by_event.get(e.id, set()) & wanted]
            if unwanted:
                selected = [e for e in selected if not (e.uuid in unwanted and by_event.get(e.id, set()) & unwanted)]
        if not php_empty(f.get("tags")):
            positive, negative, anded = dissect_args(f["tags"])
            pos = set(self.store.tag_ids_like(positive)) if positive else set()
            neg = set(self.store.tag_ids_like(negative)) if negative else set()
            and_ids = self.store.tag_ids_like(anded) if anded else []
            attr_tags: dict[int, set[int]] = {}
            for r in records:
                if r[R_TAGS]:
                    attr_tags.setdefault(r[R_EV].id, set()).update(r[R_TAGS])
            if (positive and not pos) or (anded and len(and_ids) != len(anded)):
                selected = []
            for e in list(selected):
                tags = set(e.tag_ids) | attr_tags.get(e.id, set())
                if (
                    (pos and not (tags & pos))
                    or (neg and e.tag_ids & neg)
                    or (and_ids and not all(t in e.tag_ids for t in and_ids))
                ):
                    selected.remove(e)
        limit, page = paging(filters)
        if limit:
            start = limit * (page - 1) if page > 1 else 0
            selected = selected[start : start + limit]
        metadata = not php_empty(filters.get("metadata"))
        out = [{"Event": self._event_out(self.store.events[e.id], metadata=metadata)} for e in selected]
        return 200, b'{"response": ' + _dumps(out) + b"}\n", search_headers(len(out))

    def _add_event(self, data: Any, path: str) -> dict:
        """EventsController::add + Event::_add (REST)."""
        if php_empty(data) or not isinstance(data, dict):
            raise MispError(405, "No valid event data received.", path)
        for wrapper in ("response", "request"):
            if isinstance(data.get(wrapper), dict):
                data = data[wrapper]
        raw = copy.deepcopy(data.get("Event", data))
        now = int(time.time())
        raw.setdefault("distribution", "0")  # MISP.default_event_distribution unset
        raw.setdefault("analysis", "0")
        raw.setdefault("threat_level_id", "4")
        raw.setdefault("date", dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d"))
        if raw.get("distribution") not in (4, "4"):
            raw["sharing_group_id"] = "0"
        if not raw.get("info"):
            raise MispError(
                403,
                "Could not add Event",
                "/events/add",
                {"saved": False, "errors": {"Event": {"info": ["This field cannot be left empty."]}}},
            )
        raw.pop("id", None)
        publish = as_bool(raw.get("published", False))
        raw["published"] = False
        raw["publish_timestamp"] = "0"
        # Event::_add: duplicate attributes (value|type|category) are not saved.
        seen = set()
        attributes = []
        for attr in raw.get("Attribute") or []:
            if attr.get("deleted"):
                attributes.append(attr)
                continue
            key = (attr.get("value"), attr.get("type"), attr.get("category"))
            if key not in seen:
                seen.add(key)
                attributes.append(attr)
        raw["Attribute"] = attributes
        for attr in raw["Attribute"]:
            attr.pop("id", None)
        for obj in raw.get("Object") or []:
            obj.pop("id", None)
            for attr in obj.get("Attribute") or []:
                attr.pop("id", None)
        raw.setdefault("Orgc", {k: self.store.local_org[k] for k in ("name", "uuid")})
        raw["Org"] = {k: self.store.local_org[k] for k in ("name", "uuid")}
        event = self.store.store_event(raw, keep_ids=False, now=now)
        if publish:
            event["published"] = True
            event["publish_timestamp"] = str(now)
        return {"Event": self._event_out(event)}

    def _edit_event(self, ident: str, data: Any, path: str) -> tuple[int, bytes, dict]:
        """EventsController::edit + Event::_edit (REST)."""
        event = self._event(ident, path)
        if not isinstance(data, dict):
            data = {}
        if isinstance(data.get("response"), dict):
            data = data["response"]
        incoming = data.get("Event", data)
        if incoming.get("uuid") and incoming["uuid"] != event["uuid"]:
            target = self.store.event_by_uuid.get(incoming["uuid"])
            if target is None:
                return _fail("Events", "edit", event["id"], "Event could not be saved: Could not find the local event.")
            event = self.store.events[target]
        now = int(time.time())
        if incoming.get("timestamp") not in (None, "") and php_int(incoming["timestamp"]) <= php_int(
            event["timestamp"]
        ):
            return _fail(
                "Events",
                "edit",
                event["id"],
                "Event could not be saved: Event in the request not newer than the local copy.",
            )
        event_ts = php_int(incoming["timestamp"]) if incoming.get("timestamp") else now
        changed = False
        for field in ("analysis", "threat_level_id", "info", "distribution", "date"):
            if field in incoming and php_strval(incoming[field]) != php_strval(event[field]):
                event[field] = php_strval(incoming[field]) if field != "info" else incoming[field]
                changed = True
        if "extends_uuid" in incoming:
            event["extends_uuid"] = incoming["extends_uuid"] or ""
        event["timestamp"] = str(event_ts)
        # Event::_edit saves `published` as sent (0 when missing) and only publishes
        # (new publish_timestamp) when something changed.
        publish = as_bool(incoming.get("published", False))
        event["published"] = publish
        event_id = int(event["id"])
        for raw_attr in incoming.get("Attribute") or []:
            changed |= self._edit_attribute(event, None, raw_attr, now)
        for raw_obj in incoming.get("Object") or []:
            existing = next((o for o in event["Object"] if o["uuid"] == raw_obj.get("uuid")), None)
            if existing is None:
                obj = self.store.normalise_object(
                    {**raw_obj, "id": None, "timestamp": raw_obj.get("timestamp") or now},
                    event_id,
                    now,
                    keep_id=False,
                )
                event["Object"].append(obj)
                changed = True
                continue
            if "timestamp" in raw_obj and php_int(raw_obj["timestamp"]) <= php_int(existing["timestamp"]):
                continue
            for field in ("comment", "distribution", "first_seen", "last_seen", "deleted"):
                if field in raw_obj:
                    existing[field] = raw_obj[field] if field != "deleted" else as_bool(raw_obj[field])
            existing["timestamp"] = str(php_int(raw_obj.get("timestamp")) or now)
            for raw_attr in raw_obj.get("Attribute") or []:
                self._edit_attribute(event, existing, raw_attr, now)
            changed = True
        for tag in incoming.get("Tag") or []:
            if tag.get("name") and not any(t["name"].lower() == tag["name"].lower() for t in event["Tag"]):
                event["Tag"].append(self.store.tag_entry(tag))
                changed = True
        if publish and changed:
            event["published"] = True
            event["publish_timestamp"] = str(now)
        self.store.recount(event)
        self.store.touch()
        return 200, _dumps({"Event": self._event_out(event)}), {}

    def _edit_attribute(self, event: dict, obj: dict | None, raw: dict, now: int) -> bool:
        """MispAttribute::editAttribute: update by uuid when newer, else create."""
        container = obj["Attribute"] if obj else event["Attribute"]
        existing = None
        if raw.get("uuid") and raw["uuid"] in self.store.attr_by_uuid:
            _event_id, existing, _obj = self.store.attr_by_uuid[raw["uuid"]]
            if existing["event_id"] != event["id"]:
                return False  # duplicate uuid in another event: blocked by MISP
        if existing is None:
            attr = self.store.normalise_attribute(
                {**raw, "id": None, "timestamp": raw.get("timestamp") or now},
                int(event["id"]),
                now,
                obj,
                keep_id=False,
            )
            container.append(attr)
            return True
        if "timestamp" in raw and php_int(raw["timestamp"]) <= php_int(existing["timestamp"]):
            return False
        for field in (
            "value",
            "type",
            "category",
            "comment",
            "distribution",
            "first_seen",
            "last_seen",
            "object_relation",
        ):
            if field in raw:
                existing[field] = php_strval(raw[field]) if field == "value" else raw[field]
        for field in ("to_ids", "deleted", "disable_correlation"):
            if field in raw:
                existing[field] = as_bool(raw[field])
        existing["timestamp"] = str(php_int(raw.get("timestamp")) or now)
        for tag in raw.get("Tag") or []:
            current = existing.setdefault("Tag", [])
            if tag.get("name") and not any(t["name"].lower() == tag["name"].lower() for t in current):
                current.append(self.store.tag_entry(tag))
        return True

    def _delete_event(self, ident: str, path: str) -> dict:
        """EventsController::delete (REST): RestResponse saveSuccessResponse."""
        event = self._event(ident, path)
        event_id = int(event["id"])
        del self.store.events[event_id]
        self.store.event_by_uuid.pop(event["uuid"], None)
        for attr_uuid, entry in list(self.store.attr_by_uuid.items()):
            if entry[0] == event_id:
                del self.store.attr_by_uuid[attr_uuid]
        self.store.touch()
        return {
            "saved": True,
            "success": True,
            "name": "Event deleted.",
            "message": "Event deleted.",
            "url": f"/events/delete/{event_id}",
            "id": str(event_id),
        }

    def _publish(self, ident: str, path: str) -> dict:
        """EventsController::publish (REST, background jobs enabled)."""
        event = self._event(ident, path)
        event["published"] = True
        event["publish_timestamp"] = str(int(time.time()))
        self.store.touch()
        return {
            "name": "Publish",
            "message": "Job queued",
            "url": f"/events/alert/{event['id']}",
            "id": event["id"],
        }

    def _add_object(self, ident: str, data: Any, path: str) -> tuple[int, bytes, dict]:
        """ObjectsController::add (REST): the saved object with its attributes."""
        event = self._event(ident, path)
        if not isinstance(data, dict) or php_empty(data):
            raise MispError(405, "Invalid object.", path)
        raw = copy.deepcopy(data)
        if isinstance(raw.get("Object"), dict):
            inner = raw["Object"]
            if "Attribute" in raw and "Attribute" not in inner:
                inner["Attribute"] = raw["Attribute"]
            raw = inner
        if not raw.get("Attribute"):
            return _fail("Objects", "add", False, "Could not save the object as no attributes were set.")
        now = int(time.time())
        raw.pop("id", None)
        raw["timestamp"] = now
        for attr in raw["Attribute"]:
            attr.pop("id", None)
            attr["timestamp"] = now
        obj = self.store.normalise_object(raw, int(event["id"]), now, keep_id=False)
        event["Object"].append(obj)
        self.store.unpublish(event, now)
        self.store.recount(event)
        self.store.touch()
        return 200, _dumps({"Object": copy.deepcopy(obj)}), {}

    def _add_attribute(self, ident: str, data: Any, path: str) -> tuple[int, bytes, dict]:
        """AttributesController::add (REST), single attribute or a list."""
        event = self._event(ident, path)
        if isinstance(data, dict) and "Attribute" in data:
            data = data["Attribute"]
        items = data if isinstance(data, list) else [data]
        now = int(time.time())
        saved, fails = [], {}
        for k, raw in enumerate(items):
            if not isinstance(raw, dict) or not raw.get("type") or php_empty(raw.get("value")):
                fails[f"attribute_{k}"] = {"value": ["Value not set."]}
                continue
            category, _to_ids = self.store.type_defaults(raw["type"])
            category = raw.get("category") or category
            value1, value2 = split_value(raw["type"], php_strval(raw["value"]))
            duplicate = any(
                not a["deleted"]
                and a["type"] == raw["type"]
                and a["category"] == category
                and split_value(a["type"], a["value"]) == (value1, value2)
                for a in event["Attribute"]
            )
            if duplicate and not raw.get("object_relation"):
                fails[f"attribute_{k}"] = {"value": ["A similar attribute already exists for this event."]}
                continue
            attr = self.store.normalise_attribute(
                {**raw, "id": None, "timestamp": now, "category": category},
                int(event["id"]),
                now,
                None,
                keep_id=False,
            )
            event["Attribute"].append(attr)
            saved.append(attr)
        if not saved:
            errors = fails.get("attribute_0") if len(items) == 1 else fails
            return _fail("Attributes", "add", False, errors)
        self.store.unpublish(event, now)
        self.store.recount(event)
        self.store.touch()

        def full(attr: dict) -> dict:
            value1, value2 = split_value(attr["type"], attr["value"])
            out = {k: attr[k] for k in ATTRIBUTE_OUT_FIELDS if k != "value"}
            out.update({"value1": value1, "value2": value2, "value": attr["value"]})
            return out

        if len(saved) == 1:
            body: dict = {"Attribute": full(saved[0]), "AttributeTag": []}
        else:
            body = {"Attribute": [full(a) for a in saved]}
        if fails:
            body["errors"] = fails
        return 200, _dumps(body), {}

    def _attach_tag(self, positional: list, data: Any, path: str) -> tuple[int, bytes, dict]:
        """TagsController::attachTagToObject (REST)."""
        data = data if isinstance(data, dict) else {}
        target = positional[0] if positional else data.get("uuid")
        if php_empty(target):
            raise MispError(405, "Invalid object uuid", path)
        if not UUID_RE.match(php_strval(target)):
            raise MispError(500, status_name(500), path)  # InvalidArgumentException
        tags = positional[1] if len(positional) > 1 else data.get("tag")
        if php_empty(tags):
            raise MispError(405, "Invalid tag", path)
        local = as_bool(data.get("local", False))
        tags = tags if isinstance(tags, list) else [tags]
        now = int(time.time())
        event_id = self.store.event_by_uuid.get(target)
        if event_id is not None:
            event, attr, kind = self.store.events[event_id], None, "Event"
            holder = event["Tag"]
            ident = event["id"]
        elif target in self.store.attr_by_uuid:
            ev_id, attr, _obj = self.store.attr_by_uuid[target]
            event, kind = self.store.events[ev_id], "Attribute"
            holder = attr.setdefault("Tag", [])
            ident = attr["id"]
        else:
            raise MispError(404, "Invalid Target.", path)
        message = ""
        for name in tags:
            if php_is_numeric(name):
                tag = self.store.tags_by_id.get(php_int(name))
                if tag is None:
                    return _fail(
                        "Tags", "attachTagToObject", False, 'Failed to attach 1 tags. Reasons: {"0":"Invalid Tag."}'
                    )
            else:
                rx = like_regex(php_strval(name).strip(), True)
                tag = next((t for t in self.store.tags.values() if rx.fullmatch(t["name"])), None)
                if tag is None:
                    tag = self.store.tag(php_strval(name).strip())
            if any(t["id"] == tag["id"] for t in holder):
                message = (
                    f"{kind} already has the requested tag attached, no changes had to be made for tag {tag['name']}."
                )
                continue
            entry = dict(tag)
            entry["local"] = local
            entry["relationship_type"] = data.get("relationship_type")
            holder.append(entry)
            scope = "Local" if local else "Global"
            message = f"{scope} tag {tag['name']}({tag['id']}) successfully attached to {kind}({ident})."
            if not local:
                if kind == "Event":
                    self.store.unpublish(event, now)
                else:
                    attr["timestamp"] = str(now)  # MispAttribute::touch
                    if attr["object_id"] != "0":
                        for o in event["Object"]:
                            if o["id"] == attr["object_id"]:
                                o["timestamp"] = str(now)
                    self.store.unpublish(event, now)
        self.store.touch()
        return 200, _dumps(_success("Tags", "attachTagToObject", message)), {}


def _dumps(payload: Any) -> bytes:
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        # Stored text with a lone surrogate (added as a "\ud800" escape) has no UTF-8 form:
        # the answer then carries it, and all other non-ASCII text, as JSON \u escapes.
        return json.dumps(payload, separators=(",", ":")).encode()


def _fail(controller: str, action: str, ident: Any, errors: Any) -> tuple[int, bytes, dict]:
    """RestResponseComponent::saveFailResponse (HTTP 403)."""
    singular = controller[:-1] if controller.endswith("s") else controller
    name = f"Could not {action} {singular}"
    url = f"/{controller.lower()}/{action}" + (f"/{ident}" if ident else "")
    body = {"saved": False, "name": name, "message": name, "url": url, "errors": errors}
    return 403, _dumps(body), {}


def _success(controller: str, action: str, message: str) -> dict:
    """RestResponseComponent::saveSuccessResponse."""
    return {
        "saved": True,
        "success": True,
        "name": message,
        "message": message,
        "url": f"/{controller.lower()}/{action}",
    }
