"""Real MISP events for tests: the CIRCL OSINT events in PyMISP's source distribution.

The PyMISP sdist on PyPI ships, under ``tests/``, MISP event exports written by CIRCL's
MISP (Orgc "CIRCL"). They are fetched at test time with
``pip download --no-deps --no-binary :all: pymisp==<pin from requirements-dev.txt>``
into ``~/.cache/wlcg-soc/pymisp-sdist/`` (reused when present) and never copied into
this repository.

Files used (``CIRCL_EVENT_FILES``; attribute counts include object attributes):

===============================================  =====  ==========  =========
file (in the sdist)                               attrs  published   notes
===============================================  =====  ==========  =========
tests/57c4445b-c548-4654-af0b-4be3950d210f.json      9  yes         Xorist
tests/reportlab_testfiles/HTML_event.json           13  yes         Cerber, malware-sample
tests/reportlab_testfiles/galaxy_1.json             10  no          objects, attribute tags
tests/reportlab_testfiles/image_event.json          79  yes         objects
tests/reportlab_testfiles/long_event.json          370  yes         ASERT report
tests/reportlab_testfiles/mainly_objects_1.json     74  yes         SamSam, objects only
tests/reportlab_testfiles/mainly_objects_2.json     63  yes         SamSam
tests/reportlab_testfiles/to_delete1.json           75  yes         attribute tags
tests/reportlab_testfiles/to_delete2.json          128  no          ip-dst|port, objects
tests/reportlab_testfiles/to_delete3.json           96  no          objects
tests/reportlab_testfiles/very_long_event.json      64  yes         ip-dst|port, objects
tests/mispevent_testfiles/existing_event.json      122  no          Sednit, bare (no "Event")
===============================================  =====  ==========  =========

``existing_event_edited.json`` (same uuid as ``existing_event.json``) and the non-CIRCL
or synthetic files in the sdist are not used.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import sdists

ROOT = Path(__file__).resolve().parents[2]

CIRCL_EVENT_FILES = (
    "tests/57c4445b-c548-4654-af0b-4be3950d210f.json",
    "tests/reportlab_testfiles/HTML_event.json",
    "tests/reportlab_testfiles/galaxy_1.json",
    "tests/reportlab_testfiles/image_event.json",
    "tests/reportlab_testfiles/long_event.json",
    "tests/reportlab_testfiles/mainly_objects_1.json",
    "tests/reportlab_testfiles/mainly_objects_2.json",
    "tests/reportlab_testfiles/to_delete1.json",
    "tests/reportlab_testfiles/to_delete2.json",
    "tests/reportlab_testfiles/to_delete3.json",
    "tests/reportlab_testfiles/very_long_event.json",
    "tests/mispevent_testfiles/existing_event.json",
)


def pymisp_version() -> str:
    """The PyMISP version pinned in requirements-dev.txt."""
    text = (ROOT / "requirements-dev.txt").read_text()
    match = re.search(r"^pymisp==([^\s;#]+)", text, re.M | re.I)
    if not match:
        raise RuntimeError("requirements-dev.txt must pin pymisp (pymisp==X.Y.Z)")
    return match.group(1)


def sdist_path() -> Path:
    """The PyMISP sdist tarball, downloaded from PyPI with pip when not cached."""
    return sdists.sdist_path("pymisp", pymisp_version())


def tests_dir() -> Path:
    """The sdist's ``tests/`` JSON files, extracted once next to the tarball."""
    return sdists.extracted("pymisp", pymisp_version(), "tests", (".json",))


def _shift(event: dict, delta: int) -> None:
    def move(holder: dict, key: str) -> None:
        value = holder.get(key)
        if value not in (None, "", 0, "0"):
            holder[key] = str(int(value) + delta)

    move(event, "timestamp")
    move(event, "publish_timestamp")
    for attr in event.get("Attribute") or []:
        move(attr, "timestamp")
    for obj in event.get("Object") or []:
        move(obj, "timestamp")
        for attr in obj.get("Attribute") or []:
            move(attr, "timestamp")


def load_circl_events(rebase_to: int | None = None) -> list[dict]:
    """The CIRCL events as ``{"Event": {...}}`` dicts, in ``CIRCL_EVENT_FILES`` order.

    With ``rebase_to`` (epoch seconds), each event is moved in time so that its
    publish_timestamp (its timestamp when never published) equals ``rebase_to``; all
    its timestamps move by the same amount. The events are from 2016-2019, so time
    window filters such as ``publish_timestamp='30d'`` need this.
    """
    base = tests_dir().parent
    events = []
    for name in CIRCL_EVENT_FILES:
        data = json.loads((base / name).read_text())
        event = data.get("Event", data)
        if rebase_to is not None:
            anchor = int(event.get("publish_timestamp") or 0) or int(event.get("timestamp") or 0)
            _shift(event, rebase_to - anchor)
        events.append({"Event": event})
    return events


def describe_types_path() -> Path:
    """``pymisp/data/describeTypes.json`` of the installed pymisp package (the wheel)."""
    import pymisp

    path = Path(pymisp.__file__).resolve().parent / "data" / "describeTypes.json"
    if not path.is_file():
        raise FileNotFoundError(path)
    return path
