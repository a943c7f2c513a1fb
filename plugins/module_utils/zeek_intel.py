# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Zeek Intelligence Framework files: rows, rendering, parsing, atomic writes.

Importable without Ansible: the MISP sync service uses it as well as the modules.
Format (Zeek's input framework, read by ``Intel::read_files``): TAB-separated, a header
``#fields<TAB>indicator<TAB>indicator_type<TAB>meta.source...``, ``-`` for unset
fields. The manager re-reads a file when its inode or mtime changes, so a file is
replaced by rename, never rewritten in place.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from typing import NamedTuple

INTEL_TYPES = frozenset(
    (
        "Intel::ADDR",
        "Intel::SUBNET",
        "Intel::URL",
        "Intel::SOFTWARE",
        "Intel::EMAIL",
        "Intel::DOMAIN",
        "Intel::USER_NAME",
        "Intel::CERT_HASH",
        "Intel::PUBKEY_HASH",
        "Intel::FILE_HASH",
        "Intel::FILE_NAME",
    )
)
BASE_FIELDS = ("indicator", "indicator_type", "meta.source", "meta.desc", "meta.url")
NOTICE_FIELD = "meta.do_notice"
UNSET = "-"

# Characters that would break a TAB-separated line for Zeek (TAB, LF) or for a reader that
# splits lines as Python's str.splitlines does (CR, VT, FF, FS/GS/RS, NEL, U+2028/9), and the
# other C0/C1 controls: all become spaces (MISP's Zeek export does so for TAB and newlines).
_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Lone surrogates (from a JSON \\udXXX escape) cannot be encoded as UTF-8.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class IntelRow(NamedTuple):
    indicator: str
    indicator_type: str
    source: str
    desc: str = UNSET
    url: str = UNSET


def clean(value: object) -> str:
    """A field value safe for the file: one line without TAB, valid UTF-8 (a lone surrogate
    becomes U+FFFD), never empty (``-`` if unset). Numbers are written as text."""
    if value is None or isinstance(value, bool):
        return UNSET
    if not isinstance(value, str):
        value = str(value) if isinstance(value, (int, float)) else UNSET
    if not value.isprintable():  # the common case skips the regexes (a hot path)
        value = _SURROGATE.sub("\ufffd", _BREAKING.sub(" ", value))
    return value.strip() or UNSET


def encodable(value: str) -> bool:
    """Whether ``value`` can be written as UTF-8 (no lone surrogate)."""
    return value.isascii() or not _SURROGATE.search(value)


def render(rows: Mapping[tuple[str, str, str], tuple[str, str]], do_notice: bool | None = None) -> bytes:
    """The whole file for ``rows`` ({(indicator, type, source): (desc, url)}), sorted so
    that the same set gives the same bytes. Encoded in slices to bound peak memory."""
    fields = BASE_FIELDS + ((NOTICE_FIELD,) if do_notice is not None else ())
    tail = ("\tT" if do_notice else "\tF") if do_notice is not None else ""
    chunks = [("#fields\t" + "\t".join(fields) + "\n").encode("utf-8")]
    keys = sorted(rows)
    for start in range(0, len(keys), 10000):
        lines = []
        for key in keys[start : start + 10000]:
            desc, url = rows[key]
            lines.append(f"{key[0]}\t{key[1]}\t{key[2]}\t{desc}\t{url}{tail}\n")
        chunks.append("".join(lines).encode("utf-8"))
    return b"".join(chunks)


def rows_of(items: list[IntelRow]) -> dict[tuple[str, str, str], tuple[str, str]]:
    """``render``'s input for a list of rows (the last of equal keys wins)."""
    return {tuple(row[:3]): tuple(row[3:]) for row in items}


def parse(data: bytes) -> tuple[list[dict[str, str]], list[str]]:
    """Rows of an intel file as dicts keyed by its ``#fields`` names, and the fields.

    Lines before the header, other ``#`` lines and blank lines are skipped, as Zeek does;
    like Zeek's reader, only LF ends a line.
    """
    fields: list[str] = []
    rows: list[dict[str, str]] = []
    for line in data.decode("utf-8", errors="replace").split("\n"):
        if line.startswith("#fields\t"):
            fields = line.split("\t")[1:]
            continue
        if not line.strip() or line.startswith("#") or not fields:
            continue
        cells = line.split("\t")
        rows.append(dict(zip(fields, cells)))
    return rows, fields


def read(path: str) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def count_rows(path: str) -> int | None:
    """The indicator lines of the intel file at ``path`` (neither blank nor ``#``), or None
    when there is no file."""
    try:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.strip() and not line.startswith(b"#"))
    except FileNotFoundError:
        return None


def same_content(path: str, data: bytes) -> bool:
    """Whether ``path`` holds exactly ``data``, read in slices (files can be large)."""
    try:
        if os.path.getsize(path) != len(data):
            return False
        view = memoryview(data)
        with open(path, "rb") as handle:
            offset = 0
            while True:
                block = handle.read(1 << 20)
                if not block:
                    return offset == len(data)
                if view[offset : offset + len(block)] != block:
                    return False
                offset += len(block)
    except FileNotFoundError:
        return False


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> bool:
    """Replace ``path`` with ``data`` (temp file, fsync, rename); False if already equal.

    A reader sees the old file or the new one, never a part; after a crash the old
    file is still there.
    """
    if same_content(path, data):
        return False
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".intel-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True
