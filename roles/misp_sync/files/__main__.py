# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One MISP -> Zeek intel / memcached sync, as the misp-sync systemd service runs it.

``python -m wlcg_soc_misp_sync --config /etc/wlcg-soc/misp-sync.json``. The package is
the collection's module_utils (misp, misp_ioc, misp_memcached, memcache, zeek_intel)
and this directory's heartbeat copied by the misp_sync role. The secrets (the MISP key, the
heartbeat's password) are read from the files the configuration names, never from the
command line (``-`` reads the next line of standard input, where the unit connects the
root-only key file: the key, then the password). A status file records the last success
and the counts, and the last error of any kind. With a ``heartbeat`` section, each run
then writes one document to the search tier (heartbeat.py); a heartbeat that fails is
logged and kept in the status file (``heartbeat_error``), never the run's failure.

An export much smaller than the last one is refused (``misp_ioc.check_drop``). To accept
it once: ``--force``, or create the configuration's ``force_file`` (the role's one-shot
command), which the next run reads and removes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .heartbeat import beat
from .memcache import MemcacheError
from .misp import MispError
from .misp_ioc import DropRefused, IntelWriteError, run
from .zeek_intel import read, write_atomic

# Longest error kept in status.json and printed to the journal.
MESSAGE_MAX = 500
# Pushes to the sensors when the configuration does not say (the role always does).
PUSH_TIMEOUT = 120
PUSH_PARALLEL = 8


def bounded(text: str, limit: int = MESSAGE_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 15] + " ... (cut)"


def unexpected(exc: BaseException) -> str:
    """An unforeseen failure, by type and place: its text may quote MISP's data."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    return f"unexpected {type(exc).__name__}{where}"


def read_secret(path: str) -> str:
    with open(os.path.expandvars(path), encoding="utf-8") as handle:
        return handle.readline().rstrip("\r\n")


def load_config(path: str) -> dict[str, Any]:
    """The configuration, with the MISP key and the heartbeat's password: each from its file,
    or, where the file is ``-``, from the next line of standard input (systemd's
    StandardInput=file: of the root-only key file)."""
    with open(path, encoding="utf-8") as handle:
        cfg = json.load(handle)
    heartbeat = cfg.get("heartbeat")
    sources = [cfg["misp_key_file"]] + ([heartbeat["password_file"]] if heartbeat else [])
    lines = iter(sys.stdin.read().splitlines() if "-" in sources else [])
    secrets = [next(lines, "") if source == "-" else read_secret(source) for source in sources]
    cfg["misp_key"] = secrets[0].strip()
    if heartbeat:
        heartbeat["password"] = secrets[1]
    return cfg


def read_status(path: str | None) -> dict[str, Any]:
    try:
        status = json.loads(read(path) or b"{}") if path else {}
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def write_status(path: str, status: dict[str, Any]) -> None:
    """Merge ``status`` into the status file (atomically): the last success survives a failure."""
    merged = read_status(path)
    merged.update(status)
    write_atomic(path, (json.dumps(merged, indent=2, sort_keys=True) + "\n").encode())


def fail(status_file: str | None, started: float, message: str, code: int) -> int:
    message = bounded(message)
    print(f"misp-sync: {message}", file=sys.stderr)
    if status_file:
        try:
            write_status(status_file, {"last_attempt": int(started), "last_error": message})
        except OSError as exc:
            print(f"misp-sync: cannot write {status_file}: {exc}", file=sys.stderr)
    return code


def push_one(spec: dict[str, Any], target: dict[str, Any], intel_path: str) -> str:
    """Send the intel file to one sensor; the receiver's answer, or why not."""
    cmd = [
        "ssh",
        "-i", spec["identity"],
        "-p", str(target["port"]),
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={spec['known_hosts']}",
        "-o", "ConnectTimeout=20",
        f"{target['user']}@{target['host']}",
        "intel-receive",
    ]  # fmt: skip
    timeout = spec.get("timeout", PUSH_TIMEOUT)
    try:
        with open(intel_path, "rb") as intel:
            done = subprocess.run(cmd, stdin=intel, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"error: no answer within {timeout} seconds"
    except OSError as exc:
        return f"error: {exc}"
    answer = (done.stdout.strip() or done.stderr.strip()).splitlines()
    if done.returncode == 0:
        return answer[-1] if answer else ""
    return f"error (exit {done.returncode}): {' '.join(answer)[-300:]}"


def push(cfg: dict[str, Any]) -> dict[str, str]:
    """Send the intel file to every sensor, ``parallel`` at a time; the answers by sensor.

    In parallel, so that the run's length (the unit's TimeoutStartSec) grows with the
    sensors divided by ``parallel``, not with each sensor's timeout in turn.
    """
    spec = cfg.get("push") or {}
    targets = spec.get("targets", [])
    with ThreadPoolExecutor(max_workers=max(1, min(len(targets), spec.get("parallel", PUSH_PARALLEL)))) as pool:
        answers = pool.map(lambda target: push_one(spec, target, cfg["zeek_intel_path"]), targets)
        return {target["name"]: answer for target, answer in zip(targets, answers, strict=True)}


def sync(cfg: dict[str, Any], forced: bool, started: float) -> tuple[int, dict[str, Any]]:
    """One run, recorded in the status file: its exit code, and its counts when it got as far
    as the export (a success, or a failed push)."""
    status_file = cfg.get("status_file")
    force_file = cfg.get("force_file")
    force = forced or bool(force_file and os.path.exists(force_file))
    last = read_status(status_file)
    previous_keys = last.get("memcached_keys") if last.get("last_success") else None
    try:
        result = run(cfg, force=force, previous_keys=previous_keys if isinstance(previous_keys, int) else None)
    except DropRefused as exc:
        return fail(status_file, started, f"export refused: {exc}", 4), {}
    except (MispError, ValueError) as exc:
        return fail(status_file, started, f"failed, nothing written (previous intel and keys kept): {exc}", 1), {}
    except (MemcacheError, IntelWriteError) as exc:
        return fail(status_file, started, f"failed: {exc}", 1), {}
    except OSError as exc:
        return fail(status_file, started, f"failed: {exc}", 1), {}
    except Exception as exc:  # monitoring reads status.json, whatever failed
        return fail(status_file, started, f"failed, {unexpected(exc)}", 1), {}
    if force and force_file:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(force_file)
    if cfg.get("zeek_intel_path") and (cfg.get("push") or {}).get("targets"):
        result["push"] = push(cfg)
    result["forced"] = force
    result["duration_s"] = round(time.time() - started, 3)
    print("misp-sync: " + json.dumps(result, sort_keys=True))
    failed = sorted(name for name, answer in result.get("push", {}).items() if answer.startswith("error"))
    if status_file:
        success = {"last_attempt": int(started), "last_success": int(started), "last_error": None}
        if failed:
            success["last_error"] = bounded("push failed to " + ", ".join(failed))
        write_status(status_file, {**success, **result})
    if failed:
        print(f"misp-sync: push failed to {', '.join(failed)}", file=sys.stderr)
        return 3, result
    return 0, result


def heartbeat(cfg: dict[str, Any], code: int, counts: dict[str, Any], started: float) -> None:
    """Write the run's heartbeat; a failure goes to the journal and the status file only."""
    status_file = cfg.get("status_file")
    error, detour = beat(cfg["heartbeat"], read_status(status_file), code, counts, started)
    if detour:
        print(f"misp-sync: heartbeat {bounded(detour)}", file=sys.stderr)
    if error:
        error = bounded(error)
        print(f"misp-sync: heartbeat not written: {error}", file=sys.stderr)
    if status_file:
        try:
            write_status(status_file, {"heartbeat_error": error})
        except OSError as exc:
            print(f"misp-sync: cannot write {status_file}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wlcg-soc-misp-sync", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON configuration file")
    parser.add_argument("--force", action="store_true", help="accept an export much smaller than the last one")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except (OSError, ValueError, KeyError) as exc:
        print(f"misp-sync: cannot read the configuration: {bounded(str(exc))}", file=sys.stderr)
        return 2
    started = time.time()
    code, counts = sync(cfg, args.force, started)
    if cfg.get("heartbeat"):
        heartbeat(cfg, code, counts, started)
    return code


if __name__ == "__main__":
    sys.exit(main())
