"""The elasticsearch role's input checks (before any change), its templates for both
engines and both platform families, and the pki role's input checks.

Runs in check mode on this machine with fake facts; the cluster itself is tested by the
Molecule scenario molecule/elasticsearch.
"""

from __future__ import annotations

import json
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

ROLE = ROOT / "roles/elasticsearch"
HOST = {
    "memtotal_mb": 64000,
    "fqdn": "es01.example.org",
    "default_ipv4": {"address": "192.0.2.21", "interface": "eth0"},
    "all_ipv4_addresses": ["192.0.2.21"],
}
DEB = dict(DEBIAN12, **HOST)
ALMA = dict(ALMA9, **HOST)
# localhost is the cluster: the test inventory has no elasticsearch group.
GOOD = {
    "elasticsearch_group": "all",
    "elasticsearch_elastic_password": "a-long-elastic-password",
    "pki_ca_passphrase": "a-long-ca-passphrase-0123",
}

APPLY = """
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: wlcg.soc.elasticsearch
"""
# The argument spec, then the input checks: the rest would touch this machine's packages.
VALIDATE = checks_play("elasticsearch")
FIRST_CHANGE = "Install the packages the role needs"


GOOD_INPUT = [
    {"elasticsearch_engine": "opensearch", "elasticsearch_opensearch_admin_password": "a-long-admin-pw"},
    {"elasticsearch_security": False, "elasticsearch_elastic_password": ""},
    {
        "elasticsearch_install_method": "archive",
        "elasticsearch_version": "8.19.21",
        "elasticsearch_archive_src": "https://mirror.example.org/elasticsearch-8.19.21-linux-x86_64.tar.gz",
        "elasticsearch_archive_checksum": "sha512:" + "ab" * 64,
    },
    {
        "elasticsearch_install_method": "archive",
        "elasticsearch_version": "8.19.21",
        "elasticsearch_archive_src": "/srv/dist/elasticsearch-8.19.21.zip",
    },
    {"elasticsearch_install_method": "mirror", "elasticsearch_mirror_url": "https://mirror.example.org/es"},
    {"elasticsearch_builtin_passwords": {"kibana_system": "kibana-system-pw"}},
]
GOOD_IDS = ["opensearch", "no-security", "archive-url", "archive-file", "mirror", "builtin"]
BAD_INPUT = [
    # The argument spec: choices, and the fields of the built-in passwords and index families.
    ({"elasticsearch_engine": "solr"}, "value of elasticsearch_engine must be one of"),
    ({"elasticsearch_install_method": "docker"}, "value of elasticsearch_install_method must be one of"),
    (
        {"elasticsearch_builtin_passwords": {"root": "a-long-password-1"}},
        "elasticsearch_builtin_passwords.root. Supported parameters include",
    ),
    (
        {"elasticsearch_index_families": [{"name": "zeek", "ttl": 3}]},
        "elasticsearch_index_families.ttl. Supported parameters include",
    ),
    # The checks.
    ({"elasticsearch_install_method": "mirror"}, "elasticsearch_mirror_url"),
    (
        {"elasticsearch_install_method": "archive", "elasticsearch_version": "8.19.21"},
        "elasticsearch_archive_src",
    ),
    (
        {
            "elasticsearch_install_method": "archive",
            "elasticsearch_version": "8.19.21",
            "elasticsearch_archive_src": "https://mirror.example.org/elasticsearch-8.19.21.tar.gz",
        },
        "elasticsearch_archive_checksum",
    ),
    (
        {"elasticsearch_install_method": "archive", "elasticsearch_archive_src": "/srv/es.tar.gz"},
        "elasticsearch_version",
    ),
    ({"elasticsearch_version": "latest"}, "elasticsearch_version"),
    ({"elasticsearch_group": "nosuchgroup"}, "elasticsearch_group"),
    ({"elasticsearch_node_roles": ["master", "coordinator"]}, "elasticsearch_node_roles"),
    ({"elasticsearch_node_roles": "master"}, "elasticsearch_node_roles"),
    # A lone coordinating-only node: the cluster has no master-eligible node.
    ({"elasticsearch_node_roles": []}, "master-eligible"),
    ({"elasticsearch_cluster_name": "my cluster"}, "elasticsearch_cluster_name"),
    ({"elasticsearch_http_port": 9300}, "elasticsearch_http_port"),
    ({"elasticsearch_network_host": ""}, "elasticsearch_network_host"),
    ({"elasticsearch_data_path": "data"}, "elasticsearch_data_path"),
    ({"elasticsearch_snapshot_path": "snapshots"}, "elasticsearch_snapshot_path"),
    (
        {"elasticsearch_snapshot_path": "/srv/s", "elasticsearch_snapshot_host": "elsewhere"},
        "elasticsearch_snapshot_host",
    ),
    (
        {"elasticsearch_snapshot_path": "/srv/s", "elasticsearch_snapshot_user": "snap"},
        "elasticsearch_snapshot_password",
    ),
    (
        {"elasticsearch_snapshot_path": "/srv/s", "elasticsearch_snapshot_prefix": "Daily "},
        "elasticsearch_snapshot_prefix",
    ),
    ({"elasticsearch_heap_mb": 64}, "elasticsearch_heap_mb"),
    ({"elasticsearch_heap_mb": 40000}, "elasticsearch_heap_mb"),
    ({"elasticsearch_extra_settings": {"cluster.name": "x"}}, "cluster.name"),
    # Text the argument spec would read as a mapping (key=value) is still refused.
    ({"elasticsearch_extra_settings": "path.repo=/srv"}, "elasticsearch_extra_settings must be a mapping"),
    ({"elasticsearch_elastic_password": ""}, "elasticsearch_elastic_password"),
    ({"elasticsearch_elastic_password": "short"}, "elasticsearch_elastic_password"),
    ({"elasticsearch_elastic_password": "CHANGE-ME-elastic-superuser-password"}, "CHANGE-ME"),
    ({"elasticsearch_engine": "opensearch"}, "elasticsearch_opensearch_admin_password"),
    ({"elasticsearch_tls_certificate": "/srv/node.crt"}, "elasticsearch_tls_key"),
    # OpenSearch with the site's own certificates: the administrator's certificate is the site's too.
    (
        {
            "elasticsearch_engine": "opensearch",
            "elasticsearch_opensearch_admin_password": "a-long-admin-password",
            "elasticsearch_tls_certificate": "/srv/node.crt",
            "elasticsearch_tls_key": "/srv/node.key",
            "elasticsearch_tls_ca": "/srv/ca.crt",
        },
        "elasticsearch_tls_admin_certificate",
    ),
    ({"elasticsearch_index_families": [{"name": "Zeek-Logs"}]}, "elasticsearch_index_families"),
]
# In the batched runs below each case's host is the cluster: a group of its own.
ALONE = dict(GOOD, elasticsearch_group="{{ inventory_hostname }}_only")


@pytest.fixture(scope="module")
def checks(playbook_cases):
    """Every input-check case below, in two ansible-playbook runs (one host per case): the
    argument spec and the checks alone, and the role, which stops at its checks."""
    return {
        VALIDATE: playbook_cases(
            VALIDATE,
            [(DEB, ALONE), (ALMA, ALONE)] + [(DEB, dict(ALONE, **extra)) for extra in GOOD_INPUT],
        ),
        APPLY: playbook_cases(
            APPLY,
            [(DEB, dict(ALONE, **extra)) for extra, _named in BAD_INPUT]
            + [(dict(DEB, **platform), ALONE) for platform in UNSUPPORTED.values()],
        ),
    }


@pytest.mark.parametrize("facts", [DEB, ALMA], ids=["debian12", "alma9"])
def test_defaults_pass_checks(checks, facts):
    res = checks[VALIDATE].get(facts, ALONE)
    assert res.rc == 0, res.out


@pytest.mark.parametrize("extra", GOOD_INPUT, ids=GOOD_IDS)
def test_good_input_passes_checks(checks, extra):
    res = checks[VALIDATE].get(DEB, dict(ALONE, **extra))
    assert res.rc == 0, res.out


@pytest.mark.parametrize(("extra", "named"), BAD_INPUT, ids=lambda v: v if isinstance(v, str) else None)
def test_bad_input_is_named(checks, extra, named):
    res = checks[APPLY].get(DEB, dict(ALONE, **extra))
    assert res.rc != 0, res.out
    assert named in res.out, res.out
    assert "a-long-elastic-password" not in res.out
    assert "a-long-elastic-password" not in checks[APPLY].all_out
    assert FIRST_CHANGE not in res.out, res.out


@unsupported_platforms
def test_unsupported_family_fails_first(checks, platform):
    facts = dict(DEB, **platform)
    assert_platform_refused(checks[APPLY].get(facts, ALONE), "elasticsearch", facts, FIRST_CHANGE)


def test_vars_per_family_have_the_same_keys():
    debian = yaml.safe_load((ROLE / "vars/Debian.yml").read_text())
    redhat = yaml.safe_load((ROLE / "vars/RedHat.yml").read_text())
    assert debian.keys() == redhat.keys()


TEMPLATES = {
    "node.yml": "node.yml.j2",
    "heap.options": "heap.options.j2",
    "dropin.conf": "service-dropin.conf.j2",
    "archive.service": "archive.service.j2",
    "settings.json": "api/family-settings.json.j2",
    "lifecycle.json": "api/lifecycle-{engine}.json.j2",
    "snapshot.json": "search-snapshot.json.j2",
    "snapshot.service": "wlcg-soc-search-snapshot.service.j2",
    "snapshot.timer": "wlcg-soc-search-snapshot.timer.j2",
}


def render(playbook, tmp_path: Path, family: str, facts: dict, extra: dict) -> dict[str, str]:
    """Render the role's templates with a family's settings; return them by short name."""
    engine = extra.get("elasticsearch_engine", "elasticsearch")
    # The per-family templates read the family from `item`: the zeek family.
    templates = {src.format(engine=engine): dest for dest, src in TEMPLATES.items()}
    text = role_play(ROLE, family, template_task(ROLE, tmp_path, templates, name="zeek", retention_days=90))
    res = playbook(text, facts, dict(GOOD, **extra), check=False)
    assert res.rc == 0, res.out
    return {name: (tmp_path / name).read_text() for name in TEMPLATES}


def node_settings(text: str) -> dict:
    assert "# Ansible managed" in text.splitlines()[:3]
    return yaml.safe_load(text)


def test_elasticsearch_on_el9_from_the_repository(playbook, tmp_path):
    out = render(playbook, tmp_path, "RedHat", ALMA, {})
    node = node_settings(out["node.yml"])
    assert node["cluster.name"] == "wlcg-soc"
    assert node["node.roles"] == ["master", "data", "ingest"]
    assert node["network.host"] == "192.0.2.21"
    assert node["discovery.seed_hosts"] == ["localhost:9300"]
    assert node["xpack.security.transport.ssl.verification_mode"] == "full"
    assert node["xpack.security.http.ssl.certificate_authorities"] == ["certs/ca.crt"]
    assert node["bootstrap.memory_lock"] is True
    # Never in the file: the initial masters are given for the first start only.
    assert not any("initial_master" in key for key in node)
    # Half of 64000 MB is above 31 GiB: capped.
    assert "-Xms31744m" in out["heap.options"] and "-Xmx31744m" in out["heap.options"]
    dropin = out["dropin.conf"]
    assert "EnvironmentFile=-/run/wlcg-soc/elasticsearch-bootstrap.env" in dropin
    assert (
        "ExecStart=\nExecStart=/usr/share/elasticsearch/bin/systemd-entrypoint -p ${PID_DIR}/elasticsearch.pid"
        " --quiet $WLCG_SOC_BOOTSTRAP" in dropin
    )
    assert "LimitMEMLOCK=infinity" in dropin and "LimitNOFILE=65535" in dropin
    assert "CapabilityBoundingSet=\n" in dropin
    assert "ReadWritePaths=/var/lib/elasticsearch /var/log/elasticsearch /etc/elasticsearch\n" in dropin
    assert "path.repo" not in node  # no snapshots unless a shared file system is given


def test_opensearch_on_debian_from_an_archive(playbook, tmp_path):
    extra = {
        "elasticsearch_engine": "opensearch",
        "elasticsearch_install_method": "archive",
        "elasticsearch_version": "2.19.4",
        "elasticsearch_opensearch_admin_password": "a-long-admin-pw",
        "elasticsearch_snapshot_path": "/srv/search-snapshots/soc",
        "elasticsearch_node_roles": ["master", "data"],
        "elasticsearch_heap_mb": 4096,
        "elasticsearch_memory_lock": False,
    }
    out = render(playbook, tmp_path, "Debian", DEB, extra)
    node = node_settings(out["node.yml"])
    assert node["node.roles"] == ["cluster_manager", "data"]
    assert node["plugins.security.ssl.transport.pemkey_filepath"] == "certs/node.key"
    assert node["plugins.security.ssl.http.enabled"] is True
    assert node["plugins.security.nodes_dn"] == ["CN=localhost"]
    assert node["plugins.security.authcz.admin_dn"] == ["CN=wlcg-soc-admin"]
    assert "xpack.security.enabled" not in node
    assert "-Xmx4096m" in out["heap.options"]
    assert "ExecStart=/opt/opensearch/bin/opensearch $WLCG_SOC_BOOTSTRAP" in out["dropin.conf"]
    assert "LimitMEMLOCK" not in out["dropin.conf"]
    # The snapshots' file system: path.repo, and writable in the service's sandbox.
    assert node["path.repo"] == ["/srv/search-snapshots/soc"]
    assert (
        "ReadWritePaths=/var/lib/opensearch /var/log/opensearch /etc/opensearch /srv/search-snapshots/soc\n"
        in out["dropin.conf"]
    )
    # The scheduled snapshot: the node's own API over TLS, as the engine's user, credentials on stdin.
    snapshot = json.loads(out["snapshot.json"])
    assert snapshot["url"].startswith("https://") and snapshot["ca"] == "/etc/opensearch/certs/ca.crt"
    assert (snapshot["repository"], snapshot["indices"], snapshot["prefix"]) == ("soc-snapshots", ["*"], "soc-")
    assert (snapshot["retention_days"], snapshot["min_count"]) == (30, 7)
    service = out["snapshot.service"]
    assert "# Ansible managed" in service.splitlines()[:3]
    assert "User=opensearch" in service and "CapabilityBoundingSet=\n" in service and "ProtectSystem=strict" in service
    assert "StandardInput=file:/etc/opensearch/wlcg-soc-search-snapshot.credentials" in service
    assert "ExecStart=/usr/bin/python3 /usr/local/libexec/wlcg-soc-search-snapshot --config" in service
    assert "TimeoutStartSec=3660" in service
    assert "OnCalendar=*-*-* 01:30:00" in out["snapshot.timer"] and "Persistent=true" in out["snapshot.timer"]
    unit = out["archive.service"]
    assert "User=opensearch" in unit and "Environment=OPENSEARCH_PATH_CONF=/etc/opensearch" in unit
    ism = json.loads(out["lifecycle.json"])
    assert ism["ism_template"] == [{"index_patterns": ["zeek-*"], "priority": 100}]
    assert ism["states"][0]["transitions"][0]["conditions"] == {"min_index_age": "90d"}
    settings = json.loads(out["settings.json"])["template"]["settings"]
    # ISM attaches by pattern; no ILM setting on OpenSearch.
    assert settings == {"index.number_of_shards": 1, "index.number_of_replicas": 1}


def test_lifecycle_and_settings_for_elasticsearch(playbook, tmp_path):
    out = render(playbook, tmp_path, "Debian", DEB, {"elasticsearch_index_replicas": 2})
    ilm = json.loads(out["lifecycle.json"])
    assert ilm["phases"]["delete"] == {"min_age": "90d", "actions": {"delete": {}}}
    assert ilm["phases"]["hot"]["actions"]["rollover"] == {"max_age": "1d", "max_primary_shard_size": "50gb"}
    settings = json.loads(out["settings.json"])["template"]["settings"]
    assert settings == {
        "index.number_of_shards": 1,
        "index.number_of_replicas": 2,
        "index.lifecycle.name": "wlcg-soc-zeek",
    }


@pytest.mark.parametrize(("ingest", "want"), [(True, {"index.default_pipeline": "wlcg-soc-zeek"}), (False, {})])
def test_family_default_pipeline(playbook, tmp_path, ingest, want):
    """A family's pipeline becomes its indices' default pipeline while the role loads pipelines."""
    templates = {"api/family-settings.json.j2": "settings.json"}
    item = {"name": "zeek", "retention_days": 90, "pipeline": "wlcg-soc-zeek"}
    text = role_play(ROLE, "Debian", template_task(ROLE, tmp_path, templates, **item))
    extra = {
        "elasticsearch_engine": "opensearch",
        "elasticsearch_opensearch_admin_password": "a-long-admin-pw",
        "elasticsearch_ingest_pipelines": ingest,
    }
    res = playbook(text, DEB, dict(GOOD, **extra), check=False)
    assert res.rc == 0, res.out
    settings = json.loads((tmp_path / "settings.json").read_text())["template"]["settings"]
    assert settings == {"index.number_of_shards": 1, "index.number_of_replicas": 1, **want}


def test_ingest_pipeline_files_load_by_hand():
    """Each file is a pipeline body as the API takes it on both engines (no _meta, which
    OpenSearch refuses), named by its file; engine-specific ones exist for both engines."""
    ingest = ROLE / "files/ingest"
    for path in ingest.rglob("*.json"):
        body = json.loads(path.read_text())
        assert set(body) <= {"description", "processors", "on_failure", "version"}, path
        assert body["description"].startswith("wlcg.soc: ") and body["processors"], path
    per_engine = {e: sorted(p.name for p in (ingest / e).glob("*.json")) for e in ("elasticsearch", "opensearch")}
    assert per_engine["elasticsearch"] == per_engine["opensearch"] != []


def test_shared_mappings_are_valid_json():
    body = json.loads((ROLE / "files/ecs-mappings.json").read_text())
    props = body["template"]["mappings"]["properties"]
    assert props["source"]["properties"]["ip"] == {"type": "ip"}
    assert props["destination"]["properties"]["ip"] == {"type": "ip"}
