# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sync's heartbeat: one document per run in the search tier, where the alerting tier
sees a sync that is stale or failing.

``beat`` builds the document from the run's exit code, its counts and status.json, and writes it
with ``PUT /<data stream>/_create/<id>`` (op_type create, which a data stream requires and the
SOC's writer role allows) to the first host that takes it, within one deadline for all of
them. It never raises: it returns why no host took the document (None when one did), and
which hosts failed before one took it (None when none did).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import requests

# What the document carries of the counts of a run that got as far as the export.
COUNTS = (
    "attributes",
    "pages",
    "intel_rows",
    "intel",
    "intel_changed",
    "memcached_keys",
    "memcached",
    "memcached_keys_changed",
    "forced",
)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def document(
    spec: dict[str, Any], status: dict[str, Any], code: int, counts: dict[str, Any], started: float, ended: float
) -> dict[str, Any]:
    """ECS fields, and the sync's own under ``misp_sync``: exit code, last success (status.json)
    and the run's counts."""
    sync: dict[str, Any] = {"exit_code": code}
    if status.get("last_success"):
        sync["last_success"] = iso(status["last_success"])
    sync.update({name: counts[name] for name in COUNTS if name in counts})
    doc: dict[str, Any] = {
        "@timestamp": iso(ended),
        "event": {
            "kind": "metric",
            "module": "misp_sync",
            "dataset": "misp_sync.status",
            "outcome": "success" if code == 0 else "failure",
            "start": iso(started),
            "end": iso(ended),
            "duration": round((ended - started) * 1e9),
        },
        "host": {"name": spec["host_name"]},
        "service": {"type": "misp_sync"},
        "misp_sync": sync,
    }
    if code != 0:
        doc["error"] = {"message": status.get("last_error") or f"exit code {code}"}
    return doc


def failure(exc: requests.RequestException) -> str:
    """The underlying reason (urllib3 wraps it in a retry error naming the URL)."""
    cause = exc.args[0] if exc.args else exc
    return f"{type(exc).__name__}: {getattr(cause, 'reason', cause)}"


def refusal(resp: requests.Response) -> str:
    try:
        error = resp.json().get("error")
    except (ValueError, AttributeError):
        error = None
    text = f"{error.get('type')}: {error.get('reason')}" if isinstance(error, dict) else (error or resp.text)
    return f"HTTP {resp.status_code}: {' '.join(str(text).split())[:200]}"


def post(spec: dict[str, Any], doc: dict[str, Any], deadline: float) -> tuple[str | None, list[str]]:
    """(the host that took the document or None, each failed host's reason), hosts in turn."""
    # One id for every host: a host that stored the document but answered too late makes the
    # next one answer 409 instead of keeping a second copy.
    path = f"{spec['data_stream']}/_create/{uuid.uuid4().hex}"
    body = json.dumps(doc).encode()
    failed = []
    for host in spec["hosts"]:
        try:
            resp = requests.put(
                f"{host.rstrip('/')}/{path}",
                data=body,
                headers={"Content-Type": "application/json"},
                auth=(spec["username"], spec["password"]),
                verify=spec["ca_path"],
                timeout=max(deadline - time.monotonic(), 0.1),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            failed.append(f"{host}: {failure(exc)}")
            continue
        if resp.status_code in (200, 201, 409):
            return host, failed
        failed.append(f"{host}: {refusal(resp)}")
    return None, failed


def beat(
    spec: dict[str, Any], status: dict[str, Any], code: int, counts: dict[str, Any], started: float
) -> tuple[str | None, str | None]:
    """Write the run's heartbeat: (why it is not written, the hosts that failed before one took
    it). Bounded by ``spec["timeout"]`` seconds however the hosts behave (a thread of its own,
    left behind when late)."""
    timeout = float(spec["timeout"])
    outcome: list[tuple[str | None, list[str]]] = []

    def attempt() -> None:
        try:
            doc = document(spec, status, code, counts, started, time.time())
            outcome.append(post(spec, doc, time.monotonic() + timeout))
        except Exception as exc:  # the heartbeat never fails the run
            outcome.append((None, [f"unexpected {type(exc).__name__}"]))

    worker = threading.Thread(target=attempt, name="heartbeat", daemon=True)
    worker.start()
    worker.join(timeout)
    password = spec.get("password")

    def redacted(text: str) -> str:  # in case a server quotes the request
        return text.replace(password, "***") if password else text

    if not outcome:
        return f"no search host took the document within {timeout:g} seconds", None
    taken, failed = outcome[0]
    if not taken:
        return redacted("; ".join(failed)), None
    return None, redacted(f"written to {taken} after {'; '.join(failed)}") if failed else None
