# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Export MISP indicators into Zeek intel and memcached: the one implementation.

Used by the ``misp_ioc_export`` module and, copied into its own venv by the
``misp_sync`` role, by the sync service (``run``). Importable without Ansible.

Flow: page through ``/attributes/restSearch`` (PyMISP), mapping each page as it comes
to intel rows and memcached entries; only when every page has arrived is anything
written, so a MISP outage leaves the last good intel file and keys in place.
The MISP-to-Zeek mapping follows MISP's own Zeek export (app/Lib/Export/ZeekExport.php).
"""

from __future__ import annotations

import gc
import ipaddress
import json
import os
import re
import socket
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

from .memcache import MemcacheError, MemcacheSink
from .misp import MispError, call, connect
from .zeek_intel import UNSET, clean, count_rows, encodable, read, render, same_content, write_atomic

ADDR, SUBNET = "Intel::ADDR", "Intel::SUBNET"
_HASHES = [
    "md5",
    "sha1",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "sha512/224",
    "sha512/256",
    "ssdeep",
    "imphash",
    "pehash",
    "impfuzzy",
    "authentihash",
    "tlsh",
    "cdhash",
]
# MISP type -> (Zeek type of the first value, Zeek type of the second value), None for
# a value MISP does not export.
# "ip" stands for ADDR, or SUBNET when the value is a network.
ZEEK_MAPPING: dict[str, tuple[str | None, str | None]] = {
    "ip-src": ("ip", None),
    "ip-dst": ("ip", None),
    "ip-src|port": ("ip", None),
    "ip-dst|port": ("ip", None),
    "domain|ip": ("Intel::DOMAIN", ADDR),
    "hostname": ("Intel::DOMAIN", None),
    "domain": ("Intel::DOMAIN", None),
    "url": ("Intel::URL", None),
    "user-agent": ("Intel::SOFTWARE", None),
    "email": ("Intel::EMAIL", None),
    "email-src": ("Intel::EMAIL", None),
    "email-dst": ("Intel::EMAIL", None),
    "target-email": ("Intel::EMAIL", None),
    "filename": ("Intel::FILE_NAME", None),
    "email-attachment": ("Intel::FILE_NAME", None),
    "pdb": ("Intel::FILE_NAME", None),
    "malware-sample": ("Intel::FILE_NAME", "Intel::FILE_HASH"),
    "x509-fingerprint-sha1": ("Intel::CERT_HASH", None),
    **{h: ("Intel::FILE_HASH", None) for h in _HASHES},
    # MISP exports the file name only for these three (its "filename" export group).
    **{f"filename|{h}": (None, "Intel::FILE_HASH") for h in _HASHES},
    **{f"filename|{h}": ("Intel::FILE_NAME", "Intel::FILE_HASH") for h in ("md5", "sha1", "sha256")},
}
# MISP types that give memcached keys (all also in ZEEK_MAPPING), and the key's direction.
MEMCACHED_KINDS = {
    "ip-src": "ip-src",
    "ip-src|port": "ip-src",
    "ip-dst": "ip-dst",
    "ip-dst|port": "ip-dst",
}
MAX_EVENTS_PER_KEY = 10
# Event info and uuid as carried in a memcached value: bounded, so that ten events always fit
# an item (memcached's default limit is 1 MiB) whatever an event's author wrote.
MEMCACHED_INFO_MAX = 256
MEMCACHED_UUID_MAX = 64
# Distinct "unsupported type ..." reasons counted by name; any further ones are pooled, so a
# hostile answer cannot grow the result (and status.json) without bound.
MAX_TYPE_REASONS = 50
DIFF_BEFORE_MAX = 1 << 20
_SCHEME = re.compile(r"^https?://", re.IGNORECASE)


@dataclass(frozen=True)
class Filters:
    """Which attributes to export (defaults: the WLCG SOC WG's practice).

    The one definition of the filter defaults: the ``misp_ioc_export`` module's options
    come from ``filter_argument_spec`` and the sync service's from ``from_options``.
    """

    to_ids: bool = True
    published: bool = True
    publish_window: str | None = "30d"
    tags_include: tuple[str, ...] = ()
    tags_exclude: tuple[str, ...] = ("tlp:red",)
    types: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    orgs: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Filters:
        """Filters from options named like the fields; an absent option keeps its default.

        An empty ``publish_window`` means no window; event ids may be numbers.
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in options:
                continue
            value = options[f.name]
            if f.name == "publish_window":
                values[f.name] = value or None
            elif isinstance(f.default, tuple):
                values[f.name] = tuple(str(item) for item in value or ())
            else:
                values[f.name] = value
        return cls(**values)

    def query(self) -> dict[str, Any]:
        """Keyword arguments for ``PyMISP.search(controller='attributes')``."""
        q: dict[str, Any] = {
            "type_attribute": list(self.types) or sorted(ZEEK_MAPPING),
            "include_event_uuid": True,
        }
        if self.to_ids:
            q["to_ids"] = 1
        if self.published:
            q["published"] = True
        if self.publish_window:
            q["publish_timestamp"] = self.publish_window
        tags: dict[str, list[str]] = {}
        if self.tags_include:
            tags["OR"] = list(self.tags_include)
        if self.tags_exclude:
            tags["NOT"] = list(self.tags_exclude)
        if tags:
            q["tags"] = tags
        if self.event_ids:
            q["eventid"] = list(self.event_ids)
        if self.orgs:
            q["org"] = list(self.orgs)
        return q


def filter_defaults() -> dict[str, Any]:
    """Each filter's default as an option value (lists, and "" for no publish window)."""
    out: dict[str, Any] = {}
    for f in fields(Filters):
        default = f.default
        out[f.name] = list(default) if isinstance(default, tuple) else ("" if default is None else default)
    return out


def filter_argument_spec() -> dict[str, dict[str, Any]]:
    """The filters as Ansible module options, with the defaults of ``Filters``."""
    spec: dict[str, dict[str, Any]] = {}
    for name, default in filter_defaults().items():
        if isinstance(default, bool):
            spec[name] = {"type": "bool", "default": default}
        elif isinstance(default, list):
            spec[name] = {"type": "list", "elements": "str", "default": default}
        else:
            spec[name] = {"type": "str", "default": default}
    return spec


@dataclass(frozen=True)
class Policy:
    """What the export leaves out or refuses beyond MISP's own filters (``Filters``).

    ``exclude_events``: event ids or uuids never exported (the WG's export excludes events by
    id). ``exclude_values``: indicators never exported, compared case-insensitively after
    normalisation; an entry that is a network (``192.0.2.0/24``) excludes every address and
    subnet inside it. Networks wider than ``/min_prefix_ipv4`` or ``/min_prefix_ipv6`` are left
    out (``0.0.0.0/0`` would make every connection a hit). ``max_drop``: the largest fraction of
    the previous intel rows or memcached keys an export may lose before it is refused (a drop to
    zero always is), unless forced.
    """

    exclude_events: tuple[str, ...] = ()
    exclude_values: tuple[str, ...] = ()
    min_prefix_ipv4: int = 8
    min_prefix_ipv6: int = 32
    max_drop: float = 0.5

    def __post_init__(self) -> None:
        for name, top in (("min_prefix_ipv4", 32), ("min_prefix_ipv6", 128)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise ValueError(f"{name} must be a prefix length from 0 to {top}, got {value!r}")
        if isinstance(self.max_drop, bool) or not isinstance(self.max_drop, (int, float)) or not 0 <= self.max_drop < 1:
            raise ValueError(f"max_drop must be a fraction from 0 to below 1, got {self.max_drop!r}")
        for entry in self.exclude_values:
            if not entry.strip():
                raise ValueError("exclude_values has an empty entry")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Policy:
        """A policy from options named like the fields; an absent option keeps its default."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in options and options[f.name] is not None:
                value = options[f.name]
                values[f.name] = tuple(str(item) for item in value) if isinstance(f.default, tuple) else value
        return cls(**values)

    @staticmethod
    def argument_spec() -> dict[str, dict[str, Any]]:
        """The policy as Ansible module options, with the defaults of ``Policy``."""
        kinds = {tuple: "list", bool: "bool", int: "int", float: "float"}
        spec: dict[str, dict[str, Any]] = {}
        for f in fields(Policy):
            kind = kinds[type(f.default)]
            spec[f.name] = {"type": kind, "default": list(f.default) if kind == "list" else f.default}
            if kind == "list":
                spec[f.name]["elements"] = "str"
        return spec


class _Exclusions:
    """``Policy``'s exclusions, prepared for the lookups of every attribute."""

    def __init__(self, policy: Policy):
        self.events = frozenset(str(e).strip().lower() for e in policy.exclude_events)
        self.values: set[str] = set()
        self.networks: list[Any] = []
        for entry in policy.exclude_values:
            parsed = _ip(entry.strip())
            if parsed is not None and parsed[1] == SUBNET:
                self.networks.append(ipaddress.ip_network(parsed[0]))
            # As the indicators are compared: addresses normalised, URLs without their scheme.
            self.values.add(parsed[0] if parsed is not None else _SCHEME.sub("", entry.strip()).lower())
        self.minimum = {4: policy.min_prefix_ipv4, 6: policy.min_prefix_ipv6}

    def event(self, event: Mapping[str, Any]) -> bool:
        return bool(self.events) and (
            str(event.get("id", "")).lower() in self.events or str(event.get("uuid", "")).lower() in self.events
        )

    def value(self, indicator: str, zeek_type: str) -> bool:
        if indicator.lower() in self.values:
            return True
        if self.networks and zeek_type in (ADDR, SUBNET):
            net = ipaddress.ip_network(indicator)
            return any(net.version == n.version and net.subnet_of(n) for n in self.networks)
        return False


@dataclass
class Export:
    """What one pass over MISP produced."""

    # (indicator, Zeek type, meta.source) -> (meta.desc, meta.url): the first one wins.
    rows: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
    keys: dict[str, list[tuple[int, str, str, str]]] = field(default_factory=dict)
    attributes: int = 0
    pages: int = 0
    skipped: Counter = field(default_factory=Counter)
    trimmed: Counter = field(default_factory=Counter)

    def intel_counts(self) -> dict[str, int]:
        return dict(Counter(key[1] for key in self.rows))

    def key_counts(self) -> dict[str, int]:
        return dict(Counter(k.rsplit("-", 1)[0] for k in self.keys))

    def key_values(self) -> dict[str, bytes]:
        """memcached values: the MISP events that name the address, newest first."""
        fragments: dict[tuple[int, str, str, str], str] = {}  # one JSON object per hit

        def fragment(hit: tuple[int, str, str, str]) -> str:
            text = fragments.get(hit)
            if text is None:
                text = json.dumps(
                    {"event_id": hit[0], "event_uuid": hit[1], "info": hit[2], "type": hit[3]},
                    separators=(",", ":"),
                    ensure_ascii=False,
                )
                fragments[hit] = text
            return text

        out = {}
        for key, hits in self.keys.items():
            events = sorted(set(hits), reverse=True)[:MAX_EVENTS_PER_KEY]
            out[key] = ('{"misp":[' + ",".join(fragment(e) for e in events) + "]}").encode("utf-8")
        return out


def _ip(value: str) -> tuple[str, str] | None:
    """(normalised value, ADDR or SUBNET), or None when not an address or network."""
    if "/" not in value:
        # Fast path for the common case: inet_pton accepts only four decimal octets
        # without leading zeros, i.e. exactly the canonical IPv4 form ipaddress gives.
        try:
            socket.inet_pton(socket.AF_INET, value)
        except (OSError, ValueError):
            pass
        else:
            return value, ADDR
    try:
        if "/" in value:
            net = ipaddress.ip_network(value, strict=False)
            if net.version == 6 and net.prefixlen >= 96 and net.network_address.ipv4_mapped is not None:
                net = ipaddress.ip_network((net.network_address.ipv4_mapped, net.prefixlen - 96))
            return str(net), SUBNET
        addr = ipaddress.ip_address(value)
    except ValueError:
        return None
    # An IPv4-mapped IPv6 address is the IPv4 address to Zeek and to flow enrichment.
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped if mapped is not None else addr), ADDR


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around the mapping of a large export.

    The export holds millions of acyclic objects (tuples, strings, dicts); each full
    collection would walk all of them again for nothing. Reference counting still
    frees everything; the collector's previous state is restored afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Mapper:
    """Turns restSearch attributes into intel rows and memcached entries.

    Nothing an attribute holds can stop the export: a value that cannot be written, or is
    left out by the ``Policy``, is counted per reason in ``Export.skipped`` and the export
    goes on.
    """

    def __init__(self, misp_url: str, source_name: str, org_names: dict[str, str], policy: Policy | None = None):
        self.base = misp_url.rstrip("/")
        self.source_name = source_name
        self.org_names = org_names
        self._event_meta: dict[str, tuple[str, str, str]] = {}
        self._exclusions = _Exclusions(policy or Policy())
        self.export = Export()

    def _meta(self, event: dict[str, Any]) -> tuple[str, str, str]:
        eid = clean(event.get("id"))
        meta = self._event_meta.get(eid)
        if meta is None:
            org = self.org_names.get(str(event.get("orgc_id")), f"org {clean(event.get('orgc_id', '?'))}")
            source = clean(f"{self.source_name} ({clean(event.get('uuid', '?'))}) - {org}")
            meta = (source, clean(event.get("info")), f"{self.base}/events/view/{eid}")
            self._event_meta[eid] = meta
        return meta

    def _unsupported(self, mtype: object) -> None:
        skipped = self.export.skipped
        reason = f"unsupported type {mtype}" if isinstance(mtype, str) and mtype.isprintable() else ""
        if not reason or len(reason) > 80 or (reason not in skipped and len(skipped) >= MAX_TYPE_REASONS):
            reason = "unsupported type (other)"
        skipped[reason] += 1

    def _indicator(self, zeek_type: str, value: str) -> tuple[str, str] | None:
        """(indicator, Zeek type) for one value, or None when it is left out (and counted)."""
        skipped = self.export.skipped
        if not encodable(value):
            skipped["undecodable text"] += 1
            return None
        indicator = clean(value)
        if zeek_type in ("ip", ADDR):
            if "%" in indicator:  # a zone id names an interface of the host that saw it
                skipped["address with zone id"] += 1
                return None
            parsed = _ip(indicator)
            if parsed is None:
                skipped["invalid address"] += 1
                return None
            # A network is a SUBNET even where MISP's mapping says ADDR.
            indicator, zeek_type = parsed
            if zeek_type == SUBNET:
                version = 6 if ":" in indicator else 4
                minimum = self._exclusions.minimum[version]
                if int(indicator.rsplit("/", 1)[1]) < minimum:
                    skipped[f"IPv{version} network wider than /{minimum}"] += 1
                    return None
        elif zeek_type == "Intel::URL":
            indicator = _SCHEME.sub("", indicator)
        if indicator == UNSET:
            skipped["empty value"] += 1
            return None
        if indicator.startswith("#"):  # Zeek's reader takes the line for a comment
            skipped["starts with #"] += 1
            return None
        if self._exclusions.value(indicator, zeek_type):
            skipped["excluded value"] += 1
            return None
        return indicator, zeek_type

    def add(self, attr: Any) -> None:
        ex = self.export
        ex.attributes += 1
        if not isinstance(attr, dict):
            ex.skipped["malformed attribute"] += 1
            return
        mtype = attr.get("type")
        raw = attr.get("value")
        if not isinstance(raw, str) or not raw.strip():
            ex.skipped["empty value"] += 1
            return
        if not isinstance(mtype, str) or mtype not in ZEEK_MAPPING:
            self._unsupported(mtype)
            return
        event = attr.get("Event")
        if not isinstance(event, dict):
            event = {"id": attr.get("event_id")}
        if self._exclusions.event(event):
            ex.skipped["excluded event"] += 1
            return
        source, info, url = self._meta(event)
        comment = clean(attr.get("comment"))
        desc = info if comment == UNSET else clean(f"{info if info != UNSET else ''}. {comment}")
        first, second = ZEEK_MAPPING[mtype]
        # Composite values (ip|port, filename|hash, malware-sample) carry two parts.
        values = raw.split("|", 1) if ("|" in mtype or second is not None) else [raw]
        first_ip = None  # the first value when it is an exported address or network
        for position, (zeek_type, value) in enumerate(
            ((first, values[0]), (second, values[1] if len(values) > 1 else None))
        ):
            if zeek_type is None or value is None:
                continue
            found = self._indicator(zeek_type, value)
            if found is None:
                continue
            if position == 0 and zeek_type == "ip":
                first_ip = found
            ex.rows.setdefault((found[0], found[1], source), (desc, url))
        kind = MEMCACHED_KINDS.get(mtype)
        if kind is not None:
            if first_ip is None:
                return  # counted above
            if first_ip[1] == SUBNET:
                ex.skipped["network, no memcached key"] += 1
                return
            eid = str(event.get("id"))
            uuid = clean(event.get("uuid", ""))
            if len(info) > MEMCACHED_INFO_MAX:
                ex.trimmed["event info in a memcached value"] += 1
            if len(uuid) > MEMCACHED_UUID_MAX:
                ex.trimmed["event uuid in a memcached value"] += 1
            hit = (
                int(eid) if eid.isascii() and eid.isdecimal() and len(eid) < 19 else 0,
                uuid[:MEMCACHED_UUID_MAX] if uuid != UNSET else "",
                info[:MEMCACHED_INFO_MAX],
                mtype,
            )
            ex.keys.setdefault(f"{kind}-{first_ip[0]}", []).append(hit)


def fetch_pages(misp: Any, filters: Filters, page_size: int) -> Iterator[list[dict[str, Any]]]:
    """Attribute pages in MISP's order; MispError on any failure.

    While the caller maps page N, page N+1 is already being requested (one request at
    a time, on one worker thread), so MISP's time and ours overlap. A page is only
    requested when the one before it was full, as without the prefetch.
    """
    query = filters.query()

    def get(page: int) -> list[dict[str, Any]]:
        result = call(
            misp,
            f"attributes restSearch page {page}",
            misp.search,
            controller="attributes",
            return_format="json",
            limit=page_size,
            page=page,
            pythonify=False,
            **query,
        )
        attrs = result.get("Attribute") if isinstance(result, dict) else None
        if not isinstance(attrs, list):
            raise MispError(f"attributes restSearch page {page}: unexpected answer from MISP ({type(result).__name__})")
        return attrs

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="misp-page") as pool:
        page = 1
        pending = pool.submit(get, page)
        while True:
            attrs = pending.result()
            if len(attrs) >= page_size:
                page += 1
                pending = pool.submit(get, page)
            yield attrs
            if len(attrs) < page_size:
                return


def org_names(misp: Any) -> dict[str, str]:
    """Organisation id -> name, for meta.source; empty if the key may not list them."""
    try:
        orgs = call(misp, "organisations", misp.organisations, scope="all", pythonify=False)
    except MispError:
        return {}
    names = {}
    for item in orgs if isinstance(orgs, list) else []:
        org = item.get("Organisation", item) if isinstance(item, dict) else {}
        if "id" in org and "name" in org:
            names[str(org["id"])] = str(org["name"])
    return names


def collect(
    misp: Any,
    misp_url: str,
    filters: Filters,
    page_size: int = 10000,
    source_name: str = "MISP",
    policy: Policy | None = None,
) -> Export:
    """Fetch every page and map it; nothing is written here."""
    mapper = Mapper(misp_url, source_name, org_names(misp), policy)
    with _gc_paused():
        for attrs in fetch_pages(misp, filters, page_size):
            mapper.export.pages += 1
            for attr in attrs:
                mapper.add(attr)
    return mapper.export


class DropRefused(Exception):
    """The export would lose more of the intel than ``Policy.max_drop`` allows; nothing was written."""


class IntelWriteError(OSError):
    """The intel file could not be replaced; the message says what was written before."""


@dataclass
class Outcome:
    intel_changed: bool = False
    keys_changed: int = 0
    intel_before: bytes | None = None
    intel_after: bytes | None = None


def check_drop(before: int | None, after: int, what: str, max_drop: float) -> None:
    """Raise DropRefused when ``after`` is zero or lower than ``before`` by more than ``max_drop``.

    An empty or much smaller answer after a full one is far more often lost rights, a
    wrong filter or a restored database than the end of the threats.
    """
    if not before or (after and after >= before * (1 - max_drop)):
        return
    raise DropRefused(
        f"the export has {after} {what} where the last one had {before} (a drop of "
        f"{(before - after) / before:.0%}; at most {max_drop:.0%} is accepted): nothing was written, "
        "the last intel file and keys stay; if MISP's answer is right, run the export once forced"
    )


def apply(
    export: Export,
    zeek_intel_path: str | None = None,
    do_notice: bool | None = None,
    sink: MemcacheSink | None = None,
    check_mode: bool = False,
    max_drop: float = Policy.max_drop,
    previous_keys: int | None = None,
) -> Outcome:
    """Write the export where it differs from what is there (unless check_mode).

    Nothing is written when the export is much smaller than the intel file there (or than
    ``previous_keys``, the memcached keys of the last export, when the caller knows them):
    ``check_drop`` with ``max_drop``; pass ``max_drop=1`` to force. memcached is read first, so
    an unreachable memcached fails the run before anything is written; then the keys are set
    (always, to refresh their TTL; only keys that were missing or held another value count as
    changes), and the intel file is replaced last. A failure says what was already written.
    """
    out = Outcome()
    if max_drop < 1:
        if zeek_intel_path:
            check_drop(count_rows(zeek_intel_path), len(export.rows), "intel rows", max_drop)
        if sink is not None:
            check_drop(previous_keys, len(export.keys), "memcached keys", max_drop)
    with _gc_paused():
        values = export.key_values() if sink is not None else {}
    if sink is not None:
        out.keys_changed = sink.count_different(values)
    if zeek_intel_path:
        with _gc_paused():
            out.intel_after = render(export.rows, do_notice)
        out.intel_changed = not same_content(zeek_intel_path, out.intel_after)
        if out.intel_changed and os.path.exists(zeek_intel_path):
            # Kept for the diff only when small: the file can be 100+ MB.
            small = os.path.getsize(zeek_intel_path) <= DIFF_BEFORE_MAX
            out.intel_before = read(zeek_intel_path) if small else b"(a large intel file)\n"
    if check_mode:
        return out
    if sink is not None:
        try:
            sink.set_all(values)
        except MemcacheError as exc:
            intel = "; the intel file was not changed" if zeek_intel_path else ""
            raise MemcacheError(f"{exc} (keys may be partly updated){intel}") from None
    if out.intel_changed:
        try:
            write_atomic(zeek_intel_path, out.intel_after)
        except OSError as exc:
            keys = "; the memcached keys were updated" if sink is not None else ""
            raise IntelWriteError(exc.errno, f"cannot write the intel file {zeek_intel_path}: {exc}{keys}") from None
    return out


def summary(export: Export, outcome: Outcome) -> dict[str, Any]:
    return {
        "attributes": export.attributes,
        "pages": export.pages,
        "intel": export.intel_counts(),
        "intel_rows": len(export.rows),
        "memcached": export.key_counts(),
        "memcached_keys": len(export.keys),
        "memcached_keys_changed": outcome.keys_changed,
        "intel_changed": outcome.intel_changed,
        "not_exported": dict(export.skipped),
        "trimmed": dict(export.trimmed),
    }


def run(cfg: dict[str, Any], force: bool = False, previous_keys: int | None = None) -> dict[str, Any]:
    """One sync as the service runs it; returns the summary.

    ``force`` accepts an export however much smaller than the last one; ``previous_keys``
    is the last export's memcached key count, for that check.
    """
    # The role passes only the filters (and policy) the site set; the others keep the defaults.
    filters = Filters.from_options(cfg.get("filters", {}))
    policy = Policy.from_options(cfg.get("policy", {}))
    misp = connect(
        cfg["misp_url"],
        cfg["misp_key"],
        validate_certs=cfg.get("validate_certs", True),
        ca_path=cfg.get("ca_path"),
        timeout=cfg.get("timeout", 60),
        tool="wlcg.soc misp_sync",
    )
    export = collect(
        misp, cfg["misp_url"], filters, cfg.get("page_size", 10000), cfg.get("source_name", "MISP"), policy
    )
    servers = cfg.get("memcached_servers") or []
    sink = MemcacheSink(servers, cfg.get("memcached_ttl", 2700), cfg.get("memcached_timeout", 5)) if servers else None
    try:
        outcome = apply(
            export,
            cfg.get("zeek_intel_path"),
            cfg.get("do_notice"),
            sink,
            max_drop=1 if force else policy.max_drop,
            previous_keys=previous_keys,
        )
    finally:
        if sink is not None:
            sink.close()
    return summary(export, outcome)
