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
    config.addinivalue_line("markers", "hosts(*names): run the test only on these Molecule hosts")
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory or not Path(inventory).is_file():
        return
    names = _inventory_hosts(Path(inventory))
    if names:
        config.option.hosts = ",".join(f"podman://{n}" for n in names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the (test, host) pairs that a ``@pytest.mark.hosts(...)`` marker excludes."""
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("hosts")
        callspec = getattr(item, "callspec", None)
        host_id = callspec.id if callspec is not None else ""
        if marker and not any(host_id == f"podman://{n}" or host_id.endswith(f"://{n}") for n in marker.args):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
