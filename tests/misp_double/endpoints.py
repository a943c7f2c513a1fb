"""The MISP API endpoints of the double: servers, users, attributes and events (restSearch,
view, add, edit, publish, delete), objects, tags and sightings (add, restSearch), answered
as MISP's controllers do."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import time
import uuid as uuidlib
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
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
    time_delta_modelled,
    timestamp_predicate,
)
from .search import (
    ATTRIBUTE_OUT_FIELDS,
    ATTRIBUTE_PARAMS,
    EVENT_PARAMS,
    EVENT_SEARCH_NOT_IMPLEMENTED,
    NOT_IMPLEMENTED_PARAMS,
    SIGHTING_PARAMS,
    VALID_ATTRIBUTE_FORMATS,
    VALID_EVENT_FORMATS,
    VALID_SIGHTING_FORMATS,
    AttributeSearch,
    harvest,
    misp_result_count,
    paging,
    search_headers,
    set_filters,
)
from .store import R_ATTR, R_EV, R_ID, R_OBJ, R_TAGS, R_TYPE, R_UUID, R_V1, R_V2, MispStore

MISP_VERSION = "2.5.34"
# CakePHP's Validation::uuid.
_CAKE_UUID_RE = re.compile(
    r"^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[0-5][a-fA-F0-9]{3}-[089aAbB][a-fA-F0-9]{3}-[a-fA-F0-9]{12}$"
)
# How MySQL reads a number out of a string it compares with a number: the numeric prefix.
_MYSQL_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


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
        if key == ("sightings", "restSearch"):
            if method == "POST" and php_empty(data):
                raise MispError(
                    400,
                    "Either specify the search terms in the url, or POST a json with the filter parameters.",
                    "/sightings/restSearch",
                )
            with self.store.lock:
                return self._sighting_rest_search(method, positional, named, data, path)
        with self.store.lock:
            if key == ("events", "view"):
                if not positional:
                    raise MispError(404, "Invalid event", path)
                return 200, _dumps(self._view_event(positional[0], data, path)), {}
            if key == ("sightings", "add"):
                # Only a POST adds (is('post'): not PUT); MISP describes the API to others.
                if method != "POST":
                    raise MispError(405, "This method is only accessible via POST requests.", path)
                return self._add_sighting(positional, data, path)
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
        # Event::quickDelete deletes the event's rows of `sightings` too.
        self.store.sightings = {k: s for k, s in self.store.sightings.items() if s["event_id"] != event["id"]}
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

    # ----------------------------------------------------------- sightings
    def _add_sighting(self, positional: list, data: Any, path: str) -> tuple[int, bytes, dict]:
        """SightingsController::add (REST) and Sighting::saveSightings.

        One sighting per attribute the URL's id or uuid (else the body's ``uuid`` or
        ``id``) or the ``value``/``values`` select; HTTP 200 either way: ``{"Sighting":
        {...}}``, the row of the last sighting saved (``find('first')``, all strings), or
        ``{"message": "Could not add the Sighting. Reason: ..."}``.
        """
        ident: Any = positional[0] if positional else False
        if ident == "stix":
            raise MispError(501, "Not implemented by the MISP double: STIX sightings", path)
        body = data if isinstance(data, dict) else {}
        for wrapper in ("request", "Sighting"):
            if body.get(wrapper) is not None:
                body = body[wrapper] if isinstance(body[wrapper], dict) else {}
        if not php_empty(body.get("date")) and not php_empty(body.get("time")):
            timestamp: Any = _sighting_date_time(body["date"], body["time"], path)
        else:
            timestamp = body["timestamp"] if body.get("timestamp") is not None else int(time.time())
        values = [body["value"]] if body.get("value") is not None else body.get("values")
        for key in ("uuid", "id"):
            if php_empty(ident) and body.get(key) is not None:
                ident = body[key]
        sighting_type = body["type"] if body.get("type") is not None else "0"
        if isinstance(body.get("source"), list | dict):
            raise MispError(500, status_name(500), path)  # trim() of an array: TypeError
        source = php_strval(body.get("source")).strip(" \t\n\r\0\x0b")  # PHP's trim()
        # Sighting::saveSightings
        if not _php_in_0_1_2(sighting_type):
            return _sighting_not_added("Invalid type, please change it before you POST 1000000 sightings.")
        if not php_empty(ident) and isinstance(ident, list | dict):
            raise MispError(500, status_name(500), path)  # explodeIdList: strpos() of an array
        if php_empty(ident) and php_empty(values):
            return _sighting_not_added("No valid attributes found.")
        if not php_empty(body.get("filters")):
            raise MispError(501, "Not implemented by the MISP double: filters (sightings)", path)
        targets = self._sighting_targets(ident, values, path)
        if not targets:
            return _sighting_not_added("No valid attributes found that match the criteria.")
        errors = _sighting_errors(timestamp, sighting_type)
        org_id = self.store.local_org["id"]
        saved: dict = {}
        for record in targets:
            attribute_id = str(record[R_ID])
            if sighting_type == "2":  # `$type === '2'`: a JSON 2 does not replace
                # An expiration replaces the org's earlier expirations of the attribute
                # (deleted before the new row is validated).
                self.store.sightings = {
                    k: s
                    for k, s in self.store.sightings.items()
                    if not (s["org_id"] == org_id and s["type"] == "2" and s["attribute_id"] == attribute_id)
                }
            if errors:
                return _sighting_not_added(json.dumps(errors, separators=(",", ":")))
            saved = self.store.add_sighting(
                record[R_ID], record[R_EV].id, _mysql_integer(timestamp), php_strval(sighting_type), source
            )
        return 200, _dumps({"Sighting": dict(saved)}), {}

    def _sighting_targets(self, ident: Any, values: Any, path: str) -> list[tuple]:
        """The attributes Sighting::saveSightings sights (fetchAttributesSimple, no
        ORDER BY: taken in id order).

        The double's user is a site admin, for whom buildConditions adds no condition:
        deleted attributes and attributes of any event count.
        """
        _events, records = self.store.index()
        if not php_empty(ident):
            text = php_strval(ident)
            if text.find("|") > 0:  # explodeIdList: the numeric ids of "1|2|x"
                ids = {float(i) for i in text.split("|") if php_is_numeric(i)}
                return [r for r in records if r[R_ID] in ids]
            if len(text) == 36:  # any 36 characters are a uuid; attributes.uuid is utf8mb3_bin
                return [r for r in records if r[R_UUID] == text]
            return [r for r in records if r[R_ID] == _mysql_number(ident)]
        # value1 and value2 are utf8mb3_unicode_ci columns: MySQL compares them case-
        # insensitively (casefold models that, not its accent- or trailing-space-
        # insensitivity). The full value of a composite attribute matches neither.
        wanted = {php_strval(v).casefold() for v in _condition_items(values, path) if v is not None}
        return [r for r in records if r[R_V1].casefold() in wanted or r[R_V2].casefold() in wanted]

    def _sighting_rest_search(
        self, method: str, positional: list, named: dict, data: Any, path: str
    ) -> tuple[int, bytes, dict]:
        """AppController::restSearch with Sighting::restSearch, JSON export (JsonExport).

        ``{"response": [{"Sighting": {...}}, ...]}`` in sighting id order, each as
        Sighting::getSightings builds it; X-Result-Count is 0 (Sighting::restSearch
        takes no element counter).
        """
        # _harvestParameters: the body only for POST; ordered URL parameters by
        # position (/sightings/restSearch/<context>/<returnFormat>/...), named ones by name.
        filters = harvest(data, SIGHTING_PARAMS) if method == "POST" else {}
        from_url = {
            k: v for k, v in zip(SIGHTING_PARAMS, positional, strict=False) if v.lower() not in ("null", "0", "false")
        }
        from_url.update({k: named[k] for k in SIGHTING_PARAMS if k in named})
        for k, v in from_url.items():
            v = v.replace(";", ":").strip()
            filters[k] = v.split("||") if v.find("||") > 0 else v
        if not filters and method == "GET":
            raise MispError(
                400,
                "Restsearch queries using GET and no parameters are not allowed. If you "
                "have passed parameters via a JSON body, make sure you use POST requests.",
                path,
            )
        return_format = filters.get("returnFormat")
        if isinstance(return_format, list | dict):
            raise MispError(500, status_name(500), path)  # an array as array key: TypeError
        return_format = "json" if php_empty(return_format) or return_format == "download" else php_strval(return_format)
        context = filters.get("context")
        if "context" in filters and context not in ("event", "attribute"):
            raise MispError(400, f"Invalid context {_php_interpolated(context)}.", path)
        if not php_empty(context) and "id" not in filters and "uuid" not in filters:
            raise MispError(400, "An ID or UUID must be provided if the context is set.", path)
        if return_format not in VALID_SIGHTING_FORMATS:
            raise MispError(404, "Invalid output format.", path)
        # Conditions by column, as Sighting::restSearch builds them (a later one replaces
        # an earlier one on the same column).
        conditions: dict[str, Callable[[dict], bool]] = {}
        if "from" in filters and "to" in filters:
            spec: Any = [filters["from"], filters["to"]]
        else:
            spec = filters.get("last", "30d")
        in_time = _sighting_time_predicate(spec, int(time.time()), path)
        if in_time:
            conditions["date_sighting"] = lambda s: in_time(int(s["date_sighting"]))
        if "type" in filters:
            types = {_mysql_number(v) for v in _condition_items(filters["type"], path)}
            conditions["type"] = lambda s: int(s["type"]) in types
        if "org_id" in filters:
            conditions["org_id"] = self._sighting_org_predicate(filters["org_id"])
        if "source" in filters:
            # sightings.source is utf8mb3_bin: compared as is.
            sources = {php_strval(v) for v in _condition_items(filters["source"], path) if v is not None}
            conditions["source"] = lambda s: s["source"] in sources
        ident = filters.get("id")
        if not php_empty(ident):
            ids = _php_array(ident)
            for item in ids:
                if not isinstance(item, int) or isinstance(item, bool):  # is_int(): JSON numbers only
                    raise MispError(400, f"Invalid ID `{_php_interpolated(item)}` provided.", path)
            column = {"attribute": "attribute_id", "event": "event_id"}.get(context)
            if column:
                wanted_ids = {str(i) for i in ids}
                conditions[column] = lambda s: s[column] in wanted_ids
        _events, records = self.store.index()
        attributes = {r[R_ID]: r for r in records}
        if not php_empty(filters.get("uuid")):
            uuids = {php_strval(v) for v in _condition_items(filters["uuid"], path) if v is not None}
            if context == "attribute":  # attributes.uuid is utf8mb3_bin
                conditions["attribute_uuid"] = lambda s: attributes[int(s["attribute_id"])][R_UUID] in uuids
            elif context == "event":
                if not isinstance(filters["uuid"], list | dict):
                    # CakePHP renders 'Event.uuid IN' => 'x' as `IN 'x'`: an SQL syntax error.
                    raise MispError(500, status_name(500), path)
                events = {str(self.store.event_by_uuid[u]) for u in uuids if u in self.store.event_by_uuid}
                conditions["event_id"] = lambda s: s["event_id"] in events
        if return_format != "json":
            raise MispError(501, f"Not implemented by the MISP double: returnFormat {return_format}", path)
        includes = [not php_empty(filters.get(k)) for k in ("includeAttribute", "includeEvent", "includeUuid")]
        out = [
            {"Sighting": self._sighting_out(s, attributes[int(s["attribute_id"])], *includes)}
            for s in self.store.sightings.values()  # in id order
            if all(check(s) for check in conditions.values())
        ]
        return 200, b'{"response": ' + _dumps(out) + b"}\n", search_headers(0)

    def _sighting_org_predicate(self, value: Any) -> Callable[[dict], bool]:
        """Sighting::restSearch's org_id filter as its code runs: only an organisation uuid
        (negated with '!') sets the org id compared; any other value (a numeric id, an
        unknown uuid) takes the id the previous item set, or none, and then nothing
        matches (``org_id IN (NULL)``, ``org_id NOT IN (..., NULL)``)."""
        current: str | None = None
        wanted: list[str | None] = []
        unwanted: list[str | None] = []
        for item in _php_array(value):
            negated = isinstance(item, str) and item[:1] == "!"
            org_uuid = item[1:] if negated else item
            if isinstance(org_uuid, str) and _CAKE_UUID_RE.match(org_uuid) and org_uuid in self.store.orgs:
                current = self.store.orgs[org_uuid]["id"]
            (unwanted if negated else wanted).append(current)

        def check(sighting: dict) -> bool:
            if wanted and sighting["org_id"] not in wanted:
                return False
            return not unwanted or (None not in unwanted and sighting["org_id"] not in unwanted)

        return check

    def _sighting_out(
        self, sighting: dict, record: tuple, include_attribute: bool, include_event: bool, include_uuid: bool
    ) -> dict:
        """One sighting as Sighting::getSightings returns it. Under the default
        Sightings_policy (event owner) a user sees every sighting of its own org, which
        all of the double's are."""
        attr, event = record[R_ATTR], self.store.events[record[R_EV].id]
        # MispAttribute's `value` virtual field
        value = record[R_V1] if record[R_V2] == "" else f"{record[R_V1]}|{record[R_V2]}"
        out = {**sighting, "value": value}
        if include_uuid:
            out["attribute_uuid"] = attr["uuid"]
            out["event_uuid"] = event["uuid"]
        if include_attribute:
            # The requested columns, then the virtual `value` (DboSource::fields).
            out["Attribute"] = {k: attr[k] for k in ("id", "uuid", "type", "category", "to_ids")} | {"value": value}
        if include_event:
            orgc = self.store.org_by_id(event["orgc_id"])
            out["Event"] = {k: event[k] for k in ("id", "uuid", "orgc_id", "org_id", "info")}
            out["Event"]["Orgc"] = {"name": orgc["name"]}
        org = self.store.org_by_id(sighting["org_id"])
        out["Organisation"] = {k: org[k] for k in ("id", "uuid", "name")}
        return out


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


def _sighting_not_added(reason: str) -> tuple[int, bytes, dict]:
    """SightingsController::add (REST) when nothing was saved: HTTP 200 and a message."""
    return 200, _dumps({"message": f"Could not add the Sighting. Reason: {reason}"}), {}


def _sighting_date_time(date: Any, clock: Any, path: str) -> int:
    """DateTime::createFromFormat('Y-m-d:H:i:s', "$date:$time")->getTimestamp(), the
    server's timezone taken as UTC. PHP's roll-over of out-of-range fields and its
    failure (a 500) are not modelled."""
    try:
        parsed = dt.datetime.strptime(f"{php_strval(date)}:{php_strval(clock)}", "%Y-%m-%d:%H:%M:%S")
    except ValueError:
        raise MispError(501, "Not implemented by the MISP double: this date/time form (sightings)", path) from None
    return int(parsed.replace(tzinfo=dt.UTC).timestamp())


def _sighting_errors(timestamp: Any, sighting_type: Any) -> dict[str, list[str]]:
    """Sighting::$validate, in its field order, after beforeValidate (an empty
    date_sighting becomes date('Y-m-d H:i:s'), which is not numeric). The date rule
    has no message: CakeValidationSet then says 'This field cannot be left blank'."""
    errors = {}
    if php_empty(timestamp) or not php_is_numeric(timestamp):
        errors["date_sighting"] = ["This field cannot be left blank"]
    if php_strval(sighting_type) not in ("0", "1", "2"):  # Validation::inList compares (string)$check
        errors["type"] = ["Invalid type. Valid options are: 0 (Sighting), 1 (False-positive), 2 (Expiration)."]
    return errors


def _sighting_time_predicate(spec: Any, now: int, path: str) -> Callable[[int], bool] | None:
    """MispAttribute::setTimestampConditions on Sighting.date_sighting, for the time
    forms ``resolve_time_delta`` models (others: 501)."""
    items = spec if isinstance(spec, list) else [spec]
    # A list of another length than 2 is refused before its items are read.
    if isinstance(spec, dict) or (
        (not isinstance(spec, list) or len(spec) == 2) and not all(time_delta_modelled(i) for i in items)
    ):
        raise MispError(501, "Not implemented by the MISP double: this from/to/last form (sightings)", path)
    return timestamp_predicate(spec, now)


def _php_in_0_1_2(value: Any) -> bool:
    """PHP 8's loose ``in_array($value, [0, 1, 2])``."""
    if isinstance(value, bool):
        return True  # true == 1, false == 0
    if isinstance(value, int | float):
        return value in (0, 1, 2)
    return isinstance(value, str) and php_is_numeric(value) and float(value) in (0, 1, 2)


def _php_array(value: Any) -> list:
    """What ``foreach`` walks: an array's (a JSON list's or object's) values, else the value."""
    if isinstance(value, dict):
        return list(value.values())
    return value if isinstance(value, list) else [value]


def _php_interpolated(value: Any) -> str:
    """A value interpolated into a PHP string."""
    return "Array" if isinstance(value, list | dict) else php_strval(value)


def _condition_items(value: Any, path: str) -> list:
    """The values of a CakePHP condition ``column => value`` (an array: ``IN``)."""
    items = _php_array(value)
    if any(isinstance(i, list | dict) for i in items):
        raise MispError(501, "Not implemented by the MISP double: nested lists in sighting conditions", path)
    return items


def _mysql_number(value: Any) -> float | None:
    """A scalar compared with an integer column in a CakePHP condition, as MySQL compares
    it: null and '' are NULL (DboSource::value), other strings count by their numeric
    prefix (0 without one)."""
    if value is None or (isinstance(value, str) and value == ""):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _MYSQL_NUMBER.match(php_strval(value))
    return float(match.group(0)) if match else 0.0


def _mysql_integer(value: Any) -> int:
    """A numeric value stored in an integer column: MySQL rounds half away from zero."""
    return int(Decimal(php_strval(value).strip()).to_integral_value(rounding=ROUND_HALF_UP))


def _success(controller: str, action: str, message: str) -> dict:
    """RestResponseComponent::saveSuccessResponse."""
    return {
        "saved": True,
        "success": True,
        "name": message,
        "message": message,
        "url": f"/{controller.lower()}/{action}",
    }
