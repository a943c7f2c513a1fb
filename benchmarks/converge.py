# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of a re-converge: ``playbooks/site.yml`` on a site that is already converged.

Not a test: it prints figures and nothing is asserted on time. In the same run it
measures the per-task floor on the same hosts (a play of ``--floor-tasks``
``ansible.builtin.ping`` tasks), so that a figure can be read against the machine and
the connection it ran on: "site.yml costs as much as N pings".

Run ``make lab`` first (or pass ``--inventory`` for another converged inventory); see
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "inventories" / "example-site" / "ansible.cfg"
# Beside the interpreter running this (the dev venv), else on PATH.
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))


def run_playbook(playbook: Path, inventory: Path, config: Path, extra: list[str]) -> tuple[float, dict[str, Any]]:
    """Run a playbook with the JSON stdout callback; return its wall time and the report."""
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CALLBACKS_ENABLED"}
    env.update(
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_FORCE_COLOR="0",
    )
    start = time.monotonic()
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(playbook), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - start
    try:
        report = json.loads(proc.stdout[proc.stdout.index("{") :])
    except ValueError:
        tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        sys.exit(f"{playbook.name}: no JSON report (rc {proc.returncode}):\n{tail}")
    if proc.returncode != 0:
        failed = {h: s for h, s in report.get("stats", {}).items() if s.get("failures") or s.get("unreachable")}
        sys.exit(f"{playbook.name} failed (rc {proc.returncode}): {failed}\n{proc.stderr[-3000:]}")
    return wall, report


def _interval(duration: dict[str, str]) -> tuple[float, float] | None:
    """A task's start and end (epoch seconds); None for one that never ended on a host (e.g. a meta task)."""
    if "start" not in duration or "end" not in duration:
        return None
    start, end = (datetime.fromisoformat(duration[k].replace("Z", "+00:00")).timestamp() for k in ("start", "end"))
    return start, end


def _union(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the intervals. Under the free strategy a task is reported once per
    host, and a role's tasks on different hosts overlap: they count once."""
    covered, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return covered


def _role_of(task: dict[str, Any]) -> str:
    """The role a task belongs to (from its path), or the play's own tasks."""
    path = task.get("path") or ""
    parts = Path(path.split(":")[0]).parts
    if "roles" in parts:
        return parts[parts.index("roles") + 1]
    return "(facts)" if task.get("name") == "Gathering Facts" else "(play)"


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """Per task and per role wall times, and per host what ran."""
    # A task is known by its play, role and name: under the free strategy a dynamically
    # included task is a copy per host, each reported on its own.
    task_spans: dict[tuple[int, str, str], list[tuple[float, float]]] = collections.defaultdict(list)
    role_spans: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    executed: collections.Counter[str] = collections.Counter()
    skipped: collections.Counter[str] = collections.Counter()
    for index, play in enumerate(report.get("plays", [])):
        for entry in play.get("tasks", []):
            task = entry["task"]
            role = _role_of(task)
            key = (index, role, task["name"])
            spans = task_spans[key]  # listed even when it has no duration
            span = _interval(task["duration"])
            if span:
                spans.append(span)
                role_spans[role].append(span)
            for host, result in entry.get("hosts", {}).items():
                if result.get("skipped"):
                    skipped[host] += 1
                else:
                    executed[host] += 1
    tasks = [(_union(spans), role, name) for (_play, role, name), spans in task_spans.items()]
    roles = collections.Counter({role: _union(spans) for role, spans in role_spans.items()})
    changed = {h: s.get("changed", 0) for h, s in report.get("stats", {}).items()}
    return {
        "tasks": sorted(tasks, reverse=True),
        "roles": roles,
        "executed": executed,
        "skipped": skipped,
        "changed": changed,
    }


def floor_playbook(directory: Path, count: int) -> Path:
    play = [
        {
            "name": "Per-task floor",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [{"name": f"Ping {i}", "ansible.builtin.ping": {}} for i in range(1, count + 1)],
        }
    ]
    path = directory / "floor.yml"
    path.write_text(json.dumps(play))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inventory", type=Path, default=ROOT / "inventories" / "lab")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="ansible.cfg (default: the example site's)")
    parser.add_argument("--playbook", type=Path, default=ROOT / "playbooks" / "site.yml")
    parser.add_argument("--floor-tasks", type=int, default=50)
    parser.add_argument("--top", type=int, default=15, help="how many of the slowest tasks to list")
    parser.add_argument("--check", action="store_true", help="also time a --check run of the playbook")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        floor = floor_playbook(Path(tmp), args.floor_tasks)
        floor_wall, floor_report = run_playbook(floor, args.inventory, args.config, [])
    hosts = len(floor_report.get("stats", {}))
    per_task = floor_wall / args.floor_tasks
    print(f"per-task floor: {args.floor_tasks} pings on {hosts} hosts in {floor_wall:.1f} s, {per_task:.2f} s per task")

    runs = [("site.yml", [])] + ([("site.yml --check", ["--check"])] if args.check else [])
    floor_figures = {"wall": floor_wall, "tasks": args.floor_tasks, "hosts": hosts, "per_task": per_task}
    figures: dict[str, Any] = {"floor": floor_figures}
    for label, extra in runs:
        wall, report = run_playbook(args.playbook, args.inventory, args.config, extra)
        summary = summarise(report)
        changed = {h: n for h, n in summary["changed"].items() if n}
        print(f"\n{label}: {wall:.1f} s wall, as long as {wall / per_task:.0f} pings")
        print(f"  changed: {changed or 'none (0 on every host)'}")
        print("  tasks run per host (skipped):")
        for host in sorted(summary["executed"]):
            print(f"    {host:<22} {summary['executed'][host]:>4} ({summary['skipped'][host]})")
        print("  roles by wall time:")
        for role, seconds in summary["roles"].most_common():
            print(f"    {role:<22} {seconds:7.1f} s")
        print(f"  slowest {args.top} tasks:")
        for seconds, _role, name in summary["tasks"][: args.top]:
            print(f"    {seconds:6.1f} s  {name[:90]}")
        figures[label] = {
            "wall": wall,
            "changed": summary["changed"],
            "executed": summary["executed"],
            "skipped": summary["skipped"],
            "roles": dict(summary["roles"]),
            "tasks": summary["tasks"],
        }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
