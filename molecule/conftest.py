"""Point testinfra at Molecule's containers through podman's own backend.

Molecule hands testinfra its Ansible inventory, which would run every check through
Ansible (an order of magnitude slower). The inventory's host names are the container
names, so each host becomes ``podman://<name>``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml


def _inventory_hosts(path: Path) -> list[str]:
    hosts: list[str] = []

    def walk(group: dict) -> None:
        hosts.extend((group.get("hosts") or {}).keys())
        for child in (group.get("children") or {}).values():
            walk(child or {})

    data = yaml.safe_load(path.read_text()) or {}
    for group in data.values():
        walk(group or {})
    return sorted(set(hosts))


def pytest_configure(config: pytest.Config) -> None:
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory or not Path(inventory).is_file():
        return
    names = _inventory_hosts(Path(inventory))
    if names:
        config.option.hosts = ",".join(f"podman://{n}" for n in names)
