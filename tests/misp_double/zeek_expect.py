"""An independent expectation of MISP's own Zeek (Bro) intel export.

Ported from MISP's code (repository MISP/MISP), not from our exporter:

* ``app/Lib/Export/ZeekExport.php``: the ``$mapping`` (MISP type -> Intel type, the
  ``/`` -> ``SUBNET`` alternate, the ``composite`` type for the second value, the
  ``^https?://`` replacement for URLs), the ``$mispTypes`` groups (which types are
  exported and whether ``value1`` or ``value2`` is used), ``replaceIllegalChars``
  (TAB, VT, CR, LF -> space, then ``filter_var(FILTER_SANITIZE_STRING,
  FILTER_FLAG_STRIP_HIGH)`` and ``html_entity_decode``) and ``export`` (rows only for
  events whose creator org exists).
* ``app/Model/MispAttribute.php`` ``bro()``/``__bro()``: only attributes with
  ``to_ids`` of *published* events (``'Attribute.to_ids' => 1, 'Event.published' => 1``),
  through ``fetchAttributes`` with ``flatten`` (object attributes included) and the
  default ``Attribute.deleted = 0``; rows are de-duplicated (``array_unique``).

Differences of our export that are documented (facts.md) and applied here: no
``Intel::JA3`` rows (neither ZeekExport.php nor BroExport.php as stored map
``ja3-fingerprint-md5``, so this is a no-op), tabs/newlines -> spaces, ``http://`` /
``https://`` stripped from URLs, CIDR -> ``Intel::SUBNET``, ``ip|port`` -> the IP. All
of these are what ZeekExport.php already does.

Known divergences inside MISP, for the record: ``app/Lib/Export/BroExport.php`` (the
class ``MispAttribute::bro`` instantiates, as stored at commit 18cdfba) has the same
tables but formats ``$attribute['value']`` - the full composite value, e.g.
``file.exe|<md5>`` for both the FILE_NAME and the FILE_HASH row, ``1.2.3.4|80`` for
ip-dst|port - where ZeekExport.php uses ``value1``/``value2``. This module follows
ZeekExport.php. ``sanitize_like_php=False`` skips the PHP string sanitising (which drops
non-ASCII characters and anything looking like an HTML tag from indicators).
"""

from __future__ import annotations

import html.entities
import re
from collections.abc import Iterable
from typing import Any

# ZeekExport::$mapping: type -> (zeek type, alternate regex -> type, composite type, strip scheme)
MAPPING: dict[str, dict[str, Any]] = {
    "ip-dst": {"type": "ADDR", "alternate": ("/", "SUBNET")},
    "ip-src": {"type": "ADDR", "alternate": ("/", "SUBNET")},
    "ip-dst|port": {"type": "ADDR", "alternate": ("/", "SUBNET"), "composite": "NONE"},
    "ip-src|port": {"type": "ADDR", "alternate": ("/", "SUBNET"), "composite": "NONE"},
    "email-src": {"type": "EMAIL"},
    "email-dst": {"type": "EMAIL"},
    "target-email": {"type": "EMAIL"},
    "email-attachment": {"type": "FILE_NAME"},
    "filename": {"type": "FILE_NAME"},
    "hostname": {"type": "DOMAIN"},
    "domain": {"type": "DOMAIN"},
    "domain|ip": {"type": "DOMAIN", "composite": "ADDR"},
    "url": {"type": "URL", "replace": True},
    "user-agent": {"type": "SOFTWARE"},
    "md5": {"type": "FILE_HASH"},
    "malware-sample": {"type": "FILE_NAME", "composite": "FILE_HASH"},
    "filename|md5": {"type": "FILE_NAME", "composite": "FILE_HASH"},
    "sha1": {"type": "FILE_HASH"},
    "filename|sha1": {"type": "FILE_NAME", "composite": "FILE_HASH"},
    "sha256": {"type": "FILE_HASH"},
    "filename|sha256": {"type": "FILE_NAME", "composite": "FILE_HASH"},
    "x509-fingerprint-sha1": {"type": "CERT_HASH"},
    "pdb": {"type": "FILE_NAME"},
    "authentihash": {"type": "FILE_HASH"},
    "ssdeep": {"type": "FILE_HASH"},
    "imphash": {"type": "FILE_HASH"},
    "pehash": {"type": "FILE_HASH"},
    "impfuzzy": {"type": "FILE_HASH"},
    "sha224": {"type": "FILE_HASH"},
    "sha384": {"type": "FILE_HASH"},
    "sha512": {"type": "FILE_HASH"},
    "sha512/224": {"type": "FILE_HASH"},
    "sha512/256": {"type": "FILE_HASH"},
    "tlsh": {"type": "FILE_HASH"},
    "cdhash": {"type": "FILE_HASH"},
    **{
        f"filename|{h}": {"type": "FILE_NAME", "composite": "FILE_HASH"}
        for h in (
            "authentihash",
            "ssdeep",
            "imphash",
            "pehash",
            "impfuzzy",
            "sha224",
            "sha384",
            "sha512",
            "sha512/224",
            "sha512/256",
            "tlsh",
        )
    },
}

# ZeekExport::$mispTypes: export group -> [(MISP type, value field 1 or 2)].
MISP_TYPES: dict[str, list[tuple[str, int]]] = {
    "ip": [("ip-src", 1), ("ip-dst", 1), ("ip-src|port", 1), ("ip-dst|port", 1), ("domain|ip", 2)],
    "url": [("url", 1)],
    "domain": [("hostname", 1), ("domain", 1), ("domain|ip", 1)],
    "email": [("email-src", 1), ("email-dst", 1), ("target-email", 1)],
    "filename": [
        ("filename", 1),
        ("email-attachment", 1),
        ("attachment", 1),
        ("filename|md5", 1),
        ("filename|sha1", 1),
        ("filename|sha256", 1),
        ("malware-sample", 1),
        ("pdb", 1),
    ],
    "filehash": [
        ("md5", 1),
        ("sha1", 1),
        ("sha256", 1),
        ("authentihash", 1),
        ("ssdeep", 1),
        ("imphash", 1),
        ("pehash", 1),
        ("impfuzzy", 1),
        ("sha224", 1),
        ("sha384", 1),
        ("sha512", 1),
        ("sha512/224", 1),
        ("sha512/256", 1),
        ("tlsh", 1),
        ("filename|md5", 2),
        ("filename|sha1", 2),
        ("filename|sha256", 2),
        ("filename|authentihash", 2),
        ("filename|ssdeep", 2),
        ("filename|imphash", 2),
        ("filename|pehash", 2),
        ("filename|impfuzzy", 2),
        ("filename|sha224", 2),
        ("filename|sha384", 2),
        ("filename|sha512", 2),
        ("filename|sha512/224", 2),
        ("filename|sha512/256", 2),
        ("filename|tlsh", 2),
        ("malware-sample", 2),
    ],
    "certhash": [("x509-fingerprint-sha1", 1)],
    "software": [("user-agent", 1)],
}

# Zeek's own Intel::Type enum (base/frameworks/intel/main.zeek).
ZEEK_INTEL_TYPES = frozenset(
    {
        "ADDR",
        "SUBNET",
        "URL",
        "SOFTWARE",
        "EMAIL",
        "DOMAIN",
        "USER_NAME",
        "CERT_HASH",
        "PUBKEY_HASH",
        "FILE_HASH",
        "FILE_NAME",
    }
)

_ENTITY = re.compile(r"&(#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _strip_tags(text: str) -> str:
    """PHP's strip_tags state machine (as FILTER_SANITIZE_STRING uses it), simplified.

    ``<`` followed by whitespace is kept; otherwise everything up to the matching ``>``
    (quotes inside the tag are honoured) is removed, and an unclosed tag removes the
    rest of the string.
    """
    out = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "<" and i + 1 < n and not text[i + 1].isspace():
            i += 1
            quote = None
            depth = 1
            while i < n and depth:
                c = text[i]
                if quote:
                    if c == quote:
                        quote = None
                elif c in "\"'":
                    quote = c
                elif c == "<":
                    depth += 1
                elif c == ">":
                    depth -= 1
                i += 1
            continue
        if char == "<" and i + 1 >= n:
            break  # a trailing "<" opens a tag that never closes
        out.append(char)
        i += 1
    return "".join(out)


def _html_entity_decode(text: str) -> str:
    """html_entity_decode() with PHP 8.1 defaults (ENT_QUOTES | ENT_HTML401)."""

    def repl(match: re.Match) -> str:
        entity = match.group(1)
        if entity[0] == "#":
            try:
                code = int(entity[2:], 16) if entity[1] in "xX" else int(entity[1:])
                return chr(code)
            except (ValueError, OverflowError):
                return match.group(0)
        code = html.entities.name2codepoint.get(entity)
        return chr(code) if code is not None else match.group(0)

    return _ENTITY.sub(repl, text)


def replace_illegal_chars(value: str, sanitize_like_php: bool = True) -> str:
    """ZeekExport::replaceIllegalChars."""
    for src in ("\t", "\x0b", "\r\n", "\r", "\n"):
        value = value.replace(src, " ")
    if not sanitize_like_php:
        return value
    # filter_var(FILTER_SANITIZE_STRING, FILTER_FLAG_STRIP_HIGH): strip tags, encode
    # quotes (decoded again below), drop every byte >= 0x80 (all non-ASCII characters).
    value = _strip_tags(value)
    value = "".join(c for c in value if ord(c) < 0x80)
    return _html_entity_decode(value)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true")
    return bool(value)


def _split(attr_type: str, value: str) -> tuple[str, str]:
    if "|" in attr_type or attr_type == "malware-sample":
        pieces = value.split("|")
        return pieces[0], pieces[1] if len(pieces) > 1 else ""
    return value, ""


def _attributes(event: dict) -> Iterable[dict]:
    yield from event.get("Attribute") or []
    for obj in event.get("Object") or []:
        yield from obj.get("Attribute") or []


def expected_rows(events: Iterable[dict], *, sanitize_like_php: bool = True) -> set[tuple[str, str, str]]:
    """(indicator, "Intel::TYPE", event uuid) rows MISP's Zeek export gives for ``events``.

    ``events``: MISP event JSON (``{"Event": {...}}`` or the inner dict). Only to_ids,
    non-deleted attributes (objects included) of published events with a creator org
    are exported, one row per (MISP type, value field) the export groups list.
    """
    rows: set[tuple[str, str, str]] = set()
    for wrapped in events:
        event = wrapped.get("Event", wrapped)
        if not _truthy(event.get("published")):
            continue
        if not (event.get("Orgc") or event.get("orgc_id")):
            continue  # ZeekExport::export skips events whose creator org is unknown
        for attr in _attributes(event):
            if not _truthy(attr.get("to_ids")) or _truthy(attr.get("deleted")):
                continue
            attr_type = attr.get("type", "")
            mapping = MAPPING.get(attr_type)
            if mapping is None:
                continue
            values = _split(attr_type, str(attr.get("value", "")))
            for group in MISP_TYPES.values():
                for misp_type, field in group:
                    if misp_type != attr_type:
                        continue
                    value = values[field - 1]
                    zeek_type = mapping["type"]
                    alternate = mapping.get("alternate")
                    if alternate and alternate[0] in value:
                        zeek_type = alternate[1]
                    if field == 2 and "composite" in mapping:
                        zeek_type = mapping["composite"]
                    value = replace_illegal_chars(value, sanitize_like_php)
                    if mapping.get("replace"):
                        value = re.sub(r"^https?://", "", value)
                    value = replace_illegal_chars(value, sanitize_like_php)
                    if zeek_type == "JA3":
                        continue  # documented: stock Zeek has no Intel::JA3
                    rows.add((value, f"Intel::{zeek_type}", event["uuid"]))
    return rows
