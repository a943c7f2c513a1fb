"""restSearch: which parameters MISP accepts, and attribute search as MISP's
``MispAttribute::restSearch`` filters, pages and counts (see ``server`` for the sources)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from typing import Any

from .php import (
    UUID_RE,
    MispError,
    bool_in,
    cake_bool,
    convert_filters,
    dissect_args,
    generic_filter,
    php_empty,
    php_int,
    php_is_numeric,
    php_strval,
    status_name,
    timestamp_predicate,
)
from .store import R_ATTR, R_CAT, R_DEL, R_EV, R_TAGS, R_TOIDS, R_TS, R_TYPE, R_UUID, R_V1, R_V2, EventRec, MispStore

# app/Model/MispAttribute.php $validFormats (restSearch answers 404 for anything else).
VALID_ATTRIBUTE_FORMATS = frozenset(
    {
        "attack-sightings",
        "cache",
        "count",
        "csv",
        "hashes",
        "hosts",
        "json",
        "kunai",
        "netfilter",
        "opendata",
        "openioc",
        "rpz",
        "snort",
        "stix",
        "stix-json",
        "stix2",
        "suricata",
        "text",
        "xml",
        "yara",
        "yara-json",
    }
)
VALID_EVENT_FORMATS = VALID_ATTRIBUTE_FORMATS | {"attack", "context", "context-markdown"}

# RestSearchComponent::$paramArray['Attribute']: only these keys reach the model.
ATTRIBUTE_PARAMS = (
    "returnFormat",
    "value",
    "value1",
    "value2",
    "type",
    "category",
    "org",
    "tags",
    "from",
    "to",
    "last",
    "eventid",
    "withAttachments",
    "uuid",
    "publish_timestamp",
    "published",
    "timestamp",
    "enforceWarninglist",
    "to_ids",
    "deleted",
    "includeEventUuid",
    "event_timestamp",
    "threat_level_id",
    "includeEventTags",
    "includeProposals",
    "limit",
    "page",
    "requested_attributes",
    "includeContext",
    "headerless",
    "includeWarninglistHits",
    "attackGalaxy",
    "object_relation",
    "includeSightings",
    "includeCorrelations",
    "includeDecayScore",
    "decayingModel",
    "excludeDecayed",
    "modelOverrides",
    "includeFullModel",
    "score",
    "attribute_timestamp",
    "first_seen",
    "last_seen",
    "eventinfo",
    "sharinggroup",
    "allow_proposal_blocking",
    "flatten",
    "list",
    "event_ids",
    "includeAllTags",
    "includeAttributeUuid",
    "includeGalaxy",
    "order",
    "policy",
    "walled_garden",
    "ns",
    "email",
    "serial",
    "refresh",
    "retry",
    "expiry",
    "minimum_ttl",
    "ttl",
)
EVENT_PARAMS = (
    "returnFormat",
    "value",
    "type",
    "category",
    "org",
    "tags",
    "searchall",
    "from",
    "to",
    "last",
    "eventid",
    "withAttachments",
    "metadata",
    "uuid",
    "publish_timestamp",
    "timestamp",
    "event_timestamp",
    "event_tags",
    "published",
    "enforceWarninglist",
    "sgReferenceOnly",
    "limit",
    "page",
    "requested_attributes",
    "includeContext",
    "headerless",
    "includeWarninglistHits",
    "attackGalaxy",
    "to_ids",
    "deleted",
    "excludeLocalTags",
    "date",
    "includeSightingdb",
    "tag",
    "object_relation",
    "threat_level_id",
    "eventinfo",
    "sharinggroup",
    "idList",
    "includeAllTags",
    "includeAttachments",
    "event_uuid",
    "distribution",
    "sharing_group_id",
    "disableSiteAdmin",
    "flatten",
    "blockedAttributeTags",
    "eventsExtendingUuid",
    "extended",
    "extensionList",
    "excludeGalaxy",
    "includeAnalystData",
    "includeRelatedTags",
    "includeDecayScore",
    "includeScoresOnEvent",
    "includeFeedCorrelations",
    "includeServerCorrelations",
    "noEventReports",
    "noShadowAttributes",
    "order",
    "protected",
    "includeGranularCorrelations",
    "policy",
    "walled_garden",
    "ns",
    "email",
    "serial",
    "refresh",
    "retry",
    "expiry",
    "minimum_ttl",
    "ttl",
)

# RestSearchComponent::$paramArray['Sighting'], in order: ordered URL parameters
# (/sightings/restSearch/<context>/<returnFormat>/...) map onto it by position.
SIGHTING_PARAMS = (
    "context",
    "returnFormat",
    "id",
    "uuid",
    "type",
    "from",
    "to",
    "last",
    "org_id",
    "source",
    "includeAttribute",
    "includeEvent",
    "includeUuid",
)
# Sighting::$validFormats (restSearch answers 404 for anything else).
VALID_SIGHTING_FORMATS = frozenset({"json", "xml", "csv"})

# Filters MISP honours that change JSON results but that this double does not model:
# a request setting one of them to a non-empty value gets HTTP 501 instead of a
# silently wrong answer. (Keys without effect on a JSON export, e.g. the RPZ
# settings, ``headerless``, ``requested_attributes``, ``flatten``, are simply ignored.)
NOT_IMPLEMENTED_PARAMS = frozenset(
    {
        "withAttachments",
        "includeProposals",
        "includeContext",
        "includeWarninglistHits",
        "attackGalaxy",
        "includeSightings",
        "includeCorrelations",
        "includeDecayScore",
        "decayingModel",
        "excludeDecayed",
        "modelOverrides",
        "includeFullModel",
        "score",
        "first_seen",
        "last_seen",
        "sharinggroup",
        "list",
        "event_ids",
        "includeGalaxy",
        "order",
        "searchall",
        "sgReferenceOnly",
        "includeSightingdb",
        "excludeLocalTags",
        "date",
        "tag",
        "idList",
        "includeAttachments",
        "event_uuid",
        "distribution",
        "sharing_group_id",
        "blockedAttributeTags",
        "eventsExtendingUuid",
        "extended",
        "extensionList",
        "includeAnalystData",
        "includeRelatedTags",
        "includeScoresOnEvent",
        "includeFeedCorrelations",
        "includeServerCorrelations",
        "includeGranularCorrelations",
        "protected",
        "event_tags",
    }
)
# Attribute-level filters of /events/restSearch (MISP then also trims the attributes
# inside each event); the double does not model that.
EVENT_SEARCH_NOT_IMPLEMENTED = frozenset({"value", "type", "category", "to_ids", "deleted", "object_relation"})

# Output field order of an attribute in /attributes/restSearch (columns of the
# `attributes` table minus value1/value2, then the virtual `value`; JsonExport).
ATTRIBUTE_OUT_FIELDS = (
    "id",
    "event_id",
    "object_id",
    "object_relation",
    "category",
    "type",
    "to_ids",
    "uuid",
    "timestamp",
    "distribution",
    "sharing_group_id",
    "comment",
    "deleted",
    "disable_correlation",
    "first_seen",
    "last_seen",
    "value",
)


# --------------------------------------------------------------------------- search


def harvest(data: Any, params: list[str]) -> dict:
    """AppController::_harvestParameters for a POSTed JSON body."""
    if isinstance(data, dict) and isinstance(data.get("request"), dict):
        data = data["request"]
    if not isinstance(data, dict):
        return {}
    filters = {}
    for param in params:
        if param in data and data[param] is not None:
            value = data[param]
            if isinstance(value, str):
                value = value.strip()
                if value.find("||") > 0:
                    value = value.split("||")
            filters[param] = value
    return filters


def set_filters(filters: dict) -> dict:
    """The parameters buildFilterConditions acts on: set and not ``=== false``."""
    return {k: v for k, v in filters.items() if v is not None and v is not False}


class AttributeSearch:
    """MispAttribute::restSearch for returnFormat json, as a Python filter."""

    def __init__(self, store: MispStore, filters: dict, now: int):
        self.store = store
        self.filters = filters
        self.now = now

    def event_predicates(self) -> list[Callable[[EventRec], bool]]:
        f = set_filters(self.filters)
        store = self.store
        preds: list[Callable[[EventRec], bool]] = []
        if not php_empty(f.get("eventid")) and f.get("eventid") != "all":
            preds.append(_eventid_predicate(convert_filters(f["eventid"])))
        if not php_empty(f.get("eventinfo")):
            check = generic_filter(convert_filters(f["eventinfo"]), True)
            if check:
                preds.append(lambda e, c=check: c((e.info,)))
        if "published" in f and f["published"] != [True, False]:
            accepted = bool_in(f["published"])
            preds.append(lambda e: int(e.published) in accepted)
        for key in ("last", "publish_timestamp"):
            if key in f:
                check = timestamp_predicate(f[key], self.now)
                if check:
                    preds.append(lambda e, c=check: c(e.publish_ts))
        if "event_timestamp" in f:
            check = timestamp_predicate(f["event_timestamp"], self.now)
            if check:
                preds.append(lambda e, c=check: c(e.ts))
        if "from" in f:
            low = _date_param(f["from"])
            preds.append(lambda e: e.date >= low)
        if "to" in f:
            high = _date_param(f["to"])
            preds.append(lambda e: e.date <= high)
        if "threat_level_id" in f:
            wanted = {php_int(v) for v in _as_list(f["threat_level_id"])}
            preds.append(lambda e: e.threat_level_id in wanted)
        if not php_empty(f.get("org")):
            preds.append(_org_predicate(store, convert_filters(f["org"])))
        return preds

    def attribute_predicates(self) -> list[Callable[[tuple], bool]]:
        f = set_filters(self.filters)
        store = self.store
        preds: list[Callable[[tuple], bool]] = []
        # fetchAttributes: deleted attributes only when asked for (site admin / sync).
        deleted_param = self.filters.get("deleted")
        if deleted_param == "only":
            preds.append(lambda r: r[R_DEL])
        elif php_empty(deleted_param):
            preds.append(lambda r: not r[R_DEL])
        if "deleted" in f:
            # Event::set_filter_deleted: generic filter on a boolean column.
            filt = convert_filters(f["deleted"])
            accepted = {k: {cake_bool(v) for v in vals} for k, vals in filt.items()}
            if "OR" in accepted:
                preds.append(lambda r, a=accepted["OR"]: int(r[R_DEL]) in a)
            if "NOT" in accepted:
                preds.append(lambda r, a=accepted["NOT"]: int(r[R_DEL]) not in a)
        if "to_ids" in f:
            value = 0 if f["to_ids"] == "exclude" else f["to_ids"]
            accepted_ids = bool_in(value)
            preds.append(lambda r: int(r[R_TOIDS]) in accepted_ids)
        if not php_empty(f.get("type")):
            filt = convert_filters(f["type"])
            for operator in ("OR", "NOT"):
                values = filt.get(operator) or []
                if ("email-src" in values or "email-dst" in values) and "email" not in values:
                    filt[operator] = [*values, "email"]
            preds.append(_memo_predicate(generic_filter(filt, True), R_TYPE))
        if not php_empty(f.get("category")):
            # attributes.category is utf8mb3_bin: case-sensitive.
            preds.append(_memo_predicate(generic_filter(convert_filters(f["category"]), False), R_CAT))
        if not php_empty(f.get("value")):
            filt = convert_filters(f["value"])
            for operator in ("OR", "AND", "NOT"):
                items = filt.get(operator) or []
                fixed = []
                for item in items:
                    text = php_strval(item)
                    if operator == "NOT":
                        text = text[1:]  # Event::set_filter_value: mb_substr($v, 1)
                    text = _compress_ipv6(text)
                    fixed.append("!" + text if operator == "NOT" else text)
                if items:
                    filt[operator] = fixed
            check = generic_filter(filt, True)
            if check:
                preds.append(lambda r, c=check: c((r[R_V1], r[R_V2])))
        for key, pos in (("value1", R_V1), ("value2", R_V2)):
            if not php_empty(f.get(key)):
                check = generic_filter(convert_filters(f[key]), True)
                if check:
                    preds.append(lambda r, c=check, p=pos: c((r[p],)))
        if not php_empty(f.get("object_relation")):
            check = generic_filter(convert_filters(f["object_relation"]), False)
            if check:
                preds.append(lambda r, c=check: c((r[R_ATTR]["object_relation"],)))
        for key in ("timestamp", "attribute_timestamp"):
            if key in f:
                check = timestamp_predicate(f[key], self.now)
                if check:
                    preds.append(lambda r, c=check: c(r[R_TS]))
        if not php_empty(f.get("uuid")):
            preds.extend(_uuid_predicates(store, convert_filters(f["uuid"])))
        if not php_empty(f.get("tags")):
            preds.extend(_tag_predicates(store, f["tags"]))
        return preds

    def run(self) -> list[tuple]:
        events, records = self.store.index()
        ev_preds = self.event_predicates()
        attr_preds = self.attribute_predicates()
        ok = {e.id for e in events if all(p(e) for p in ev_preds)}
        candidates = records if len(ok) == len(events) else [r for r in records if r[R_EV].id in ok]
        if not attr_preds:
            return list(candidates)
        check = attr_preds[0]
        for extra in attr_preds[1:]:
            check = _both(check, extra)
        return [r for r in candidates if check(r)]


def _both(first: Callable[[tuple], bool], second: Callable[[tuple], bool]) -> Callable[[tuple], bool]:
    return lambda r: first(r) and second(r)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _date_param(value: Any) -> str:
    """Event::set_filter_timestamp for from/to: a timestamp becomes date('Y-m-d')."""
    if php_is_numeric(value):
        return dt.datetime.fromtimestamp(php_int(value), dt.UTC).strftime("%Y-%m-%d")
    return php_strval(value)


def _compress_ipv6(value: str) -> str:
    if ":" in value:
        try:
            return str(ipaddress.IPv6Address(value))
        except ValueError:
            return value
    return value


def _memo_predicate(check: Callable[[tuple], bool] | None, pos: int) -> Callable[[tuple], bool]:
    """A predicate on a low-cardinality column, memoised per distinct value."""
    if check is None:
        return lambda r: True
    memo: dict[str, bool] = {}

    def pred(r: tuple) -> bool:
        value = r[pos]
        hit = memo.get(value)
        if hit is None:
            hit = memo[value] = check((value,))
        return hit

    return pred


def _eventid_predicate(filt: dict[str, list]) -> Callable[[EventRec], bool]:
    """Event::set_filter_eventid: ids and uuids under OR / AND / NOT.

    MISP builds ``[operator => ['Event.uuid' => [...], 'Event.id' => [...]]]``; CakePHP
    joins the keys of OR with OR, of AND with AND, and renders NOT as ``NOT (a AND b)``.
    """
    parts = []
    for operator, items in filt.items():
        ids = {php_int(i) for i in items if not UUID_RE.match(php_strval(i))}
        uuids = {php_strval(i) for i in items if UUID_RE.match(php_strval(i))}
        parts.append((operator, ids, uuids))

    def pred(e: EventRec) -> bool:
        for operator, ids, uuids in parts:
            hits = ([e.id in ids] if ids else []) + ([e.uuid in uuids] if uuids else [])
            if not hits:
                continue
            if operator == "OR" and not any(hits):
                return False
            if operator == "AND" and not all(hits):
                return False
            if operator == "NOT" and all(hits):
                return False
        return True

    return pred


def _org_predicate(store: MispStore, filt: dict[str, list]) -> Callable[[EventRec], bool]:
    """Event::set_filter_org: creator org by id, name or uuid (unknown names match none)."""

    def lookup(value: Any) -> int | None:
        text = php_strval(value)
        for org in store.orgs.values():
            if org["name"].lower() == text.lower() or org["uuid"].lower() == text.lower():
                return int(org["id"])
        return None

    positive = filt.get("OR") or []
    negative = filt.get("NOT") or []
    pos_ids = {php_int(v) if php_is_numeric(v) else (lookup(v) or -1) for v in positive}
    neg_ids = set()
    for value in negative:
        found = php_int(value) if php_is_numeric(value) else lookup(value)
        if found is not None:
            neg_ids.add(found)
    and_ids = {php_int(v) if php_is_numeric(v) else (lookup(v) or -1) for v in filt.get("AND") or []}

    def pred(e: EventRec) -> bool:
        if positive and e.orgc_id not in pos_ids:
            return False
        if and_ids and e.orgc_id not in and_ids:
            return False
        return e.orgc_id not in neg_ids

    return pred


def _uuid_predicates(store: MispStore, filt: dict[str, list]) -> list[Callable[[tuple], bool]]:
    """MispAttribute::set_filter_uuid (scope Attribute)."""
    preds = []

    def event_uuids(items: list) -> set[str]:
        out = set()
        for item in items:
            text = php_strval(item)
            if UUID_RE.match(text):
                out.add(text)
            elif php_is_numeric(text) and php_int(text) in store.events:
                out.add(store.events[php_int(text)]["uuid"])
            else:
                out.add(text)
        return out

    positive = [php_strval(i) for i in filt.get("OR") or []]
    if positive:
        attr_uuids = set(positive)
        ev_uuids = event_uuids(positive)
        if any(u in store.event_by_uuid for u in ev_uuids):
            preds.append(lambda r: r[R_EV].uuid in ev_uuids or r[R_UUID] in attr_uuids)
        else:
            preds.append(lambda r: r[R_UUID] in attr_uuids)
    negative = filt.get("NOT") or []
    if negative:
        # MISP builds NOT(event in events(uuid OR-list) AND Attribute.uuid IN NOT-list):
        # the event part uses the OR list, so without OR uuids nothing is excluded.
        neg_attr = set()
        for item in negative:
            text = php_strval(item)
            if php_is_numeric(text):
                for _event_id, attr, _obj in store.attr_by_uuid.values():
                    if attr["id"] == text:
                        text = attr["uuid"]
                        break
            neg_attr.add(text)
        or_events = event_uuids(positive)
        preds.append(lambda r: not (r[R_EV].uuid in or_events and r[R_UUID] in neg_attr))
    return preds


def _tag_predicates(store: MispStore, value: Any) -> list[Callable[[tuple], bool]]:
    """MispAttribute::set_filter_tags, applied with scope Attribute then scope Event."""
    positive, negative, anded = dissect_args(value)
    pos_ids = store.tag_ids_like(positive) if positive else []
    neg_ids = store.tag_ids_like(negative) if negative else []
    and_ids = store.tag_ids_like(anded) if anded else []
    if positive and not pos_ids:
        return [lambda r: False]
    if anded and len(and_ids) != len(anded):
        return [lambda r: False]
    preds: list[Callable[[tuple], bool]] = []
    if pos_ids:
        pos = frozenset(pos_ids)
        preds.append(lambda r: not pos.isdisjoint(r[R_TAGS]) or not pos.isdisjoint(r[R_EV].tag_ids))
    if neg_ids:
        neg = frozenset(neg_ids)
        # Scope Attribute: attribute tags; scope Event (second pass): event tags.
        preds.append(lambda r: neg.isdisjoint(r[R_TAGS]) and neg.isdisjoint(r[R_EV].tag_ids))
    for tag_id in and_ids:
        preds.append(lambda r, t=tag_id: t in r[R_TAGS] or t in r[R_EV].tag_ids)
    return preds


def misp_result_count(rows: int, limit: int, sent: int | None = None) -> int:
    """X-Result-Count as MispAttribute::__iteratedFetch computes it.

    Without a limit: the number of matches. With a limit: the rows of the page, plus
    one when the page is full, and 1 for an empty page (the increment is set before
    the fetch and only reset after a non-empty, short page). MISP issue #9422.
    ``rows`` are the database rows (fetchAttributes counts them before it drops
    warninglisted values); ``sent`` (default ``rows``) what is left after that: the
    page counts as full only when ``sent`` is the limit.
    """
    sent = rows if sent is None else sent
    if not limit:
        return rows
    if rows == 0:
        return 1
    return rows + 1 if sent == limit else rows


def paging(filters: dict) -> tuple[int, int]:
    """limit/page as MispAttribute::restSearch uses them (page ignored without limit)."""
    if "limit" not in filters or php_empty(filters["limit"]):
        return 0, 1
    limit, page = filters["limit"], filters.get("page", 1)
    for value in (limit, page):
        if not php_is_numeric(value) and not php_empty(value):
            raise MispError(500, status_name(500), "/attributes/restSearch")
    limit = php_int(limit)
    if limit < 0:
        raise MispError(500, status_name(500), "/attributes/restSearch")
    page = php_int(page) if not php_empty(page) else 1
    return limit, max(page, 1)


def search_headers(count: int) -> dict:
    return {
        "X-Result-Count": str(count),
        "X-Export-Module-Used": "json",
        "X-Response-Format": "json",
        "X-Skipped-Elements-Count": "0",
    }
