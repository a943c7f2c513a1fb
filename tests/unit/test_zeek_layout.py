"""Zeek worker layout: CPU topology read from fake sysfs trees, workers and pins derived
for a table of hosts, refusals of impossible settings, and the module end to end.

Expected pins are written out by hand from each host's layout, not computed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ansible_collections.wlcg.soc.plugins.module_utils import zeek_layout as zl
from module_runner import run_tasks

pytestmark = pytest.mark.usefixtures("collections_path")

MIB = 1024 * 1024


@dataclass
class Host:
    """A fake sysfs: online CPU list, (package, core id) per CPU, NUMA cpulists, NICs."""

    online: str | None
    cpus: dict[int, tuple[int, int] | None]  # None: a CPU directory without topology files
    nodes: dict[int, str] = field(default_factory=dict)

    def write(self, root: Path, nics: dict[str, int | None]) -> Path:
        cpu_dir = root / "devices/system/cpu"
        cpu_dir.mkdir(parents=True)
        if self.online is not None:
            (cpu_dir / "online").write_text(self.online + "\n")
        for cpu, topo in self.cpus.items():
            (cpu_dir / f"cpu{cpu}").mkdir()
            if topo is not None:
                (cpu_dir / f"cpu{cpu}/topology").mkdir()
                (cpu_dir / f"cpu{cpu}/topology/physical_package_id").write_text(f"{topo[0]}\n")
                (cpu_dir / f"cpu{cpu}/topology/core_id").write_text(f"{topo[1]}\n")
        for node, cpulist in self.nodes.items():
            (root / f"devices/system/node/node{node}").mkdir(parents=True)
            (root / f"devices/system/node/node{node}/cpulist").write_text(cpulist + "\n")
        for name, node in nics.items():
            (root / "class/net" / name / "device").mkdir(parents=True)
            if node is not None:  # None: no numa_node file (unknown)
                (root / "class/net" / name / "device/numa_node").write_text(f"{node}\n")
        (root / "class/net/lo").mkdir(parents=True, exist_ok=True)  # no device/: virtual
        return root


# Intel numbers a package's cores with gaps; siblings are n and n+24.
XEON_CORE_IDS = [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]
HOSTS = {
    "1s4c": Host("0-3", {n: (0, n) for n in range(4)}),
    "1s8c-ht-adjacent": Host("0-15", {n: (0, n // 2) for n in range(16)}, {0: "0-15"}),
    "2s12c-ht": Host(
        "0-47",
        {n: ((n % 24) // 12, XEON_CORE_IDS[n % 12]) for n in range(48)},
        {0: "0-11,24-35", 1: "12-23,36-47"},
    ),
    "1cpu": Host("0", {0: (0, 0)}),
    "2cpus": Host("0-1", {0: (0, 0), 1: (0, 1)}),
    "1c2t": Host("0-1", {0: (0, 0), 1: (0, 0)}),
    # CPUs 2-3 offline: their directories exist, without topology.
    "offline-2-3": Host("0-1,4-7", {n: (None if n in (2, 3) else (0, n)) for n in range(8)}),
    "no-topology": Host("0-3", dict.fromkeys(range(4))),
    "no-online-file": Host(None, {n: (0, n) for n in range(4)}),
}
# Per host: CPUs online, physical cores, packages, NUMA nodes, hyperthreading.
SHAPES = {
    "1s4c": (4, 4, 1, [], False),
    "1s8c-ht-adjacent": (16, 8, 1, [0], True),
    "2s12c-ht": (48, 24, 2, [0, 1], True),
    "1cpu": (1, 1, 1, [], False),
    "2cpus": (2, 2, 1, [], False),
    "1c2t": (2, 1, 1, [], True),
    "offline-2-3": (6, 6, 1, [], False),
    "no-topology": (4, 4, 1, [], False),
    "no-online-file": (4, 4, 1, [], False),
}


def r(lo: int, hi: int) -> list[int]:
    return list(range(lo, hi + 1))


def worker(name: str, pins: list[int], fanout_id: int, numa_node: int | None, buffer_size: int = 128 * MIB) -> dict:
    return {
        "interface": name,
        "lb_procs": len(pins),
        "pin_cpus": pins,
        "fanout_id": fanout_id,
        "buffer_size": buffer_size,
        "numa_node": numa_node,
    }


@dataclass
class Case:
    id: str
    host: str
    nics: dict[str, int | None]  # NUMA node per NIC (-1: the kernel does not know)
    interfaces: list[dict]
    pins: list[list[int]]  # expected, per interface
    reserved: list[int]
    options: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # expected substrings, one per warning


CASES = [
    Case("1s4c", "1s4c", {"eth0": -1}, [{"name": "eth0"}], [[2, 3]], [0, 1]),
    Case("1s4c-two-nics", "1s4c", {"eth0": -1, "eth1": -1}, [{"name": "eth0"}, {"name": "eth1"}], [[2], [3]], [0, 1]),
    Case(
        "1s4c-three-nics-lowers-reservation",
        "1s4c",
        {"eth0": None, "eth1": None, "eth2": None},
        [{"name": "eth0"}, {"name": "eth1"}, {"name": "eth2"}],
        [[1], [2], [3]],
        [0],
        warnings=["reserved_cores lowered from 2 to 1"],
    ),
    Case("1s4c-no-reservation", "1s4c", {"eth0": -1}, [{"name": "eth0"}], [[0, 1, 2, 3]], [], {"reserved_cores": 0}),
    Case("1s8c-ht", "1s8c-ht-adjacent", {"eth0": -1}, [{"name": "eth0"}], [[4, 6, 8, 10, 12, 14]], [0, 1, 2, 3]),
    Case(
        "1s8c-ht-use-hyperthreads",
        "1s8c-ht-adjacent",
        {"eth0": -1},
        [{"name": "eth0"}],
        [r(4, 15)],
        [0, 1, 2, 3],
        {"use_hyperthreads": True},
    ),
    Case(
        "1s8c-ht-two-nics-split",
        "1s8c-ht-adjacent",
        {"eth0": 0, "eth1": 0},
        [{"name": "eth0"}, {"name": "eth1"}],
        [[4, 6, 8], [10, 12, 14]],
        [0, 1, 2, 3],
    ),
    Case(
        "1s8c-ht-four-nics-remainder-first",
        "1s8c-ht-adjacent",
        {"eth0": 0, "eth1": 0, "eth2": 0, "eth3": 0},
        [{"name": "eth0"}, {"name": "eth1"}, {"name": "eth2"}, {"name": "eth3"}],
        [[4, 6], [8, 10], [12], [14]],
        [0, 1, 2, 3],
    ),
    Case("2s12c-ht-numa-unknown", "2s12c-ht", {"eth0": -1}, [{"name": "eth0"}], [r(2, 23)], [0, 1, 24, 25]),
    Case("2s12c-ht-nic-on-node1", "2s12c-ht", {"eth0": 1}, [{"name": "eth0"}], [r(12, 23)], [0, 1, 24, 25]),
    Case(
        "2s12c-ht-nic-on-node1-hyperthreads",
        "2s12c-ht",
        {"eth0": 1},
        [{"name": "eth0"}],
        [r(12, 23) + r(36, 47)],
        [0, 1, 24, 25],
        {"use_hyperthreads": True},
    ),
    Case(
        "2s12c-ht-nics-on-both-nodes",
        "2s12c-ht",
        {"eth0": 0, "eth1": 1},
        [{"name": "eth0"}, {"name": "eth1"}],
        [r(2, 11), r(12, 23)],
        [0, 1, 24, 25],
    ),
    Case(
        "2s12c-ht-nics-on-both-nodes-listed-in-reverse",
        "2s12c-ht",
        {"eth0": 0, "eth1": 1},
        [{"name": "eth1"}, {"name": "eth0"}],
        [r(12, 23), r(2, 11)],
        [0, 1, 24, 25],
    ),
    Case(
        "2s12c-ht-two-nics-on-node1",
        "2s12c-ht",
        {"eth0": 1, "eth1": 1},
        [{"name": "eth0"}, {"name": "eth1"}],
        [r(12, 17), r(18, 23)],
        [0, 1, 24, 25],
    ),
    Case(
        "2s12c-ht-node1-and-unknown",
        "2s12c-ht",
        {"eth0": 1, "eth1": None},
        [{"name": "eth0"}, {"name": "eth1"}],
        [r(12, 23), r(2, 11)],
        [0, 1, 24, 25],
    ),
    Case(
        "2s12c-ht-unknown-nic-borrows-when-both-nodes-taken",
        "2s12c-ht",
        {"eth0": 0, "eth1": 1, "eth2": -1},
        [{"name": "eth0"}, {"name": "eth1"}, {"name": "eth2"}],
        [r(2, 11), r(12, 22), [23]],
        [0, 1, 24, 25],
        warnings=["interfaces[2] (eth2): too few free cores"],
    ),
    Case(
        "2s12c-ht-lb-procs-then-split",
        "2s12c-ht",
        {"eth0": 1, "eth1": 1},
        [{"name": "eth0", "lb_procs": 4}, {"name": "eth1"}],
        [r(12, 15), r(16, 23)],
        [0, 1, 24, 25],
    ),
    Case(
        "2s12c-ht-lb-procs-beyond-the-node",
        "2s12c-ht",
        {"eth0": 1},
        [{"name": "eth0", "lb_procs": 14}],
        [[10, 11, *r(12, 23)]],
        [0, 1, 24, 25],
        warnings=["interfaces[0] (eth0): NUMA node 1 of the NIC has too few free cores; CPUs 10-11 are taken"],
    ),
    Case(
        "2s12c-ht-four-reserved",
        "2s12c-ht",
        {"eth0": 0},
        [{"name": "eth0"}],
        [r(4, 11)],
        [0, 1, 2, 3, 24, 25, 26, 27],
        {"reserved_cores": 4},
    ),
    Case(
        "1cpu-lowers-reservation-to-0",
        "1cpu",
        {"eth0": None},
        [{"name": "eth0"}],
        [[0]],
        [],
        warnings=["reserved_cores lowered from 2 to 0: the host has 1 physical core (1 CPU online)"],
    ),
    Case(
        "2cpus-lowers-reservation-to-1",
        "2cpus",
        {"eth0": None},
        [{"name": "eth0"}],
        [[1]],
        [0],
        warnings=["reserved_cores lowered from 2 to 1: the host has 2 physical cores (2 CPUs online)"],
    ),
    Case(
        "1-core-2-threads-lowers-reservation-to-0",
        "1c2t",
        {"eth0": None},
        [{"name": "eth0"}],
        [[0]],
        [],
        warnings=["reserved_cores lowered from 2 to 0: the host has 1 physical core (2 CPUs online)"],
    ),
    Case("offline-range", "offline-2-3", {"eth0": -1}, [{"name": "eth0"}], [[4, 5, 6, 7]], [0, 1]),
    Case("missing-topology-files", "no-topology", {"eth0": -1}, [{"name": "eth0"}], [[2, 3]], [0, 1]),
    Case("missing-online-file", "no-online-file", {"eth0": -1}, [{"name": "eth0"}], [[2, 3]], [0, 1]),
    Case(
        "explicit-pins-take-their-whole-core",
        "1s8c-ht-adjacent",
        {"eth0": 0, "eth1": 0},
        [{"name": "eth0", "pin_cpus": [7, 5]}, {"name": "eth1"}],
        [[7, 5], [8, 10, 12, 14]],
        [0, 1, 2, 3],
    ),
    Case(
        "explicit-pins-on-siblings-warn",
        "1s8c-ht-adjacent",
        {"eth0": 0, "eth1": 0},
        [{"name": "eth0", "pin_cpus": [8, 9]}, {"name": "eth1"}],
        [[8, 9], [4, 6, 10, 12, 14]],
        [0, 1, 2, 3],
        warnings=["interfaces[0].pin_cpus: CPU 9 is a hyperthread sibling of CPU 8"],
    ),
    Case(
        "explicit-pins-siblings-across-interfaces-warn",
        "1s8c-ht-adjacent",
        {"eth0": 0, "eth1": 0},
        [{"name": "eth0", "pin_cpus": [8]}, {"name": "eth1", "pin_cpus": [9], "lb_procs": 1}],
        [[8], [9]],
        [0, 1, 2, 3],
        warnings=["interfaces[1].pin_cpus: CPU 9 is a hyperthread sibling of CPU 8 (pinned by interfaces[0] (eth0))"],
    ),
    Case(
        "explicit-pin-on-reserved-core-warns",
        "1s4c",
        {"eth0": -1, "eth1": -1},
        [{"name": "eth0", "pin_cpus": [0]}, {"name": "eth1"}],
        [[0], [2, 3]],
        [0, 1],
        warnings=["interfaces[0].pin_cpus: CPU 0 is on the cores reserved"],
    ),
    Case(
        "explicit-pins-off-the-nic-node-warn",
        "2s12c-ht",
        {"eth0": 1},
        [{"name": "eth0", "pin_cpus": [10, 11, 12]}],
        [[10, 11, 12]],
        [0, 1, 24, 25],
        warnings=["interfaces[0].pin_cpus: CPUs 10-11 are not on NUMA node 1"],
    ),
    Case(
        "empty-pin-list-means-derived",
        "1s4c",
        {"eth0": -1},
        [{"name": "eth0", "pin_cpus": [], "lb_procs": None}],
        [[2, 3]],
        [0, 1],
    ),
]


def sysfs(tmp_path: Path, host: str, nics: dict[str, int | None]) -> str:
    return str(HOSTS[host].write(tmp_path / "sys", nics))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layout(case: Case, tmp_path):
    root = sysfs(tmp_path, case.host, case.nics)
    topology = zl.read_topology(root)
    numa = {name: zl.nic_numa_node(root, name) for name in case.nics}
    layout = zl.plan(topology, case.interfaces, nic_numa=numa, **case.options)

    assert [w["interface"] for w in layout.workers] == [i["name"] for i in case.interfaces]
    assert [w["pin_cpus"] for w in layout.workers] == case.pins
    assert [w["lb_procs"] for w in layout.workers] == [len(p) for p in case.pins]
    assert layout.reserved_cpus == case.reserved
    assert len(layout.warnings) == len(case.warnings), layout.warnings
    for expected, warning in zip(case.warnings, layout.warnings, strict=True):
        assert expected in warning
    # No CPU serves two interfaces; without hyperthreads, no derived pin shares a core.
    all_pins = [cpu for p in case.pins for cpu in p]
    assert len(all_pins) == len(set(all_pins))
    if not case.options.get("use_hyperthreads"):
        derived = [cpu for i, p in zip(case.interfaces, case.pins, strict=True) if not i.get("pin_cpus") for cpu in p]
        assert len({topology.core_of[cpu].primary for cpu in derived}) == len(derived)
    for worker in layout.workers:
        assert worker["numa_node"] == (case.nics[worker["interface"]] if case.nics[worker["interface"]] != -1 else None)
        assert worker["buffer_size"] == 128 * MIB

    cpus, cores, packages, nodes, ht = SHAPES[case.host]
    summary = layout.summary()
    assert summary["cpus_online"] == cpus
    assert summary["physical_cores"] == cores
    assert summary["packages"] == packages
    assert summary["numa_nodes"] == nodes
    assert summary["hyperthreading"] is ht
    assert summary["reserved_cpus"] == case.reserved
    assert summary["workers"] == len(all_pins)
    json.dumps(summary)
    json.dumps(layout.workers)


def test_topology_cores_and_siblings(tmp_path):
    topo = zl.read_topology(sysfs(tmp_path, "2s12c-ht", {}))
    assert [c.primary for c in topo.cores] == r(0, 23)
    assert [c.siblings for c in topo.cores] == [(n + 24,) for n in range(24)]
    assert [c.package for c in topo.cores] == [0] * 12 + [1] * 12
    assert [c.numa_node for c in topo.cores] == [0] * 12 + [1] * 12
    assert topo.numa_of(36) == 1
    adjacent = zl.read_topology(sysfs(tmp_path / "b", "1s8c-ht-adjacent", {}))
    assert [c.cpus for c in adjacent.cores] == [(2 * n, 2 * n + 1) for n in range(8)]
    offline = zl.read_topology(sysfs(tmp_path / "c", "offline-2-3", {}))
    assert offline.online == [0, 1, 4, 5, 6, 7]
    assert offline.summary()["cpu_list"] == "0-1,4-7"


def test_nic_numa_and_existence(tmp_path):
    root = sysfs(tmp_path, "1s4c", {"eth0": 1, "eth1": -1, "eth2": None})
    assert zl.nic_numa_node(root, "eth0") == 1
    assert zl.nic_numa_node(root, "eth1") is None
    assert zl.nic_numa_node(root, "eth2") is None
    assert zl.nic_numa_node(root, "lo") is None
    assert zl.nic_numa_node(root, "eth9") is None
    assert zl.interface_exists(root, "eth0")
    assert zl.interface_exists(root, "lo")
    assert not zl.interface_exists(root, "eth9")
    assert not zl.interface_exists(root, "..")
    assert not zl.interface_exists(root, "net/eth0")


def test_cpu_lists():
    assert zl.parse_cpu_list("0-3,8-11\n") == [0, 1, 2, 3, 8, 9, 10, 11]
    assert zl.parse_cpu_list("5") == [5]
    assert zl.parse_cpu_list("") == []
    assert zl.format_cpu_list([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    with pytest.raises(zl.LayoutError, match="not a CPU list"):
        zl.parse_cpu_list("3-1")


def test_fanout_ids_and_buffer_sizes(tmp_path):
    topo = zl.read_topology(sysfs(tmp_path, "2s12c-ht", {}))
    layout = zl.plan(
        topo,
        [
            {"name": "eth0", "fanout_id": 22},
            {"name": "eth1", "buffer_size": 256 * MIB},
            {"name": "eth2"},
            {"name": "eth3", "fanout_id": 0},
        ],
        buffer_size=64 * MIB,
    )
    assert [w["fanout_id"] for w in layout.workers] == [22, 23, 24, 0]
    assert [w["buffer_size"] for w in layout.workers] == [64 * MIB, 256 * MIB, 64 * MIB, 64 * MIB]
    based = zl.plan(topo, [{"name": "eth0"}, {"name": "eth1"}], fanout_id_base=100)
    assert [w["fanout_id"] for w in based.workers] == [100, 101]


@dataclass
class Refusal:
    id: str
    host: str
    interfaces: list[dict]
    message: list[str]  # substrings of the message; the first names the field
    options: dict = field(default_factory=dict)


REFUSALS = [
    Refusal("no-interfaces", "1s4c", [], ["interfaces is empty"]),
    Refusal("name-missing", "1s4c", [{"lb_procs": 1}], ["interfaces[0].name is required"]),
    Refusal("name-invalid", "1s4c", [{"name": "eth0/x"}], ["interfaces[0].name 'eth0/x' is not a network interface"]),
    Refusal("name-too-long", "1s4c", [{"name": "a" * 16}], ["interfaces[0].name"]),
    Refusal("unknown-key", "1s4c", [{"name": "eth0", "lb_proc": 2}], ["interfaces[0]: unknown key(s) lb_proc"]),
    Refusal(
        "duplicate-names",
        "1s4c",
        [{"name": "eth0"}, {"name": "eth1"}, {"name": "eth0"}],
        ["interfaces[2].name: interface eth0 is listed twice (also interfaces[0])"],
    ),
    Refusal("lb-procs-zero", "1s4c", [{"name": "eth0", "lb_procs": 0}], ["interfaces[0].lb_procs is 0"]),
    Refusal("lb-procs-not-int", "1s4c", [{"name": "eth0", "lb_procs": "2"}], ["interfaces[0].lb_procs must be an"]),
    Refusal(
        "more-workers-than-cores",
        "1s4c",
        [{"name": "eth0", "lb_procs": 3}],
        [
            "interfaces[0].lb_procs: more workers than cores: 3 wanted",
            "the host has 4 physical cores (4 CPUs online)",
            "2 cores reserved (reserved_cores)",
            "2 cores remain for workers",
        ],
    ),
    Refusal(
        "more-workers-than-cores-hyperthreads-unused",
        "1s8c-ht-adjacent",
        [{"name": "eth0", "lb_procs": 4}, {"name": "eth1", "lb_procs": 3}],
        [
            "interfaces[0].lb_procs, interfaces[1].lb_procs: more workers than cores: 7 wanted",
            "the host has 8 physical cores (16 CPUs online) (hyperthreads not used)",
            "2 cores reserved",
            "6 cores remain",
        ],
    ),
    Refusal(
        "more-workers-than-cores-with-pins",
        "1s4c",
        [{"name": "eth0", "pin_cpus": [2]}, {"name": "eth1", "lb_procs": 2}],
        ["interfaces[1].lb_procs: more workers than cores", "1 core taken by pin_cpus", "1 core remains"],
    ),
    Refusal(
        "more-interfaces-than-cores-even-without-reservation",
        "1cpu",
        [{"name": "eth0"}, {"name": "eth1"}],
        [
            "interfaces: more workers than cores: 2 wanted",
            "the host has 1 physical core (1 CPU online)",
            "0 cores reserved (reserved_cores, lowered from 2)",
            "1 core remains",
        ],
    ),
    Refusal(
        "pin-not-online",
        "1s4c",
        [{"name": "eth0", "pin_cpus": [2, 9]}],
        ["interfaces[0].pin_cpus: CPU 9 is not online on this host (online CPUs: 0-3)"],
    ),
    Refusal(
        "pin-offline",
        "offline-2-3",
        [{"name": "eth0", "pin_cpus": [3]}],
        ["interfaces[0].pin_cpus: CPU 3 is not online", "0-1,4-7"],
    ),
    Refusal("pin-negative", "1s4c", [{"name": "eth0", "pin_cpus": [-1]}], ["interfaces[0].pin_cpus: CPU -1 is not"]),
    Refusal(
        "pin-twice", "1s4c", [{"name": "eth0", "pin_cpus": [2, 3, 2]}], ["interfaces[0].pin_cpus lists CPU 2 twice"]
    ),
    Refusal(
        "pins-overlap",
        "1s4c",
        [{"name": "eth0", "pin_cpus": [2, 3]}, {"name": "eth1", "pin_cpus": [3]}],
        ["interfaces[1].pin_cpus: CPU 3 is already pinned by interfaces[0] (eth0)"],
    ),
    Refusal(
        "pins-and-lb-procs-differ",
        "1s4c",
        [{"name": "eth0", "pin_cpus": [2, 3], "lb_procs": 3}],
        ["interfaces[0].pin_cpus lists 2 CPUs but interfaces[0].lb_procs is 3"],
    ),
    Refusal(
        "pins-not-a-list", "1s4c", [{"name": "eth0", "pin_cpus": "2,3"}], ["interfaces[0].pin_cpus must be a list"]
    ),
    Refusal("fanout-too-big", "1s4c", [{"name": "eth0", "fanout_id": 65536}], ["interfaces[0].fanout_id is 65536"]),
    Refusal("fanout-negative", "1s4c", [{"name": "eth0", "fanout_id": -1}], ["interfaces[0].fanout_id is -1"]),
    Refusal(
        "fanout-twice",
        "1s4c",
        [{"name": "eth0", "fanout_id": 30}, {"name": "eth1", "fanout_id": 30}],
        ["interfaces[1].fanout_id 30 is already used by interfaces[0] (eth0)"],
    ),
    Refusal("fanout-base-too-big", "1s4c", [{"name": "eth0"}], ["fanout_id_base is 65536"], {"fanout_id_base": 65536}),
    Refusal(
        "fanout-base-runs-out",
        "1s4c",
        [{"name": "eth0"}, {"name": "eth1"}],
        ["fanout_id_base 65535 leaves no free fanout id for interfaces[1] (eth1)"],
        {"fanout_id_base": 65535},
    ),
    Refusal(
        "buffer-size-small",
        "1s4c",
        [{"name": "eth0", "buffer_size": MIB - 1}],
        [f"interfaces[0].buffer_size is {MIB - 1} bytes", "at least 1048576"],
    ),
    Refusal(
        "buffer-size-option-small", "1s4c", [{"name": "eth0"}], ["buffer_size is 4096 bytes"], {"buffer_size": 4096}
    ),
    Refusal("reserved-negative", "1s4c", [{"name": "eth0"}], ["reserved_cores is -1"], {"reserved_cores": -1}),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=[r.id for r in REFUSALS])
def test_refusals(refusal: Refusal, tmp_path):
    topology = zl.read_topology(sysfs(tmp_path, refusal.host, {}))
    with pytest.raises(zl.LayoutError) as err:
        zl.plan(topology, refusal.interfaces, **refusal.options)
    message = str(err.value)
    assert message.startswith(refusal.message[0]), message
    for part in refusal.message[1:]:
        assert part in message, message


def test_plan_is_pure_topology_only():
    """plan() works on a Topology built in memory, as the role's callers may do."""
    topology = zl.Topology([zl.Cpu(n, 0, n % 4, None) for n in range(8)])
    assert [c.cpus for c in topology.cores] == [(0, 4), (1, 5), (2, 6), (3, 7)]
    layout = zl.plan(topology, [{"name": "eth0"}])
    assert layout.workers == [worker("eth0", [2, 3], 21, None)]
    assert layout.reserved_cpus == [0, 1, 4, 5]


# --- Memory (the WG's hardware notes: about 6 GB per worker) -------------------------------

# Real sensor shapes: sockets x cores (hyperthreads n and n + all cores), NUMA node per socket.
MEMORY_HOSTS = {
    "2x16c": Host("0-63", {n: ((n % 32) // 16, n % 16) for n in range(64)}, {0: "0-15,32-47", 1: "16-31,48-63"}),
    "2x32c": Host("0-127", {n: ((n % 64) // 32, n % 32) for n in range(128)}, {0: "0-31,64-95", 1: "32-63,96-127"}),
    "1x8c": Host("0-7", {n: (0, n) for n in range(8)}, {0: "0-7"}),
}
FIGURES = "of memory, less reserved_memory_mb=8192 for the OS, logger, manager and proxy, holds"


def memory_plan(tmp_path: Path, host: str, nics: dict[str, int], memory_mb: int, **options) -> zl.Layout:
    root = str(MEMORY_HOSTS[host].write(tmp_path / "sys", nics))
    interfaces = options.pop("interfaces", [{"name": name} for name in nics])
    numa = {name: zl.nic_numa_node(root, name) for name in nics}
    options.setdefault("memory_per_worker_mb", 6144)
    return zl.plan(zl.read_topology(root), interfaces, nic_numa=numa, memory_mb=memory_mb, **options)


def test_2x16_cores_64gb_two_nics_capped_from_30_to_9_workers(tmp_path):
    """(65536 - 8192) // 6144 = 9 workers, not the 30 the cores would give (14 on node 0 past
    the 2 reserved cores, 16 on node 1): one each, and the 7 left by the 13 and 15 beyond one."""
    layout = memory_plan(tmp_path, "2x16c", {"ens1f0": 0, "ens2f0": 1}, 65536)
    assert layout.workers == [worker("ens1f0", r(2, 5), 21, 0), worker("ens2f0", r(16, 20), 22, 1)]
    (warning,) = layout.warnings
    assert warning.startswith(f"workers capped by memory from 30 to 9: 65536 MB {FIGURES} 9 workers of")
    assert warning.endswith(
        "(interfaces[0] (ens1f0): 14, interfaces[1] (ens2f0): 16 -> "
        "interfaces[0] (ens1f0): 4, interfaces[1] (ens2f0): 5)"
    )
    assert (layout.summary()["memory_mb"], layout.summary()["memory_workers"], layout.summary()["workers"]) == (
        65536,
        9,
        9,
    )


def test_2x32_cores_384gb_two_nics_62_workers_fit_exactly(tmp_path):
    """(393216 - 8192) // 6144 = 62: the 62 cores past the reservation, no cap."""
    layout = memory_plan(tmp_path, "2x32c", {"ens1f0": 0, "ens2f0": 1}, 393216)
    assert layout.workers == [worker("ens1f0", r(2, 31), 21, 0), worker("ens2f0", r(32, 63), 22, 1)]
    assert layout.warnings == [] and layout.summary()["memory_workers"] == 62


def test_1x8_cores_16gb_one_nic_capped_from_6_to_1_worker(tmp_path):
    layout = memory_plan(tmp_path, "1x8c", {"eth0": 0}, 16384)
    assert layout.workers == [worker("eth0", [2], 21, 0)]
    assert layout.warnings[0].startswith(f"workers capped by memory from 6 to 1: 16384 MB {FIGURES} 1 worker of")


def test_1x8_cores_16gb_2gb_workers_capped_from_6_to_4(tmp_path):
    layout = memory_plan(tmp_path, "1x8c", {"eth0": 0}, 16384, memory_per_worker_mb=2048)
    assert layout.workers == [worker("eth0", r(2, 5), 21, 0)]


def test_1x8_cores_16gb_explicit_workers_keep_theirs_and_the_derived_take_the_rest(tmp_path):
    """Room for 4 workers of 2 GB: 2 pinned, so the derived interface gets 2 of its 4 cores."""
    interfaces = [{"name": "eth0", "pin_cpus": [6, 7]}, {"name": "eth1"}]
    layout = memory_plan(
        tmp_path, "1x8c", {"eth0": 0, "eth1": 0}, 16384, memory_per_worker_mb=2048, interfaces=interfaces
    )
    assert layout.workers == [worker("eth0", [6, 7], 21, 0), worker("eth1", [2, 3], 22, 0)]


@pytest.mark.parametrize(
    ("interfaces", "field_name", "wanted"),
    [
        ([{"name": "eth0"}, {"name": "eth1"}], "interfaces", "2 wanted (2 interfaces without lb_procs needing 1 each)"),
        ([{"name": "eth0", "lb_procs": 4}], "interfaces[0].lb_procs", "4 wanted (interfaces[0].lb_procs=4)"),
        ([{"name": "eth0", "pin_cpus": [4, 5]}], "interfaces[0].pin_cpus", "2 wanted (interfaces[0].pin_cpus=2)"),
    ],
    ids=["two-nics", "lb_procs-4", "pins-2"],
)
def test_1x8_cores_16gb_refuses_more_workers_than_1(tmp_path, interfaces, field_name, wanted):
    with pytest.raises(zl.LayoutError) as caught:
        memory_plan(tmp_path, "1x8c", {"eth0": 0, "eth1": 0}, 16384, interfaces=interfaces)
    assert str(caught.value) == (
        f"{field_name}: more workers than memory: {wanted} but 16384 MB {FIGURES} 1 worker of memory_per_worker_mb=6144"
    )


def test_memory_options_checked_and_meminfo_read(tmp_path):
    topology = zl.read_topology(str(MEMORY_HOSTS["1x8c"].write(tmp_path / "sys", {})))
    with pytest.raises(zl.LayoutError, match="memory_per_worker_mb is 0; it must be 1 or more"):
        zl.plan(topology, [{"name": "eth0"}], memory_mb=16384, memory_per_worker_mb=0)
    with pytest.raises(zl.LayoutError, match="reserved_memory_mb is -1; it must be 0 or more"):
        zl.plan(topology, [{"name": "eth0"}], memory_mb=16384, reserved_memory_mb=-1)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       65807876 kB\nMemFree:        60000000 kB\n")
    assert zl.read_memory_mb(str(meminfo)) == 64265
    meminfo.write_text("MemFree:        60000000 kB\n")
    with pytest.raises(zl.LayoutError, match="does not give the host's memory"):
        zl.read_memory_mb(str(meminfo))


# --- The module, end to end through ansible-playbook ----------------------------------------


def run_play(tmp_path: Path, tasks: list[dict], check: bool = False) -> list[dict]:
    """Run tasks of a play on localhost; each task's result for localhost."""
    return run_tasks(tmp_path, tasks, check=check)[0]


def test_module_end_to_end(tmp_path):
    big = sysfs(tmp_path / "big", "2s12c-ht", {"ens1f0": 0, "ens2f0": 1})
    tiny = sysfs(tmp_path / "tiny", "1cpu", {"eth0": -1})
    layout = {"wlcg.soc.zeek_cpu_layout": {"sysfs_root": big, "interfaces": [{"name": "ens2f0"}, {"name": "ens1f0"}]}}
    tasks = [
        layout,
        {"wlcg.soc.zeek_cpu_layout": {"sysfs_root": tiny, "interfaces": [{"name": "eth0", "buffer_size": 64 * MIB}]}},
        {
            "wlcg.soc.zeek_cpu_layout": {"sysfs_root": big, "interfaces": [{"name": "ens1f0"}, {"name": "eth9"}]},
            "ignore_errors": True,
        },
        {
            "wlcg.soc.zeek_cpu_layout": {
                "sysfs_root": big,
                "interfaces": [{"name": "ens1f0", "fanout_id": 7}, {"name": "ens2f0", "fanout_id": 7}],
            },
            "ignore_errors": True,
        },
        {
            "wlcg.soc.zeek_cpu_layout": {"sysfs_root": big, "interfaces": [{"name": "ens1f0", "pin_cpus": "x"}]},
            "ignore_errors": True,
        },
        {
            "wlcg.soc.zeek_cpu_layout": {"sysfs_root": str(tmp_path / "none"), "interfaces": [{"name": "eth0"}]},
            "ignore_errors": True,
        },
    ]
    first, small, missing, clash, bad_type, no_sysfs = run_play(tmp_path, tasks)

    assert first["changed"] is False, first
    assert first["workers"] == [worker("ens2f0", r(12, 23), 21, 1), worker("ens1f0", r(2, 11), 22, 0)]
    assert first["topology"] == {
        "cpus_online": 48,
        "cpu_list": "0-47",
        "physical_cores": 24,
        "packages": 2,
        "numa_nodes": [0, 1],
        "hyperthreading": True,
        "reserved_cores": 2,
        "reserved_cpus": [0, 1, 24, 25],
        "workers": 22,
        "memory_mb": None,
        "memory_workers": None,
    }
    assert not first.get("warnings")

    assert small["changed"] is False
    assert small["workers"] == [worker("eth0", [0], 21, None, 64 * MIB)]
    assert small["topology"]["reserved_cores"] == 0
    assert any("reserved_cores lowered from 2 to 0" in w for w in small["warnings"]), small

    assert missing["failed"] is True
    assert missing["msg"].startswith("interfaces[1].name: this host has no network interface eth9"), missing
    assert clash["failed"] is True
    assert clash["msg"].startswith("interfaces[1].fanout_id 7 is already used by interfaces[0] (ens1f0)"), clash
    assert bad_type["failed"] is True
    assert "pin_cpus" in bad_type["msg"], bad_type
    assert no_sysfs["failed"] is True
    assert no_sysfs["msg"].startswith(f"cannot read the CPU topology under {tmp_path / 'none'}"), no_sysfs

    # Read-only: check mode gives the same answer.
    (checked,) = run_play(tmp_path, [layout], check=True)
    assert checked["changed"] is False
    assert checked["workers"] == first["workers"]


def test_module_bounds_workers_by_memory(tmp_path):
    big = sysfs(tmp_path / "big", "2s12c-ht", {"ens1f0": 0, "ens2f0": 1})
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       33554432 kB\n")  # 32 GiB: (32768 - 8192) // 6144 = 4 workers
    interfaces = [{"name": "ens2f0"}, {"name": "ens1f0"}]
    bounded = {"sysfs_root": big, "interfaces": interfaces, "memory_per_worker_mb": 6144}
    tasks = [
        {"wlcg.soc.zeek_cpu_layout": dict(bounded, meminfo_path=str(meminfo))},
        {"wlcg.soc.zeek_cpu_layout": dict(bounded, meminfo_path=str(tmp_path / "none")), "ignore_errors": True},
    ]
    capped, unreadable = run_play(tmp_path, tasks)
    assert capped["workers"] == [worker("ens2f0", [12, 13], 21, 1), worker("ens1f0", [2, 3], 22, 0)]
    assert (capped["topology"]["memory_mb"], capped["topology"]["memory_workers"]) == (32768, 4)
    assert any(w.startswith("workers capped by memory from 22 to 4: 32768 MB") for w in capped["warnings"]), capped
    assert unreadable["failed"] is True
    assert unreadable["msg"].startswith("cannot read the host's memory: "), unreadable
