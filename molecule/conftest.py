"""Point testinfra at Molecule's containers through podman's own backend.

Molecule hands testinfra its Ansible inventory, which would run every check through
Ansible (an order of magnitude slower). The inventory's host names are the container
names, so each host becomes ``podman://<name>``.
"""

from __future__ import annotations

import itertools
import json
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


# Runs in a host: one request to a search engine's API over TLS, verified against the given
# CA; the body comes back as JSON, or as text where the server answers text (OpenSearch's 401).
_SEARCH_CLIENT = r"""
import base64, json, ssl, sys, urllib.error, urllib.request
url, ca, user, password, method, body = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)
headers = {"Content-Type": "application/json"}
if user:
    headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
req = urllib.request.Request(url, data=body.encode() or None, method=method, headers=headers)
try:
    with urllib.request.urlopen(req, context=ctx, timeout=60) as res:
        status, raw = res.status, res.read()
except urllib.error.HTTPError as err:
    status, raw = err.code, err.read()
try:
    data = json.loads(raw or b"null")
except ValueError:
    data = raw.decode(errors="replace")
print(json.dumps({"status": status, "body": data}))
"""


def search_request(host, url: str, ca: str, user: str, password: str, method: str = "GET", body=None):
    """(status, body) of one request from ``host`` (a testinfra host)."""
    res = host.run(
        "python3 -c %s %s %s %s %s %s %s",
        _SEARCH_CLIENT,
        url,
        ca,
        user,
        password,
        method,
        json.dumps(body) if body is not None else "",
    )
    assert res.rc == 0, res.stderr
    out = json.loads(res.stdout)
    return out["status"], out["body"]


def default_address(host) -> str:
    """A host's default IPv4 address: the source of its default route."""
    return json.loads(host.check_output("ip -j -4 route get 192.0.2.1"))[0]["prefsrc"]


def api_get(host, url: str, ca: str, user: str, password: str):
    """The JSON body of a GET that must answer 200, from ``host``, TLS verified with ``ca``."""
    status, body = search_request(host, url, ca, user, password)
    assert status == 200, body
    return body


def assert_one_node_at_a_time(times: list[tuple[int, int, str]]) -> list[str]:
    """Given (start, stop, name) of each node's last stop and start (systemd's monotonic
    times, one clock for the containers), check that no node stopped before the one
    restarted before it ran again; return the names in restart order."""
    times = sorted(times)
    for (prev_start, _prev_stop, prev), (_start, stop, name) in itertools.pairwise(times):
        assert stop > prev_start, f"{name} stopped before {prev} was running again: {times}"
    return [name for _start, _stop, name in times]


def assert_rolling_restart(hosts: dict, service: str) -> None:
    """After molecule/elasticsearch/rolling-restart.yml: every node restarted since the start
    time kept there, one at a time."""
    times = []
    for name, host in hosts.items():
        before = int(host.file("/var/tmp/molecule-start-before").content_string)  # noqa: S108
        stop, start = (
            int(v)
            for v in host.check_output(
                f"systemctl show -P InactiveEnterTimestampMonotonic,ExecMainStartTimestampMonotonic {service}"
            ).split()
        )
        assert start > before, f"{name} was not restarted"
        times.append((start, stop, name))
    assert_one_node_at_a_time(times)
