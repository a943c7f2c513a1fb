"""Run tasks of the collection's modules through ansible-playbook, as users do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def run_tasks(tmp_path: Path, tasks: list[dict], check: bool = False, diff: bool = False) -> tuple[list[dict], str]:
    """Run ``tasks`` in one play on localhost (ansible.posix.json callback).

    Returns each task's result for localhost and everything ansible-playbook printed.
    """
    book = tmp_path / f"play-{time.monotonic_ns()}.yml"
    book.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    env = dict(
        os.environ,
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_NOCOLOR="1",
    )
    cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local", str(book)]
    cmd += ["--check"] if check else []
    cmd += ["--diff"] if diff else []
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    out = done.stdout
    try:
        data = json.loads(out[out.index("{") :])
    except ValueError:
        pytest.fail(f"no JSON from ansible-playbook:\n{out}\n{done.stderr}")
    return [task["hosts"]["localhost"] for task in data["plays"][0]["tasks"]], out + done.stderr


def run_task(tmp_path: Path, module: str, args: dict, check: bool = False, diff: bool = False) -> tuple[dict, str]:
    """Run one task of ``wlcg.soc.<module>`` on localhost: its result and the output."""
    results, out = run_tasks(tmp_path, [{f"wlcg.soc.{module}": args, "register": "r"}], check=check, diff=diff)
    return results[0], out
