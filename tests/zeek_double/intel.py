"""The Zeek double's intelligence framework: what a node's site policy loads, Zeek's reading of
intel files, and its data store (Zeek 8: base/frameworks/intel/{main,input}.zeek,
policy/frameworks/intel/{do_notice,do_expire}.zeek, the input framework's ASCII reader).

- ``site_policy``: follows the ``@load``s of the site policy the node runs (the scripts
  zeekctl installed) and takes Zeek's own scripts it loads, ``Intel::read_files`` and
  ``Intel::item_expiration`` from the rendered scripts, in load order.
- ``read_items``: an intel file as the ASCII reader reads it into ``Intel::Item``: the first
  line that is not a comment is the header (``#fields`` + TAB + names); ``indicator``,
  ``indicator_type`` and ``meta.source`` must be columns, other columns the record lacks are
  ignored; ``-`` is unset, ``(empty)`` the empty string; a line with too few fields, a
  required field unset, an unknown enum or a bad bool is skipped.
- ``IntelFiles``: ``Intel::read_files`` in REREAD mode, polled every second (the reader's
  heartbeat): a file is read again whenever its inode or mtime (seconds) changes; a missing
  file or a bad header is tried again at the next poll. A re-read inserts every line again and
  removes nothing: an indicator leaves the store only by expiring.
- ``Store``: indicators by lower-case value and type with their metadata by source; with
  ``do_expire`` loaded an indicator expires ``Intel::item_expiration`` after it was last
  inserted.

Python's standard library only: it runs with the sensor's python3.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

# Intel::Type: base/frameworks/intel/main.zeek, and FILE_HASH, FILE_NAME from files.zeek.
TYPES = frozenset(
    f"Intel::{name}"
    for name in ("ADDR", "SUBNET", "URL", "SOFTWARE", "EMAIL", "DOMAIN", "USER_NAME", "CERT_HASH",
                 "PUBKEY_HASH", "FILE_HASH", "FILE_NAME")
)  # fmt: skip
# Intel::Where: Intel::IN_ANYWHERE and policy/frameworks/intel/seen/where-locations.zeek.
WHERE = frozenset((
    "Intel::IN_ANYWHERE", "Conn::IN_ORIG", "Conn::IN_RESP", "Files::IN_HASH", "Files::IN_NAME",
    "DNS::IN_REQUEST", "DNS::IN_RESPONSE", "HTTP::IN_HOST_HEADER", "HTTP::IN_REFERRER_HEADER",
    "HTTP::IN_USER_AGENT_HEADER", "HTTP::IN_X_FORWARDED_FOR_HEADER", "HTTP::IN_URL", "SMTP::IN_MAIL_FROM",
    "SMTP::IN_RCPT_TO", "SMTP::IN_FROM", "SMTP::IN_TO", "SMTP::IN_CC", "SMTP::IN_RECEIVED_HEADER",
    "SMTP::IN_REPLY_TO", "SMTP::IN_X_ORIGINATING_IP_HEADER", "SMTP::IN_MESSAGE", "SSH::IN_SERVER_HOST_KEY",
    "SSL::IN_SERVER_NAME", "SMTP::IN_HEADER", "X509::IN_CERT", "SMB::IN_FILE_NAME",
))  # fmt: skip
REQUIRED = ("indicator", "indicator_type", "meta.source")
UNSET, EMPTY = "-", "(empty)"
# do_expire.zeek's own redef of Intel::item_expiration.
DO_EXPIRE_DEFAULT = 600.0
_UNITS = {"usec": 1e-6, "msec": 1e-3, "sec": 1.0, "min": 60.0, "hr": 3600.0, "day": 86400.0}


@dataclass(frozen=True)
class Meta:
    """Intel::MetaData; do_notice and if_in exist only with do_notice.zeek loaded."""

    source: str
    desc: str | None = None
    url: str | None = None
    do_notice: bool = False
    if_in: str = "Intel::IN_ANYWHERE"


@dataclass(frozen=True)
class Item:
    indicator: str
    indicator_type: str
    meta: Meta


@dataclass
class Policy:
    """What a node's site policy loads: Zeek's own scripts (by the name they are loaded with,
    without a ``policy/`` prefix or ``.zeek``), the intel files, the expiration (seconds; None:
    never, Zeek's default of -1 min)."""

    scripts: set[str] = field(default_factory=set)
    read_files: list[str] = field(default_factory=list)
    item_expiration: float | None = None

    def loads(self, *names: str) -> bool:
        return any(name in self.scripts for name in names)

    @property
    def dns_seen(self) -> bool:
        """Whether DNS queries are checked against intel (frameworks/intel/seen/dns.zeek)."""
        return self.loads("frameworks/intel/seen", "frameworks/intel/seen/dns")

    @property
    def do_notice(self) -> bool:
        return self.loads("frameworks/intel/do_notice")

    @property
    def expiration(self) -> float | None:
        """Seconds after its last insertion that an indicator leaves the store: only
        do_expire.zeek's item_expired hook removes one, with a non-negative expiration."""
        expires = self.loads("frameworks/intel/do_expire") and self.item_expiration is not None
        return self.item_expiration if expires and self.item_expiration >= 0 else None


# A string literal (kept) or a comment (dropped); then the statements the double reads.
_STRING_OR_COMMENT = re.compile(r'("(?:[^"\\\n]|\\.)*")|#[^\n]*')
_STATEMENT = re.compile(
    r"@load\s+(?P<load>[^\s;]+)"
    r"|redef\s+Intel::read_files\s*(?P<op>\+?=)\s*\{(?P<files>[^}]*)\}"
    r"|redef\s+Intel::item_expiration\s*=\s*(?P<interval>[^;]+);"
)
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_INTERVAL = re.compile(r"(-?\d+(?:\.\d+)?)\s*(usec|msec|sec|min|hr|day)s?")


def interval(text: str) -> float | None:
    """A Zeek interval constant (``20 min``, ``10mins``, ``-1 min``) in seconds."""
    match = _INTERVAL.fullmatch(text.strip())
    return float(match[1]) * _UNITS[match[2]] if match else None


def _script(site: Path, base: Path, name: str) -> Path | None:
    """The site script an ``@load`` names (a file, or a directory's __load__.zeek), relative to
    the loading script for ``./``/``../``, else in the site directory (first on ZEEKPATH)."""
    start = base if name.startswith(".") else site
    path = (start / name).resolve()
    for candidate in (path.with_name(path.name + ".zeek"), path, path / "__load__.zeek"):
        if candidate.is_file():
            return candidate
    return None


def site_policy(site: Path, script: str) -> Policy:
    """The Policy of the site policy ``script`` in ``site`` (SitePolicyScripts in the installed
    site directory); a missing script loads nothing."""
    policy = Policy()
    seen: set[Path] = set()

    def load(path: Path) -> None:
        seen.add(path)
        text = _STRING_OR_COMMENT.sub(lambda m: m[1] or "", path.read_text(encoding="utf-8", errors="replace"))
        for statement in _STATEMENT.finditer(text):
            if statement["load"]:
                name = statement["load"]
                target = _script(site, path.parent, name)
                if target is not None:
                    if target not in seen:
                        load(target)
                    continue
                name = name.removeprefix("policy/").removesuffix(".zeek").removesuffix("/__load__")
                if name == "frameworks/intel/do_expire" and name not in policy.scripts:
                    policy.item_expiration = DO_EXPIRE_DEFAULT
                policy.scripts.add(name)
            elif statement["files"] is not None:
                files = [m[1] for m in _STRING.finditer(statement["files"])]
                policy.read_files = files if statement["op"] == "=" else policy.read_files + files
            else:
                policy.item_expiration = interval(statement["interval"])

    entry = site / script
    if entry.is_file():
        load(entry.resolve())
    return policy


def _string(value: str) -> str:
    """A string field as the ASCII formatter reads it: ``(empty)`` is "", ``\\xNN`` escapes decoded."""
    if value == EMPTY:
        return ""
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m[1], 16)), value)


def _bool(value: str) -> bool | None:
    return {"T": True, "1": True, "F": False, "0": False}.get(value)


def read_items(text: str, do_notice: bool) -> list[Item] | None:
    """The items of an intel file's text; None if its header lacks a required column (Zeek
    then reads nothing and tries again at the next poll)."""
    lines = []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if not line:
            continue
        if line.startswith("#"):
            if len(line) > 8 and line.startswith("#fields\t"):
                lines.append(line[8:])
            continue
        lines.append(line)
    if not lines:
        return None
    columns = {name: i for i, name in reversed(list(enumerate(lines[0].split("\t"))))}
    if any(name not in columns for name in REQUIRED):
        return None
    wanted = [*REQUIRED, "meta.desc", "meta.url"] + (["meta.do_notice", "meta.if_in"] if do_notice else [])
    present = [name for name in wanted if name in columns]
    items = []
    for line in lines[1:]:
        cells = line.split("\t")
        if any(columns[name] >= len(cells) for name in present):
            continue
        values = {name: cells[columns[name]] for name in present if cells[columns[name]] != UNSET}
        if any(name not in values for name in REQUIRED) or values["indicator_type"] not in TYPES:
            continue
        notice = _bool(values.get("meta.do_notice", "F"))
        if_in = values.get("meta.if_in", "Intel::IN_ANYWHERE")
        if notice is None or if_in not in WHERE:
            continue
        meta = Meta(
            source=_string(values["meta.source"]),
            desc=_string(values["meta.desc"]) if "meta.desc" in values else None,
            url=_string(values["meta.url"]) if "meta.url" in values else None,
            do_notice=notice,
            if_in=if_in,
        )
        items.append(Item(_string(values["indicator"]), values["indicator_type"], meta))
    return items


class Store:
    """Intel's data store: an indicator (lower-case value, type) with its metadata by source
    (a later insert from the same source replaces it) and the time of its last insertion."""

    def __init__(self, expiration: float | None) -> None:
        self.expiration = expiration
        self._data: dict[tuple[str, str], tuple[float, dict[str, Meta]]] = {}

    def insert(self, item: Item, now: float) -> None:
        key = (item.indicator.lower(), item.indicator_type)
        metas = self._data[key][1] if key in self._data else {}
        metas[item.meta.source] = item.meta
        self._data[key] = (now, metas)

    def expire(self, now: float) -> None:
        if self.expiration is not None:
            limit = now - self.expiration
            self._data = {key: value for key, value in self._data.items() if value[0] > limit}

    def find(self, indicator: str, indicator_type: str) -> list[Meta]:
        """The metadata of every source of a matching indicator (Zeek matches the value
        case-insensitively, exactly: a domain does not match its subdomains)."""
        entry = self._data.get((indicator.lower(), indicator_type))
        return list(entry[1].values()) if entry else []


class IntelFiles:
    """``Intel::read_files`` read into a Store in REREAD mode."""

    def __init__(self, policy: Policy) -> None:
        self.paths = policy.read_files
        self.do_notice = policy.do_notice
        self.store = Store(policy.expiration)
        self._read: dict[str, tuple[int, int]] = {}

    def poll(self, now: float) -> None:
        """Read each file that changed since it was last read; expire old indicators."""
        for path in self.paths:
            try:
                stat = os.stat(path)
                if self._read.get(path) == (stat.st_ino, int(stat.st_mtime)):
                    continue
                with open(path, encoding="utf-8", errors="replace") as handle:
                    items = read_items(handle.read(), self.do_notice)
            except OSError:
                continue
            if items is None:
                continue
            self._read[path] = (stat.st_ino, int(stat.st_mtime))
            for item in items:
                self.store.insert(item, now)
        self.store.expire(now)
