# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One MISP -> Zeek intel / memcached sync, as the misp-sync systemd service runs it.

``python -m wlcg_soc_misp_sync --config /etc/wlcg-soc/misp-sync.json``. The package is
the collection's module_utils (misp, misp_ioc, memcache, zeek_intel) copied by the
misp_sync role. The API key is read from the file the configuration names, never from
the command line (``-`` reads it from standard input, where the unit connects the
root-only key file). A status file records the last success and the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from .memcache import MemcacheError
from .misp import MispError
from .misp_ioc import run
from .zeek_intel import read, write_atomic


def load_config(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        cfg = json.load(handle)
    if cfg["misp_key_file"] == "-":  # systemd's StandardInput=file: of the root-only key
        cfg["misp_key"] = sys.stdin.read().strip()
    else:
        with open(os.path.expandvars(cfg["misp_key_file"]), encoding="utf-8") as handle:
            cfg["misp_key"] = handle.read().strip()
    return cfg


def write_status(path: str, status: dict[str, Any]) -> None:
    """Merge ``status`` into the status file (atomically): the last success survives a failure."""
    try:
        merged = json.loads(read(path) or b"{}")
    except ValueError:
        merged = {}
    merged.update(status)
    write_atomic(path, (json.dumps(merged, indent=2, sort_keys=True) + "\n").encode())


def push(cfg: dict[str, Any]) -> dict[str, str]:
    """Send the intel file to every sensor; returns the receivers' answers or errors."""
    spec = cfg.get("push") or {}
    results = {}
    for target in spec.get("targets", []):
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
        try:
            with open(cfg["zeek_intel_path"], "rb") as intel:
                done = subprocess.run(cmd, stdin=intel, capture_output=True, text=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            results[target["name"]] = f"error: {exc}"
            continue
        answer = (done.stdout.strip() or done.stderr.strip()).splitlines()
        results[target["name"]] = (
            (answer[-1] if answer else "")
            if done.returncode == 0
            else (f"error (exit {done.returncode}): {' '.join(answer)[-300:]}")
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wlcg-soc-misp-sync", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON configuration file")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except (OSError, ValueError, KeyError) as exc:
        print(f"misp-sync: cannot read the configuration: {exc}", file=sys.stderr)
        return 2
    started = time.time()
    status_file = cfg.get("status_file")
    try:
        result = run(cfg)
    except (MispError, MemcacheError, OSError) as exc:
        print(f"misp-sync failed, previous intel and keys kept: {exc}", file=sys.stderr)
        if status_file:
            write_status(status_file, {"last_attempt": int(started), "last_error": str(exc)})
        return 1
    if cfg.get("zeek_intel_path") and (cfg.get("push") or {}).get("targets"):
        result["push"] = push(cfg)
    result["duration_s"] = round(time.time() - started, 3)
    print("misp-sync: " + json.dumps(result, sort_keys=True))
    failed = sorted(name for name, answer in result.get("push", {}).items() if answer.startswith("error"))
    if status_file:
        success = {"last_attempt": int(started), "last_success": int(started), "last_error": None}
        if failed:
            success["last_error"] = "push failed to " + ", ".join(failed)
        write_status(status_file, {**success, **result})
    if failed:
        print(f"misp-sync: push failed to {', '.join(failed)}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
