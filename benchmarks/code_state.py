"""What code a benchmark measures, for its report: the checkout's commit and whether the
files it reads from there have uncommitted changes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def code_state(root: Path, measured: str) -> str:
    """``git <commit> (clean)``, or with the changed files under ``measured`` (a path of the
    checkout, e.g. plugins/module_utils); ``?`` without git."""
    git = shutil.which("git")
    if not git:
        return "?"
    try:
        head = subprocess.run(
            [git, "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            [git, "-C", str(root), "status", "--porcelain", "--", measured], capture_output=True, text=True, check=False
        ).stdout.split("\n")
    except OSError:
        return "?"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"git {head}" + (f" + uncommitted changes in {', '.join(changed)}" if changed else " (clean)")
