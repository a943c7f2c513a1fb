"""Settings that cross roles reach every role that reads them (README, "Cross-role settings")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import ROOT

MISP_SYNC = ROOT / "roles/misp_sync"
ZEEK = ROOT / "roles/zeek"

# The sync host, two memcached servers (the group sets the port; cache2 listens on an IPv6
# address of its own, cache3 on every address) and a sensor; nothing is contacted.
INVENTORY = {
    "all": {
        "children": {
            "misp_sync": {"hosts": {"localhost": {"ansible_connection": "local"}}},
            "memcached": {"hosts": {"cache1": None, "cache2": None, "cache3": None}},
            "zeek_sensors": {"hosts": {"sensor1": None}},
        }
    }
}
GROUP_VARS = {
    "all": {"soc_misp_sync_interval_minutes": 10, "soc_intel_file": "/srv/intel/site-misp.intel"},
    "memcached": {"memcached_port": 11311},
}
HOST_VARS = {"cache2": {"memcached_listen_address": ["2001:DB8::5"]}, "cache3": {"memcached_listen_address": "::"}}

PLAY = """
- hosts: localhost
  gather_facts: false
  vars_files:
    - {misp_sync}/defaults/main.yml
    - {misp_sync}/vars/main.yml
    - {misp_sync}/vars/Debian.yml
  vars:
    misp_sync_url: https://misp.example.org
    misp_sync_key: not-a-real-key
  tasks:
    - ansible.builtin.template:
        src: {misp_sync}/templates/misp-sync.json.j2
        dest: "{out}/misp-sync.json"
        mode: "0644"
    - ansible.builtin.copy:
        content: >-
          {{{{ {{'dir': misp_sync_sensor_intel_dir, 'file': __misp_sync_sensor_intel_file,
               'ttl': misp_sync_memcached_ttl | int, 'interval': misp_sync_interval_minutes | int}} | to_json }}}}
        dest: "{out}/misp_sync.json"
        mode: "0644"

- hosts: sensor1
  gather_facts: false
  connection: local
  vars_files:
    - {zeek}/defaults/main.yml
  tasks:
    - ansible.builtin.copy:
        content: "{{{{ {{'files': zeek_intel_files, 'refresh': zeek_intel_refresh_minutes | int}} | to_json }}}}"
        dest: "{out}/zeek.json"
        mode: "0644"
      delegate_to: localhost
"""


def write_inventory(path: Path) -> None:
    (path / "hosts.yml").write_text(yaml.safe_dump(INVENTORY))
    for kind, values in (("group_vars", GROUP_VARS), ("host_vars", HOST_VARS)):
        (path / kind).mkdir()
        for name, content in values.items():
            (path / kind / f"{name}.yml").write_text(yaml.safe_dump(content))


def test_site_settings_reach_the_roles_that_read_them(tmp_path, collections_path):
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    write_inventory(inventory)
    book = tmp_path / "play.yml"
    book.write_text(PLAY.format(misp_sync=MISP_SYNC, zeek=ZEEK, out=tmp_path))
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=collections_path,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    res = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(book)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    # The port set in group_vars/memcached, and each server's own listen address.
    config = json.loads((tmp_path / "misp-sync.json").read_text())
    assert config["memcached_servers"] == ["cache1:11311", "[2001:db8::5]:11311", "cache3:11311"]
    # The interval and the intel file from group_vars/all, in both roles.
    sync = json.loads((tmp_path / "misp_sync.json").read_text())
    assert sync == {"dir": "/srv/intel", "file": "/srv/intel/site-misp.intel", "ttl": 1800, "interval": 10}
    assert config["memcached_ttl"] == 1800
    zeek = json.loads((tmp_path / "zeek.json").read_text())
    assert zeek == {"files": ["/srv/intel/site-misp.intel"], "refresh": 10}
