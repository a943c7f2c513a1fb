"""Helpers for tests that run ansible-playbook against this machine in check mode."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The built collection (make build), so that tests import plugins as Ansible does:
# ansible_collections.wlcg.soc.plugins...
if os.environ.get("ANSIBLE_COLLECTIONS_PATH"):
    sys.path.insert(0, os.environ["ANSIBLE_COLLECTIONS_PATH"].split(":")[0])
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


# Platforms every role must refuse (one check, wlcg.soc.shared's `platform`), naming the
# platform, before it changes anything: other families, and supported families' older releases.
UNSUPPORTED = {
    "gentoo": {"os_family": "Gentoo", "distribution": "Gentoo", "distribution_version": "2.15"},
    "suse": {"os_family": "Suse", "distribution": "openSUSE Leap", "distribution_version": "15.6"},
    "debian11": dict(DEBIAN12, distribution_version="11.9", distribution_major_version="11"),
    "ubuntu20": dict(DEBIAN12, distribution="Ubuntu", distribution_version="20.04", distribution_major_version="20"),
    "centos7": dict(ALMA9, distribution="CentOS", distribution_version="7.9", distribution_major_version="7"),
}
unsupported_platforms = pytest.mark.parametrize("platform", list(UNSUPPORTED.values()), ids=list(UNSUPPORTED))


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


def run_playbook(
    workdir: Path, collections_path: str, text: str, facts: dict, extra_vars: dict | None = None, check: bool = True
) -> Run:
    """Run a playbook text (written to ``workdir``) against localhost with the given fake facts,
    in check mode unless told otherwise."""
    book = workdir / "play.yml"
    book.write_text(text)
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=collections_path,
        ANSIBLE_LIBRARY=str(FIXTURES / "library"),
        ANSIBLE_ACTION_PLUGINS=str(FIXTURES / "action"),
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
    res = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True, check=False)
    return Run(res.returncode, res.stdout + res.stderr)


@pytest.fixture
def playbook(tmp_path: Path, collections_path: str):
    """Run a playbook text against localhost in check mode with the given fake facts
    (run_playbook in this test's tmp_path)."""
    return functools.partial(run_playbook, tmp_path, collections_path)


# Many cases of one play in one ansible-playbook run: one host per case, each with its own
# facts and variables. A case run alone costs about 2 s of CPU (Ansible's start, loading the
# role, a facts module run, then its checks); batched, under 1 s (its checks).
@dataclass(frozen=True)
class Case:
    """One host of a batched run: its facts, its variables, and its inventory name if it
    matters to the case (default: caseNNN)."""

    facts: dict
    extra: dict | None = None
    host: str | None = None


def case_key(facts: dict, extra: dict | None = None) -> str:
    return json.dumps([facts, extra or {}], sort_keys=True)


class CaseRuns:
    """The outcome of each case of a batched run, looked up by its facts and variables: a Run
    whose ``rc`` is 0 unless the case's host failed, and whose ``out`` is that host's share of
    the output (banners, results, warnings and errors, recap). ``all_out`` is the whole output."""

    def __init__(self, runs: dict[str, Run], all_out: str):
        self.runs = runs
        self.all_out = all_out

    def get(self, facts: dict, extra: dict | None = None) -> Run:
        key = case_key(facts, extra)
        assert key in self.runs, f"not a case of this batch: {key}"
        return self.runs[key]


@pytest.fixture(scope="session")
def playbook_cases(tmp_path_factory, collections_path: str):
    """Run a playbook text once for many cases (`Case` or (facts, extra) pairs), in check mode by
    default: its plays run on one inventory host per case instead of localhost, with the
    case's variables as host variables and its facts set where fact gathering would run
    (wlcg_soc_facts). Each host's output is its own (callback wlcg_soc_cases), and a failing
    case does not stop the others. Each host is also alone in a group of its own,
    ``<host>_only`` (e.g. a cluster of one: ``elasticsearch_group: "{{ inventory_hostname }}_only"``).

    Host variables rank below extra variables (the ``playbook`` fixture's -e), but above role
    defaults, which is what the cases set. They would rank below a play's vars_files too (e.g.
    checks_play's role defaults): those files are read into the variables of the group of all
    cases instead, which each case's own variables override, as -e does. Tests that use it run
    in one pytest-xdist worker per test file (see pytest_collection_modifyitems), so that each
    batch runs once.
    """

    def run(text: str, cases: list, check: bool = True) -> CaseRuns:
        import yaml

        tmp_path = tmp_path_factory.mktemp("cases")
        hosts, keys = {}, {}
        for number, case in enumerate(cases):
            case = case if isinstance(case, Case) else Case(*case)
            key = case_key(case.facts, case.extra)
            if key in keys.values():
                continue
            name = case.host or f"case{number:03d}"
            assert name not in hosts, f"two cases on host {name}"
            hosts[name] = {
                **(case.extra or {}),
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "wlcg_soc_fake_facts": case.facts,
            }
            keys[name] = key
        plays = yaml.safe_load(text)
        group_vars, group_files = {}, None
        for play in plays:
            play["hosts"] = "cases"
            files = play.pop("vars_files", None)
            if files:
                # One group of all cases for every play: its plays' vars_files must agree.
                assert group_files in (None, files), "plays with different vars_files in one batch"
                group_files = files
                for path in files:
                    group_vars.update(yaml.safe_load(Path(path).read_text()) or {})
            # Each host's facts, set first, where fact gathering would run.
            if play.get("gather_facts", True):
                play["gather_facts"] = False
                gather = {"name": "Gathering Facts", "wlcg_soc_facts": {"facts": "{{ wlcg_soc_fake_facts }}"}}
                play["pre_tasks"] = [gather, *play.get("pre_tasks", [])]
        book, inventory, log = tmp_path / "play.yml", tmp_path / "cases.yml", tmp_path / "cases.json"
        book.write_text(json.dumps(plays))
        alone = {f"{name}_only": {"hosts": {name: {}}} for name in hosts}
        inventory.write_text(json.dumps({"cases": {"hosts": hosts, "vars": group_vars}, **alone}))
        env = dict(
            os.environ,
            ANSIBLE_COLLECTIONS_PATH=collections_path,
            ANSIBLE_LIBRARY=str(FIXTURES / "library"),
            ANSIBLE_ACTION_PLUGINS=str(FIXTURES / "action"),
            ANSIBLE_CALLBACK_PLUGINS=str(FIXTURES / "callback"),
            ANSIBLE_STDOUT_CALLBACK="wlcg_soc_cases",
            WLCG_SOC_CASES_LOG=str(log),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_LOCALHOST_WARNING="0",
        )
        cmd = ["ansible-playbook", "-i", str(inventory), str(book)]
        if check:
            cmd.append("--check")
        res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
        all_out = res.stdout + res.stderr
        # 0: every host passed; 2: some failed; 4: some unreachable. Anything else (a bad
        # playbook, a crash) is every case's outcome.
        logged = json.loads(log.read_text()) if res.returncode in (0, 2, 4) and log.is_file() else {}
        runs = {}
        for name, key in keys.items():
            if name in logged:
                case = logged[name]
                runs[key] = Run(2 if case["failed"] or case["unreachable"] else 0, case["out"])
            else:
                runs[key] = Run(res.returncode or 1, all_out)
        return CaseRuns(runs, all_out)

    return run


# Tests that read batched runs (playbook_cases), and the tests of a file that share a
# module-scoped fixture, run in one pytest-xdist worker per test file, so that each batch and
# fixture is set up once per run; the others are spread one by one (--dist loadgroup, as
# pyproject.toml sets). pytest-xdist's loadgroup passes a test's group to its scheduler by
# appending "@group" to the test's node id, which pytest 9.2 no longer lets it change
# (pytest-xdist issue 1386): the groups go through a file instead, written by the first
# worker at collection and read by the scheduler below.
XDIST_GROUPS = "WLCG_SOC_XDIST_GROUPS"


def pytest_configure(config):
    distributing = config.getoption("dist", "no") == "loadgroup" and config.getoption("tx", None)
    if distributing and not hasattr(config, "workerinput"):
        import tempfile

        fd, path = tempfile.mkstemp(prefix="wlcg-soc-xdist-groups-", suffix=".json")
        os.close(fd)
        os.environ[XDIST_GROUPS] = path  # the workers, started later, inherit it
        config.add_cleanup(lambda: Path(path).unlink(missing_ok=True))


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadgroup" or not os.environ.get(XDIST_GROUPS):
        return None
    from xdist.scheduler import LoadGroupScheduling

    class Scheduler(LoadGroupScheduling):
        groups: dict | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # the workers have collected by now
                text = Path(os.environ[XDIST_GROUPS]).read_text()
                self.groups = json.loads(text) if text else {}
            return self.groups.get(nodeid) or super()._split_scope(nodeid)

    return Scheduler(config, log)


def _module_scoped(item) -> bool:
    """Whether the test uses a module-scoped fixture."""
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(defs and defs[-1].scope == "module" for defs in info.name2fixturedefs.values())


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Group the tests of batched runs (see above), the tests of a file that share a
    module-scoped fixture (pytest sets it up again whenever a worker comes back to the file
    after another one's tests: the flow exports, for one, took three set-ups), and those
    marked xdist_group; tests on the real search nodes come last, so that the nodes boot
    while the others run."""
    groups = {}
    for item in items:
        marked = item.get_closest_marker("xdist_group")
        if "playbook_cases" in getattr(item, "fixturenames", ()):
            groups[item.nodeid] = f"cases-{item.path.stem}"
            item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
        elif marked is not None:
            groups[item.nodeid] = str(marked.kwargs.get("name", marked.args[0] if marked.args else "default"))
        elif _module_scoped(item):
            groups[item.nodeid] = f"module-{item.path.stem}"
    path = os.environ.get(XDIST_GROUPS)
    if path and os.environ.get("PYTEST_XDIST_WORKER") == "gw0":
        Path(f"{path}.new").write_text(json.dumps(groups))
        os.replace(f"{path}.new", path)

    def on_nodes(item) -> bool:
        return "search_nodes" in getattr(item, "fixturenames", ())

    items[:] = [item for item in items if not on_nodes(item)] + [item for item in items if on_nodes(item)]


def assert_platform_refused(res: Run, role: str, facts: dict, first_change: str | None = None) -> None:
    """The role stopped at the shared platform check with its one message, naming the role and
    the platform, and (when given) the task that makes its first change never ran."""
    assert res.rc != 0, res.out
    named = (
        f"wlcg.soc.{role} does not support {facts['distribution']} {facts['distribution_version']}"
        f" ({facts['os_family']} family); supported: EL 9 (AlmaLinux, Rocky, RHEL), Debian 12+, Ubuntu 22.04+."
    )
    assert named in res.out, res.out
    if first_change:
        assert first_change not in res.out, res.out


def checks_play(role: str, entry_point: str = "main") -> str:
    """A play on localhost that checks the input as the role's entry point does, and stops there,
    before the role changes anything: the entry point's argument spec (the check ansible-core puts
    first in the role) against the role's defaults and the extra vars (under playbook_cases, each
    case's variables), then the role's tasks/validate.yml."""
    spec = ROOT / "roles" / role / "meta/argument_specs.yml"
    return f"""
- hosts: localhost
  gather_facts: true
  vars_files:
    - {ROOT}/roles/{role}/defaults/main.yml
  tasks:
    - name: Validate the input against the argument spec of wlcg.soc.{role} ({entry_point})
      ansible.builtin.validate_argument_spec:
        argument_spec: >-
          {{{{ (lookup('ansible.builtin.file', '{spec}') | from_yaml).argument_specs['{entry_point}'].options }}}}
    - ansible.builtin.include_role:
        name: wlcg.soc.{role}
        tasks_from: validate.yml
"""


def role_play(role: Path, family: str, tasks: str) -> str:
    """A play on localhost with a role's defaults and vars (main and the family's) loaded, running
    `tasks` (task YAML indented by four spaces): the role tests render templates this way,
    without the role's tasks."""
    return f"""
- hosts: localhost
  gather_facts: true
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
    - {role}/vars/{family}.yml
  tasks:{tasks}
"""


def probes_task(out: Path, names: list[str]) -> str:
    """Task YAML writing the values of `names` (variables or expressions of the role) to
    `out`/probes.json, which `read_probes` reads back: how the role tests see internal values."""
    rows = "".join(f"          {name!r}: '{{{{ {name} }}}}'\n" for name in names)
    return f"""
    - wlcg_soc_render:
        content: "{{{{ __probes | to_json }}}}"
        dest: "{out}/probes.json"
        mode: "0644"
      vars:
        __probes:
{rows}"""


def read_probes(out: Path) -> dict:
    return json.loads((out / "probes.json").read_text())


def template_task(role: Path, out: Path, templates: dict[str, str], **item) -> str:
    """Task YAML rendering the role's templates (path under templates/) into files of `out` (name),
    with the template action (wlcg_soc_render: ansible.builtin.template writing on the controller).
    Templates that read `item` (a loop's element in the role) get `item`'s keys too."""
    items = [{"src": src, "dest": dest, **item} for src, dest in templates.items()]
    return f"""
    - wlcg_soc_render:
        src: "{role}/templates/{{{{ item.src }}}}"
        dest: "{out}/{{{{ item.dest }}}}"
        mode: "0644"
      loop: {json.dumps(items)}
"""


# The MISP API double and real MISP test data (tests/misp_double), importable as
# `misp_double` (e.g. `from misp_double.server import MispDouble`).
sys.path.insert(0, str(ROOT / "tests"))


@contextlib.contextmanager
def running_memcached(item_size: str = "1m") -> Iterator[str]:
    """A memcached (Debian's package) on a free loopback port: ``host:port``, stopped on exit."""
    from search.engine import free_port

    binary = shutil.which("memcached") or pytest.fail("memcached is required: apt-get install memcached")
    port = free_port()
    cmd = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "nobody", "-m", "64", "-I", item_size]
    proc = subprocess.Popen(cmd)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("memcached did not start")
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def memcached():
    """A memcached for this test only: ``host:port``."""
    with running_memcached() as server:
        yield server


def misp_event(info: str, *attributes: tuple[str, ...]) -> dict:
    """A published event of CIRCL's for the MISP double; attributes are (type, value) or
    (type, value, category), all to_ids."""

    def category(mtype: str) -> str:
        return "Payload delivery" if "file" in mtype else "Network activity"

    return {
        "Event": {
            "info": info,
            "published": True,
            "publish_timestamp": str(int(time.time())),
            "Orgc": {"name": "CIRCL"},
            "Attribute": [
                {"type": a[0], "value": a[1], "to_ids": True, "category": a[2] if len(a) > 2 else category(a[0])}
                for a in attributes
            ],
        }
    }


@pytest.fixture
def misp_double():
    """A running MISP API double (http on 127.0.0.1), stopped after the test."""
    from misp_double.circl import describe_types_path
    from misp_double.server import MispDouble

    with MispDouble(describe_types=describe_types_path()) as double:
        yield double


@pytest.fixture
def circl_events():
    """CIRCL's OSINT events from PyMISP's sdist (fetched once, cached), published an hour ago."""
    import copy
    import time

    from misp_double.circl import load_circl_events

    global _CIRCL_EVENTS
    if _CIRCL_EVENTS is None:
        _CIRCL_EVENTS = load_circl_events(rebase_to=int(time.time()) - 3600)
    return copy.deepcopy(_CIRCL_EVENTS)


_CIRCL_EVENTS = None


# The Kibana / OpenSearch Dashboards API double (tests/kibana_double), importable as
# `kibana_double` (tests/ is on sys.path, see above).
@pytest.fixture
def kibana_api():
    """A running Kibana 8 API double (http on 127.0.0.1) with a `security` space, stopped after the test."""
    from kibana_double import KibanaDouble

    with KibanaDouble("elasticsearch") as double:
        double.add_space("security", "Security")
        yield double


@pytest.fixture
def dashboards_api():
    """A running OpenSearch Dashboards 2 API double (http on 127.0.0.1), stopped after the test."""
    from kibana_double import KibanaDouble

    with KibanaDouble("opensearch", username="admin") as double:
        yield double


# Real Elasticsearch and OpenSearch nodes (tests/search/engine.py) for the search modules'
# tests. Both are launched together as soon as the collected tests include one that needs
# them, and boot (about a minute of JVM start) while other tests run; under pytest-xdist the
# workers of a run share them (SharedNodes), so they start once per run, and stop when the
# last worker is done.
SEARCH_FLAVOURS = ("elasticsearch", "opensearch")
_search_nodes = None


def _shared_search_nodes():
    global _search_nodes
    if _search_nodes is None:
        from search.engine import SharedNodes

        _search_nodes = SharedNodes(SEARCH_FLAVOURS, os.environ.get("PYTEST_XDIST_TESTRUNUID"))
    return _search_nodes


def pytest_collection_finish(session):
    if session.config.option.collectonly:
        return
    if any("search_nodes" in getattr(item, "fixturenames", ()) for item in session.items):
        _shared_search_nodes().prestart()


def pytest_sessionfinish(session):
    if _search_nodes is not None:
        _search_nodes.release()


@pytest.fixture(scope="session")
def search_nodes():
    return _shared_search_nodes()


@pytest.fixture(params=SEARCH_FLAVOURS)
def search_node(request, search_nodes):
    """A running node of each engine in turn (``url``, ``username``/``password`` or None)."""
    return search_nodes.get(request.param)


@pytest.fixture
def elasticsearch_node(search_nodes):
    return search_nodes.get("elasticsearch")


@pytest.fixture
def opensearch_node(search_nodes):
    return search_nodes.get("opensearch")


# The OpenSearch node with the security plugin (tests/search/opensearch_security.py):
# one per worker, for the tests marked with this xdist group, which all go to one worker.
SECURE_OPENSEARCH = "opensearch-security"


@pytest.fixture(scope="session")
def secure_opensearch():
    from search.engine import SearchNode

    # The plugin is published for each core version; 2.19.4 is on Maven Central.
    with SearchNode("opensearch", version="2.19.4", security=True) as node:
        yield node
