"""Helpers for tests that run ansible-playbook against this machine in check mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Facts of the supported platforms, as the setup module reports them.
DEBIAN12 = {
    "os_family": "Debian",
    "distribution": "Debian",
    "distribution_version": "12.8",
    "distribution_major_version": "12",
    "virtualization_role": "host",
    "virtualization_type": "kvm",
}
ALMA9 = {
    "os_family": "RedHat",
    "distribution": "AlmaLinux",
    "distribution_version": "9.5",
    "distribution_major_version": "9",
    "virtualization_role": "host",
    "virtualization_type": "kvm",
}


@dataclass
class Run:
    rc: int
    out: str


@pytest.fixture(scope="session")
def collections_path() -> str:
    """Where `make build` installed the collection under test."""
    path = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
    if not (Path(path) / "ansible_collections/wlcg/soc/MANIFEST.json").is_file():
        pytest.fail("run through `make unit`: the built collection must be installed")
    return path


@pytest.fixture
def playbook(tmp_path: Path, collections_path: str):
    """Run a playbook text against localhost in check mode with the given fake facts."""

    def run(text: str, facts: dict, extra_vars: dict | None = None, check: bool = True) -> Run:
        book = tmp_path / "play.yml"
        book.write_text(text)
        env = dict(
            os.environ,
            ANSIBLE_COLLECTIONS_PATH=collections_path,
            ANSIBLE_LIBRARY=str(FIXTURES / "library"),
            ANSIBLE_FACTS_MODULES="fake_facts",
            WLCG_SOC_FAKE_FACTS=json.dumps(facts),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_LOCALHOST_WARNING="0",
            ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        )
        cmd = ["ansible-playbook", "-i", "localhost,", "-c", "local", str(book)]
        if check:
            cmd.append("--check")
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        res = subprocess.run(
            cmd, env=env, cwd=tmp_path, capture_output=True, text=True, check=False
        )
        return Run(res.returncode, res.stdout + res.stderr)

    return run
