# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Export MISP indicators into Zeek intel and memcached: the one implementation.

Used by the ``misp_ioc_export`` module and, copied into its own venv by the
``misp_sync`` role, by the sync service (``run``). Importable without Ansible.

Flow: page through ``/attributes/restSearch`` (PyMISP), mapping each page as it comes
to intel rows and memcached entries; only when every page has arrived is anything
written, so a MISP outage leaves the last good intel file and keys in place. The fetch
is bounded: a MISP that pages forever, ignores the limit or trickles its answer fails
the run (``fetch_pages``).
The MISP-to-Zeek mapping follows MISP's own Zeek export (app/Lib/Export/ZeekExport.php).
"""

from __future__ import annotations

import gc
import ipaddress
import json
import os
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

from .memcache import MemcacheError, MemcacheSink
from .misp import MispError, call, connect, search_json, watch_of
from .misp_memcached import key as memcached_key
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
# MISP types that give memcached keys (all also in ZEEK_MAPPING), and the key's direction
# (misp_memcached: the contract with the readers of the keys).
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
# The fetch's bounds: pages (10 million attributes at the default page size) and seconds.
MAX_PAGES = 1000
FETCH_TIMEOUT = 1800.0
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
    enforce_warninglist: bool = True

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
            # PyMISP sends enforceWarninglist 0/1 (0 when not given): MISP drops values on
            # its enabled warninglists (public resolvers, top domains) when it is 1.
            "enforce_warninglist": self.enforce_warninglist,
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
            ex.keys.setdefault(memcached_key(kind, first_ip[0]), []).append(hit)


class _Fetcher:
    """Runs MISP requests on one worker thread within the fetch's overall deadline.

    The caller waits for each request at most until the deadline, then cuts the
    response still being read (``ResponseWatch.abort``): a MISP that trickles a byte a
    second cannot hold the run, whatever the per-read ``timeout``. Each request's own
    timeout is also lowered to the time left, which bounds a MISP that stalls before
    sending its headers.
    """

    def __init__(self, misp: Any, seconds: float | None = None):
        self.misp = misp
        self.seconds = seconds
        self.end = None if seconds is None else time.monotonic() + seconds
        self.read_timeout = getattr(misp, "timeout", None)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="misp-fetch")

    def __enter__(self) -> _Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        # Not waiting: after abort() the worker ends at once, and a request stalled
        # before its headers ends with its (lowered) timeout.
        self.pool.shutdown(wait=False, cancel_futures=True)

    def left(self) -> float | None:
        """Seconds left; None without a deadline."""
        return None if self.end is None else self.end - time.monotonic()

    def expired(self, what: str) -> MispError:
        return MispError(
            f"{what}: MISP at {self.misp.root_url} did not send everything within fetch_timeout"
            f" ({self.seconds:g} s); the fetch was cut"
        )

    def submit(self, what: str, func: Callable[[], Any]) -> Future:
        def run() -> Any:
            left = self.left()
            if left is not None:
                if left <= 0:
                    raise self.expired(what)
                if isinstance(self.read_timeout, (int, float)):
                    self.misp.timeout = min(self.read_timeout, left)
            try:
                return func()
            except MispError:
                if self.left() is not None and self.left() <= 0:
                    raise self.expired(what) from None
                raise

        return self.pool.submit(run)

    def wait(self, what: str, future: Future) -> Any:
        try:
            left = self.left()
            return future.result(timeout=None if left is None else max(left, 0))
        except FutureTimeout:
            watch = watch_of(self.misp)
            if watch is not None:
                watch.abort()
            raise self.expired(what) from None

    def run(self, what: str, func: Callable[[], Any]) -> Any:
        return self.wait(what, self.submit(what, func))


def _attribute_id(attr: Any) -> Any:
    return (attr.get("uuid") or attr.get("id")) if isinstance(attr, dict) else None


def _result_count(misp: Any) -> int | None:
    watch = watch_of(misp)
    text = watch.header("X-Result-Count") if watch is not None else None
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def fetch_pages(
    misp: Any,
    filters: Filters,
    page_size: int,
    max_pages: int = MAX_PAGES,
    fetcher: _Fetcher | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Attribute pages in MISP's order; MispError on any failure.

    While the caller maps page N, page N+1 is already being requested (one request at
    a time, on one worker thread), so MISP's time and ours overlap.

    When to ask for another page: MISP's X-Result-Count is not the total when a limit
    is set (MISP issue #9422): it counts the page's rows before warninglist filtering,
    plus one when the page came full. So a page is followed by another when it is full,
    or when MISP announced a full page (>= page_size) that warninglists thinned out;
    without the header (or with a page_size of 1), only a full page is.

    A misbehaving MISP fails the fetch instead of looping: a page with more rows than
    asked for (the limit ignored) or than its X-Result-Count announced; a page seen
    before (the page parameter ignored); a full page beyond the pages an announced total
    (an X-Result-Count above page_size + 1, which MISP's per-page count never is) needs;
    a full page number ``max_pages``; and, with ``fetcher``, running out of time.
    """
    query = filters.query()

    def get(page: int) -> tuple[list[dict[str, Any]], int | None]:
        result = call(
            misp,
            f"attributes restSearch page {page}",
            search_json,
            misp,
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
        return attrs, _result_count(misp)

    def check(page: int, attrs: list[dict[str, Any]], count: int | None) -> bool:
        """Whether another page follows; MispError when MISP misbehaves."""
        what = f"attributes restSearch page {page}"
        rows = len(attrs)
        if rows > page_size:
            raise MispError(f"{what}: MISP sent {rows} attributes for a limit of {page_size} (it ignores the limit)")
        if count is not None and rows > count:
            raise MispError(f"{what}: MISP sent {rows} attributes but announced {count} (X-Result-Count)")
        if rows:
            fingerprint = (rows, _attribute_id(attrs[0]), _attribute_id(attrs[-1]))
            if fingerprint in seen:
                raise MispError(
                    f"{what}: MISP sent the same attributes as page {seen[fingerprint]} (it ignores the page)"
                )
            seen[fingerprint] = page
        # With page_size 1, "one row, thinned to none" and "no row" both announce 1.
        more = rows >= page_size or (count is not None and count >= max(page_size, 2))
        if not more:
            return False
        if count is not None and count > page_size + 1 and page > -(-count // page_size):
            raise MispError(f"{what}: MISP announced {count} attributes, yet sends full pages beyond them")
        if page >= max_pages:
            raise MispError(
                f"{what}: MISP still has more after max_pages ({max_pages}) pages of {page_size};"
                " raise max_pages if the export is really that large"
            )
        return True

    seen: dict[tuple[Any, ...], int] = {}
    with ExitStack() as stack:
        if fetcher is None:
            fetcher = stack.enter_context(_Fetcher(misp))
        page = 1
        pending = fetcher.submit(f"attributes restSearch page {page}", lambda: get(1))
        while True:
            attrs, count = fetcher.wait(f"attributes restSearch page {page}", pending)
            more = check(page, attrs, count)
            if more:
                page += 1
                pending = fetcher.submit(f"attributes restSearch page {page}", lambda p=page: get(p))
            yield attrs
            if not more:
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
    max_pages: int = MAX_PAGES,
    fetch_timeout: float = FETCH_TIMEOUT,
) -> Export:
    """Fetch every page and map it, all within ``fetch_timeout`` seconds; nothing is written here."""
    with _Fetcher(misp, fetch_timeout) as fetcher:
        mapper = Mapper(misp_url, source_name, fetcher.run("organisations", lambda: org_names(misp)), policy)
        with _gc_paused():
            for attrs in fetch_pages(misp, filters, page_size, max_pages, fetcher):
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
        misp,
        cfg["misp_url"],
        filters,
        cfg.get("page_size", 10000),
        cfg.get("source_name", "MISP"),
        policy,
        cfg.get("max_pages", MAX_PAGES),
        cfg.get("fetch_timeout", FETCH_TIMEOUT),
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
