"""The elasticsearch role's scheduled snapshot (roles/elasticsearch/files/search-snapshot.py),
run as its systemd unit runs it (configuration file, credentials on standard input) against
a real Elasticsearch and a real OpenSearch node with a file system repository."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

SCRIPT = ROOT / "roles/elasticsearch/files/search-snapshot.py"


def script(config: Path, credentials: str) -> subprocess.CompletedProcess:
    """The program as its unit runs it: a settings file, the credentials on standard input."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--config", str(config)],
        input=credentials,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run(node, tmp_path: Path, **config) -> subprocess.CompletedProcess:
    settings = {
        "url": node.url,
        "repository": f"soc-timer-{node.flavour}",
        "indices": [f"zeek-timer-{node.flavour}", "no-such-index-*"],
        "prefix": "soc-",
        "retention_days": 30,
        "min_count": 2,
        "timeout": 60,
    }
    settings.update(config)
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(settings))
    return script(path, f"{node.username}:{node.password}\n" if node.username else "\n")


def snapshots(node) -> list[str]:
    status, listed = node.call("GET", f"_snapshot/soc-timer-{node.flavour}/soc-*")
    assert status == 200, listed
    return sorted(s["snapshot"] for s in listed["snapshots"])


def test_snapshots_and_retention(search_node, tmp_path):
    node = search_node
    repo = f"soc-timer-{node.flavour}"
    status, answer = node.call(
        "PUT", f"_snapshot/{repo}", {"type": "fs", "settings": {"location": f"{node.repo_path}/{repo}"}}
    )
    assert status == 200, answer
    index = f"zeek-timer-{node.flavour}"
    # No replica: the shared single-node cluster stays green for the other tests.
    assert node.call("PUT", index, {"settings": {"number_of_replicas": 0}})[0] == 200
    assert node.call("POST", f"{index}/_doc?refresh=true", {"uid": "C1"})[0] == 201
    taken = []
    for _run in range(3):
        done = run(node, tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("snapshot soc-") and "deleted 0 expired" in done.stdout, done.stdout
        taken.append(done.stdout.split()[1])
    assert snapshots(node) == sorted(taken)
    # All three are younger than a day: nothing is old enough to go, whatever min_count says.
    done = run(node, tmp_path, min_count=1, retention_days=1)
    assert done.returncode == 0 and "deleted 0 expired" in done.stdout, done
    taken.append(done.stdout.split()[1])
    # With no retention the newest two successful ones stay, the others go.
    done = run(node, tmp_path, min_count=2, retention_days=0)
    assert done.returncode == 0, done.stderr
    newest = done.stdout.split()[1]
    assert snapshots(node) == sorted([taken[-1], newest])
    assert "deleted 3 expired" in done.stdout
    assert node.call("DELETE", index)[0] == 200


def test_a_failed_snapshot_deletes_nothing(search_node, tmp_path):
    node = search_node
    done = run(node, tmp_path, repository="no-such-repository", retention_days=0, min_count=0)
    assert done.returncode == 1
    assert done.stderr.startswith("search snapshot failed: PUT /_snapshot/no-such-repository/soc-"), done.stderr
    assert "repository_missing_exception" in done.stderr
    if node.username:  # credentials are checked, and never printed
        refused = script(tmp_path / "snapshot.json", f"{node.username}:wrong-password\n")
        assert refused.returncode == 1 and "HTTP 401" in refused.stderr and "wrong-password" not in refused.stderr
    (tmp_path / "bad.json").write_text("{}")
    done = script(tmp_path / "bad.json", "")
    assert done.returncode == 1 and "lacks url, repository, indices" in done.stderr


def test_retention_breaks_ties_of_the_cached_clock():
    """Snapshots taken within one tick of the cluster's cached clock share a start time: the
    end time, then the name, tell which is newer."""
    spec = importlib.util.spec_from_file_location("search_snapshot", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    listed = [
        {"snapshot": "soc-2026.12.07-134117-50e8a4", "state": "SUCCESS", "start_time_in_millis": 1000,
         "end_time_in_millis": 1100},
        {"snapshot": "soc-2026.12.07-134118-b9711e", "state": "SUCCESS", "start_time_in_millis": 1000,
         "end_time_in_millis": 1100},
        {"snapshot": "soc-2026.12.07-134118-e48c8b", "state": "SUCCESS", "start_time_in_millis": 1000,
         "end_time_in_millis": 1200},
    ]  # fmt: skip
    assert module.expired(listed, 0, 2, 10_000) == ["soc-2026.12.07-134117-50e8a4"]
