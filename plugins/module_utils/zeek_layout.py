# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Zeek worker layout on a sensor: CPU topology from sysfs, workers and CPU pins per interface.

Importable without Ansible. ``read_topology`` reads a host's sysfs; ``plan`` is pure and
derives, for each capture interface, the AF_PACKET worker settings of zeekctl's node.cfg
(``lb_procs``, ``pin_cpus``, ``af_packet_fanout_id``, ``af_packet_buffer_size``).

Policy (the WLCG SOC WG's sizing: physical cores first, about one per Gb/s):

- the first ``reserved_cores`` physical cores (package 0 first), with all their hardware
  threads, stay free for the OS, the logger, the manager and the proxy;
- the remaining physical cores are the worker pool: their primary CPUs (lowest id of the
  core's threads) only, or every thread with ``use_hyperthreads``;
- explicit ``pin_cpus`` are taken as given and leave the pool first (their whole physical
  core, unless hyperthreads are in use); an explicit ``lb_procs`` without pins takes that
  many CPUs of the pool;
- an interface whose NIC sits on a known NUMA node takes CPUs of that node; interfaces
  sharing a pool split it evenly, the remainder going to the earlier ones; interfaces
  whose NIC's node is unknown share the CPUs of the nodes no NIC sits on;
- when the pool cannot give each interface one CPU, the reservation is lowered (down to
  0) with a warning; what is still impossible is refused with ``LayoutError``;
- memory bounds the workers too (the WG's hardware notes: about 6 GB per worker process):
  the host's memory less ``reserved_memory_mb`` (OS, logger, manager, proxy) over
  ``memory_per_worker_mb``; derived worker counts are capped to fit, with a warning naming
  the figures, and explicit ones that do not fit are refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MIB = 1024 * 1024
MIN_BUFFER_SIZE = MIB
DEFAULT_BUFFER_SIZE = 128 * MIB
DEFAULT_FANOUT_ID_BASE = 21
DEFAULT_RESERVED_CORES = 2
DEFAULT_MEMORY_PER_WORKER_MB = 6144
DEFAULT_RESERVED_MEMORY_MB = 8192
MAX_FANOUT_ID = 65535  # PACKET_FANOUT takes a 16-bit group id
INTERFACE_KEYS = ("name", "lb_procs", "pin_cpus", "fanout_id", "buffer_size")

# The kernel's rule for interface names (dev_valid_name): 1-15 characters, no "/", ":"
# or white space, not "." or "..".
_IFNAME = re.compile(r"[^/:\s]{1,15}")


class LayoutError(ValueError):
    """An impossible or invalid setting; the message names the field."""


# --- CPU lists ("0-3,8-11") ------------------------------------------------------------


def parse_cpu_list(text: str) -> list[int]:
    """CPU ids of a kernel CPU list such as ``0-3,8-11`` (sorted, without duplicates)."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        first, sep, last = part.partition("-")
        try:
            lo = int(first)
            hi = int(last) if sep else lo
        except ValueError:
            raise LayoutError(f"not a CPU list: {text.strip()!r}") from None
        if lo < 0 or hi < lo:
            raise LayoutError(f"not a CPU list: {text.strip()!r}")
        cpus.update(range(lo, hi + 1))
    return sorted(cpus)


def format_cpu_list(cpus: Iterable[int]) -> str:
    """The kernel's compact form of a set of CPU ids: ``[0, 1, 2, 5]`` -> ``0-2,5``."""
    ranges: list[list[int]] = []
    for cpu in sorted(set(cpus)):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


def _plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"


# --- Topology ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cpu:
    """One online logical CPU.

    ``core`` is the core id within its package, None when the kernel does not tell it:
    such a CPU counts as a physical core of its own.
    """

    id: int
    package: int = 0
    core: int | None = None
    numa_node: int | None = None


@dataclass(frozen=True)
class Core:
    """A physical core: its hardware threads (online CPU ids, ascending)."""

    package: int
    cpus: tuple[int, ...]
    numa_node: int | None

    @property
    def primary(self) -> int:
        """The lowest CPU id of the core's threads."""
        return self.cpus[0]

    @property
    def siblings(self) -> tuple[int, ...]:
        """The core's other threads (hyperthreads of the primary CPU)."""
        return self.cpus[1:]


@dataclass
class Topology:
    """Online CPUs of a host; physical cores and NUMA nodes are derived from them."""

    cpus: Sequence[Cpu]
    cores: list[Core] = field(init=False)
    numa_nodes: list[int] = field(init=False)
    core_of: dict[int, Core] = field(init=False, repr=False)
    _numa: dict[int, int | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.cpus = sorted(self.cpus, key=lambda c: c.id)
        if not self.cpus:
            raise LayoutError("no online CPU")
        ids = [c.id for c in self.cpus]
        if len(set(ids)) != len(ids):
            raise LayoutError(f"CPU listed twice in {ids}")
        groups: dict[tuple[Any, ...], list[Cpu]] = {}
        for cpu in self.cpus:
            key = (cpu.package, cpu.core) if cpu.core is not None else (cpu.package, None, cpu.id)
            groups.setdefault(key, []).append(cpu)
        cores = [Core(g[0].package, tuple(c.id for c in g), g[0].numa_node) for g in groups.values()]
        self.cores = sorted(cores, key=lambda c: (c.package, c.primary))
        self.core_of = {cpu: core for core in self.cores for cpu in core.cpus}
        self.numa_nodes = sorted({c.numa_node for c in self.cpus if c.numa_node is not None})
        self._numa = {c.id: c.numa_node for c in self.cpus}

    @property
    def online(self) -> list[int]:
        return [c.id for c in self.cpus]

    @property
    def packages(self) -> list[int]:
        return sorted({c.package for c in self.cpus})

    @property
    def hyperthreading(self) -> bool:
        return any(core.siblings for core in self.cores)

    def numa_of(self, cpu: int) -> int | None:
        return self._numa.get(cpu)

    def summary(self) -> dict[str, Any]:
        return {
            "cpus_online": len(self.cpus),
            "cpu_list": format_cpu_list(self.online),
            "physical_cores": len(self.cores),
            "packages": len(self.packages),
            "numa_nodes": list(self.numa_nodes),
            "hyperthreading": self.hyperthreading,
        }


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _read_int(path: str) -> int | None:
    text = _read(path)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise LayoutError(f"{path}: not a number: {text!r}") from None


def read_topology(sysfs: str = "/sys") -> Topology:
    """The online CPUs of the host whose sysfs is mounted at ``sysfs``.

    Reads ``devices/system/cpu/online`` (the CPU directories when it is missing), each
    online CPU's ``topology/physical_package_id`` and ``topology/core_id`` (a CPU without
    them is a core of its own in package 0), and the NUMA nodes' ``cpulist`` under
    ``devices/system/node`` (none when missing). Raises LayoutError or OSError.
    """
    cpu_dir = os.path.join(sysfs, "devices/system/cpu")
    online_text = _read(os.path.join(cpu_dir, "online"))
    if online_text is not None:
        online = parse_cpu_list(online_text)
    else:
        try:
            names = os.listdir(cpu_dir)
        except FileNotFoundError:
            raise LayoutError(f"{cpu_dir} is missing: not a Linux sysfs") from None
        online = sorted(int(n[3:]) for n in names if re.fullmatch(r"cpu[0-9]+", n))
    if not online:
        raise LayoutError(f"{cpu_dir}: no online CPU")

    numa: dict[int, int] = {}
    node_dir = os.path.join(sysfs, "devices/system/node")
    try:
        node_names = os.listdir(node_dir)
    except (FileNotFoundError, NotADirectoryError):
        node_names = []
    for name in sorted(node_names):
        if not re.fullmatch(r"node[0-9]+", name):
            continue
        cpulist = _read(os.path.join(node_dir, name, "cpulist"))
        for cpu in parse_cpu_list(cpulist or ""):
            numa.setdefault(cpu, int(name[4:]))

    cpus = []
    for cpu in online:
        topo = os.path.join(cpu_dir, f"cpu{cpu}", "topology")
        package = _read_int(os.path.join(topo, "physical_package_id"))
        core = _read_int(os.path.join(topo, "core_id"))
        if package is None or package < 0:
            # Without the package, a core id could match another package's: own core.
            package, core = 0, None
        if core is not None:
            die = _read_int(os.path.join(topo, "die_id"))
            # Core ids are unique within a die; fold the die in for multi-die packages.
            if die is not None and die > 0:
                core = (die << 20) | core
        cpus.append(Cpu(cpu, package, core, numa.get(cpu)))
    return Topology(cpus)


def valid_interface_name(name: Any) -> bool:
    return isinstance(name, str) and bool(_IFNAME.fullmatch(name)) and name not in (".", "..")


def interface_exists(sysfs: str, ifname: str) -> bool:
    """Whether the host has a network interface of that name (``class/net/IF``)."""
    return valid_interface_name(ifname) and os.path.exists(os.path.join(sysfs, "class/net", ifname))


def nic_numa_node(sysfs: str, ifname: str) -> int | None:
    """The NUMA node of the interface's device, None when unknown (missing or -1)."""
    if not valid_interface_name(ifname):
        return None
    try:
        node = _read_int(os.path.join(sysfs, "class/net", ifname, "device/numa_node"))
    except LayoutError:
        return None
    return node if node is not None and node >= 0 else None


# --- Plan -------------------------------------------------------------------------------


def read_memory_mb(meminfo: str = "/proc/meminfo") -> int:
    """The host's memory (MemTotal) in MiB; LayoutError when the file does not tell."""
    text = _read(meminfo)
    found = re.search(r"^MemTotal:\s+(\d+)\s+kB$", text or "", re.MULTILINE)
    if found is None:
        raise LayoutError(f"{meminfo} does not give the host's memory (MemTotal)")
    return int(found.group(1)) // 1024


@dataclass
class Layout:
    """The derived workers (input order) and what was reserved and noticed on the way."""

    topology: Topology
    workers: list[dict[str, Any]]
    reserved_cores: int
    reserved_cpus: list[int]
    warnings: list[str] = field(default_factory=list)
    memory_mb: int | None = None
    memory_workers: int | None = None

    def summary(self) -> dict[str, Any]:
        return {
            **self.topology.summary(),
            "reserved_cores": self.reserved_cores,
            "reserved_cpus": list(self.reserved_cpus),
            "workers": sum(w["lb_procs"] for w in self.workers),
            "memory_mb": self.memory_mb,
            "memory_workers": self.memory_workers,
        }


@dataclass
class _Iface:
    index: int
    name: str
    lb_procs: int | None
    pins: list[int] | None
    fanout_id: int | None
    buffer_size: int
    nic_node: int | None
    home: Any = None
    count: int = 0
    cpus: list[int] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"interfaces[{self.index}]"

    @property
    def label(self) -> str:
        return f"interfaces[{self.index}] ({self.name})"


def _int_option(value: Any, what: str, *, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise LayoutError(f"{what} must be an integer, got {value!r}")
    return value


def _check_buffer_size(value: int, what: str) -> None:
    if value < MIN_BUFFER_SIZE:
        raise LayoutError(
            f"{what} is {value} bytes; AF_PACKET's ring needs at least {MIN_BUFFER_SIZE} (1 MiB), "
            f"{DEFAULT_BUFFER_SIZE} (128 MiB) is customary"
        )


def _check_fanout_id(value: int, what: str) -> None:
    if not 0 <= value <= MAX_FANOUT_ID:
        raise LayoutError(f"{what} is {value}; AF_PACKET fanout ids range from 0 to {MAX_FANOUT_ID}")


def _parse_interfaces(
    interfaces: Sequence[Mapping[str, Any]], buffer_size: int, nic_numa: Mapping[str, int | None]
) -> list[_Iface]:
    if isinstance(interfaces, (str, bytes)) or not isinstance(interfaces, Sequence):
        raise LayoutError("interfaces must be a list of capture interfaces")
    if not interfaces:
        raise LayoutError("interfaces is empty: at least one capture interface is required")
    parsed: list[_Iface] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(interfaces):
        where = f"interfaces[{index}]"
        if not isinstance(item, Mapping):
            raise LayoutError(f"{where} must be a dict with at least a name, got {item!r}")
        unknown = sorted(set(item) - set(INTERFACE_KEYS))
        if unknown:
            raise LayoutError(
                f"{where}: unknown key(s) {', '.join(map(str, unknown))}; known: {', '.join(INTERFACE_KEYS)}"
            )
        name = item.get("name")
        if name is None or name == "":
            raise LayoutError(f"{where}.name is required")
        if not valid_interface_name(name):
            raise LayoutError(
                f"{where}.name {name!r} is not a network interface name (1-15 characters, no '/', ':' or blanks)"
            )
        if name in seen:
            raise LayoutError(f"{where}.name: interface {name} is listed twice (also interfaces[{seen[name]}])")
        seen[name] = index
        lb_procs = _int_option(item.get("lb_procs"), f"{where}.lb_procs")
        if lb_procs is not None and lb_procs < 1:
            raise LayoutError(f"{where}.lb_procs is {lb_procs}; an interface needs at least 1 worker")
        pins = item.get("pin_cpus")
        if pins is not None:
            if isinstance(pins, (str, bytes)) or not isinstance(pins, Sequence):
                raise LayoutError(f"{where}.pin_cpus must be a list of CPU numbers, got {pins!r}")
            pins = [_int_option(p, f"{where}.pin_cpus", allow_none=False) for p in pins]
            if not pins:
                pins = None  # an empty list means "derive them"
        fanout_id = _int_option(item.get("fanout_id"), f"{where}.fanout_id")
        if fanout_id is not None:
            _check_fanout_id(fanout_id, f"{where}.fanout_id")
        size = _int_option(item.get("buffer_size"), f"{where}.buffer_size")
        if size is not None:
            _check_buffer_size(size, f"{where}.buffer_size")
        node = nic_numa.get(name)
        if node is not None and (isinstance(node, bool) or not isinstance(node, int) or node < 0):
            node = None
        parsed.append(_Iface(index, name, lb_procs, pins, fanout_id, buffer_size if size is None else size, node))
    return parsed


def _check_pins(topology: Topology, ifaces: list[_Iface]) -> None:
    online = set(topology.online)
    owner: dict[int, _Iface] = {}
    for iface in ifaces:
        if iface.pins is None:
            continue
        what = f"{iface.where}.pin_cpus"
        seen: set[int] = set()
        for cpu in iface.pins:
            if cpu not in online:
                raise LayoutError(
                    f"{what}: CPU {cpu} is not online on this host (online CPUs: {format_cpu_list(online)})"
                )
            if cpu in seen:
                raise LayoutError(f"{what} lists CPU {cpu} twice")
            seen.add(cpu)
            if cpu in owner:
                raise LayoutError(f"{what}: CPU {cpu} is already pinned by {owner[cpu].label}")
            owner[cpu] = iface
        if iface.lb_procs is not None and iface.lb_procs != len(iface.pins):
            raise LayoutError(
                f"{what} lists {_plural(len(iface.pins), 'CPU')} but {iface.where}.lb_procs is "
                f"{iface.lb_procs}: zeekctl needs one CPU per worker (leave lb_procs out to use the pins' count)"
            )


def _pin_warnings(topology: Topology, ifaces: list[_Iface], reserved: set[int]) -> list[str]:
    warnings = []
    pinned: list[tuple[int, _Iface]] = [(cpu, i) for i in ifaces if i.pins for cpu in i.pins]
    for iface in ifaces:
        if not iface.pins:
            continue
        on_reserved = [cpu for cpu in iface.pins if cpu in reserved]
        if on_reserved:
            warnings.append(
                f"{iface.where}.pin_cpus: {_cpus(on_reserved)} on the cores reserved for the OS, logger, "
                f"manager and proxy (reserved CPUs {format_cpu_list(reserved)}; see reserved_cores)"
            )
        if iface.nic_node is not None and topology.numa_nodes:
            away = [cpu for cpu in iface.pins if topology.numa_of(cpu) != iface.nic_node]
            if away:
                warnings.append(
                    f"{iface.where}.pin_cpus: {_cpus(away)} not on NUMA node {iface.nic_node}, "
                    f"where the NIC {iface.name} sits"
                )
    for n, (cpu, iface) in enumerate(pinned):
        for other, other_iface in pinned[n + 1 :]:
            if topology.core_of[cpu] is topology.core_of[other]:
                by = "also pinned by it" if other_iface is iface else f"pinned by {iface.label}"
                warnings.append(
                    f"{other_iface.where}.pin_cpus: CPU {other} is a hyperthread sibling of CPU {cpu} ({by}): "
                    "the two workers share one physical core"
                )
    return warnings


def _cpus(cpus: Sequence[int]) -> str:
    return f"CPU {cpus[0]} is" if len(cpus) == 1 else f"CPUs {format_cpu_list(cpus)} are"


def _pool(topology: Topology, reserved_cores: int, ifaces: list[_Iface], use_hyperthreads: bool) -> list[int]:
    """Worker CPUs left once the reservation and the explicit pins are taken, core by core."""
    pinned = {cpu for i in ifaces if i.pins for cpu in i.pins}
    pool = []
    for core in topology.cores[reserved_cores:]:
        if use_hyperthreads:
            pool.extend(cpu for cpu in core.cpus if cpu not in pinned)
        elif not pinned.intersection(core.cpus):
            pool.append(core.primary)
    return pool


def _split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` shares as even as can be, the larger ones first."""
    base, extra = divmod(total, parts)
    return [base + 1 if n < extra else base for n in range(parts)]


def _distribute(topology: Topology, pool: list[int], auto: list[_Iface], counted: list[_Iface]) -> list[str]:
    """Give each interface without pins its CPUs from ``pool``; the warnings it gives rise to."""
    warnings: list[str] = []
    ifaces = sorted(auto + counted, key=lambda i: i.index)
    use_numa = bool(topology.numa_nodes)
    for iface in ifaces:
        node = iface.nic_node if use_numa else None
        iface.home = ("node", node) if node is not None else ("rest",)
    bound = {i.home[1] for i in ifaces if i.home[0] == "node"}
    homes: dict[Any, list[int]] = {("node", n): [] for n in sorted(bound)}
    homes[("rest",)] = []
    for cpu in pool:
        node = topology.numa_of(cpu)
        homes[("node", node) if node in bound else ("rest",)].append(cpu)

    members = {key: [i for i in ifaces if i.home == key] for key in homes}
    # CPUs of each home left once its interfaces with a fixed lb_procs have theirs (may be < 0).
    free = {key: len(cpus) - sum(i.lb_procs or 0 for i in members[key]) for key, cpus in homes.items()}
    autos = {key: sum(1 for i in members[key] if i.lb_procs is None) for key in homes}
    deficit = sum(max(0, autos[k] - free[k]) for k in homes)
    given = dict.fromkeys(homes, 0)
    # Homes nobody uses give first, then those with most CPUs per interface, one at a time.
    while deficit > 0:
        idle = [k for k in homes if autos[k] == 0 and free[k] - given[k] > 0]
        if idle:
            donor = idle[0]
        else:
            donor = max(
                (k for k in homes if autos[k] and free[k] - given[k] > autos[k]),
                key=lambda k: (free[k] - given[k]) / autos[k],
            )
        given[donor] += 1
        deficit -= 1

    spare: list[int] = []  # CPUs given away, in pool order
    kept: dict[Any, list[int]] = {}
    for key, cpus in homes.items():
        cut = len(cpus) - given[key]
        kept[key] = cpus[:cut]
        spare.extend(cpus[cut:])
    spare.sort(key=pool.index)

    for key, group in members.items():
        if not group:
            continue
        own = max(0, free[key] - given[key])
        shares = iter(_split(own, autos[key]) if autos[key] else [])
        for iface in group:
            iface.count = iface.lb_procs if iface.lb_procs is not None else max(1, next(shares))
        available = kept[key]
        for iface in group:
            take, available = available[: iface.count], available[iface.count :]
            missing = iface.count - len(take)
            if missing:
                borrowed, spare = spare[:missing], spare[missing:]
                take = take + borrowed
                if key[0] == "node":
                    why = f"NUMA node {key[1]} of the NIC has too few free cores"
                else:
                    why = "too few free cores are left outside the NUMA nodes of the other interfaces' NICs"
                warnings.append(
                    f"{iface.label}: {why}; {_cpus(borrowed)} taken from elsewhere (set lb_procs or pin_cpus to choose)"
                )
            iface.cpus = sorted(take)
    return warnings


def _assign_fanout_ids(ifaces: list[_Iface], fanout_id_base: int) -> None:
    """Explicit fanout ids as given, the others fanout_id_base + index, skipping taken ids."""
    used: dict[int, _Iface] = {}
    for iface in ifaces:
        if iface.fanout_id is not None:
            if iface.fanout_id in used:
                raise LayoutError(
                    f"{iface.where}.fanout_id {iface.fanout_id} is already used by {used[iface.fanout_id].label}; "
                    "AF_PACKET fanout ids must be unique per host"
                )
            used[iface.fanout_id] = iface
    for iface in ifaces:
        if iface.fanout_id is None:
            candidate = fanout_id_base + iface.index
            while candidate in used:
                candidate += 1
            if candidate > MAX_FANOUT_ID:
                raise LayoutError(
                    f"fanout_id_base {fanout_id_base} leaves no free fanout id for {iface.label} "
                    f"(ids range from 0 to {MAX_FANOUT_ID}); lower fanout_id_base"
                )
            iface.fanout_id = candidate
            used[candidate] = iface


def _cores_text(topology: Topology) -> str:
    return f"the host has {_plural(len(topology.cores), 'physical core')} ({_plural(len(topology.cpus), 'CPU')} online)"


def _reservation(
    topology: Topology, reserved_cores: int, ifaces: list[_Iface], wanted: int, use_hyperthreads: bool
) -> tuple[int, list[int], list[str]]:
    """Reserved cores, worker CPU pool and warnings: the reservation is lowered until each of
    the ``wanted`` interfaces without pins can have one CPU."""
    reserve = min(reserved_cores, len(topology.cores))
    pool = _pool(topology, reserve, ifaces, use_hyperthreads)
    while len(pool) < wanted and reserve > 0:
        reserve -= 1
        pool = _pool(topology, reserve, ifaces, use_hyperthreads)
    if reserve == reserved_cores:
        return reserve, pool, []
    unit = "CPU" if use_hyperthreads else "core"
    why = (
        f", too few to keep {reserved_cores} for the OS, logger, manager and proxy and give "
        + ("the interface" if wanted == 1 else f"each of the {wanted} interfaces")
        + f" a worker {unit} of its own"
        if wanted
        else ""
    )
    return reserve, pool, [f"reserved_cores lowered from {reserved_cores} to {reserve}: {_cores_text(topology)}{why}"]


def _check_capacity(
    topology: Topology,
    ifaces: list[_Iface],
    pool: list[int],
    reserve: int,
    reserved_cores: int,
    use_hyperthreads: bool,
) -> None:
    """LayoutError naming the demand and what is left when the workers do not fit in ``pool``."""
    pinned = [i for i in ifaces if i.pins is not None]
    counted = [i for i in ifaces if i.pins is None and i.lb_procs is not None]
    auto = [i for i in ifaces if i.pins is None and i.lb_procs is None]
    needed = sum(i.lb_procs or 0 for i in counted) + len(auto)
    if needed <= len(pool):
        return
    unit = "CPU" if use_hyperthreads else "core"
    demand = ", ".join(f"{i.where}.lb_procs={i.lb_procs}" for i in counted)
    if auto:
        demand += (", " if demand else "") + f"{_plural(len(auto), 'interface')} without lb_procs needing 1 each"
    free_cpus = {cpu for core in topology.cores[reserve:] for cpu in core.cpus}
    pinned_cpus = {cpu for i in pinned for cpu in (i.pins or []) if cpu in free_cpus}
    pinned_cores = {topology.core_of[cpu].primary for cpu in pinned_cpus}
    taken = len(pinned_cpus) if use_hyperthreads else len(pinned_cores)
    pins_text = f", {_plural(taken, unit)} taken by pin_cpus" if taken else ""
    ht_text = "" if use_hyperthreads or not topology.hyperthreading else " (hyperthreads not used)"
    lowered = f", lowered from {reserved_cores}" if reserve != reserved_cores else ""
    fields = ", ".join(f"{i.where}.lb_procs" for i in counted) or "interfaces"
    raise LayoutError(
        f"{fields}: more workers than cores: {needed} wanted ({demand}) but {_cores_text(topology)}{ht_text}, "
        f"{_plural(reserve, 'core')} reserved (reserved_cores{lowered}){pins_text}, "
        f"{_plural(len(pool), unit)} remain{'s' if len(pool) == 1 else ''} for workers"
    )


def _memory_room(memory_mb: int, reserved_memory_mb: int, memory_per_worker_mb: int) -> tuple[int, str]:
    """How many workers the memory holds, and the figures that say so."""
    room = max(0, memory_mb - reserved_memory_mb) // memory_per_worker_mb
    return room, (
        f"{memory_mb} MB of memory, less reserved_memory_mb={reserved_memory_mb} for the OS, logger, manager "
        f"and proxy, holds {_plural(room, 'worker')} of memory_per_worker_mb={memory_per_worker_mb}"
    )


def _check_memory(ifaces: list[_Iface], room: int, figures: str) -> None:
    """LayoutError when the explicit workers and one per other interface do not fit in ``room``."""
    fixed = [i for i in ifaces if i.pins is not None or i.lb_procs is not None]
    auto = [i for i in ifaces if i.pins is None and i.lb_procs is None]
    needed = sum(len(i.pins) if i.pins is not None else i.lb_procs or 0 for i in fixed) + len(auto)
    if needed <= room:
        return
    option = {i.index: f"{i.where}.{'pin_cpus' if i.pins is not None else 'lb_procs'}" for i in fixed}
    demand = ", ".join(f"{option[i.index]}={len(i.pins) if i.pins is not None else i.lb_procs}" for i in fixed)
    if auto:
        demand += (", " if demand else "") + f"{_plural(len(auto), 'interface')} without lb_procs needing 1 each"
    fields = ", ".join(option.values()) or "interfaces"
    raise LayoutError(f"{fields}: more workers than memory: {needed} wanted ({demand}) but {figures}")


def _cap_to_memory(ifaces: list[_Iface], room: int, figures: str) -> list[str]:
    """Trim the derived workers (interfaces without lb_procs or pins) to ``room`` in all,
    in proportion to what the cores gave each (at least one each); the warning."""
    auto = [i for i in ifaces if i.pins is None and i.lb_procs is None]
    total = sum(i.count for i in ifaces)
    if total <= room or not auto:
        return []
    # One each, and what the budget has beyond that by what the cores gave each beyond one
    # (largest remainders; _check_memory made sure the budget has one each).
    extra = room - (total - sum(i.count for i in auto)) - len(auto)
    weights = [i.count - 1 for i in auto]
    weight = sum(weights)
    shares = [1 + extra * w // weight for w in weights]
    order = sorted(range(len(auto)), key=lambda n: (-(extra * weights[n] % weight), n))
    for n in order[: len(auto) + extra - sum(shares)]:
        shares[n] += 1
    before = ", ".join(f"{i.label}: {i.count}" for i in auto)
    for iface, share in zip(auto, shares, strict=True):
        iface.count = share
        iface.cpus = iface.cpus[:share]
    after = ", ".join(f"{i.label}: {i.count}" for i in auto)
    return [f"workers capped by memory from {total} to {room}: {figures} ({before} -> {after})"]


def plan(
    topology: Topology,
    interfaces: Sequence[Mapping[str, Any]],
    *,
    reserved_cores: int = DEFAULT_RESERVED_CORES,
    use_hyperthreads: bool = False,
    fanout_id_base: int = DEFAULT_FANOUT_ID_BASE,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    nic_numa: Mapping[str, int | None] | None = None,
    memory_mb: int | None = None,
    memory_per_worker_mb: int = DEFAULT_MEMORY_PER_WORKER_MB,
    reserved_memory_mb: int = DEFAULT_RESERVED_MEMORY_MB,
) -> Layout:
    """Workers, CPU pins and fanout ids of each capture interface; raises LayoutError.
    Without ``memory_mb`` (MiB), memory does not bound the workers."""
    _int_option(reserved_cores, "reserved_cores", allow_none=False)
    if reserved_cores < 0:
        raise LayoutError(f"reserved_cores is {reserved_cores}; it must be 0 or more")
    _int_option(fanout_id_base, "fanout_id_base", allow_none=False)
    _check_fanout_id(fanout_id_base, "fanout_id_base")
    _int_option(buffer_size, "buffer_size", allow_none=False)
    _check_buffer_size(buffer_size, "buffer_size")
    _int_option(memory_mb, "memory_mb")
    _int_option(memory_per_worker_mb, "memory_per_worker_mb", allow_none=False)
    _int_option(reserved_memory_mb, "reserved_memory_mb", allow_none=False)
    if memory_per_worker_mb < 1:
        raise LayoutError(f"memory_per_worker_mb is {memory_per_worker_mb}; it must be 1 or more")
    if reserved_memory_mb < 0:
        raise LayoutError(f"reserved_memory_mb is {reserved_memory_mb}; it must be 0 or more")
    ifaces = _parse_interfaces(interfaces, buffer_size, nic_numa or {})
    _check_pins(topology, ifaces)
    _assign_fanout_ids(ifaces, fanout_id_base)
    room: int | None = None
    if memory_mb is not None:
        room, figures = _memory_room(memory_mb, reserved_memory_mb, memory_per_worker_mb)
        _check_memory(ifaces, room, figures)

    pinned = [i for i in ifaces if i.pins is not None]
    counted = [i for i in ifaces if i.pins is None and i.lb_procs is not None]
    auto = [i for i in ifaces if i.pins is None and i.lb_procs is None]
    reserve, pool, warnings = _reservation(topology, reserved_cores, ifaces, len(counted) + len(auto), use_hyperthreads)
    reserved_cpus = sorted(cpu for core in topology.cores[:reserve] for cpu in core.cpus)
    _check_capacity(topology, ifaces, pool, reserve, reserved_cores, use_hyperthreads)

    warnings.extend(_pin_warnings(topology, ifaces, set(reserved_cpus)))
    for iface in pinned:
        iface.count = len(iface.pins or [])
        iface.cpus = list(iface.pins or [])
    warnings.extend(_distribute(topology, pool, auto, counted))
    if room is not None:
        warnings.extend(_cap_to_memory(ifaces, room, figures))

    workers = [
        {
            "interface": i.name,
            "lb_procs": i.count,
            "pin_cpus": i.cpus,
            "fanout_id": i.fanout_id,
            "buffer_size": i.buffer_size,
            "numa_node": i.nic_node,
        }
        for i in ifaces
    ]
    return Layout(topology, workers, reserve, reserved_cpus, warnings, memory_mb, room)
