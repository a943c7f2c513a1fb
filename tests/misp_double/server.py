"""A MISP API double: a pure-stdlib HTTP(S) server that answers like MISP 2.5.

Every behaviour here was taken from MISP's own code (repository MISP/MISP), not from
what a client expects:

* Authentication, 403 body, bad-JSON 405, POST-without-data 400 and the
  ``X-Result-Count`` header: ``app/Controller/AppController.php`` (``beforeFilter``,
  ``_harvestParameters``, ``restSearch``) and ``RestResponseComponent::throwException``.
* Which filter keys ``/attributes/restSearch`` accepts (others are dropped silently):
  ``app/Controller/Component/RestSearchComponent.php`` (``$paramArray['Attribute']``).
* Attribute restSearch: ``app/Model/MispAttribute.php`` (``restSearch``,
  ``buildFilterConditions``, ``__iteratedFetch``, ``fetchAttributes``,
  ``set_filter_tags``, ``set_filter_uuid``, ``setTimestampConditions``,
  ``dissectArgs``), ``app/Model/Event.php`` (``set_filter_type``, ``set_filter_org``,
  ``set_filter_eventid``, ``set_filter_published``, ``set_filter_to_ids``,
  ``set_filter_deleted``, ``set_filter_value``, ``set_filter_timestamp``),
  ``app/Model/AppModel.php`` (``generic_add_filter``, ``convert_filters``,
  ``resolveTimeDelta``), ``app/Model/Tag.php`` (``findTagIdsByTagNames``: tag names are
  matched with SQL ``LIKE`` on a case-insensitive column) and the JSON layout of
  ``app/Lib/Export/JsonExport.php``. Column collations (case sensitivity) follow
  ``INSTALL/MYSQL.sql``.
* Events: ``app/Controller/EventsController.php`` (``add``, ``edit``, ``view``,
  ``publish``), ``Event::_add``/``_edit``/``unpublishEvent``; objects:
  ``ObjectsController::add``; attributes: ``AttributesController::add``; tags:
  ``TagsController::attachTagToObject``; ``ServersController::getVersion``.

Notable MISP behaviours this double reproduces on purpose:

* ``X-Result-Count`` is *not* the total when ``limit`` is set: MISP returns the number
  of rows of the page, plus one when the page is full, and 1 for an empty page
  (``__iteratedFetch``; MISP issue #9422). Without ``limit`` it is the total.
* ``published: false`` and ``to_ids: false`` are ignored (no filter), because
  ``buildFilterConditions`` skips parameters that are ``=== false``; ``0``/``"0"``
  do filter.
* Boolean columns compare through CakePHP's ``!empty()``: ``"false"`` means true.
* ``type`` containing ``email-src`` or ``email-dst`` also matches ``email``.
* ``value`` is compared with ``value1`` and ``value2`` separately (a full composite
  value such as ``"1.2.3.4|80"`` does not match), and ``NOT`` values are mangled as in
  ``Event::set_filter_value`` (first character dropped), so they never exclude.
* A tag filter whose positive tags all do not exist returns nothing; negated tags that
  do not exist are ignored; ``AND`` tags must all exist.

What the double does NOT implement: the filters in ``NOT_IMPLEMENTED_PARAMS`` (answered
with HTTP 501 when set to a non-empty value, instead of a silently wrong result);
returnFormats other than json (501; unknown formats get MISP's 404); ACLs,
distribution and sharing groups (the user is a site admin of the local org);
warninglists (``enforceWarninglist`` is accepted and has no effect); proposals,
sightings, galaxies, correlations, attachments, event reports, object references;
object template validation and most attribute value validation; attribute filters of
``/events/restSearch`` (501); the ``X-MISP-AUTH`` header; MySQL's accent-insensitive
and trailing-space-insensitive comparisons (case-insensitivity is modelled). Relative
time filters are resolved when a result is first computed and cached (``cache_ttl``,
default 60 s, dropped on every write).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import ipaddress
import json
import random
import re
import secrets
import socket
import ssl
import threading
import time
import traceback
import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

MISP_VERSION = "2.5.34"

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

_PHP_NUMERIC = re.compile(r"^[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?[ \t\n\r\v\f]*$")
_UUID_RE = re.compile(r"^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$")
_GALAXY_RE = re.compile(r'misp-galaxy:[^:="]+="[^"]+"', re.I)


class MispError(Exception):
    """An error answered the way MISP's CakePHP error handler renders it."""

    def __init__(self, status: int, name: str, url: str = "", extra: dict | None = None):
        super().__init__(name)
        self.status = status
        self.name = name
        self.url = url
        self.extra = extra or {}

    def body(self) -> dict:
        out = {"name": self.name, "message": self.name, "url": self.url}
        out.update(self.extra)
        return out


# --------------------------------------------------------------------------- PHP-isms


def php_empty(value: Any) -> bool:
    """PHP's ``empty()``."""
    if value is None or value is False:
        return True
    if value is True:
        return False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str):
        return value in ("", "0")
    if isinstance(value, list | dict | tuple):
        return len(value) == 0
    return False


def php_strval(value: Any) -> str:
    if value is True:
        return "1"
    if value is None or value is False:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def php_is_numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and bool(_PHP_NUMERIC.match(value))


def php_int(value: Any) -> int:
    """(int) cast of a value as PHP/MySQL would do for a numeric comparison."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        match = re.match(r"^\s*[+-]?\d+(\.\d*)?([eE][+-]?\d+)?", value)
        if match:
            return int(float(match.group(0)))
    return 0


def cake_bool(value: Any) -> int:
    """CakePHP's value() for a boolean (tinyint(1)) column: ``!empty($data)``."""
    return 0 if php_empty(value) else 1


def resolve_time_delta(delta: Any, now: int) -> int:
    """AppModel::resolveTimeDelta: '7d', '24h', '30m', '10s', epoch, or a date string."""
    if php_is_numeric(delta):
        return int(float(delta))
    text = php_strval(delta)
    multipliers = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    last = text[-1:].lower()
    if last and not last.isdigit() and last in multipliers:
        number = text[:-1]
        if not php_is_numeric(number):
            return now + 1
        return int(now - float(number) * multipliers[last])
    parsed = _strtotime(text)
    return parsed if parsed is not None else now + 1


def _strtotime(text: str) -> int | None:
    """The subset of PHP's strtotime() that matters here: ISO 8601 dates (UTC)."""
    candidate = text.strip().replace("Z", "+00:00")
    if not candidate:
        return None
    try:
        parsed = dt.datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp())


def convert_filters(value: Any) -> dict[str, list]:
    """AppModel::convert_filters: string 'a&&!b', list, or {OR, NOT, AND}."""
    if not isinstance(value, list | dict):
        out: dict[str, list] = {}
        for part in php_strval(value).split("&&"):
            if part != "":
                if part[0] == "!":
                    out.setdefault("NOT", []).append(part[1:])
                else:
                    out.setdefault("OR", []).append(part)
        return out
    if isinstance(value, dict) and any(k in value for k in ("OR", "NOT", "AND")):
        return {k: (v if isinstance(v, list) else [v]) for k, v in value.items() if k in ("OR", "NOT", "AND")}
    items = list(value.values()) if isinstance(value, dict) else value
    out = {}
    for param in items:
        text = php_strval(param)
        if not php_empty(text) and not (isinstance(param, int) and not isinstance(param, bool)):
            if text[0] == "!":
                out.setdefault("NOT", []).append(text[1:])
            else:
                out.setdefault("OR", []).append(text)
        elif param is not None:
            out.setdefault("OR", []).append(param)
    return out


def dissect_args(value: Any) -> tuple[list, list, list]:
    """MispAttribute::dissectArgs -> (OR, NOT, AND)."""
    if php_empty(value):
        return [], [], []
    if not isinstance(value, list | dict):
        value = php_strval(value).split("&&")
    if isinstance(value, dict) and any(k in value for k in ("OR", "NOT", "AND")):

        def as_list(v: Any) -> list:
            if php_empty(v):
                return []
            return v if isinstance(v, list) else [v]

        return as_list(value.get("OR")), as_list(value.get("NOT")), as_list(value.get("AND"))
    items = list(value.values()) if isinstance(value, dict) else value
    positive, negative = [], []
    for arg in items:
        if isinstance(arg, str) and arg[:1] == "!":
            negative.append(arg[1:])
        else:
            positive.append(arg)
    return positive, negative, []


def like_regex(pattern: str, case_insensitive: bool) -> re.Pattern:
    """SQL LIKE pattern ('%', '_', backslash escape) as a regular expression."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.S | (re.I if case_insensitive else 0))


def _is_wildcard(item: Any) -> bool:
    return isinstance(item, str) and (item.startswith("%") or item.endswith("%"))


def generic_filter(filt: dict[str, list], case_insensitive: bool) -> Callable[[tuple], bool] | None:
    """AppModel::generic_add_filter as a predicate over the column values of a row.

    OR: any column equal to / LIKE any item. NOT: every column differs from / is NOT
    LIKE every item. AND (as MISP builds it): exact items behave like OR, a wildcard
    item needs LIKE *and* equality on every column. NULL columns never compare true.
    """
    if not any(k in filt for k in ("OR", "NOT", "AND")):
        return None

    def norm(v: Any) -> Any:
        if isinstance(v, str):
            return v.lower() if case_insensitive else v
        return php_strval(v).lower() if case_insensitive else php_strval(v)

    checks: list[Callable[[tuple], bool]] = []
    for operator, items in filt.items():
        items = items if isinstance(items, list) else [items]
        exact = {norm(i) for i in items if not _is_wildcard(i)}
        wild = [(like_regex(i, case_insensitive), norm(i)) for i in items if _is_wildcard(i)]
        if operator == "OR":

            def check(cols: tuple, exact=exact, wild=wild) -> bool:
                for col in cols:
                    if col is None:
                        continue
                    c = col.lower() if case_insensitive else col
                    if c in exact or any(rx.fullmatch(col) for rx, _literal in wild):
                        return True
                return False

        elif operator == "NOT":

            def check(cols: tuple, exact=exact, wild=wild) -> bool:
                for col in cols:
                    if col is None:
                        return False
                    c = col.lower() if case_insensitive else col
                    if c in exact or any(rx.fullmatch(col) for rx, _literal in wild):
                        return False
                return True

        else:  # AND

            def check(cols: tuple, exact=exact, wild=wild) -> bool:
                if exact and not any(
                    col is not None and (col.lower() if case_insensitive else col) in exact for col in cols
                ):
                    return False
                for rx, literal in wild:
                    for col in cols:
                        if col is None or not rx.fullmatch(col):
                            return False
                        if (col.lower() if case_insensitive else col) != literal:
                            return False
                return True

        checks.append(check)
    if len(checks) == 1:
        return checks[0]
    return lambda cols: all(c(cols) for c in checks)


def timestamp_predicate(value: Any, now: int) -> Callable[[int], bool] | None:
    """MispAttribute::setTimestampConditions as a predicate over an int column."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise MispError(500, "Invalid date specification, must be string or array with two elements")
        low, high = resolve_time_delta(value[0], now), resolve_time_delta(value[1], now)
        if low > high:
            low, high = high, low
        if low != 0:
            return lambda ts: low <= ts <= high
        return lambda ts: ts <= high
    threshold = resolve_time_delta(value, now)
    if threshold == 0:
        return None
    return lambda ts: ts >= threshold


def _bool_in(value: Any) -> set[int]:
    """Values of a tinyint(1) column a condition ``col = value`` / ``IN`` accepts."""
    if isinstance(value, list):
        return {cake_bool(v) for v in value}
    return {cake_bool(value)}


def _split_value(attr_type: str, value: str) -> tuple[str, str]:
    """value1/value2 as MispAttribute::beforeSave stores them (explode on '|')."""
    if "|" in attr_type or attr_type == "malware-sample":
        pieces = value.split("|")
        return pieces[0], pieces[1] if len(pieces) > 1 else ""
    return value, ""


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true")
    return bool(value)


def _ts(value: Any, default: int) -> int:
    if value in (None, ""):
        return default
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    return php_int(value)


# --------------------------------------------------------------------------- index


class _EventRec:
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


class _Store:
    """The MISP database of the double: events, tags and organisations."""

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
                "exportable": _as_bool(exportable),
                "user_id": "0",
                "hide_tag": False,
                "numerical_value": None,
                "is_galaxy": bool(_GALAXY_RE.search(name)),
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
        entry["local"] = _as_bool(spec.get("local", False) if local is None else local)
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
            "to_ids": _as_bool(raw["to_ids"]) if "to_ids" in raw else default_ids,
            "uuid": uuid,
            "event_id": str(event_id),
            "distribution": php_strval(raw.get("distribution", "5")) or "5",
            "timestamp": str(_ts(raw.get("timestamp"), event_ts)),
            "comment": raw.get("comment") or "",
            "sharing_group_id": php_strval(raw.get("sharing_group_id", "0")) or "0",
            "deleted": _as_bool(raw.get("deleted", False)),
            "disable_correlation": _as_bool(raw.get("disable_correlation", False)),
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
            "timestamp": str(_ts(raw.get("timestamp"), event_ts)),
            "distribution": php_strval(raw.get("distribution", "5")) or "5",
            "sharing_group_id": php_strval(raw.get("sharing_group_id", "0")) or "0",
            "comment": raw.get("comment") or "",
            "deleted": _as_bool(raw.get("deleted", False)),
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
        event_ts = _ts(raw.get("timestamp"), now)
        published = _as_bool(raw.get("published", False))
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
            "locked": _as_bool(raw.get("locked", False)),
            "publish_timestamp": str(_ts(raw.get("publish_timestamp"), 0)),
            "sharing_group_id": php_strval(raw.get("sharing_group_id", "0")) or "0",
            "disable_correlation": _as_bool(raw.get("disable_correlation", False)),
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
    def index(self) -> tuple[list[_EventRec], list[tuple]]:
        if self._index is not None and self._index[0] == self.generation:
            return self._index[1], self._index[2]
        events: list[_EventRec] = []
        records: list[tuple] = []
        for event_id in sorted(self.events):
            event = self.events[event_id]
            rec = _EventRec()
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
                value1, value2 = _split_value(attr["type"], attr["value"])
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


# --------------------------------------------------------------------------- search


def _harvest(data: Any, params: list[str]) -> dict:
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


def _set_filters(filters: dict) -> dict:
    """The parameters buildFilterConditions acts on: set and not ``=== false``."""
    return {k: v for k, v in filters.items() if v is not None and v is not False}


class _AttributeSearch:
    """MispAttribute::restSearch for returnFormat json, as a Python filter."""

    def __init__(self, store: _Store, filters: dict, now: int):
        self.store = store
        self.filters = filters
        self.now = now

    def event_predicates(self) -> list[Callable[[_EventRec], bool]]:
        f = _set_filters(self.filters)
        store = self.store
        preds: list[Callable[[_EventRec], bool]] = []
        if not php_empty(f.get("eventid")) and f.get("eventid") != "all":
            preds.append(_eventid_predicate(convert_filters(f["eventid"])))
        if not php_empty(f.get("eventinfo")):
            check = generic_filter(convert_filters(f["eventinfo"]), True)
            if check:
                preds.append(lambda e, c=check: c((e.info,)))
        if "published" in f and f["published"] != [True, False]:
            accepted = _bool_in(f["published"])
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
        f = _set_filters(self.filters)
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
            accepted_ids = _bool_in(value)
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


def _eventid_predicate(filt: dict[str, list]) -> Callable[[_EventRec], bool]:
    """Event::set_filter_eventid: ids and uuids under OR / AND / NOT.

    MISP builds ``[operator => ['Event.uuid' => [...], 'Event.id' => [...]]]``; CakePHP
    joins the keys of OR with OR, of AND with AND, and renders NOT as ``NOT (a AND b)``.
    """
    parts = []
    for operator, items in filt.items():
        ids = {php_int(i) for i in items if not _UUID_RE.match(php_strval(i))}
        uuids = {php_strval(i) for i in items if _UUID_RE.match(php_strval(i))}
        parts.append((operator, ids, uuids))

    def pred(e: _EventRec) -> bool:
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


def _org_predicate(store: _Store, filt: dict[str, list]) -> Callable[[_EventRec], bool]:
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

    def pred(e: _EventRec) -> bool:
        if positive and e.orgc_id not in pos_ids:
            return False
        if and_ids and e.orgc_id not in and_ids:
            return False
        return e.orgc_id not in neg_ids

    return pred


def _uuid_predicates(store: _Store, filt: dict[str, list]) -> list[Callable[[tuple], bool]]:
    """MispAttribute::set_filter_uuid (scope Attribute)."""
    preds = []

    def event_uuids(items: list) -> set[str]:
        out = set()
        for item in items:
            text = php_strval(item)
            if _UUID_RE.match(text):
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


def _tag_predicates(store: _Store, value: Any) -> list[Callable[[tuple], bool]]:
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


def misp_result_count(rows: int, limit: int) -> int:
    """X-Result-Count as MispAttribute::__iteratedFetch computes it.

    Without a limit: the number of matches. With a limit: the rows of the page, plus
    one when the page is full, and 1 for an empty page (the increment is set before
    the fetch and only reset after a non-empty, short page). MISP issue #9422.
    """
    if not limit:
        return rows
    if rows == 0:
        return 1
    return rows + 1 if rows == limit else rows


# --------------------------------------------------------------------------- server


class MispDouble:
    """A MISP server double on 127.0.0.1 (random port), usable as a context manager.

    ``MispDouble(tls=(certfile, keyfile))`` serves https. Attributes: ``url``, ``key``
    (40 characters), ``requests`` (list of ``(method, path, parsed JSON body or
    None)``). Fault injection, settable at any time: ``fail_status`` (path -> HTTP
    status), ``fail_on_page`` (restSearch page number answered with 500),
    ``invalid_json_on`` (paths answered 200 with a truncated JSON body), ``delay``
    (seconds to wait before answering); ``stop()`` simulates an outage.
    """

    def __init__(
        self,
        tls: tuple[str, str] | None = None,
        *,
        key: str | None = None,
        org_name: str = "ORGNAME",
        version: str = MISP_VERSION,
        describe_types: str | Path | dict | None = None,
        cache_ttl: float = 60.0,
        host: str = "127.0.0.1",
        port: int = 0,
        public_name: str | None = None,
    ):
        self.key = key or secrets.token_hex(20)
        if len(self.key) != 40:
            raise ValueError("a MISP auth key has 40 characters")
        if isinstance(describe_types, str | Path):
            describe_types = json.loads(Path(describe_types).read_text())["result"]
        self.version = version
        self.cache_ttl = cache_ttl
        self.store = _Store(org_name, describe_types)
        self.requests: list[tuple[str, str, Any]] = []
        self.errors: list[str] = []
        self.fail_status: dict[str, int] = {}
        self.fail_on_page: int | None = None
        self.invalid_json_on: set[str] = set()
        self.delay: float = 0.0
        self._tls = tls
        self._host = host
        self._port = port
        # The name clients use in URLs (and the TLS certificate carries).
        self._public_name = public_name or host
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self.url = ""
        self.start()

    # ----------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Serve (again, after ``stop()``: on the same port when it is still free)."""
        if self._server is not None:
            return
        double = self

        class Handler(_Handler):
            pass

        Handler.double = double
        try:
            server = _QuietServer((self._host, self._port), Handler)
        except OSError:
            server = _QuietServer((self._host, 0), Handler)
        server.daemon_threads = True
        scheme = "http"
        if self._tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self._tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            scheme = "https"
        self._server = server
        self._port = server.server_address[1]
        self.url = f"{scheme}://{self._public_name}:{self._port}"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Shut the server down and drop open (keep-alive) connections: an outage."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._conn_lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._connections.clear()
        self._server = None

    def __enter__(self) -> MispDouble:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------- data
    def add_event(self, event: dict, *, now: int | None = None) -> int:
        """Store an event as MISP exports it; returns its numeric id (assigned if missing)."""
        with self.store.lock:
            return int(self.store.store_event(event, keep_ids=True, now=now)["id"])

    def add_events(self, events: Iterable[dict]) -> list[int]:
        """Store many events, then build the search index (see ``warm``)."""
        ids = [self.add_event(e) for e in events]
        self.warm()
        return ids

    def warm(self) -> None:
        """Build the restSearch index now instead of on the first search."""
        with self.store.lock:
            self.store.index()

    def get_event(self, event_id: int | str) -> dict:
        """A copy of a stored event as ``{"Event": {...}}``."""
        with self.store.lock:
            return {"Event": copy.deepcopy(self._event(event_id, "/events/view"))}

    @property
    def event_ids(self) -> list[int]:
        with self.store.lock:
            return sorted(self.store.events)

    def _event(self, ident: Any, url: str) -> dict:
        text = php_strval(ident)
        if _UUID_RE.match(text):
            event_id = self.store.event_by_uuid.get(text)
        else:
            event_id = php_int(text) if php_is_numeric(text) else None
        if event_id is None or event_id not in self.store.events:
            raise MispError(404, "Invalid event", url)
        return self.store.events[event_id]

    # ----------------------------------------------------------- request handling
    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, bytes, dict]:
        parsed_body = None
        if body:
            try:
                parsed_body = json.loads(body)
            except ValueError:
                parsed_body = None
        path = urlsplit(raw_path).path
        with self.store.lock:
            self.requests.append((method, raw_path, parsed_body))
        if self.delay:
            time.sleep(self.delay)
        route_path = unquote(path)
        try:
            status = self.fail_status.get(raw_path) or self.fail_status.get(path)
            if status:
                raise MispError(status, _status_name(status), path)
            if (
                self.fail_on_page is not None
                and route_path.rstrip("/").endswith("/restSearch")
                and isinstance(parsed_body, dict)
                and php_int(parsed_body.get("page", 1) or 1) == self.fail_on_page
            ):
                raise MispError(500, _status_name(500), path)
            if headers.get("Authorization", "").strip() != self.key:
                raise MispError(
                    403,
                    "Authentication failed. Please make sure you pass the API key of an API "
                    "enabled user along in the Authorization header.",
                    path,
                )
            if body and parsed_body is None:
                raise MispError(
                    405,
                    "Invalid JSON input. Make sure that the JSON input is a correctly formatted "
                    "JSON string. This request has been blocked to avoid an unfiltered request.",
                    path,
                )
            status, payload, extra_headers = self._route(method, route_path, parsed_body, body)
        except MispError as err:
            status, payload, extra_headers = err.status, _dumps(err.body()), {}
        except Exception:  # answer like MISP's error500, keep the traceback for tests
            self.errors.append(traceback.format_exc())
            status, payload, extra_headers = (
                500,
                _dumps(MispError(500, _status_name(500), path).body()),
                {},
            )
        if status == 200 and (raw_path in self.invalid_json_on or path in self.invalid_json_on):
            payload = payload[: max(1, len(payload) // 2)]
            if payload.strip().endswith((b"}", b"]")):
                payload += b'{"'
        return status, payload, extra_headers

    def _route(self, method: str, path: str, data: Any, raw: bytes) -> tuple[int, bytes, dict]:
        segments = [s for s in path.split("/") if s]
        named = {}
        positional = []
        for seg in segments[2:]:
            if ":" in seg and not _UUID_RE.match(seg):
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
        filters = _harvest(data, ATTRIBUTE_PARAMS)
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
        limit, page = _paging(filters)
        now = int(time.time())
        cache_key = json.dumps(
            {k: v for k, v in filters.items() if k not in ("limit", "page")},
            sort_keys=True,
            default=str,
        )
        matches = self.store.cached(
            "attributes " + cache_key,
            self.cache_ttl,
            lambda: _AttributeSearch(self.store, filters, now).run(),
        )
        if limit:
            start = limit * (page - 1) if page > 1 else 0
            chunk = matches[start : start + limit]
        else:
            chunk = matches
        count = misp_result_count(len(chunk), limit)
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
        body = (
            '{"response": {"Attribute": ' + json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "}}\n"
        ).encode()
        return 200, body, _search_headers(count)

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
        filters = _harvest(data, EVENT_PARAMS)
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
        search = _AttributeSearch(self.store, filters, now)
        events, records = self.store.index()
        preds = search.event_predicates()
        f = _set_filters(filters)
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
        limit, page = _paging(filters)
        if limit:
            start = limit * (page - 1) if page > 1 else 0
            selected = selected[start : start + limit]
        metadata = not php_empty(filters.get("metadata"))
        out = [{"Event": self._event_out(self.store.events[e.id], metadata=metadata)} for e in selected]
        body = '{"response": ' + json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "}\n"
        return 200, body.encode(), _search_headers(len(out))

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
        publish = _as_bool(raw.get("published", False))
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
        publish = _as_bool(incoming.get("published", False))
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
                    existing[field] = raw_obj[field] if field != "deleted" else _as_bool(raw_obj[field])
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
                existing[field] = _as_bool(raw[field])
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
            value1, value2 = _split_value(raw["type"], php_strval(raw["value"]))
            duplicate = any(
                not a["deleted"]
                and a["type"] == raw["type"]
                and a["category"] == category
                and _split_value(a["type"], a["value"]) == (value1, value2)
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
            value1, value2 = _split_value(attr["type"], attr["value"])
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
        if not _UUID_RE.match(php_strval(target)):
            raise MispError(500, _status_name(500), path)  # InvalidArgumentException
        tags = positional[1] if len(positional) > 1 else data.get("tag")
        if php_empty(tags):
            raise MispError(405, "Invalid tag", path)
        local = _as_bool(data.get("local", False))
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


# --------------------------------------------------------------------------- helpers


def _paging(filters: dict) -> tuple[int, int]:
    """limit/page as MispAttribute::restSearch uses them (page ignored without limit)."""
    if "limit" not in filters or php_empty(filters["limit"]):
        return 0, 1
    limit, page = filters["limit"], filters.get("page", 1)
    for value in (limit, page):
        if not php_is_numeric(value) and not php_empty(value):
            raise MispError(500, _status_name(500), "/attributes/restSearch")
    limit = php_int(limit)
    if limit < 0:
        raise MispError(500, _status_name(500), "/attributes/restSearch")
    page = php_int(page) if not php_empty(page) else 1
    return limit, max(page, 1)


def _search_headers(count: int) -> dict:
    return {
        "X-Result-Count": str(count),
        "X-Export-Module-Used": "json",
        "X-Response-Format": "json",
        "X-Skipped-Elements-Count": "0",
    }


def _status_name(status: int) -> str:
    if status >= 500:
        return "An Internal Error Has Occurred."
    return {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        429: "Too Many Requests",
    }.get(status, "Error")


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


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


class _QuietServer(ThreadingHTTPServer):
    """Clients that give up (timeouts, outages) are expected: no tracebacks on stderr."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Apache"
    sys_version = ""
    double: MispDouble

    def setup(self) -> None:
        super().setup()
        with self.double._conn_lock:
            self.double._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.double._conn_lock:
                self.double._connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload, headers = self.double.handle(method, self.path, self.headers, body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_HEAD(self) -> None:
        self._serve("HEAD")


# --------------------------------------------------------------------------- data


_TLDS = ("com", "net", "org", "info", "biz", "ru", "cn", "top", "xyz", "io")
_WORDS = (
    "update",
    "secure",
    "login",
    "cdn",
    "mail",
    "portal",
    "static",
    "api",
    "files",
    "sync",
    "cloud",
    "micro",
    "soft",
    "data",
    "track",
)
# (type, weight, category): about 40% ip-src/ip-dst/ip-dst|port.
_MIX = (
    ("ip-src", 15, "Network activity"),
    ("ip-dst", 15, "Network activity"),
    ("ip-dst|port", 10, "Network activity"),
    ("domain", 10, "Network activity"),
    ("hostname", 8, "Network activity"),
    ("url", 8, "Network activity"),
    ("md5", 6, "Payload delivery"),
    ("sha1", 4, "Payload delivery"),
    ("sha256", 6, "Payload delivery"),
    ("filename|md5", 4, "Payload delivery"),
    ("email-src", 3, "Payload delivery"),
    ("user-agent", 4, "Network activity"),
    ("x509-fingerprint-sha1", 4, "Network activity"),
    ("ja3-fingerprint-md5", 3, "Network activity"),
)


def generate_events(
    n_attributes: int,
    seed: int = 0,
    *,
    attributes_per_event: int = 1000,
    now: int | None = None,
    org_name: str = "CIRCL",
) -> Iterator[dict]:
    """Synthetic published MISP events with ``n_attributes`` attributes in total.

    Yields ``{"Event": {...}}`` dicts (an iterator, to keep memory low for a
    1,000,000-attribute benchmark). Deterministic for a given ``seed`` and ``now``.
    Type mix: about 40% ip-src/ip-dst/ip-dst|port (5% of the plain IPs are CIDR
    ranges, 3% IPv6), then domain, hostname, url, md5, sha1, sha256, filename|md5,
    email-src, user-agent, x509-fingerprint-sha1, ja3-fingerprint-md5; about 10% are
    not to_ids; every event carries a TLP tag (white/green/amber/red) and
    ``type:OSINT``; 2% of attributes carry an attribute tag; about 4% of the attributes
    are in ``domain-ip`` objects (domain + ip-dst).
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    now = int(time.time()) if now is None else now
    types = [t for t, w, _cat in _MIX for _copy in range(w)]
    categories = {t: c for t, _weight, c in _MIX}
    tlps = ["tlp:white"] * 40 + ["tlp:green"] * 40 + ["tlp:amber"] * 15 + ["tlp:red"] * 5
    org_uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, org_name))

    def uid() -> str:
        return str(uuidlib.UUID(int=rng.getrandbits(128), version=4))

    def ip() -> str:
        return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"

    def host() -> str:
        return f"{rng.choice(_WORDS)}{rng.randint(0, 99999)}.{rng.choice(_TLDS)}"

    def value_for(attr_type: str) -> str:
        if attr_type in ("ip-src", "ip-dst"):
            roll = rng.random()
            if roll < 0.05:
                return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.0/24"
            if roll < 0.08:
                return f"2001:db8:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
            return ip()
        if attr_type == "ip-dst|port":
            return f"{ip()}|{rng.choice((22, 80, 443, 4444, 8080, 8443))}"
        if attr_type == "domain":
            return host()
        if attr_type == "hostname":
            return f"{rng.choice(_WORDS)}.{host()}"
        if attr_type == "url":
            scheme = rng.choice(("http", "https"))
            return f"{scheme}://{host()}/{rng.choice(_WORDS)}/{rng.getrandbits(32):x}.php?id={rng.randint(1, 9999)}"
        if attr_type in ("md5", "ja3-fingerprint-md5"):
            return f"{rng.getrandbits(128):032x}"
        if attr_type in ("sha1", "x509-fingerprint-sha1"):
            return f"{rng.getrandbits(160):040x}"
        if attr_type == "sha256":
            return f"{rng.getrandbits(256):064x}"
        if attr_type == "filename|md5":
            return f"{rng.choice(_WORDS)}{rng.randint(0, 999)}.exe|{rng.getrandbits(128):032x}"
        if attr_type == "email-src":
            return f"{rng.choice(_WORDS)}{rng.randint(0, 9999)}@{host()}"
        return f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Agent/{rng.randint(1, 99999)}"

    produced = 0
    number = 0
    while produced < n_attributes:
        number += 1
        size = min(attributes_per_event, n_attributes - produced)
        published_at = now - rng.randint(3600, 20 * 86400)
        event_ts = published_at - rng.randint(0, 3600)
        attributes: list[dict] = []
        objects: list[dict] = []
        made = 0
        while made < size:
            if size - made >= 2 and made % 50 == 25:
                pair = (("domain", "domain", host()), ("ip", "ip-dst", ip()))
                objects.append(
                    {
                        "name": "domain-ip",
                        "meta-category": "network",
                        "description": "A domain/hostname and IP address seen as a tuple.",
                        "template_uuid": "43b3b146-77eb-4931-b4cc-b66c60f28734",
                        "template_version": "11",
                        "uuid": uid(),
                        "timestamp": str(event_ts),
                        "distribution": "5",
                        "sharing_group_id": "0",
                        "comment": "",
                        "deleted": False,
                        "Attribute": [
                            {
                                "type": t,
                                "category": "Network activity",
                                "to_ids": True,
                                "uuid": uid(),
                                "timestamp": str(event_ts),
                                "object_relation": rel,
                                "value": v,
                            }
                            for rel, t, v in pair
                        ],
                    }
                )
                made += 2
                continue
            attr_type = rng.choice(types)
            attr = {
                "type": attr_type,
                "category": categories[attr_type],
                "to_ids": rng.random() >= 0.10,
                "uuid": uid(),
                "timestamp": str(event_ts),
                "comment": "",
                "value": value_for(attr_type),
            }
            if rng.random() < 0.02:
                attr["Tag"] = [{"name": rng.choice(("tlp:amber", "kill-chain:Delivery"))}]
            attributes.append(attr)
            made += 1
        produced += size
        yield {
            "Event": {
                "info": f"Synthetic OSINT event {number}",
                "date": dt.datetime.fromtimestamp(event_ts, dt.UTC).strftime("%Y-%m-%d"),
                "threat_level_id": str(rng.randint(1, 4)),
                "analysis": "2",
                "distribution": "3",
                "published": True,
                "uuid": uid(),
                "timestamp": str(event_ts),
                "publish_timestamp": str(published_at),
                "Orgc": {"name": org_name, "uuid": org_uuid},
                "Tag": [{"name": rng.choice(tlps)}, {"name": "type:OSINT"}],
                "Attribute": attributes,
                "Object": objects,
            }
        }
