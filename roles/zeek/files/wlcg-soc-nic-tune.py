# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tune a capture interface for Zeek (the WLCG SOC WG's NIC settings).

Offloads off (rx tx sg tso gso gro lro), RX/TX rings at the NIC's maximum or a set
size, Wake-on-LAN off, link up, promiscuous, no IP address (no IPv6 address generation,
addresses flushed). Reads ethtool and ip first and changes only what differs, so a
second run changes nothing. What the NIC does not support (veth has no rings or WOL)
is reported and skipped. Run by the unit wlcg-soc-nic-tune@IF.service at boot and by
the zeek role.

Usage: wlcg-soc-nic-tune [--check] [--json] [--config FILE] [--ring max|N] [--wait S] IF
Exit status: 0 done (or nothing to do), 1 error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

# ethtool -K short name -> the name ethtool -k prints.
OFFLOADS = {
    "rx": "rx-checksumming",
    "tx": "tx-checksumming",
    "sg": "scatter-gather",
    "tso": "tcp-segmentation-offload",
    "gso": "generic-segmentation-offload",
    "gro": "generic-receive-offload",
    "lro": "large-receive-offload",
}
ETHTOOL = "ethtool"
IP = "ip"


class TuneError(Exception):
    pass


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise TuneError(f"{' '.join(argv)}: {(proc.stderr or proc.stdout).strip() or 'exit ' + str(proc.returncode)}")
    return proc


def features(ifname: str) -> dict[str, tuple[bool, bool]]:
    """ethtool -k: feature -> (on, fixed)."""
    out = run([ETHTOOL, "-k", ifname]).stdout
    result = {}
    for line in out.splitlines():
        m = re.match(r"^\s*([a-z0-9-]+):\s+(on|off)(\s+\[fixed\])?", line)
        if m:
            result[m.group(1)] = (m.group(2) == "on", bool(m.group(3)))
    return result


def rings(ifname: str) -> dict[str, dict[str, int]] | None:
    """ethtool -g: {"max": {"RX": n, "TX": n}, "current": {...}}, None if unsupported."""
    proc = run([ETHTOOL, "-g", ifname], check=False)
    if proc.returncode != 0:
        return None
    section = None
    result: dict[str, dict[str, int]] = {"max": {}, "current": {}}
    for line in proc.stdout.splitlines():
        if line.startswith("Pre-set maximums"):
            section = "max"
        elif line.startswith("Current hardware settings"):
            section = "current"
        else:
            m = re.match(r"^(RX|TX):\s+(\d+)\s*$", line)
            if m and section:
                result[section][m.group(1)] = int(m.group(2))
    return result


def wake_on(ifname: str) -> tuple[str, str] | None:
    """(supported modes, current mode) from ethtool, None if the NIC has no WOL."""
    proc = run([ETHTOOL, ifname], check=False)
    supports = re.search(r"^\s*Supports Wake-on:\s*(\S+)", proc.stdout, re.M)
    current = re.search(r"^\s*Wake-on:\s*(\S+)", proc.stdout, re.M)
    if not supports or not current:
        return None
    return supports.group(1), current.group(1)


def link(ifname: str) -> dict[str, Any]:
    out = run([IP, "-j", "addr", "show", "dev", ifname]).stdout
    data = json.loads(out)
    if not data:
        raise TuneError(f"interface {ifname} not found")
    return data[0]


def ring_target(setting: str, maximum: int) -> int:
    if setting == "max":
        return maximum
    return min(int(setting), maximum)


def plan(ifname: str, ring_setting: str) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """The changes needed, as (description, command), and what is unsupported."""
    changes: list[tuple[str, list[str]]] = []
    unsupported: list[str] = []

    feats = features(ifname)
    turn_off = []
    for short, name in OFFLOADS.items():
        if name not in feats:
            unsupported.append(f"offload {short}")
        elif feats[name][0]:
            if feats[name][1]:
                unsupported.append(f"offload {short} (fixed on)")
            else:
                turn_off += [short, "off"]
    if turn_off:
        changes.append((f"offloads off: {' '.join(turn_off[::2])}", [ETHTOOL, "-K", ifname, *turn_off]))

    ring = rings(ifname)
    if ring is None or not ring["max"]:
        unsupported.append("ring sizes")
    else:
        args = []
        for key in ("RX", "TX"):
            if key in ring["max"] and key in ring["current"] and ring["max"][key] > 0:
                target = ring_target(ring_setting, ring["max"][key])
                if ring["current"][key] != target:
                    args += [key.lower(), str(target)]
        if args:
            changes.append((f"rings {' '.join(args)}", [ETHTOOL, "-G", ifname, *args]))

    wol = wake_on(ifname)
    if wol is None:
        unsupported.append("wake-on-lan")
    elif wol[1] != "d" and "d" in wol[0]:
        changes.append(("wake-on-lan off", [ETHTOOL, "-s", ifname, "wol", "d"]))

    info = link(ifname)
    flags = info.get("flags", [])
    if "UP" not in flags:
        changes.append(("link up", [IP, "link", "set", "dev", ifname, "up"]))
    if "PROMISC" not in flags:
        changes.append(("promiscuous on", [IP, "link", "set", "dev", ifname, "promisc", "on"]))
    # No kernel-made IPv6 link-local address either (netlink, so it works where
    # /proc/sys is read-only).
    detail = json.loads(run([IP, "-d", "-j", "link", "show", "dev", ifname]).stdout)[0]
    if detail.get("inet6_addr_gen_mode", "none") != "none":
        changes.append(("IPv6 address generation off", [IP, "link", "set", "dev", ifname, "addrgenmode", "none"]))
    addresses = [a for a in info.get("addr_info", []) if a.get("family") in ("inet", "inet6")]
    if addresses:
        shown = ", ".join(f"{a['local']}/{a['prefixlen']}" for a in addresses)
        changes.append((f"addresses removed: {shown}", [IP, "addr", "flush", "dev", ifname]))
    return changes, unsupported


def wait_for(ifname: str, seconds: float) -> None:
    """A NIC's driver may still be loading at boot."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(f"/sys/class/net/{ifname}"):
        if time.monotonic() >= deadline:
            raise TuneError(f"interface {ifname} does not exist (waited {seconds:g} s)")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tune a capture interface for Zeek.")
    parser.add_argument("interface")
    parser.add_argument("--check", action="store_true", help="only report what would change")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--config", help="JSON file with ring_size")
    parser.add_argument("--ring", help="ring size: max or a number (overrides --config)")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the interface")
    args = parser.parse_args(argv)

    ring_setting = "max"
    result: dict[str, Any] = {"interface": args.interface, "changes": [], "unsupported": [], "check": args.check}
    try:
        if args.config:
            with open(args.config) as handle:
                ring_setting = str(json.load(handle).get("ring_size", "max"))
        if args.ring:
            ring_setting = args.ring
        if not re.match(r"^(max|[0-9]+)$", ring_setting):
            raise TuneError(f"ring size must be 'max' or a number, not {ring_setting!r}")
        if not re.match(r"^[A-Za-z0-9_.:@-]{1,15}$", args.interface):
            raise TuneError(f"invalid interface name {args.interface!r}")
        wait_for(args.interface, args.wait)
        changes, result["unsupported"] = plan(args.interface, ring_setting)
        for description, command in changes:
            if not args.check:
                run(command)
            result["changes"].append(description)
    except (TuneError, OSError, ValueError) as exc:
        result["error"] = str(exc)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        verb = "would change" if args.check else "changed"
        for line in result["changes"]:
            print(f"{args.interface}: {verb}: {line}")
        if result["unsupported"]:
            print(f"{args.interface}: not supported by the NIC: {', '.join(result['unsupported'])}")
        if "error" in result:
            print(f"{args.interface}: error: {result['error']}", file=sys.stderr)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
