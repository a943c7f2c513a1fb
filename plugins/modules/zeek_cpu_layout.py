#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: zeek_cpu_layout
short_description: Derive Zeek AF_PACKET workers and CPU pins from a sensor's CPU topology
version_added: 0.1.0
description:
  - Reads the CPU topology of the target host from sysfs (online CPUs, physical packages,
    cores and their hyperthreads, NUMA nodes) and the NUMA node of each capture NIC, and
    derives, for each capture interface, the settings of its worker entry in zeekctl's
    C(node.cfg) (C(lb_procs), C(pin_cpus), C(af_packet_fanout_id), C(af_packet_buffer_size)).
  - Follows the WLCG SOC Working Group's sizing (about one physical core per 0.8 to 1 Gb/s,
    at least 12 for 10 Gb/s, physical cores first). The first O(reserved_cores) physical
    cores (package 0 first), with their hyperthreads, are kept for the OS, the logger, the
    manager and the proxy. The remaining physical cores are the worker pool; only their
    first thread is used unless O(use_hyperthreads=true).
  - An interface whose NIC sits on a known NUMA node gets cores of that node; interfaces
    sharing cores split them evenly, the remainder going to the earlier ones; interfaces
    whose NIC's node is unknown share the cores of the nodes no NIC sits on.
  - Explicit O(interfaces[].pin_cpus) are used as given and leave the pool first (their
    whole physical core, unless hyperthreads are used); an explicit O(interfaces[].lb_procs)
    without pins takes that many cores of the pool.
  - When the pool cannot give each interface one core, the reservation is lowered (down
    to 0) with a warning. Impossible settings fail with a message naming the option, e.g.
    more workers than cores, a pinned CPU that is not online or pinned twice, duplicate
    fanout ids, or an interface the host does not have.
  - With O(memory_per_worker_mb), memory bounds the workers too (the WG's hardware notes give
    about 6 GB per worker process) - the host's memory (O(memory_mb), or C(MemTotal) of
    O(meminfo_path)) less O(reserved_memory_mb), over O(memory_per_worker_mb). Derived worker
    counts are capped to fit, in proportion to what the cores gave each interface, with a
    warning naming the figures; explicit O(interfaces[].lb_procs) or O(interfaces[].pin_cpus)
    that do not fit, or more interfaces than workers fit, fail naming the figures.
  - Read-only; never reports a change.
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: linux
options:
  interfaces:
    description: The capture interfaces, one Zeek worker entry each.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The network interface (without the C(af_packet::) prefix).
        type: str
        required: true
      lb_procs:
        description:
          - Number of worker processes. Derived from the cores by default; with
            O(interfaces[].pin_cpus), it defaults to their count and must equal it.
        type: int
      pin_cpus:
        description:
          - CPUs to pin the workers to, one per worker, used as given. Derived by default;
            an empty list means derived too.
          - A pin on a reserved core or on a hyperthread of another pinned CPU gives a
            warning.
        type: list
        elements: int
      fanout_id:
        description:
          - AF_PACKET fanout group id (0 to 65535), unique on the host. Defaults to
            O(fanout_id_base) plus the interface's position in O(interfaces), skipping ids
            given explicitly.
        type: int
      buffer_size:
        description: AF_PACKET ring buffer size in bytes (at least 1 MiB). Defaults to O(buffer_size).
        type: int
  reserved_cores:
    description:
      - Physical cores (with their hyperthreads) kept free of workers for the OS, the
        logger, the manager and the proxy, taken from package 0 first.
      - Lowered, with a warning, on hosts too small to give each interface a core.
    type: int
    default: 2
  use_hyperthreads:
    description: Offer the hyperthreads of the pool's cores to workers too, not only one CPU per physical core.
    type: bool
    default: false
  fanout_id_base:
    description: First derived AF_PACKET fanout id.
    type: int
    default: 21
  buffer_size:
    description: AF_PACKET ring buffer size in bytes of interfaces without their own O(interfaces[].buffer_size).
    type: int
    default: 134217728
  memory_per_worker_mb:
    description:
      - Memory (MiB) one worker process needs; the WG's hardware notes give about 6 GB (6144).
      - Unset, memory does not bound the workers.
    type: int
  reserved_memory_mb:
    description: Memory (MiB) kept for the OS, the logger, the manager and the proxy.
    type: int
    default: 8192
  memory_mb:
    description: The host's memory (MiB). Read from O(meminfo_path) by default.
    type: int
  meminfo_path:
    description: Where the target's C(/proc/meminfo) is, for its C(MemTotal).
    type: path
    default: /proc/meminfo
  sysfs_root:
    description: Where the target's sysfs is mounted.
    type: path
    default: /sys
notes:
  - CPUs that are offline when the module runs are left out; run it again after bringing
    CPUs online.
  - The CPUs of a NIC's NUMA node come from C(/sys/class/net/<interface>/device/numa_node);
    virtual interfaces (bonds, VLANs) have none and count as unknown.
seealso:
  - name: Zeek AF_PACKET cluster setup
    description: Zeek's documentation of AF_PACKET workers in node.cfg.
    link: https://docs.zeek.org/en/master/cluster-setup.html
"""

EXAMPLES = r"""
- name: Derive the worker layout of the capture interfaces
  wlcg.soc.zeek_cpu_layout:
    interfaces:
      - name: ens1f0
      - name: ens1f1
  register: zeek_layout

- name: Show one node.cfg worker section per interface
  ansible.builtin.debug:
    msg: >-
      [worker-{{ item.interface }}] type=worker host=localhost
      interface=af_packet::{{ item.interface }} lb_method=custom lb_procs={{ item.lb_procs }}
      pin_cpus={{ item.pin_cpus | join(',') }} af_packet_fanout_id={{ item.fanout_id }}
      af_packet_fanout_mode=AF_Packet::FANOUT_HASH af_packet_buffer_size={{ item.buffer_size }}
  loop: "{{ zeek_layout.workers }}"

- name: Bound by memory too (the WG's 6 GB per worker), 16 GB kept for the other processes
  wlcg.soc.zeek_cpu_layout:
    memory_per_worker_mb: 6144
    reserved_memory_mb: 16384
    interfaces:
      - name: ens1f0

- name: Explicit pins on one interface, a fixed worker count on the other
  wlcg.soc.zeek_cpu_layout:
    reserved_cores: 4
    interfaces:
      - name: ens1f0
        pin_cpus: [4, 5, 6, 7, 8, 9]
        fanout_id: 40
      - name: ens2f0
        lb_procs: 4
        buffer_size: 268435456
"""

RETURN = r"""
workers:
  description: One entry per interface, in the order of O(interfaces).
  returned: success
  type: list
  elements: dict
  contains:
    interface:
      description: The interface name.
      type: str
      sample: ens1f0
    lb_procs:
      description: Number of workers.
      type: int
      sample: 10
    pin_cpus:
      description: CPUs the workers are pinned to, one per worker.
      type: list
      elements: int
      sample: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    fanout_id:
      description: AF_PACKET fanout group id.
      type: int
      sample: 21
    buffer_size:
      description: AF_PACKET ring buffer size in bytes.
      type: int
      sample: 134217728
    numa_node:
      description: NUMA node of the NIC, null when unknown.
      type: int
      sample: 0
  sample:
    - interface: ens1f0
      lb_procs: 10
      pin_cpus: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
      fanout_id: 21
      buffer_size: 134217728
      numa_node: 0
    - interface: ens1f1
      lb_procs: 12
      pin_cpus: [12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]
      fanout_id: 22
      buffer_size: 134217728
      numa_node: 1
topology:
  description: The host's CPU topology and what the layout makes of it.
  returned: success
  type: dict
  contains:
    cpus_online:
      description: Online CPUs (hardware threads).
      type: int
      sample: 48
    cpu_list:
      description: The online CPUs as a kernel CPU list.
      type: str
      sample: 0-47
    physical_cores:
      description: Online physical cores.
      type: int
      sample: 24
    packages:
      description: CPU packages (sockets).
      type: int
      sample: 2
    numa_nodes:
      description: NUMA nodes with online CPUs, empty when sysfs does not tell.
      type: list
      elements: int
      sample: [0, 1]
    hyperthreading:
      description: Whether some core has more than one online thread.
      type: bool
      sample: true
    reserved_cores:
      description: Physical cores kept free of workers (lower than O(reserved_cores) on small hosts).
      type: int
      sample: 2
    reserved_cpus:
      description: CPUs of the reserved cores, hyperthreads included.
      type: list
      elements: int
      sample: [0, 1, 24, 25]
    workers:
      description: Workers over all interfaces.
      type: int
      sample: 22
    memory_mb:
      description: The host's memory (MiB) the layout was bounded by, null when memory did not bound it.
      type: int
      sample: 393216
    memory_workers:
      description: How many workers that memory holds, null when memory did not bound the layout.
      type: int
      sample: 62
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wlcg.soc.plugins.module_utils.zeek_layout import (
    DEFAULT_MEMORY_PER_WORKER_MB,
    LayoutError,
    interface_exists,
    nic_numa_node,
    plan,
    read_memory_mb,
    read_topology,
    valid_interface_name,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interfaces=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    name=dict(type="str", required=True),
                    lb_procs=dict(type="int"),
                    pin_cpus=dict(type="list", elements="int"),
                    fanout_id=dict(type="int"),
                    buffer_size=dict(type="int"),
                ),
            ),
            reserved_cores=dict(type="int", default=2),
            use_hyperthreads=dict(type="bool", default=False),
            fanout_id_base=dict(type="int", default=21),
            buffer_size=dict(type="int", default=134217728),
            memory_per_worker_mb=dict(type="int"),
            reserved_memory_mb=dict(type="int", default=8192),
            memory_mb=dict(type="int"),
            meminfo_path=dict(type="path", default="/proc/meminfo"),
            sysfs_root=dict(type="path", default="/sys"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    sysfs = p["sysfs_root"]
    try:
        topology = read_topology(sysfs)
    except (LayoutError, OSError) as exc:
        module.fail_json(msg=f"cannot read the CPU topology under {sysfs}: {exc}")
    nic_numa = {}
    for index, item in enumerate(p["interfaces"]):
        name = item["name"]
        if not valid_interface_name(name):
            module.fail_json(msg=f"interfaces[{index}].name {name!r} is not a network interface name")
        if not interface_exists(sysfs, name):
            module.fail_json(
                msg=f"interfaces[{index}].name: this host has no network interface {name} "
                f"(nothing at {sysfs.rstrip('/')}/class/net/{name})"
            )
        nic_numa[name] = nic_numa_node(sysfs, name)
    memory_mb = p["memory_mb"]
    if p["memory_per_worker_mb"] is not None and memory_mb is None:
        try:
            memory_mb = read_memory_mb(p["meminfo_path"])
        except (LayoutError, OSError) as exc:
            module.fail_json(msg=f"cannot read the host's memory: {exc}")
    try:
        layout = plan(
            topology,
            p["interfaces"],
            reserved_cores=p["reserved_cores"],
            use_hyperthreads=p["use_hyperthreads"],
            fanout_id_base=p["fanout_id_base"],
            buffer_size=p["buffer_size"],
            nic_numa=nic_numa,
            # Memory bounds the workers only with a figure per worker.
            memory_mb=memory_mb if p["memory_per_worker_mb"] is not None else None,
            memory_per_worker_mb=(
                DEFAULT_MEMORY_PER_WORKER_MB if p["memory_per_worker_mb"] is None else p["memory_per_worker_mb"]
            ),
            reserved_memory_mb=p["reserved_memory_mb"],
        )
    except LayoutError as exc:
        module.fail_json(msg=str(exc))
    for warning in layout.warnings:
        module.warn(warning)
    module.exit_json(changed=False, workers=layout.workers, topology=layout.summary())


if __name__ == "__main__":
    main()
