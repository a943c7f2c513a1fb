"""The collection's filter plugins (plugins/filter/), imported from the built collection."""

from __future__ import annotations

import os
import subprocess

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.wlcg.soc.plugins.filter.address_list import address_list
from ansible_collections.wlcg.soc.plugins.filter.elasticsearch_heap_mb import elasticsearch_heap_mb
from ansible_collections.wlcg.soc.plugins.filter.elasticsearch_master_hosts import elasticsearch_master_hosts
from ansible_collections.wlcg.soc.plugins.filter.elasticsearch_node_names import elasticsearch_node_names
from ansible_collections.wlcg.soc.plugins.filter.elasticsearch_seed_hosts import elasticsearch_seed_hosts
from ansible_collections.wlcg.soc.plugins.filter.file_differs import file_differs
from ansible_collections.wlcg.soc.plugins.filter.host_url import host_url
from ansible_collections.wlcg.soc.plugins.filter.kafka_brokers import kafka_brokers
from ansible_collections.wlcg.soc.plugins.filter.memcached_servers import memcached_servers
from ansible_collections.wlcg.soc.plugins.filter.misp_memcached_lookups import misp_memcached_lookups
from ansible_collections.wlcg.soc.plugins.filter.version_upgrade_problem import version_upgrade_problem
from ansible_collections.wlcg.soc.plugins.module_utils.misp_ioc import Export

# Three nodes as the inventory gives them: es1 sets nothing (the role's defaults), es2 is a
# master with its own address, port and name, es3 a data-only node.
HOSTVARS = {
    "es1": {"inventory_hostname": "es1"},
    "es2": {
        "elasticsearch_node_roles": ["master", "data"],
        "elasticsearch_network_host": "2001:db8::2",
        "elasticsearch_transport_port": 9301,
        "elasticsearch_node_name": "node-two",
    },
    "es3": {"elasticsearch_node_roles": ["data", "ingest"], "elasticsearch_network_host": "192.0.2.3"},
    "os1": {"elasticsearch_node_roles": ["cluster_manager"], "elasticsearch_network_host": ""},
    "coord": {"elasticsearch_node_roles": []},
}


def test_master_hosts_keep_order_and_default_to_master():
    assert elasticsearch_master_hosts(["es3", "es2", "es1", "os1", "coord"], HOSTVARS) == ["es2", "es1", "os1"]
    assert elasticsearch_master_hosts([], HOSTVARS) == []


def test_seed_hosts_from_each_hosts_own_address_and_port():
    assert elasticsearch_seed_hosts(["es1", "es2", "es3", "os1"], HOSTVARS, 9300) == [
        "es1:9300",
        "[2001:db8::2]:9301",
        "192.0.2.3:9300",
        "os1:9300",
    ]


def test_node_names_fall_back_to_the_inventory_name():
    assert elasticsearch_node_names(["es1", "es2", "os1"], HOSTVARS) == ["es1", "node-two", "os1"]
    assert elasticsearch_node_names(["es2"], {"es2": {"elasticsearch_node_name": ""}}) == ["es2"]


@pytest.mark.parametrize(
    ("configured", "memtotal", "heap"),
    [
        (0, 16384, 8192),
        ("0", "16384", 8192),
        (0, 128 * 1024, 31744),  # compressed pointers: at most 31 GiB
        (0, 300, 256),  # at least 256 MiB
        (0, 63489, 31744),
        (0, 63487, 31743),
        (2048, 512, 2048),  # as configured
        ("4096", 0, 4096),
    ],
)
def test_heap(configured, memtotal, heap):
    assert elasticsearch_heap_mb(configured, memtotal) == heap


@pytest.mark.parametrize(
    ("host", "port", "scheme", "url"),
    [
        ("192.0.2.1", 9200, "https", "https://192.0.2.1:9200"),
        ("es1.example.org", "9201", "http", "http://es1.example.org:9201"),
        ("2001:db8::1", 9200, "https", "https://[2001:db8::1]:9200"),
        ("[2001:db8::1]", 9200, "https", "https://[2001:db8::1]:9200"),
    ],
)
def test_host_url(host, port, scheme, url):
    assert host_url(host, port, scheme) == url
    if scheme == "https":
        assert host_url(host, port) == url


@pytest.mark.parametrize(
    ("value", "addresses"),
    [
        ("192.0.2.10", ["192.0.2.10"]),
        ("192.0.2.10, 127.0.0.1,", ["192.0.2.10", "127.0.0.1"]),
        (" [2001:DB8::10] ,192.0.2.10,2001:db8::10", ["2001:db8::10", "192.0.2.10"]),
        (["192.0.2.10", "[::1]", "", " 192.0.2.10 "], ["192.0.2.10", "::1"]),
        ("", []),
        ([], []),
        (None, []),
    ],
)
def test_address_list(value, addresses):
    assert address_list(value) == addresses


@pytest.mark.parametrize("value", [{"ip": "192.0.2.10"}, 11211])
def test_address_list_refuses_what_is_not_addresses(value):
    with pytest.raises(TypeError, match="address_list takes a list of addresses or comma-separated text"):
        address_list(value)


UPGRADE_FROM = {7: "6.8", 8: "7.17", 9: "8.19"}


@pytest.mark.parametrize(
    ("installed", "wanted", "problem"),
    [
        ("", "8.19.21", ""),
        ("8.19.4", "", ""),
        ("8.19.21", "8.19.21", ""),
        ("8.19.4", "8.19.21", ""),
        ("8.18.0", "8.19.21", ""),
        ("7.17.29", "8.19.21", ""),
        ("8.19.4", "9.1.0", ""),
        # Package versions: a Debian epoch and a revision are not part of the comparison.
        ("1:8.19.4-1", "8.19.21", ""),
        ("2.19.4-1.el9", "2.19.4", ""),
        ("8.19.21", "8.19.4", "is older than the installed 8.19.21"),
        ("9.0.0", "8.19.21", "is older than the installed 9.0.0"),
        ("7.16.3", "8.19.21", "Upgrade to the newest 7.17.x first"),
        ("6.8.23", "8.19.21", "an upgrade to 8.x starts from 7.17.x"),
        ("8.19.4", "10.0.0", "no rolling upgrade to major version 10 is known to the role"),
    ],
)
def test_version_upgrade_problem(installed, wanted, problem):
    found = version_upgrade_problem(installed, wanted, UPGRADE_FROM, "elasticsearch_version")
    if problem:
        assert problem in found and found.startswith(f"elasticsearch_version ({wanted})"), found
    else:
        assert found == ""


FOUND = {
    "path": "/etc/x.conf",
    "checksum": "a9993e364706816aba3e25717850c26c9cd0d89d",  # sha1("abc")
    "mode": "0644",
    "pw_name": "root",
    "gr_name": "root",
}


@pytest.mark.parametrize(
    ("files", "kwargs", "differs"),
    [
        ([FOUND], {}, False),
        ([], {}, True),
        ([dict(FOUND, path="/etc/y.conf")], {}, True),
        ([FOUND], {"content": "abd"}, True),
        ([FOUND], {"mode": "0640"}, True),
        ([FOUND], {"mode": "644"}, False),
        ([FOUND], {"group": "wheel"}, True),
        ([dict(FOUND, pw_name="nobody")], {}, True),
    ],
)
def test_file_differs(files, kwargs, differs):
    kwargs = {"content": "abc", **kwargs}
    assert file_differs(files, "/etc/x.conf", **kwargs) is differs


FILTERS = ["address_list", "elasticsearch_heap_mb", "elasticsearch_master_hosts", "elasticsearch_node_names"]
FILTERS += ["elasticsearch_seed_hosts", "file_differs", "host_url", "memcached_servers", "version_upgrade_problem"]
FILTERS += ["misp_memcached_lookups", "kafka_brokers"]


@pytest.mark.parametrize("name", FILTERS)
def test_filters_are_documented(collections_path, name):
    res = subprocess.run(
        ["ansible-doc", "-t", "filter", f"wlcg.soc.{name}"],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path),
    )
    assert res.returncode == 0, res.stderr
    assert "EXAMPLES" in res.stdout and "RETURN VALUES" in res.stdout, res.stdout


def test_filters_run_in_a_play(playbook):
    """The filters as the elasticsearch role calls them, with hostvars of a real inventory."""
    text = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.assert:
        that:
          - (['localhost'] | wlcg.soc.elasticsearch_master_hosts(hostvars)) == ['localhost']
          - (['localhost'] | wlcg.soc.elasticsearch_seed_hosts(hostvars, 9300)) == ['localhost:9300']
          - (['localhost'] | wlcg.soc.elasticsearch_node_names(hostvars)) == ['localhost']
          - (0 | wlcg.soc.elasticsearch_heap_mb(1000)) == 500
          - ('::1' | wlcg.soc.host_url(9200, 'http')) == 'http://[::1]:9200'
          - ('192.0.2.1,[::1]' | wlcg.soc.address_list) == ['192.0.2.1', '::1']
          - "('8.19.4' | wlcg.soc.version_upgrade_problem('8.19.21', {8: '7.17'})) == ''"
          - "('8.19.21' | wlcg.soc.version_upgrade_problem('8.19.4', {8: '7.17'}, 'v')) is match('^v [(]8.19.4[)] is')"
          - "('[a]' | wlcg.soc.misp_memcached_lookups('[b]'))['ip-dst-%{[a]}'] == '[b][ip-dst]'"
          - (['localhost'] | wlcg.soc.kafka_brokers(hostvars)) == ['localhost:9092']
"""
    res = playbook(text, {})
    assert res.rc == 0, res.out


def test_memcached_servers_from_each_servers_own_settings():
    hostvars = {
        "cache1": {},
        "cache2": {"memcached_port": 11311, "memcached_listen_address": "192.0.2.5, 127.0.0.1"},
        "cache3": {"memcached_listen_address": ["[2001:DB8::5]"]},
        "cache4": {"memcached_listen_address": "0.0.0.0", "memcached_port": "11212"},  # noqa: S104 (a wildcard)
        "cache5": {"memcached_listen_address": ""},
    }
    assert memcached_servers(list(hostvars), hostvars) == [
        "cache1:11211",
        "192.0.2.5:11311",
        "[2001:db8::5]:11211",
        "cache4:11212",
        "cache5:11211",
    ]
    assert memcached_servers(["cache1"], hostvars, 11300) == ["cache1:11300"]


def test_kafka_brokers_from_each_brokers_own_settings():
    hostvars = {
        "kafka1": {},
        "kafka2": {"kafka_port": 9192, "kafka_advertised_host": "k2.example.org"},
        "kafka3": {"kafka_advertised_host": "2001:db8::3", "kafka_port": "9093"},
        "kafka4": {"kafka_advertised_host": ""},
        "quorum": {"kafka_process_roles": ["controller"]},
    }
    assert kafka_brokers(list(hostvars), hostvars) == [
        "kafka1:9092",
        "k2.example.org:9192",
        "[2001:db8::3]:9093",
        "kafka4:9092",
    ]
    assert kafka_brokers(["kafka1"], hostvars, 9300) == ["kafka1:9300"]


def test_misp_memcached_lookups_read_the_keys_the_sync_writes():
    """The lookups Logstash makes are the keys misp_ioc's export writes, for both directions."""
    export = Export()
    export.keys = {"ip-src-192.0.2.7": [(1, "u", "i", "ip-src")], "ip-dst-2001:db8::7": [(2, "v", "j", "ip-dst")]}
    written = set(export.key_values())
    lookups = misp_memcached_lookups("[source][ip]", "[misp_lookup][source]")
    assert lookups == {
        "ip-src-%{[source][ip]}": "[misp_lookup][source][ip-src]",
        "ip-dst-%{[source][ip]}": "[misp_lookup][source][ip-dst]",
    }
    for address in ("192.0.2.7", "2001:db8::7"):
        assert written & {k.replace("%{[source][ip]}", address) for k in lookups}


@pytest.mark.parametrize(("field", "target"), [("source.ip", "[t]"), ("[source][ip]", "t"), ("[a b]", "[t]")])
def test_misp_memcached_lookups_want_field_references(field, target):
    with pytest.raises(AnsibleFilterError, match="must be a Logstash field reference"):
        misp_memcached_lookups(field, target)
