"""The zeek role's input checks (before any change), its RedHat branch, and its scripts.

Runs are in check mode on this machine with fake facts. The rendered Zeek scripts are
parsed with zeek-format (zeekscript, Zeek's own script parser) in several variants.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import (
    ALMA9,
    DEBIAN12,
    ROOT,
    UNSUPPORTED,
    assert_platform_refused,
    checks_play,
    role_play,
    template_task,
    unsupported_platforms,
)

ROLE = ROOT / "roles/zeek"

HOST = {
    "memtotal_mb": 64000,
    "processor_vcpus": 16,
    "architecture": "x86_64",
    "interfaces": ["lo", "eno1", "ens1f0", "ens1f1"],
    "default_ipv4": {"address": "192.0.2.20", "interface": "eno1"},
    "default_ipv6": {},
}
DEB = dict(DEBIAN12, **HOST)
ALMA = dict(ALMA9, **HOST)
GOOD = {"zeek_capture_interfaces": [{"name": "ens1f0"}, {"name": "ens1f1", "lb_procs": 4, "ring_size": "2048"}]}

APPLY = """
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: wlcg.soc.zeek
"""
VALIDATE = checks_play("zeek")
FIRST_CHANGE = "Install the tools the role uses"


def interfaces(*items):
    return {"zeek_capture_interfaces": list(items)}


BAD_INPUT = [
    ({"zeek_capture_interfaces": []}, "zeek_capture_interfaces must be a non-empty list"),
    ({"zeek_capture_interfaces": "ens1f0"}, "zeek_capture_interfaces"),
    (interfaces({"name": "ens9f0"}), "interface 'ens9f0' does not exist on this host"),
    (interfaces({"name": "eno1"}), "'eno1' carries the default route"),
    (interfaces({"name": "ens1f0", "buffer_size": "lots"}), "buffer_size"),
    (interfaces({"name": "ens1f0", "lb_procs": "many"}), "lb_procs"),
    (interfaces({"name": "ens1f0", "ring_size": "huge"}), "zeek_capture_interfaces[0]"),
    (interfaces({"name": "ens1f0", "pin_cpus": "1,2"}), "pin_cpus"),
    (interfaces({"name": "ens1f0", "speed": 10}), "zeek_capture_interfaces.speed. Supported parameters include"),
    (interfaces({"name": "ens1f0"}, {"name": "ens1f0"}), "zeek_capture_interfaces lists an interface twice"),
    (dict(GOOD, zeek_install_method="source"), "zeek_install_method"),
    (dict(GOOD, zeek_install_method="mirror"), "'mirror' needs zeek_mirror_url"),
    (dict(GOOD, zeek_install_method="package", zeek_package_file="zeek.rpm"), "needs zeek_package_file"),
    (dict(GOOD, zeek_reserved_cores=-1), "zeek_reserved_cores"),
    (dict(GOOD, zeek_memory_per_worker_mb=-1), "zeek_memory_per_worker_mb must be a whole number >= 0"),
    (dict(GOOD, zeek_fanout_id_base=70000), "zeek_fanout_id_base must be a whole number"),
    (dict(GOOD, zeek_af_packet_buffer_size=4096), "zeek_af_packet_buffer_size must be a whole number >= 1048576"),
    (
        dict(GOOD, zeek_intel_refresh_minutes=30, zeek_intel_expire_minutes=20),
        "zeek_intel_expire_minutes (20) must be longer than",
    ),
    (dict(GOOD, zeek_nic_ring_size="big"), "zeek_nic_ring_size must be 'max' or a number"),
    (dict(GOOD, zeek_local_networks=[{"cidr": "10.0.0.0"}]), "zeek_local_networks must be a list of"),
    (dict(GOOD, zeek_intel_files=["relative.intel"]), "zeek_intel_files must be a list of absolute paths"),
    (dict(GOOD, zeek_site_scripts={"../evil.zeek": "event zeek_init() {}"}), "zeek_site_scripts must map"),
    (dict(GOOD, zeek_zeekctl_options={"LogDir": "/srv/zeek-logs"}), "may not set the options the role manages"),
    (dict(GOOD, zeek_prefix="opt/zeek"), "zeek_prefix"),
]


@pytest.fixture(scope="module")
def checks(playbook_cases):
    """Every input-check case below, in two ansible-playbook runs (one host per case): the
    checks alone, and the role, which stops at its checks."""
    return {
        VALIDATE: playbook_cases(VALIDATE, [(DEB, GOOD), (ALMA, GOOD)]),
        APPLY: playbook_cases(
            APPLY,
            [(dict(DEB, **platform), GOOD) for platform in UNSUPPORTED.values()]
            + [(DEB, extra) for extra, _needle in BAD_INPUT],
        ),
    }


@pytest.mark.parametrize("facts", [DEB, ALMA], ids=["debian12", "alma9"])
def test_good_input_passes_checks(checks, facts):
    res = checks[VALIDATE].get(facts, GOOD)
    assert res.rc == 0, res.out


@unsupported_platforms
def test_unsupported_family_fails_first(checks, platform):
    facts = dict(DEB, **platform)
    assert_platform_refused(checks[APPLY].get(facts, GOOD), "zeek", facts, FIRST_CHANGE)


@pytest.mark.parametrize(("extra", "needle"), BAD_INPUT)
def test_bad_input_names_the_variable(checks, extra, needle):
    res = checks[APPLY].get(DEB, extra)
    assert res.rc != 0, res.out
    assert needle in res.out, res.out
    assert FIRST_CHANGE not in res.out, res.out


def test_family_vars_define_the_same_keys():
    debian = yaml.safe_load((ROLE / "vars/Debian.yml").read_text())
    redhat = yaml.safe_load((ROLE / "vars/RedHat.yml").read_text())
    assert debian.keys() - {"__zeek_obs_dist"} == redhat.keys()


# A layout as wlcg.soc.zeek_cpu_layout returns it, for rendering without the module.
LAYOUT = {
    "workers": [
        {"interface": "ens1f0", "lb_procs": 5, "pin_cpus": [2, 3, 4, 5, 6], "fanout_id": 21, "buffer_size": 134217728,
         "numa_node": 0},
        {"interface": "ens1f1", "lb_procs": 4, "pin_cpus": [12, 13, 14, 15], "fanout_id": 22, "buffer_size": 67108864,
         "numa_node": 1},
    ],
    "topology": {"cpus_online": 32, "physical_cores": 16},
}  # fmt: skip
TEMPLATES = {
    "node.cfg": "node.cfg",
    "networks.cfg": "networks.cfg",
    "zeekctl.cfg": "zeekctl.cfg",
    "local.zeek": "local.zeek",
    "wlcg-soc-load.zeek": "__load__.zeek",
    "intel.zeek": "intel.zeek",
    "site-load.zeek": "site__load__.zeek",
    "zeek.service": "zeek.service",
    "zeekctl-cron.service": "zeekctl-cron.service",
    "zeekctl-cron.timer": "zeekctl-cron.timer",
    "zeek-intel-refresh.service": "zeek-intel-refresh.service",
    "zeek-intel-refresh.timer": "zeek-intel-refresh.timer",
    "wlcg-soc-nic-tune@.service": "wlcg-soc-nic-tune@.service",
    "profile.sh": "profile.sh",
}


def render(playbook, tmp_path: Path, family: str, facts: dict, extra: dict) -> dict[str, str]:
    """Render the role's templates with a family's settings; return them by template name."""
    text = role_play(ROLE, family, template_task(ROLE, tmp_path, {f"{s}.j2": d for s, d in TEMPLATES.items()}))
    res = playbook(text, facts, dict(GOOD, __zeek_layout=LAYOUT, **extra), check=False)
    assert res.rc == 0, res.out
    return {src: (tmp_path / dest).read_text() for src, dest in TEMPLATES.items()}


def test_redhat_branch_renders(playbook, tmp_path):
    out = render(playbook, tmp_path, "RedHat", ALMA, {})
    for name, text in out.items():
        assert "# Ansible managed" in text.splitlines()[:3], name
    node = out["node.cfg"]
    assert (
        "[worker-ens1f0]\ntype=worker\nhost=localhost\ninterface=af_packet::ens1f0\nlb_method=custom\nlb_procs=5\n"
        in node
    )
    assert "pin_cpus=2,3,4,5,6\naf_packet_fanout_id=21\naf_packet_fanout_mode=AF_Packet::FANOUT_HASH\n" in node
    assert "pin_cpus=12,13,14,15\naf_packet_fanout_id=22" in node and "af_packet_buffer_size=67108864" in node
    assert "[logger-1]" in node and "[manager]" in node and "[proxy-1]" in node
    unit = out["zeek.service"]
    assert "ExecStart=/opt/zeek/bin/zeekctl deploy" in unit
    assert "After=network-online.target wlcg-soc-nic-tune@ens1f0.service wlcg-soc-nic-tune@ens1f1.service" in unit
    assert "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN" in unit and "User=zeek" in unit
    assert "ExecStart=/usr/bin/touch -c -m /var/lib/wlcg-soc/intel/misp.intel" in out["zeek-intel-refresh.service"]
    assert "redef Intel::item_expiration = 20 min;" in out["intel.zeek"]


def zeek_format(tmp_path: Path, name: str, text: str) -> subprocess.CompletedProcess:
    formatter = shutil.which("zeek-format")
    assert formatter, "zeek-format (zeekscript) is in the dev venv"
    path = tmp_path / f"check-{name}"
    path.write_text(text)
    return subprocess.run([formatter, str(path)], capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {
            "zeek_json_logs": False,
            "zeek_intel_do_notice": False,
            "zeek_intel_files": [],
            "zeek_local_extra": "redef Site::local_admins += { 192.0.2.5 };",
        },
        {
            "zeek_intel_files": ["/var/lib/wlcg-soc/intel/misp.intel", "/srv/intel/site.intel"],
            "zeek_site_scripts": {"a.zeek": "event zeek_init() { }", "b-2.zeek": "@load base/frameworks/notice"},
        },
    ],
    ids=["defaults", "minimal", "more-files"],
)
def test_every_zeek_script_parses(playbook, tmp_path, extra):
    out = render(playbook, tmp_path, "Debian", DEB, extra)
    for name in ("local.zeek", "wlcg-soc-load.zeek", "intel.zeek", "site-load.zeek"):
        res = zeek_format(tmp_path, name, out[name])
        assert res.returncode == 0, f"{name}: {res.stderr}\n{out[name]}"


def test_zeek_format_rejects_a_broken_script(tmp_path):
    """The check above would notice a script error."""
    assert zeek_format(tmp_path, "broken.zeek", "event zeek_init( {\n").returncode != 0
