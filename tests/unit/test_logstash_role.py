"""The logstash role: its input checks (before any change), and its settings, pipelines and
unit rendered for both families and both engines: every pipeline parses with Logstash's
grammar (logstash-pipeline-parser), the MISP lookups are the keys the sync writes, and the
outputs name the family's data stream and ingest pipeline.

The role runs in check mode on this machine with fake facts, so nothing changes on it;
the templates are rendered into a temporary directory and parsed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from ansible_collections.wlcg.soc.plugins.module_utils.misp_memcached import key as memcached_key
from conftest import ALMA9, DEBIAN12, ROOT, probes_task, read_probes, role_play, template_task
from logstash_pipeline_parser import Pipeline
from role_checks import input_check_tests

ROLE = ROOT / "roles/logstash"
STANDIN = ROOT / "tests/logstash_standin/logstash.py"
INGEST = ROOT / "roles/elasticsearch/files/ingest"

HOST = {
    "fqdn": "soc-pipe01.example.org",
    "default_ipv4": {"address": "192.0.2.50", "interface": "eth0"},
    "memtotal_mb": 16000,
}
DEB = dict(DEBIAN12, **HOST)
ALMA = dict(ALMA9, **HOST)

SITE = {
    "logstash_elasticsearch_hosts": ["https://es1.example.org:9200", "https://es2.example.org:9200"],
    "logstash_elasticsearch_password": 'writer-Passw0rd"$x',
    "logstash_memcached_servers": ["mc1.example.org:11211"],
}

# The role's first task that would change the host: the checks come before it.
FIRST_CHANGE = "Install the tools the role uses"

OTHER_GOOD_INPUT = {
    "opensearch": {"logstash_engine": "opensearch", "logstash_opensearch_plugin_version": "2.0.3"},
    "mirror": {
        "logstash_install_method": "mirror",
        "logstash_mirror_url": "https://mirror.example.org/elastic/8.x/apt",
        "logstash_mirror_key_url": "https://mirror.example.org/elastic/GPG-KEY-elasticsearch",
    },
    "archive": {
        "logstash_install_method": "archive",
        "logstash_version": "8.19.7",
        "logstash_archive_src": "/srv/dist/logstash-8.19.7-linux-x86_64.tar.gz",
    },
    "preinstalled": {"logstash_install_method": "preinstalled"},
    "kafka": {"logstash_kafka": True, "logstash_kafka_hosts": ["kafka1.example.org:9093"]},
    "no-enrichment": {"logstash_misp_enrichment": False, "logstash_memcached_servers": []},
    "sizes": {"logstash_heap_mb": 2048, "logstash_queue_max_bytes": "8gb", "logstash_pipeline_workers": 4},
    "extra-settings": {"logstash_extra_settings": {"pipeline.ecs_compatibility": "v8"}},
}
BAD_INPUT = [
    ({"logstash_engine": "solr"}, "value of logstash_engine must be one of: elasticsearch, opensearch"),
    ({"logstash_elasticsearch_password": ""}, "logstash_elasticsearch_password (from Ansible Vault; one line)"),
    ({"logstash_elasticsearch_password": "a\nb"}, "logstash_elasticsearch_password (from Ansible Vault; one line)"),
    ({"logstash_elasticsearch_hosts": ["http://es1:9200"]}, "must list the search cluster's https URLs"),
    (
        {"logstash_elasticsearch_hosts": []},
        "logstash_elasticsearch_group (elasticsearch) are used, and it has no host(s)",
    ),
    (
        {"logstash_memcached_servers": []},
        "logstash_memcached_group (memcached) are used, and it has no host(s)",
    ),
    ({"logstash_kafka": True}, "logstash_kafka is true: logstash_kafka_hosts ([]) must list the brokers"),
    (
        {"logstash_kafka_flow_topics": {"ipfix": ["flows.ipfix"]}},
        'logstash_kafka_flow_topics ({"ipfix": ["flows.ipfix"]}) must map flow modules (netflow, sflow)',
    ),
    ({"logstash_kafka_flow_topics": {"netflow": "flows.netflow"}}, "to lists of topic names"),
    ({"logstash_heap_mb": 100}, "logstash_heap_mb (100) must be 0 (automatic) or at least 256"),
    ({"logstash_reload_interval_seconds": 0}, "logstash_reload_interval_seconds (0) must be at least 1"),
    ({"logstash_beats_port": 0}, "logstash_beats_port (0), logstash_api_port"),
    ({"logstash_data_stream_namespace": "Site-A"}, 'logstash_data_stream_namespace ("Site-A") must be lower-case'),
    ({"logstash_queue_max_bytes": "4 GB"}, 'logstash_queue_max_bytes ("4 GB") and'),
    ({"logstash_tls_key": "/pki/l.key"}, "logstash_tls_certificate, logstash_tls_key and logstash_tls_ca go together"),
    ({"logstash_version": "9.1.0"}, "of major version 8 (logstash_major_version)"),
    ({"logstash_install_method": "archive"}, 'logstash_version ("") must be a version such as 8.19.7'),
    ({"logstash_opensearch_plugin_version": "latest"}, 'logstash_opensearch_plugin_version ("latest") must be'),
    (
        {"logstash_extra_settings": {"queue.type": "memory", "api.http.host": "192.0.2.1"}},
        "may not set those the role writes (node.name, path.data, path.logs, path.settings, path.config,"
        " config.string, queue, dead_letter_queue, pipeline.workers, pipeline.batch.size, api, config.reload,"
        " log.level): queue.type, api.http.host",
    ),
    ({"logstash_log_level": "verbose"}, "value of logstash_log_level must be one of"),
]


PLATFORMS = {"debian12": DEB, "alma9": ALMA}
globals().update(
    input_check_tests(
        "logstash",
        SITE,
        PLATFORMS,
        OTHER_GOOD_INPUT,
        BAD_INPUT,
        FIRST_CHANGE,
        secret=SITE["logstash_elasticsearch_password"],
    )
)


# ------------------------------------------------------------------ rendering

SETTINGS = ["logstash.yml", "pipelines.yml", "heap.options", "wlcg-soc.env", "hardening.conf", "archive.service"]
PROBES = ["__logstash_repo_url", "__logstash_heap", "__logstash_es_hosts", "__logstash_memcached"]


def render(playbook, tmp_path: Path, family: str, facts: dict, extra: dict) -> dict:
    """Render the role's settings and every pipeline its settings turn on; return them by name."""
    probes = probes_task(tmp_path, PROBES)
    pipelines = f"""
    - wlcg_soc_render:
        src: "{ROLE}/templates/pipelines/{{{{ pipeline.template }}}}.j2"
        dest: "{tmp_path}/{{{{ pipeline.id }}}}.conf"
        mode: "0644"
      loop: "{{{{ __logstash_active_pipelines }}}}"
      loop_control:
        loop_var: pipeline
"""
    templates = template_task(ROLE, tmp_path, {f"{t}.j2": t for t in SETTINGS})
    res = playbook(role_play(ROLE, family, templates + pipelines + probes), facts, extra, check=False)
    assert res.rc == 0, res.out
    out: dict = {p.name: p.read_text() for p in tmp_path.iterdir() if p.suffix in (".conf", ".yml", ".options", ".env")}
    out |= {name: (tmp_path / name).read_text() for name in SETTINGS}
    out["probes"] = read_probes(tmp_path)
    return out


def parsed(text: str) -> list:
    """A pipeline parsed with Logstash's grammar (after its Ansible managed header, a comment)."""
    assert "# Ansible managed" in text.splitlines()[:3], text.splitlines()[:3]
    return Pipeline(text).parse()


def plain(value):
    """A parsed option value as text, numbers, booleans and lists (the parser types addresses
    and paths)."""
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def plugins(tree: list, section: str) -> list[tuple[str, dict]]:
    """The plugins of a section, with their options, wherever they sit in conditionals."""
    found: list[tuple[str, dict]] = []

    def walk(items: list) -> None:
        for item in items:
            name, body = item[0], item[1]
            if name in ("if", "else if"):
                walk(body[1][0] if body and len(body) > 1 else [])
            elif name == "else":
                walk(body)
            else:
                found.append((name, {k: plain(v[0] if len(v) == 1 else v) for k, v in body}))

    for part, items in tree:
        if part == section:
            walk(items)
    return found


def logstash_test(tmp_path: Path, out: dict) -> None:
    """Each rendered pipeline through `logstash --config.test_and_exit` as the role's validate
    runs it, with the rendered logstash.yml as the settings: the Logstash stand-in
    (tests/logstash_standin) checks the grammar, every plugin and option, and every setting,
    against Logstash 8.19's reference (tests/logstash_reference.py)."""
    settings, certs = tmp_path / "settings", tmp_path / "certs"
    settings.mkdir()
    certs.mkdir()
    (settings / "logstash.yml").write_text(out["logstash.yml"])
    # The test checks that path options name existing files (the role writes the certificates
    # first): placeholders here, where the host has /etc/logstash/certs.
    for name in ("logstash.crt", "logstash.key", "logstash-keystore.pem", "ca.crt"):
        (certs / name).write_text("placeholder\n")
    env = dict(os.environ, WLCG_SOC_SEARCH_PASSWORD="unset-during-the-test")  # noqa: S106 (as the role's test)
    for name in sorted(n for n in out if n.startswith("wlcg-soc-") and n.endswith(".conf")):
        conf = tmp_path / f"test-{name}"
        conf.write_text(out[name].replace("/etc/logstash/certs/", f"{certs}/"))
        cmd = [sys.executable, str(STANDIN), "--path.settings", str(settings), "--path.data", str(tmp_path)]
        cmd += ["--path.logs", str(tmp_path), "--config.test_and_exit", "-f", str(conf)]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        assert res.returncode == 0 and "Configuration OK" in res.stdout + res.stderr, (name, res.stdout, res.stderr)


def test_debian_elasticsearch_pipelines(playbook, tmp_path):
    out = render(playbook, tmp_path, "Debian", DEB, SITE)
    logstash_test(tmp_path, out)
    settings = yaml.safe_load(out["logstash.yml"])
    assert settings["queue.type"] == "persisted" and settings["dead_letter_queue.enable"] is True
    assert (settings["api.http.host"], settings["config.reload.automatic"]) == ("127.0.0.1", True)
    # A pipeline that could not start (memcached down) is tried again at every interval.
    assert settings["config.reload.interval"] == "30s"
    assert [p["pipeline.id"] for p in yaml.safe_load(out["pipelines.yml"])] == [
        "wlcg-soc-beats",
        "wlcg-soc-zeek",
        "wlcg-soc-flows",
    ]
    assert out["probes"]["__logstash_heap"] == "4000" or out["probes"]["__logstash_heap"] == 4000
    assert "-Xms4000m\n-Xmx4000m" in out["heap.options"]
    beats = plugins(parsed(out["wlcg-soc-beats.conf"]), "input")
    assert beats == [
        (
            "beats",
            {
                "id": "wlcg-soc-beats",
                "host": "0.0.0.0",  # noqa: S104 (clients need a certificate of the site CA)
                "port": 5044,
                "ssl_enabled": True,
                "ssl_certificate": "/etc/logstash/certs/logstash.crt",
                "ssl_key": "/etc/logstash/certs/logstash.key",
                "ssl_certificate_authorities": ["/etc/logstash/certs/ca.crt"],
                "ssl_client_authentication": "required",
                "ssl_supported_protocols": ["TLSv1.2", "TLSv1.3"],
                "enrich": ["source_metadata"],
            },
        )
    ]
    routes = plugins(parsed(out["wlcg-soc-beats.conf"]), "output")
    assert [o["send_to"] for _n, o in routes] == [["wlcg-soc-flows"], ["wlcg-soc-zeek"]]
    for family, address in (("zeek", "id.orig_h"), ("flows", "ip_src")):
        tree = parsed(out[f"wlcg-soc-{family}.conf"])
        (inp,) = plugins(tree, "input")
        assert inp == ("pipeline", {"id": f"wlcg-soc-{family}-in", "address": f"wlcg-soc-{family}"})
        filters = plugins(tree, "filter")
        assert [name for name, _o in filters] == ["json", "memcached", "memcached", "mutate"]
        # The count of failed lookups: the events.in of this plugin in _node/stats/pipelines.
        assert filters[3][1] == {"id": f"wlcg-soc-{family}-misp-lookup-failures"}
        source = filters[1][1]
        assert source["hosts"] == ["mc1.example.org:11211"]
        field = f"%{{[@metadata][record][{address}]}}"
        assert source["get"] == [
            [memcached_key("ip-src", field), ["[misp_lookup][source][ip-src]"]],
            [memcached_key("ip-dst", field), ["[misp_lookup][source][ip-dst]"]],
        ] or dict(source["get"]) == {
            memcached_key("ip-src", field): "[misp_lookup][source][ip-src]",
            memcached_key("ip-dst", field): "[misp_lookup][source][ip-dst]",
        }
        ((name, output),) = plugins(tree, "output")
        assert name == "elasticsearch"
        assert output["index"] == f"{family}-default" and output["action"] == "create"
        # The ingest pipeline the output names is one the search tier loads.
        assert output["pipeline"] == f"wlcg-soc-{family}" and (INGEST / f"wlcg-soc-{family}.json").exists()
        assert output["password"] == "${WLCG_SOC_SEARCH_PASSWORD}"  # noqa: S105 (the variable, not a secret)
        assert output["ssl_verification_mode"] == "full"
        assert output["hosts"] == SITE["logstash_elasticsearch_hosts"]
    assert 'WLCG_SOC_SEARCH_PASSWORD="writer-Passw0rd\\"$x"' in out["wlcg-soc.env"]
    unit = out["hardening.conf"]
    assert "EnvironmentFile=/etc/logstash/wlcg-soc.env" in unit and "CapabilityBoundingSet=\n" in unit
    assert out["probes"]["__logstash_repo_url"] == "https://artifacts.elastic.co/packages/8.x/apt"


def test_redhat_opensearch_kafka_archive(playbook, tmp_path):
    extra = dict(
        SITE,
        logstash_engine="opensearch",
        logstash_install_method="archive",
        logstash_version="8.19.7",
        logstash_archive_src="/srv/logstash.tar.gz",
        logstash_kafka=True,
        logstash_kafka_hosts=["k1.example.org:9093", "k2.example.org:9093"],
        logstash_misp_enrichment=False,
        logstash_data_stream_namespace="site_a",
    )
    out = render(playbook, tmp_path, "RedHat", ALMA, extra)
    logstash_test(tmp_path, out)
    assert [p["pipeline.id"] for p in yaml.safe_load(out["pipelines.yml"])] == [
        "wlcg-soc-beats",
        "wlcg-soc-kafka",
        "wlcg-soc-zeek",
        "wlcg-soc-flows",
    ]
    (name, kafka), *flows = plugins(parsed(out["wlcg-soc-kafka.conf"]), "input")
    assert name == "kafka" and kafka["bootstrap_servers"] == "k1.example.org:9093,k2.example.org:9093"
    assert kafka["topics"] == ["wlcg-soc.zeek", "wlcg-soc.netflow", "wlcg-soc.sflow"]
    # A new consumer group reads what the topics hold, not only what comes after it joined.
    assert kafka["auto_offset_reset"] == "earliest" and kafka["codec"] == "json"
    # nfacctd's own topics: its records as the lines Filebeat ships, with their flow dataset.
    assert [(n, f["id"], f["topics"], f["codec"], f["group_id"]) for n, f in flows] == [
        ("kafka", "wlcg-soc-kafka-netflow", ["flows.netflow"], "plain", "wlcg-soc-logstash"),
        ("kafka", "wlcg-soc-kafka-sflow", ["flows.sflow"], "plain", "wlcg-soc-logstash"),
    ]
    for (_name, flow), dataset in zip(flows, ["netflow.flow", "sflow.flow"], strict=True):
        assert dict(flow["add_field"]) == {"[event][module]": [dataset.split(".")[0]], "[event][dataset]": [dataset]}
        assert (
            flow["client_id"] != kafka["client_id"] and flow["ssl_keystore_location"] == kafka["ssl_keystore_location"]
        )
    # Transport only: no [event][original] copy of each record (the plain codec's with ECS on).
    (entry,) = [p for p in yaml.safe_load(out["pipelines.yml"]) if p["pipeline.id"] == "wlcg-soc-kafka"]
    assert entry["pipeline.ecs_compatibility"] == "disabled"
    tree = parsed(out["wlcg-soc-zeek.conf"])
    assert plugins(tree, "filter") == []
    ((name, output),) = plugins(tree, "output")
    assert (
        name == "opensearch" and output["index"] == "zeek-site_a" and output["cacert"] == "/etc/logstash/certs/ca.crt"
    )
    assert output["ssl_certificate_verification"] is True
    assert out["probes"]["__logstash_repo_url"] == "https://artifacts.elastic.co/packages/8.x/yum"
    assert 'ExecStart=/opt/wlcg-soc/logstash/bin/logstash "--path.settings" "/etc/logstash"' in out["archive.service"]
