"""MISP warninglists as restSearch's ``enforceWarninglist`` applies them
(``app/Model/Warninglist.php``: ``filterWarninglistAttribute``, ``checkValue``,
``getFilteredEntries``), loaded from misp-warninglists' ``list.json`` format."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LIST_TYPES = ("string", "substring", "hostname", "cidr", "regex")


@dataclass
class Warninglist:
    name: str
    type: str
    entries: list[str]
    types: list[str]  # matching_attributes; ["ALL"] when the list names none
    enabled: bool = True
    # Entries as getFilteredEntries keeps them: a set (string, hostname) or networks (cidr).
    _set: frozenset[str] = field(init=False, repr=False)
    _networks: list = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._set = frozenset(self.entries)
        self._networks = [ipaddress.ip_network(e, strict=False) for e in self.entries] if self.type == "cidr" else []

    @classmethod
    def from_json(cls, data: dict[str, Any], enabled: bool = True) -> Warninglist:
        """A list in list.json format; ``type`` defaults to string, as Warninglist::update does."""
        list_type = data.get("type", "string")
        if isinstance(list_type, list):
            list_type = list_type[0]
        if list_type not in LIST_TYPES:
            raise ValueError(f"warninglist {data.get('name')!r}: unknown type {list_type!r}")
        entries = data["list"]
        # A list with comments maps value -> comment; empty values are not stored.
        values = [v for v in (entries if isinstance(entries, list) else list(entries)) if v]
        if list_type == "hostname":
            values = [v.strip(".").lower() for v in values]
        return cls(data["name"], list_type, values, list(data.get("matching_attributes") or ["ALL"]), enabled)

    def applies_to(self, attribute_type: str) -> bool:
        return self.enabled and ("ALL" in self.types or attribute_type in self.types)

    def matches(self, attribute_type: str, value: str) -> bool:
        """Warninglist::checkValue: composite values are checked part by part."""
        composite = attribute_type == "malware-sample" or "|" in attribute_type
        parts = value.split("|", 1) if composite else [value]
        return any(self._match(part) for part in parts)

    def _match(self, value: str) -> bool:
        if self.type == "string":
            return value in self._set
        if self.type == "substring":
            return any(entry in value for entry in self.entries)
        if self.type == "hostname":
            return _hostname_hit(self._set, value)
        if self.type == "cidr":
            return _cidr_hit(self._networks, value)
        return any(_php_regex(entry).search(value) for entry in self.entries)


def _hostname_hit(entries: frozenset[str], value: str) -> bool:
    """Warninglist::__evalHostname: the host of a URL or a domain, and each parent domain.

    The entries are lower-cased, the value is not (as in MISP).
    """
    pieces = value.split("/")
    host = pieces[2] if "//" in value and len(pieces) > 2 else pieces[0]
    labels = host.rstrip(".").split(".")
    rebuilt = ""
    for label in reversed(labels):
        rebuilt = label if not rebuilt else f"{label}.{rebuilt}"
        if rebuilt in entries:
            return True
    return False


def _cidr_hit(networks: list, value: str) -> bool:
    """CidrTool::contains: an address inside one of the networks; anything else is no hit."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in networks)


_PHP_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


def _php_regex(pattern: str) -> re.Pattern:
    """A PCRE pattern with delimiters and flags (``/^evil\\./i``) as a Python pattern."""
    delimiter = pattern[0]
    end = {"(": ")", "{": "}", "[": "]", "<": ">"}.get(delimiter, delimiter)
    close = pattern.rindex(end)
    flags = 0
    for flag in pattern[close + 1 :]:
        flags |= _PHP_FLAGS.get(flag, 0)
    return re.compile(pattern[1:close], flags)


class Warninglists:
    """The warninglists of the double; ``enforceWarninglist`` drops what they match."""

    def __init__(self) -> None:
        self.lists: list[Warninglist] = []

    def load(self, source: str | Path | dict[str, Any], enabled: bool = True) -> Warninglist:
        data = source if isinstance(source, dict) else json.loads(Path(source).read_text())
        warninglist = Warninglist.from_json(data, enabled)
        self.lists = [w for w in self.lists if w.name != warninglist.name] + [warninglist]
        return warninglist

    def hit(self, attribute_type: str, value: str) -> bool:
        """Warninglist::filterWarninglistAttribute is false: an enabled list valid for the type matches."""
        return any(w.applies_to(attribute_type) and w.matches(attribute_type, value) for w in self.lists)
