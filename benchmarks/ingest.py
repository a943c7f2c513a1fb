# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of the ECS ingest pipelines (roles/elasticsearch/files/ingest/) against raw _bulk.

Not a test: it prints figures, compares them with a baseline measured in the same run (the
same documents bulk-indexed into a data stream without a pipeline) and says whether the
goal (pipelined >= 0.5x the raw rate) is met. Nothing is asserted on time; what is checked
is that every document arrived and that none failed in the pipelines.

Processes (all on 127.0.0.1): one OpenSearch test node (tests/search/engine.py) and a small
watchdog that stops the node if the benchmark itself is killed. Both are stopped at the end,
on failure and on Ctrl-C.

Run ``python benchmarks/ingest.py --help`` for the options; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from code_state import code_state

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
ROLE = ROOT / "roles" / "elasticsearch"
INGEST = ROLE / "files" / "ingest"
MAPPINGS = ROLE / "files" / "ecs-mappings.json"
# Only the OpenSearch test node has ingest-common and painless (engine.py): the pipelines
# cannot load into the test Elasticsearch.
ENGINE = "opensearch"
FAMILY = "zeek"  # the index family whose default pipeline is measured (role defaults)
DEFAULT_EVENTS = 100_000
QUICK_EVENTS = 10_000
DEFAULT_BULK = 1_000
DEFAULT_CLIENTS = 2
DEFAULT_HEAP = "1g"
DEFAULT_STEP_EVENTS = 20_000
QUICK_STEP_EVENTS = 5_000
GOAL_RATIO = 0.5
READ_AT = "2026-12-06T00:00:00Z"  # when the pipelines tier read the line (as the tests)
ACTION = '{"create":{}}\n'
# a. through the family's default pipeline; b. the same documents without one (the baseline);
# c. what the pipeline makes, indexed without one (what indexing the ECS documents costs).
MODES = ("pipelined", "raw", "ecs")
STREAM = {"pipelined": "bench-pipelined-", "raw": "bench-raw-", "ecs": "bench-ecs-"}
STEPS_STREAM = "bench-steps-"
BULK_FILTER = "filter_path=took,ingest_took,errors,items.*.error"
# Others' CPU above this share of the machine during a run: its figures are suspect.
NOISE_SHARE = 0.10

# Stops the node's process group if the benchmark dies without stopping it (even by
# SIGKILL: its stdin then reaches EOF); "done" on stdin means the node is already stopped.
WATCHDOG = r"""
import os, shutil, signal, sys, time
pgid, workdir = int(sys.argv[1]), sys.argv[2]
signal.signal(signal.SIGINT, signal.SIG_IGN)
if sys.stdin.readline().strip() == "done":
    sys.exit(0)
for sig in (signal.SIGTERM, signal.SIGKILL):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        break
    for _ in range(300):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
shutil.rmtree(workdir, ignore_errors=True)
"""


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- CPU accounting


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot (/proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def group_cpu(pgid: int) -> float:
    """utime + stime of every live process in a process group (the node's launcher and JVM)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class CpuWindow:
    """CPU of the node, of this process and of everything else over one timed window."""

    def __init__(self, node_pgid: int):
        self.pgid = node_pgid

    def __enter__(self) -> CpuWindow:
        self.load = [os.getloadavg()[0]]
        self._node = group_cpu(self.pgid)
        self._own = time.process_time()
        self._busy, self._steal = machine_cpu()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.wall = time.perf_counter() - self._start
        busy, steal = machine_cpu()
        self.node = group_cpu(self.pgid) - self._node
        self.own = time.process_time() - self._own
        self.steal = steal - self._steal
        # Jiffies and the per-process counters tick separately: a few hundredths either way.
        self.others = max(0.0, busy - self._busy - self.node - self.own)
        self.load.append(os.getloadavg()[0])

    def result(self) -> dict[str, Any]:
        capacity = self.wall * (os.cpu_count() or 1)
        return {
            "wall": self.wall,
            "node_cpu": self.node,
            "client_cpu": self.own,
            "others_cpu": self.others,
            "steal": self.steal,
            "others_share": (self.others + self.steal) / capacity if capacity else 0.0,
            "load": self.load,
        }


# --------------------------------------------------------------------------- pipelines, data


def pipeline_files() -> list[Path]:
    """What the role loads (tasks/templates.yml): the engine-neutral pipelines and this engine's."""
    return sorted(INGEST.glob("*.json")) + sorted((INGEST / ENGINE).glob("*.json"))


def family_pipeline() -> str:
    """The default pipeline the role sets for the family (defaults/main.yml)."""
    import yaml

    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    for family in defaults["elasticsearch_index_families"]:
        if family["name"] == FAMILY and family.get("pipeline"):
            return family["pipeline"]
    raise BenchError(f"the {FAMILY} family has no default pipeline in {ROLE / 'defaults/main.yml'}")


def processor_label(pipeline: dict[str, Any], index: int) -> str:
    """A processor as it reads in its pipeline: type, then its tag or the field it works on."""
    try:
        kind, conf = next(iter(pipeline["processors"][index].items()))
    except (IndexError, StopIteration, AttributeError):
        return f"#{index}"
    what = conf.get("tag") or conf.get("field") or conf.get("name") or ""
    return f"{kind} {what}".strip() + (" (if)" if "if" in conf else "")


def doc_json(line: str, dataset: str) -> str:
    # As the pipelines tier delivers a Zeek line (tests/unit/test_ingest_pipelines.py).
    return json.dumps({"message": line, "event": {"dataset": dataset}, "@timestamp": READ_AT})


def bulk_bodies(docs: list[str], events: int, bulk_size: int) -> list[bytes]:
    """``events`` documents, the real ones repeated in turn, as _bulk bodies of ``bulk_size``."""
    items = [ACTION + doc + "\n" for doc in docs]
    return [
        "".join(items[i % len(items)] for i in range(start, min(events, start + bulk_size))).encode()
        for start in range(0, events, bulk_size)
    ]


def record_ts(line: str) -> float:
    with contextlib.suppress(ValueError, TypeError):
        ts = json.loads(line).get("ts")
        if isinstance(ts, int | float):
            return float(ts)
    return 0.0


# --------------------------------------------------------------------------- ingest statistics


def ingest_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per pipeline and per processor (by position): what one run added to _nodes/stats/ingest."""
    out: dict[str, Any] = {}
    for name, now in after.get("pipelines", {}).items():
        then = before.get("pipelines", {}).get(name, {})
        count = now.get("count", 0) - then.get("count", 0)
        if count <= 0:
            continue
        procs = []
        old = then.get("processors", [])
        for i, entry in enumerate(now.get("processors", [])):
            key, value = next(iter(entry.items()))
            prev = next(iter(old[i].values()))["stats"] if i < len(old) else {}
            stats = value.get("stats", {})
            procs.append(
                {
                    "index": i,
                    "key": key,
                    "type": value.get("type", ""),
                    "count": stats.get("count", 0) - prev.get("count", 0),
                    "ms": stats.get("time_in_millis", 0) - prev.get("time_in_millis", 0),
                    "failed": stats.get("failed", 0) - prev.get("failed", 0),
                }
            )
        out[name] = {
            "count": count,
            "ms": now.get("time_in_millis", 0) - then.get("time_in_millis", 0),
            "failed": now.get("failed", 0) - then.get("failed", 0),
            "processors": procs,
        }
    return out


def add_ingest(total: dict[str, Any], delta: dict[str, Any]) -> None:
    for name, pipe in delta.items():
        into = total.setdefault(name, {"count": 0, "ms": 0, "failed": 0, "processors": []})
        for key in ("count", "ms", "failed"):
            into[key] += pipe[key]
        for proc in pipe["processors"]:
            while len(into["processors"]) <= proc["index"]:
                into["processors"].append({"count": 0, "ms": 0, "failed": 0})
            slot = into["processors"][proc["index"]]
            slot.update(index=proc["index"], key=proc["key"], type=proc["type"])
            for key in ("count", "ms", "failed"):
                slot[key] += proc[key]


def batch_sizes(events: int, bulk_size: int) -> list[int]:
    return [min(bulk_size, events - start) for start in range(0, events, bulk_size)]


def engine_costs(
    ingest: dict[str, Any], router: str, definitions: dict[str, Any], ingest_took_ms: float, sizes: list[int]
) -> dict[str, Any] | None:
    """The router's time per processor as the engine reports it, made comparable.

    OpenSearch 2.14+ runs a _bulk through its default pipeline as one batch (``batch_size``
    defaults to the whole request): the pipeline and each of its processors that has no
    ``if`` then record the batch's time once per document, i.e. times the documents in the
    batch. Detected from the figures (the pipeline's time far above the _bulk answers'
    ``ingest_took``) and divided back (by sum(b^2)/sum(b) over the batch sizes b). A
    processor with an ``if`` keeps a metric of its own, timed per document and truncated to
    whole milliseconds, so it reads ~0 for anything under 1 ms: those are not shown, only
    their sum by difference; the "steps" measurement has them one by one.
    """
    top = ingest.get(router)
    if not top or not top["count"]:
        return None
    batched = ingest_took_ms > 0 and top["ms"] > 2 * ingest_took_ms
    factor = sum(b * b for b in sizes) / sum(sizes) if batched else 1.0
    rows = []
    for proc in top["processors"]:
        if proc.get("type") == "conditional" or not proc["count"]:
            continue
        label = processor_label(definitions.get(router, {}), proc["index"])
        rows.append({"where": label, "ms": proc["ms"] / factor})
    router_ms = top["ms"] / factor
    rest = router_ms - sum(r["ms"] for r in rows)
    conditional = [
        processor_label(definitions.get(router, {}), p["index"])
        for p in top["processors"]
        if p.get("type") == "conditional" and p["count"]
    ]
    conditions = sum("if" in next(iter(p.values())) for p in definitions.get(router, {}).get("processors", []))
    rows.append({"where": f"with an if: {', '.join(conditional)}; {conditions} conditions", "ms": rest})
    return {
        "events": top["count"],
        "recorded_ms": top["ms"],
        "batched": batched,
        "factor": factor,
        "router_ms": router_ms,
        "ingest_took_ms": ingest_took_ms,
        "rows": sorted(rows, key=lambda r: -r["ms"]),
    }


# --------------------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.node: Any = None
        self.watchdog: subprocess.Popen | None = None
        self.results: dict[str, Any] = {"options": vars(args).copy(), "runs": []}
        self.ingest: dict[str, dict[str, Any]] = {}  # unit -> accumulated ingest stats

    # ----------------------------------------------------------- node
    def start_node(self) -> None:
        sys.path.insert(0, str(TESTS))
        from search.engine import SearchNode

        self.node = SearchNode(ENGINE, heap=self.args.heap)
        print(f"Starting an OpenSearch {self.node.version} test node (heap {self.args.heap}) ...", flush=True)
        self.node.start()
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(self.node.proc.pid), str(self.node.workdir)],
            stdin=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C in the terminal is for the benchmark, not for it
        )
        self.node.wait()
        split = urlsplit(self.node.url)
        self.host, self.port = split.hostname or "127.0.0.1", split.port or 9200
        _status, root = self.call("GET", "/")
        _status, jvm = self.call("GET", "_nodes/_local/jvm")
        info = next(iter(jvm["nodes"].values()))["jvm"]
        self.results["node"] = {
            "url": self.node.url,
            "version": root["version"]["number"],
            "heap": self.args.heap,
            "heap_max_bytes": info["mem"]["heap_max_in_bytes"],
            "jvm": f"{info.get('vm_name', '?')} {info.get('version', '?')}",
            "ready_after": self.node.ready_after,
        }
        n = self.results["node"]
        print(
            f"  OpenSearch {n['version']} at {n['url']}: ready after {n['ready_after']:.1f} s, heap "
            f"{n['heap_max_bytes'] / 2**20:.0f} MiB (-Xms{self.args.heap} -Xmx{self.args.heap}), {n['jvm']}"
        )

    def cleanup(self) -> None:
        stopped = False
        if self.node is not None:
            with contextlib.suppress(Exception):
                self.node.stop()
                stopped = True
        if self.watchdog is not None:
            assert self.watchdog.stdin is not None
            with contextlib.suppress(OSError):
                if stopped:
                    self.watchdog.stdin.write("done\n")
                self.watchdog.stdin.close()  # not stopped: EOF, and the watchdog stops the node
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.watchdog.wait(timeout=90)
            self.watchdog = None

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> tuple[int, Any]:
        status, answer = self.node.call(method, path, body)
        if status not in ok:
            raise BenchError(f"{method} {path}: {status} {json.dumps(answer)[:2000]}")
        return status, answer

    # ----------------------------------------------------------- setup
    def load_pipelines(self) -> None:
        self.router = family_pipeline()
        self.definitions: dict[str, Any] = {}
        digest = hashlib.sha256()
        for path in pipeline_files():
            raw = path.read_bytes()
            digest.update(path.name.encode() + b"\0" + raw)
            self.definitions[path.stem] = json.loads(raw)
            self.call("PUT", f"_ingest/pipeline/{path.stem}", self.definitions[path.stem])
        if self.router not in self.definitions:
            raise BenchError(f"the family's pipeline {self.router} is not among {sorted(self.definitions)}")
        # What the family's documents go through: the router and what it calls, transitively.
        reached, todo = set(), [self.router]
        while todo:
            name = todo.pop()
            if name in reached or name not in self.definitions:
                continue
            reached.add(name)
            todo += [p["pipeline"]["name"] for p in self.definitions[name].get("processors", []) if "pipeline" in p]
        others = sorted(set(self.definitions) - reached)
        self.code = code_state(ROOT, "roles/elasticsearch/files")  # as loaded: the files may change during the run
        self.results["pipelines"] = {
            "loaded": sorted(self.definitions),
            "not_reached": others,
            "sha256": digest.hexdigest()[:12],
        }
        print(f"  {len(self.definitions)} pipelines loaded ({', '.join(sorted(self.definitions))})")
        if others:
            print(f"  not measured, not reached from {self.router}: {', '.join(others)}")
        # The mappings as the role applies them; one template per mode, alike but for the pipeline.
        self.call("PUT", "_component_template/wlcg-soc-ecs-mappings", json.loads(MAPPINGS.read_text()))
        for mode in MODES:
            settings: dict[str, Any] = {
                "index.number_of_shards": 1,  # the role's default (elasticsearch_index_shards)
                "index.number_of_replicas": 0,  # one node
                "index.refresh_interval": "-1",  # refreshed once, after the timed load
            }
            if mode == "pipelined":
                settings["index.default_pipeline"] = self.router
            template = {
                "index_patterns": [f"{STREAM[mode]}*"],
                "data_stream": {},
                "priority": 500,
                "composed_of": ["wlcg-soc-ecs-mappings"],
                "template": {"settings": settings},
            }
            self.call("PUT", f"_index_template/bench-{mode}", template)
        # The steps' documents are half-made (zeek.raw with Zeek's own field names, which clash
        # between logs): kept in _source only, so that indexing them cannot fail.
        steps_template = {
            "index_patterns": [f"{STEPS_STREAM}*"],
            "data_stream": {},
            "priority": 500,
            "template": {
                "settings": {
                    "index.number_of_shards": 1,
                    "index.number_of_replicas": 0,
                    "index.refresh_interval": "-1",
                },
                "mappings": {
                    "dynamic": False,
                    "properties": {
                        "@timestamp": {"type": "date"},
                        "event": {"properties": {"kind": {"type": "keyword"}}},
                    },
                },
            },
        }
        self.call("PUT", "_index_template/bench-steps", steps_template)
        print(f"  index templates bench-pipelined (index.default_pipeline {self.router}) and bench-raw (none)")

    def load_data(self) -> None:
        """The real records per dataset that has a pipeline of its own (and the mixed stream)."""
        import zeek_logs

        logs = zeek_logs.json_logs()
        prefix = self.router + "."
        base = self.router.removeprefix("wlcg-soc-")  # wlcg-soc-zeek -> zeek.<x> datasets
        routed = sorted(f"{base}.{name.removeprefix(prefix)}" for name in self.definitions if name.startswith(prefix))
        by_dataset = {zeek_logs.dataset(log): log for log in logs}
        self.datasets: dict[str, list[str]] = {}
        missing, built = [], []
        for dataset in routed:
            log = by_dataset.get(dataset)
            lines = logs.get(log, []) if log else []
            if not lines:
                # A log no corpus publishes may have a builder in tests/zeek_logs.py (intel_log).
                short = dataset.removeprefix(f"{base}.")
                builder = getattr(zeek_logs, f"{short}_log", None)
                if builder is not None:
                    with contextlib.suppress(Exception):
                        lines = builder(logs)
                    if lines:
                        built.append(f"{dataset} (zeek_logs.{short}_log)")
            if lines:
                self.datasets[dataset] = lines
            else:
                missing.append(dataset)
        wanted = self.args.datasets
        if wanted:
            names = {d.strip() for d in wanted.split(",") if d.strip()}
            self.datasets = {
                d: v for d, v in self.datasets.items() if d in names or d.removeprefix(f"{base}.") in names
            }
            unknown = names - set(self.datasets) - {d.removeprefix(f"{base}.") for d in self.datasets}
            if unknown:
                raise BenchError(f"--datasets: no data or no pipeline for {sorted(unknown)}")
        if not self.datasets:
            raise BenchError("no dataset with both a pipeline and real records")
        unrouted = sorted(log for log, lines in logs.items() if lines and zeek_logs.dataset(log) not in routed)
        sources = {k: v for k, v in vars(zeek_logs).items() if k.endswith("_VERSION") and isinstance(v, str)}
        self.results["data"] = {
            "records": {d: len(v) for d, v in self.datasets.items()},
            "built": built,
            "pipeline_without_data": missing,
            "logs_without_pipeline": unrouted,
            "sources": sources,
        }
        records = ", ".join(f"{d.removeprefix(base + '.')} {len(v)}" for d, v in self.datasets.items())
        print(f"  real records per dataset ({', '.join(f'{k} {v}' for k, v in sources.items())}): {records}")
        if built:
            print(f"  built from real traffic by tests/zeek_logs.py: {', '.join(built)}")
        if missing:
            print(f"  NOT measured, a pipeline but no records: {', '.join(missing)}")
        if unrouted:
            print(f"  not measured, logs with no pipeline of their own (the router's part only): {', '.join(unrouted)}")

    def ecs_docs(self, docs: list[str]) -> list[str]:
        """What the pipelines make of ``docs`` (through _simulate), as documents to index."""
        out = []
        for start in range(0, len(docs), 200):
            chunk = [{"_source": json.loads(doc)} for doc in docs[start : start + 200]]
            _status, answer = self.call("POST", f"_ingest/pipeline/{self.router}/_simulate", {"docs": chunk})
            for item in answer["docs"]:
                source = item.get("doc", {}).get("_source")
                if source is None or source.get("event", {}).get("kind") == "pipeline_error":
                    raise BenchError(f"_simulate of {self.router} failed: {json.dumps(item)[:1500]}")
                out.append(json.dumps(source))
        return out

    def modes(self) -> tuple[str, ...]:
        return MODES[:2] if self.args.no_ecs else MODES

    def unit_docs(self, unit: str) -> list[str]:
        if unit != "mixed":
            return [doc_json(line, unit) for line in self.datasets[unit]]
        # As a sensor sends them: the logs Zeek wrote, interleaved in Zeek's time order, in
        # the captures' proportions (records built by tests/zeek_logs.py have none: left out).
        built = {entry.split(" ", 1)[0] for entry in self.results["data"]["built"]}
        merged = [
            (record_ts(line), dataset, line)
            for dataset, lines in self.datasets.items()
            if dataset not in built
            for line in lines
        ]
        if not merged:
            merged = [(record_ts(line), dataset, line) for dataset, lines in self.datasets.items() for line in lines]
        merged.sort(key=lambda item: item[0])
        return [doc_json(line, dataset) for _ts, dataset, line in merged]

    # ----------------------------------------------------------- one load
    def bulk_load(
        self, stream: str, bodies: list[bytes], pipeline: str | None = None, clients: int | None = None
    ) -> dict[str, Any]:
        """``bodies`` into ``stream`` from ``--clients`` connections; times only the load."""
        counter = itertools.count()
        failed = threading.Event()
        problems: list[str] = []
        lock = threading.Lock()
        took = {"took": 0, "ingest_took": 0, "requests": 0}
        path = f"/{stream}/_bulk?{BULK_FILTER}" + (f"&pipeline={pipeline}" if pipeline else "")
        headers = {"Content-Type": "application/x-ndjson", **self.node.auth_header()}

        def client() -> None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
            try:
                while not failed.is_set():
                    index = next(counter)  # atomic under the GIL: each body is sent once
                    if index >= len(bodies):
                        return
                    conn.request("POST", path, bodies[index], headers)
                    resp = conn.getresponse()
                    raw = resp.read()
                    answer = json.loads(raw) if raw else {}
                    if resp.status != 200 or answer.get("errors"):
                        items = [i for i in answer.get("items", []) if "error" in next(iter(i.values()))]
                        with lock:
                            problems.append(f"HTTP {resp.status}: {json.dumps(items[:3] or answer)[:1500]}")
                        failed.set()
                        return
                    with lock:
                        took["took"] += answer.get("took", 0)
                        took["ingest_took"] += answer.get("ingest_took", 0)
                        took["requests"] += 1
            except Exception as exc:  # reported by the main thread
                with lock:
                    problems.append(f"{type(exc).__name__}: {exc}")
                failed.set()
            finally:
                conn.close()

        threads = [threading.Thread(target=client, daemon=True) for _n in range(clients or self.args.clients)]
        with CpuWindow(self.node.proc.pid) as window:
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():  # short joins: Ctrl-C is seen at once
                    thread.join(0.5)
        if problems:
            raise BenchError(f"_bulk into {stream} failed: {problems[0]}")
        return {**window.result(), **took}

    def gc_ms(self) -> dict[str, int]:
        _status, stats = self.call("GET", "_nodes/_local/stats/jvm")
        collectors = next(iter(stats["nodes"].values()))["jvm"]["gc"]["collectors"]
        return {name: c.get("collection_time_in_millis", 0) for name, c in collectors.items()}

    def ingest_stats(self) -> dict[str, Any]:
        _status, stats = self.call("GET", "_nodes/_local/stats/ingest")
        return next(iter(stats["nodes"].values())).get("ingest", {})

    def count(self, stream: str, query: str = "") -> int:
        _status, answer = self.call("GET", f"{stream}/_count" + (f"?q={query}" if query else ""))
        return int(answer["count"])

    def verify(self, stream: str, mode: str, docs: int) -> None:
        """Every document arrived; pipelined, each went through the pipelines without failing."""
        self.call("POST", f"{stream}/_refresh")
        found = self.count(stream)
        if found != docs:
            raise BenchError(f"{stream}: {found:,} documents, {docs:,} sent")
        through = self.count(stream, "event.module:zeek")  # set by the router, absent from raw documents
        if mode == "raw":
            if through:
                raise BenchError(f"{stream}: {through:,} raw documents went through a pipeline")
            return
        if mode == "ecs":
            if through != docs:
                raise BenchError(f"{stream}: {through:,} of {docs:,} ECS documents have event.module zeek")
            return
        failures = self.count(stream, "event.kind:pipeline_error")
        if failures or through != docs:
            _status, hits = self.call("GET", f"{stream}/_search?q=event.kind:pipeline_error&size=3")
            for hit in hits["hits"]["hits"]:
                src = hit["_source"]
                print(
                    f"   pipeline_error: {json.dumps(src.get('error'))}\n      message: {str(src.get('message'))[:300]}"
                )
            raise BenchError(
                f"{stream}: {failures:,} of {docs:,} documents are pipeline_error, {through:,} have event.module "
                "zeek: the figures would measure failures"
            )

    def measure(self, unit: str, mode: str, rep: int, bodies: list[bytes], docs: int, tag: str = "") -> dict[str, Any]:
        stream = f"{STREAM[mode]}{unit.replace('.', '-')}-{tag or rep + 1}"
        self.call("PUT", f"_data_stream/{stream}")  # created before the clock starts
        gc_before = self.gc_ms()
        ingest_before = self.ingest_stats()
        result = self.bulk_load(stream, bodies)
        ingest = ingest_delta(ingest_before, self.ingest_stats())
        gc_after = self.gc_ms()
        self.verify(stream, mode, docs)
        if mode != "pipelined" and ingest:
            raise BenchError(f"{stream}: the {mode} load ran pipelines {sorted(ingest)}")
        if not self.args.keep:
            self.call("DELETE", f"_data_stream/{stream}")  # its merges must not run into the next load
        result.update(
            unit=unit,
            mode=mode,
            repetition=rep + 1,
            stream=stream,
            docs=docs,
            rate=docs / result["wall"],
            ingest_us=result["ingest_took"] * 1000 / docs,  # the _bulk answers' ingest_took, per event
            gc_ms={k: gc_after.get(k, 0) - v for k, v in gc_before.items()},
            ingest=ingest,
        )
        return result

    def print_run(self, r: dict[str, Any]) -> None:
        warn = ""
        if r["others_share"] > NOISE_SHARE:
            warn = (
                f"  WARNING: other processes took {r['others_share']:.0%} of the {os.cpu_count()} CPUs; "
                "figures inflated"
            )
        print(
            f"   {r['unit']:<18}{r['mode']:<10}{r['docs']:>9,} docs {r['wall']:8.2f} s {r['rate']:>9,.0f} ev/s   "
            f"node cpu {r['node_cpu']:6.1f} s ({r['node_cpu'] / r['docs'] * 1e6:4.0f} us/ev), client "
            f"{r['client_cpu']:4.1f} s, others {r['others_cpu'] + r['steal']:4.1f} s, gc "
            f"{sum(r['gc_ms'].values()) / 1000:4.1f} s, load {r['load'][0]:.1f}->{r['load'][1]:.1f}{warn}",
            flush=True,
        )

    # ----------------------------------------------------------- the run
    def run(self) -> int:
        args = self.args
        self.start_node()
        self.load_pipelines()
        self.load_data()
        units = [*self.datasets, "mixed"]
        self.results["units"] = units
        print()

        # Compiles the scripts and warms the JIT on every path, in both modes; not counted.
        warm_events = min(args.events, 5_000)
        print(f"== warm-up (not counted): {warm_events:,} mixed events, each mode")
        mixed = self.unit_docs("mixed")
        warm = {mode: bulk_bodies(mixed, warm_events, args.bulk_size) for mode in MODES[:2]}
        if not args.no_ecs:
            warm["ecs"] = bulk_bodies(self.ecs_docs(mixed), warm_events, args.bulk_size)
        for mode in self.modes():
            self.print_run(self.measure("mixed", mode, 0, warm[mode], warm_events, tag="warmup"))
        print()

        print(
            f"== {args.events:,} events per dataset, _bulk of {args.bulk_size:,} docs from {args.clients} clients, "
            f"{', '.join(self.modes())} in turn" + (f", {args.repeat} repetitions" if args.repeat > 1 else "")
        )
        modes = self.modes()
        for rep in range(args.repeat):
            for i, unit in enumerate(units):
                docs = self.unit_docs(unit)
                bodies = {"pipelined": bulk_bodies(docs, args.events, args.bulk_size)}
                bodies["raw"] = bodies["pipelined"]  # the same bytes; only the data stream differs
                if "ecs" in modes:
                    bodies["ecs"] = bulk_bodies(self.ecs_docs(docs), args.events, args.bulk_size)
                # Which mode goes first rotates, so that drift hits each alike.
                shift = (rep + i) % len(modes)
                for mode in modes[shift:] + modes[:shift]:
                    run = self.measure(unit, mode, rep, bodies[mode], args.events)
                    self.print_run(run)
                    self.results["runs"].append(run)
                    if mode == "pipelined":
                        add_ingest(self.ingest.setdefault(unit, {}), run["ingest"])
                del bodies
        print()
        self.print_costs()
        if not args.no_steps:
            self.run_steps()
        self.print_summary(units)
        if args.json:
            Path(args.json).write_text(json.dumps(self.results, indent=2) + "\n")
            print(f"\nAll figures as JSON: {args.json}")
        if args.keep:
            print(f"\n--keep: the node stays at {self.node.url} with every data stream; Ctrl-C stops it")
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
        return 0

    def median_run(self, unit: str, mode: str) -> dict[str, Any]:
        runs = sorted(
            (r for r in self.results["runs"] if r["unit"] == unit and r["mode"] == mode), key=lambda r: r["rate"]
        )
        return runs[(len(runs) - 1) // 2]

    def print_costs(self) -> None:
        print(
            f"== Where {self.router}'s time goes, as _nodes/stats/ingest gives it (pipelined runs, summed over "
            "repetitions; us per event, share of the pipeline's time)"
        )
        costs: dict[str, Any] = {}
        sizes = batch_sizes(self.args.events, self.args.bulk_size)
        for unit, ingest in self.ingest.items():
            took = sum(r["ingest_took"] for r in self.results["runs"] if r["unit"] == unit and r["mode"] == "pipelined")
            cost = engine_costs(ingest, self.router, self.definitions, took, sizes)
            if cost is None:
                print(f"   {unit}: no ingest statistics from the node")
                continue
            costs[unit] = cost
            n = cost["events"]
            how = (
                f"recorded {cost['recorded_ms'] / 1000:,.0f} s: once per document of each batch, "
                f"/ {cost['factor']:,.0f}"
                if cost["batched"]
                else "per document, in whole ms"
            )
            print(
                f"   {unit}: {cost['router_ms'] * 1000 / n:.0f} us/event ({how}; the _bulk answers' "
                f"ingest_took: {took * 1000 / n:.0f} us/event)"
            )
            for row in cost["rows"]:
                print(f"      {row['ms'] * 1000 / n:7.1f} us {row['ms'] / cost['router_ms']:6.1%}  {row['where']}")
        self.results["costs"] = costs
        print()

    def run_steps(self) -> None:
        """Each step of the router on its own: the mixed stream through growing prefixes of it.

        The engine times processors with an ``if`` (the json decode, each dataset's pipeline)
        per document in whole milliseconds, which reads ~0; here the router's first k
        processors (its on_failure kept) are a pipeline of their own, the mixed stream goes
        through each, and the step's cost is the increase of the _bulk answers' ingest_took
        per event from k-1 to k (before k = 0, no pipeline: 0 us). A dataset's pipeline step
        costs its share of the stream plus one condition per document.
        """
        args = self.args
        router = self.definitions[self.router]
        steps = router["processors"]
        events = min(args.events, args.step_events)
        docs = self.unit_docs("mixed")
        bodies = bulk_bodies(docs, events, args.bulk_size)
        share = {}
        for ds in self.datasets:
            share[ds] = sum(1 for i in range(events) if json.loads(docs[i % len(docs)])["event"]["dataset"] == ds)
        # k = 0: a pipeline without processors, what running any pipeline costs (the source
        # to a map and back).
        for k in range(len(steps) + 1):
            self.call("PUT", f"_ingest/pipeline/bench-steps-{k}", {**router, "processors": steps[:k]})
        print(
            f"== Steps of {self.router} ({events:,} mixed events through its first k processors, one client; "
            f"ingest_took per event, median of {args.step_passes} passes; not part of the goal)"
        )
        per_k: dict[int, list[float]] = {k: [] for k in range(len(steps) + 1)}
        for rep in range(args.step_passes):
            # Alternate the direction, so that drift does not pile up on the last steps.
            order = range(len(steps) + 1) if rep % 2 == 0 else range(len(steps), -1, -1)
            for k in order:
                stream = f"{STEPS_STREAM}{k}-{rep + 1}"
                self.call("PUT", f"_data_stream/{stream}")
                # One client: ingest_took is then not stretched by a second bulk competing for the CPUs.
                result = self.bulk_load(stream, bodies, pipeline=f"bench-steps-{k}", clients=1)
                self.call("POST", f"{stream}/_refresh")
                found, failed = self.count(stream), self.count(stream, "event.kind:pipeline_error")
                if found != events or failed:
                    raise BenchError(f"{stream}: {found:,} of {events:,} documents, {failed:,} pipeline_error")
                if not args.keep:
                    self.call("DELETE", f"_data_stream/{stream}")
                per_k[k].append(result["ingest_took"] * 1000 / events)
        rows = []
        before = 0.0
        for k, values in per_k.items():
            cumulative = statistics.median(values)
            label = processor_label(router, k - 1) if k else "(no processor: any pipeline at all)"
            target = steps[k - 1].get("pipeline", {}).get("name", "") if k else ""
            dataset = f"{self.router.removeprefix('wlcg-soc-')}.{target.removeprefix(self.router + '.')}"
            note = f"  ({share[dataset]:,} of the events are {dataset})" if dataset in share else ""
            rows.append({"k": k, "processor": label, "cumulative_us": cumulative, "step_us": cumulative - before})
            print(f"   {k:>3} {label:<52}{cumulative:8.1f} us  step {cumulative - before:+7.1f} us{note}")
            before = cumulative
        self.results["steps"] = {"events": events, "rows": rows, "per_k": per_k}
        print()

    def print_summary(self, units: list[str]) -> None:
        args = self.args
        ecs = "ecs" in self.modes()
        print(
            f"== Summary ({args.events:,} events per dataset, bulk {args.bulk_size:,}, {args.clients} clients, "
            f"heap {args.heap}" + (f"; median of {args.repeat} by rate" if args.repeat > 1 else "") + ")"
        )
        print(
            f"   {'dataset':<18}{'a. pipelined':>19}{'b. raw':>19}{'a/b':>6}   goal{'cpu':>5}"
            + (f"{'c. ECS direct':>19}{'a/c':>6}" if ecs else "")
            + f"{'ingest':>8}{'node CPU us/event':>20}{'others':>8}"
        )
        summary = []
        for unit in units:
            runs = {mode: self.median_run(unit, mode) for mode in self.modes()}
            p, r = runs["pipelined"], runs["raw"]
            ratio = p["rate"] / r["rate"]
            cpu = {mode: run["node_cpu"] / run["docs"] * 1e6 for mode, run in runs.items()}
            noise = max(run["others_share"] for run in runs.values())
            entry = {
                "unit": unit,
                "docs": p["docs"],
                **{
                    mode: {"wall": run["wall"], "rate": run["rate"], "node_us_per_event": cpu[mode]}
                    for mode, run in runs.items()
                },
                "ingest_us_per_event": p["ingest_us"],
                "ratio": ratio,
                "goal_met": ratio >= GOAL_RATIO,
                "cpu_ratio": cpu["raw"] / cpu["pipelined"] if cpu["pipelined"] else 0.0,
                "others_share": noise,
                "rates": {
                    mode: [x["rate"] for x in self.results["runs"] if x["unit"] == unit and x["mode"] == mode]
                    for mode in runs
                },
            }
            line = (
                f"   {unit:<18}{p['wall']:>7.2f} s{p['rate']:>8,.0f}/s{r['wall']:>7.2f} s{r['rate']:>8,.0f}/s"
                f"{ratio:>6.2f}   {'yes' if entry['goal_met'] else 'NO ':<4}{entry['cpu_ratio']:>5.2f}"
            )
            if ecs:
                c = runs["ecs"]
                entry["ratio_ecs"] = p["rate"] / c["rate"]
                line += f"{c['wall']:>7.2f} s{c['rate']:>8,.0f}/s{entry['ratio_ecs']:>6.2f}"
            line += f"{p['ingest_us']:>6.0f}us{' / '.join(f'{v:.0f}' for v in cpu.values()):>20}{noise:>8.0%}"
            print(line)
            summary.append(entry)
        self.results["summary"] = summary
        met = sum(s["goal_met"] for s in summary)
        below = ", ".join(s["unit"] for s in summary if not s["goal_met"]) or "none"
        print(f"\n   goal (a/b >= {GOAL_RATIO}) met for {met} of {len(summary)} (below: {below})")
        print(
            "   a/b: pipelined / raw events/s, the goal; cpu: the same from the node's CPU per event (raw / pipelined),"
        )
        print("   less sensitive to other work; a/c: the pipeline alone, its output indexed either way")
        print(
            "   ingest: the _bulk answers' ingest_took per event of a; node CPU per event of "
            + " / ".join(self.modes())
        )
        print("   others: CPU of other processes (and the hypervisor) during the dataset's runs, share of the machine")
        if args.repeat > 1:
            for entry in summary:
                rates = " / ".join(f"{mode} {min(v):,.0f}-{max(v):,.0f}" for mode, v in entry["rates"].items())
                print(f"   spread {entry['unit']:<18}{rates}")
        print()
        self.print_machine()

    def print_machine(self) -> None:
        node = self.results["node"]
        cpu_model = "?"
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
        mem = "?"
        with contextlib.suppress(OSError, ValueError, IndexError):
            kb = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
            mem = f"{kb / 2**20:.1f} GiB"
        runs = self.results["runs"]
        facts = {
            "nproc": f"{os.cpu_count()} ({cpu_model}), memory {mem}",
            "kernel": platform.release(),
            "python": platform.python_version(),
            "engine": f"OpenSearch {node['version']} test node (tests/search/engine.py), {node['jvm']}",
            "heap": f"{node['heap']} ({node['heap_max_bytes'] / 2**20:.0f} MiB max)",
            "load average": (
                f"{min(r['load'][0] for r in runs):.1f}-{max(max(r['load']) for r in runs):.1f} over the runs, "
                f"{os.getloadavg()[0]:.1f} at the end"
            ),
            "others' CPU": f"{max(r['others_share'] for r in runs):.0%} of the machine at most in one run",
            "pipelines": f"sha256 {self.results['pipelines']['sha256']} ({len(self.definitions)} files)",
            "code": self.code,
        }
        self.results["machine"] = facts
        print("== Machine")
        for key, value in facts.items():
            print(f"   {key:<16}{value}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", maxsplit=1)[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=DEFAULT_EVENTS, help=f"events per dataset and mixed (default {DEFAULT_EVENTS:,})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_EVENTS:,} events per dataset, {QUICK_STEP_EVENTS:,} per step: a fast check",
    )
    parser.add_argument(
        "--bulk-size", type=int, default=DEFAULT_BULK, help=f"documents per _bulk request (default {DEFAULT_BULK:,})"
    )
    parser.add_argument(
        "--clients", type=int, default=DEFAULT_CLIENTS, help=f"concurrent _bulk connections (default {DEFAULT_CLIENTS})"
    )
    parser.add_argument("--repeat", type=int, default=1, help="measure each dataset this many times; median by rate")
    parser.add_argument("--datasets", help="only these, comma-separated (conn's dataset is connection: dns,connection)")
    parser.add_argument("--heap", default=DEFAULT_HEAP, help=f"the node's heap, -Xms/-Xmx (default {DEFAULT_HEAP})")
    parser.add_argument(
        "--step-events",
        type=int,
        default=DEFAULT_STEP_EVENTS,
        help=f"mixed events per step of the router, at most --events (default {DEFAULT_STEP_EVENTS:,})",
    )
    parser.add_argument(
        "--step-passes", type=int, default=2, help="passes over the steps, alternating direction (default 2)"
    )
    parser.add_argument("--no-steps", action="store_true", help="skip the cost of each step of the router")
    parser.add_argument("--no-ecs", action="store_true", help="skip c, the pipeline's output indexed without it")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep every data stream and, at the end, the node (until Ctrl-C);\n"
        "the kept streams' merges then run during later loads",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.events = QUICK_EVENTS
        args.step_events = min(args.step_events, QUICK_STEP_EVENTS)
    if min(args.events, args.bulk_size, args.clients, args.repeat, args.step_events, args.step_passes) < 1:
        parser.error("--events, --bulk-size, --clients, --repeat and the --step-* options must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    bench = Bench(args)

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        return bench.run()
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the node", file=sys.stderr)
        return 130
    except (BenchError, RuntimeError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
