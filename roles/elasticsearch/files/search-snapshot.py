# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Take one snapshot of the SOC's indices and apply the retention (wlcg.soc elasticsearch role).

Run by a systemd timer on one node of the cluster, the same on Elasticsearch and OpenSearch:

1. ``PUT _snapshot/<repository>/<prefix><UTC time>-<random>?wait_for_completion=true``; anything but a
   snapshot in state SUCCESS fails the run, and nothing is deleted then.
2. The repository's snapshots of that prefix (``GET _snapshot/<repository>/<prefix>*``): the
   newest ``min_count`` successful ones are kept whatever their age; any other is deleted
   once it is older than ``retention_days``.

The configuration is a JSON file (``--config``); the credentials (``user:password``) come on
standard input, which systemd opens from a root-only file. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import ssl
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import quote

DAY_MS = 86_400_000
REQUIRED = ("url", "repository", "indices", "prefix", "retention_days", "min_count")


class Failure(Exception):
    pass


class Cluster:
    def __init__(self, url: str, ca: str | None, credentials: str, timeout: float):
        self.url = url.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca) if url.startswith("https:") else None
        self.headers = {"Content-Type": "application/json"}
        if credentials:
            self.headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}/{path}", data=data, method=method, headers=self.headers)  # noqa: S310 - the configured URL
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.context) as resp:  # noqa: S310
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise Failure(f"{method} /{path}: HTTP {exc.code} {detail}") from None
        except (OSError, ValueError) as exc:
            raise Failure(f"{method} /{path}: {exc}") from None


def take(cluster: Cluster, config: dict, now_ms: int) -> str:
    # The time for people, a random part so that two runs in one second do not collide (as SLM does).
    name = config["prefix"] + time.strftime("%Y.%m.%d-%H%M%S-", time.gmtime(now_ms / 1000)) + secrets.token_hex(3)
    repo = quote(config["repository"], safe="")
    answer = cluster.call(
        "PUT",
        f"_snapshot/{repo}/{quote(name, safe='')}?wait_for_completion=true",
        {"indices": ",".join(config["indices"]), "ignore_unavailable": True, "partial": False},
    )
    snapshot = answer.get("snapshot") or {}
    if snapshot.get("state") != "SUCCESS":
        raise Failure(f"snapshot {name} ended {snapshot.get('state')!r}: {json.dumps(snapshot.get('failures'))[:500]}")
    return name


def expired(snapshots: list[dict], retention_days: float, min_count: int, now_ms: int) -> list[str]:
    """Names to delete: older than the retention, except the newest ``min_count`` successful ones."""
    # The clusters' start times come from a clock cached for ~200 ms: runs close together can
    # share one, so the end time and then the name (UTC time first) break ties.
    newest = sorted(
        snapshots,
        key=lambda s: (s.get("start_time_in_millis", 0), s.get("end_time_in_millis", 0), s["snapshot"]),
        reverse=True,
    )
    keep = [s["snapshot"] for s in newest if s.get("state") == "SUCCESS"][:min_count]
    limit = now_ms - retention_days * DAY_MS
    return [
        s["snapshot"] for s in newest if s["snapshot"] not in keep and s.get("start_time_in_millis", now_ms) < limit
    ]


def run(config: dict, credentials: str) -> str:
    cluster = Cluster(config["url"], config.get("ca"), credentials, float(config.get("timeout", 3600)))
    now_ms = int(time.time() * 1000)
    name = take(cluster, config, now_ms)
    repo = quote(config["repository"], safe="")
    listed = cluster.call("GET", f"_snapshot/{repo}/{quote(config['prefix'], safe='')}*")
    gone = expired(listed.get("snapshots") or [], float(config["retention_days"]), int(config["min_count"]), now_ms)
    for old in gone:
        cluster.call("DELETE", f"_snapshot/{repo}/{quote(old, safe='')}")
    return f"snapshot {name} taken in {config['repository']}; deleted {len(gone)} expired: {', '.join(gone) or '-'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    try:
        with open(args.config, encoding="utf-8") as handle:
            config = json.load(handle)
        missing = [
            k for k in ("url", "repository", "indices", "prefix", "retention_days", "min_count") if k not in config
        ]
        if missing:
            raise Failure(f"{args.config} lacks {', '.join(missing)}")
        print(run(config, sys.stdin.readline().strip()), flush=True)
    except (Failure, OSError, ValueError) as exc:
        print(f"search snapshot failed: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
