"""The kibana role: its input checks (before any change), the RedHat branch and the
OpenSearch Dashboards variant rendered, and its dashboards push against the Kibana API
double (tests/kibana_double) for both engines.

The role runs in check mode on this machine with fake facts, so nothing changes on it;
the templates are rendered into a temporary directory and parsed.
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
from module_runner import run_tasks

ROLE = ROOT / "roles/kibana"
DASHBOARDS = ROLE / "files/dashboards"

HOST = {
    "fqdn": "soc-kibana01.example.org",
    "default_ipv4": {"address": "192.0.2.30", "interface": "eth0"},
}
DEB = dict(DEBIAN12, **HOST)
ALMA = dict(ALMA9, **HOST)

ES_HOSTS = ["https://es1.example.org:9200", "https://es2.example.org:9200"]
KEYS = {
    "kibana_encrypted_saved_objects_key": "a" * 32,
    "kibana_security_encryption_key": "b" * 40,
    "kibana_reporting_encryption_key": "c" * 32,
}
# What a site sets (from its vault) for Kibana, and for OpenSearch Dashboards.
KIBANA = {
    "kibana_elasticsearch_hosts": ES_HOSTS,
    "kibana_service_token": "AAEAAWVsYXN0aWMva2liYW5hL3NvYzpzZWNyZXQ",
    "kibana_api_password": "api-Passw0rd",
    **KEYS,
}
DASHBOARDS_SITE = {
    "kibana_engine": "opensearch",
    "kibana_elasticsearch_hosts": ES_HOSTS,
    "kibana_opensearch_password": "kibanaserver-Passw0rd",
    "kibana_security_encryption_key": "d" * 32,
    "kibana_api_password": "admin-Passw0rd",
}

APPLY = """
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: wlcg.soc.kibana
"""
# Stop right after the input checks: the rest would touch this machine's packages.
VALIDATE = checks_play("kibana")
FIRST_CHANGE = "Install the tools the role uses"


OTHER_GOOD_INPUT = [
    {
        "kibana_install_method": "mirror",
        "kibana_mirror_url": "https://mirror.example.org/elastic/8.x/apt",
        "kibana_mirror_key_url": "https://mirror.example.org/elastic/GPG-KEY-elasticsearch",
    },
    {
        "kibana_install_method": "archive",
        "kibana_version": "8.15.3",
        "kibana_archive_src": "https://mirror.example.org/kibana-8.15.3-linux-x86_64.tar.gz",
        "kibana_archive_checksum": "sha512:" + "0" * 128,
    },
    {
        "kibana_install_method": "archive",
        "kibana_version": "8.15.3",
        "kibana_archive_src": "/srv/dist/kibana-8.15.3-linux-x86_64.tar.gz",
    },
    {"kibana_tls_certificate": "/pki/k.crt", "kibana_tls_key": "/pki/k.key", "kibana_tls_ca": "/pki/ca.crt"},
    {"kibana_dashboards_push": False, "kibana_api_password": ""},
    {"kibana_extra_settings": {"logging.root.level": "warn", "xpack.fleet.agents.enabled": False}},
    {"kibana_space": "security", "kibana_version": "8.15.3"},
]
OTHER_GOOD_IDS = [
    "mirror",
    "archive-url",
    "archive-controller",
    "site-certificate",
    "no-push",
    "extra-settings",
    "space",
]
BAD_INPUT = [
    (
        KIBANA,
        {"kibana_engine": "elastic"},
        "value of kibana_engine must be one of: elasticsearch, opensearch, got: elastic",
    ),
    (KIBANA, {"kibana_install_method": "snap"}, "value of kibana_install_method must be one of"),
    (KIBANA, {"kibana_service_token": ""}, "kibana_service_token must be set (from Ansible Vault)"),
    (
        KIBANA,
        {"kibana_encrypted_saved_objects_key": "short"},
        "kibana_encrypted_saved_objects_key must be set (from Ansible Vault) to a random string of at least 32"
        " characters (it has 5)",
    ),
    (KIBANA, {"kibana_security_encryption_key": "x" * 31}, "kibana_security_encryption_key must be set"),
    (KIBANA, {"kibana_reporting_encryption_key": ""}, "kibana_reporting_encryption_key must be set"),
    (KIBANA, {"kibana_server_port": 70000}, "kibana_server_port (70000) must be a TCP port number"),
    (KIBANA, {"kibana_elasticsearch_port": "es"}, "argument 'kibana_elasticsearch_port' is of type str"),
    (
        KIBANA,
        {"kibana_public_base_url": "http://soc.example.org"},
        'kibana_public_base_url ("http://soc.example.org") must be the https URL',
    ),
    (KIBANA, {"kibana_public_base_url": "https://soc.example.org/"}, "without a trailing slash"),
    (
        KIBANA,
        {"kibana_tls_certificate": "/pki/k.crt"},
        "kibana_tls_certificate, kibana_tls_key and kibana_tls_ca go together",
    ),
    (
        KIBANA,
        {"kibana_elasticsearch_hosts": []},
        "the hosts of the inventory group kibana_elasticsearch_group (elasticsearch) are used, and it has no host(s)",
    ),
    (
        KIBANA,
        {"kibana_elasticsearch_hosts": ["http://es1.example.org:9200"]},
        'kibana_elasticsearch_hosts (["http://es1.example.org:9200"]) must list the search cluster\'s https URLs',
    ),
    (KIBANA, {"kibana_elasticsearch_hosts": "https://es1:9200"}, 'kibana_elasticsearch_hosts ("https://es1:9200")'),
    (KIBANA, {"kibana_install_method": "mirror"}, "kibana_install_method is mirror: set kibana_mirror_url"),
    (
        KIBANA,
        {"kibana_install_method": "archive", "kibana_archive_src": "/srv/kibana.tar.gz"},
        'kibana_version ("") must be a version such as 8.15.3',
    ),
    (
        KIBANA,
        {
            "kibana_install_method": "archive",
            "kibana_version": "8.15.3",
            "kibana_archive_src": "https://example.org/kibana.tar.gz",
        },
        'with kibana_archive_checksum ("") as ALGORITHM:HEX',
    ),
    (KIBANA, {"kibana_version": "9.0.0"}, "of major version 8 (kibana_major_version)"),
    (
        KIBANA,
        {"kibana_install_method": "mirror", "kibana_mirror_url": "ftp://x", "kibana_mirror_key_url": "ftp://x/k"},
        'set kibana_mirror_url ("ftp://x") and',
    ),
    (
        KIBANA,
        {"kibana_extra_settings": {"server.port": 8443}},
        "may not set what the role manages: server.host, server.port",
    ),
    (KIBANA, {"kibana_extra_settings": ["a"]}, "argument 'kibana_extra_settings' is of type list"),
    (KIBANA, {"kibana_api_password": ""}, "kibana_dashboards_push is true: kibana_api_url"),
    (KIBANA, {"kibana_api_url": "https://kibana:5601/"}, "an https URL without a"),
    (KIBANA, {"kibana_dashboards_push": "maybe"}, "argument 'kibana_dashboards_push' is of type str"),
    (KIBANA, {"kibana_space": "Security"}, 'kibana_space ("Security") must be empty (the default space)'),
    (
        KIBANA,
        {"kibana_data_views": [{"title": "zeek-*"}]},
        "missing required arguments: id found in kibana_data_views",
    ),
    (
        KIBANA,
        {"kibana_data_views": [{"id": "z", "title": "z-*", "index": "z"}]},
        "kibana_data_views.index. Supported parameters include",
    ),
    (KIBANA, {"kibana_api_wait_retries": 0}, "kibana_api_wait_retries (0) must be a whole number of at least 1"),
    (
        DASHBOARDS_SITE,
        {"kibana_opensearch_password": ""},
        "and kibana_opensearch_password (from Ansible Vault) must be set",
    ),
    (DASHBOARDS_SITE, {"kibana_security_encryption_key": "short"}, "kibana_security_encryption_key must be set"),
    (DASHBOARDS_SITE, {"kibana_space": "security"}, "OpenSearch Dashboards has no spaces"),
    (
        DASHBOARDS_SITE,
        {"kibana_extra_settings": {"opensearch.password": "x"}},
        "may not set what the role manages",
    ),
]
NO_COOKIE_KEY = dict(DASHBOARDS_SITE, kibana_opensearch_security=False, kibana_security_encryption_key="")


@pytest.fixture(scope="module")
def checks(playbook_cases):
    """Every input-check case below, in two ansible-playbook runs (one host per case): the
    checks alone, and the role, which stops at its checks."""
    return {
        VALIDATE: playbook_cases(
            VALIDATE,
            [(facts, site) for facts in (DEB, ALMA) for site in (KIBANA, DASHBOARDS_SITE)]
            + [(DEB, dict(KIBANA, **extra)) for extra in OTHER_GOOD_INPUT]
            + [(DEB, NO_COOKIE_KEY)],
        ),
        APPLY: playbook_cases(
            APPLY,
            [(dict(DEB, **platform), KIBANA) for platform in UNSUPPORTED.values()]
            + [(DEB, dict(site, **extra)) for site, extra, _needle in BAD_INPUT],
        ),
    }


@pytest.mark.parametrize("facts", [DEB, ALMA], ids=["debian12", "alma9"])
@pytest.mark.parametrize("site", [KIBANA, DASHBOARDS_SITE], ids=["kibana", "dashboards"])
def test_good_input_passes_checks(checks, facts, site):
    res = checks[VALIDATE].get(facts, site)
    assert res.rc == 0, res.out


@pytest.mark.parametrize("extra", OTHER_GOOD_INPUT, ids=OTHER_GOOD_IDS)
def test_other_good_input_passes_checks(checks, extra):
    res = checks[VALIDATE].get(DEB, dict(KIBANA, **extra))
    assert res.rc == 0, res.out


@unsupported_platforms
def test_unsupported_family_fails_first(checks, platform):
    facts = dict(DEB, **platform)
    assert_platform_refused(checks[APPLY].get(facts, KIBANA), "kibana", facts, FIRST_CHANGE)


@pytest.mark.parametrize(("site", "extra", "needle"), BAD_INPUT)
def test_bad_input_names_the_variable(checks, site, extra, needle):
    res = checks[APPLY].get(DEB, dict(site, **extra))
    assert res.rc != 0, res.out
    assert needle in res.out.replace("\n", " ") or needle in res.out, res.out
    assert FIRST_CHANGE not in res.out, res.out


def test_secrets_stay_out_of_the_output(playbook):
    token = "AAEAAWVsYXN0aWMva2liYW5hL3NlY3JldC10b2tlbg"  # noqa: S105 (a made-up token)
    res = playbook(APPLY, DEB, dict(KIBANA, kibana_service_token=token, kibana_reporting_encryption_key="short-Key-9"))
    assert res.rc != 0, res.out
    assert "kibana_reporting_encryption_key must be set" in res.out, res.out
    assert (
        token not in res.out and "short-Key-9" not in res.out and KEYS["kibana_security_encryption_key"] not in res.out
    )


def test_opensearch_without_security_needs_no_cookie_key(checks):
    res = checks[VALIDATE].get(DEB, NO_COOKIE_KEY)
    assert res.rc == 0, res.out


def test_family_vars_define_the_same_keys():
    debian = yaml.safe_load((ROLE / "vars/Debian.yml").read_text())
    redhat = yaml.safe_load((ROLE / "vars/RedHat.yml").read_text())
    assert debian.keys() == redhat.keys()


# ------------------------------------------------------------------ rendering

TEMPLATES = ["kibana.yml", "opensearch_dashboards.yml", "hardening.conf", "archive.service"]
# Internal values the tests read back after rendering.
PROBES = [
    "__kibana_repo_url",
    "__kibana_repo_key_url",
    "__kibana_app.package",
    "__kibana_es_hosts",
    "__kibana_conf_path",
    "__kibana_user",
    "__kibana_home",
    "__kibana_app.dashboards",
]


def render(playbook, tmp_path: Path, family: str, facts: dict, extra: dict, es_group: list[str] = ()) -> dict:
    """Render the role's templates with a family's settings; return them by name, and the probes."""
    add_hosts = "".join(
        f"""
    - ansible.builtin.add_host:
        name: {host}
        groups: [elasticsearch]
"""
        for host in es_group
    )
    probes = f"""
    - wlcg_soc_render:
        content: "{{{{ __probes | to_json }}}}"
        dest: "{tmp_path}/probes.json"
        mode: "0644"
      vars:
        __probes:
{"".join(f"          {p!r}: '{{{{ {p} }}}}'" + chr(10) for p in PROBES)}"""
    templates = template_task(ROLE, tmp_path, {f"{t}.j2": t for t in TEMPLATES})
    text = role_play(ROLE, family, add_hosts + templates + probes)
    res = playbook(text, facts, extra, check=False)
    assert res.rc == 0, res.out
    out = {name: (tmp_path / name).read_text() for name in TEMPLATES}
    out["probes"] = json.loads((tmp_path / "probes.json").read_text())
    return out


def settings(text: str) -> dict:
    """The YAML a template produced, after its Ansible managed header."""
    lines = text.splitlines()
    assert lines[0].startswith("#") and "# Ansible managed" in lines[:3], lines[:3]
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def test_redhat_branch_renders_kibana(playbook, tmp_path):
    extra = dict(KIBANA, kibana_version="8.15.3", kibana_extra_settings={"logging.root.level": "warn"})
    out = render(playbook, tmp_path, "RedHat", ALMA, extra)
    probes = out["probes"]
    assert probes["__kibana_repo_url"] == "https://artifacts.elastic.co/packages/8.x/yum"
    assert probes["__kibana_repo_key_url"] == "https://artifacts.elastic.co/GPG-KEY-elasticsearch"
    assert probes["__kibana_app.package"] == "kibana"
    assert probes["__kibana_conf_path"] == "/etc/kibana/kibana.yml"
    conf = settings(out["kibana.yml"])
    assert conf["server.host"] == "0.0.0.0"  # noqa: S104 (Kibana is the analysts' front end)
    assert conf["server.port"] == 5601
    assert conf["server.publicBaseUrl"] == "https://soc-kibana01.example.org:5601"
    assert conf["server.ssl.enabled"] is True
    assert conf["server.ssl.certificate"] == "/etc/kibana/certs/kibana.crt"
    assert conf["server.ssl.key"] == "/etc/kibana/certs/kibana.key"
    assert conf["elasticsearch.hosts"] == ES_HOSTS
    assert conf["elasticsearch.ssl.certificateAuthorities"] == ["/etc/kibana/certs/ca.crt"]
    assert conf["elasticsearch.ssl.verificationMode"] == "full"
    assert conf["elasticsearch.serviceAccountToken"] == KIBANA["kibana_service_token"]
    assert conf["xpack.encryptedSavedObjects.encryptionKey"] == KEYS["kibana_encrypted_saved_objects_key"]
    assert conf["xpack.security.encryptionKey"] == KEYS["kibana_security_encryption_key"]
    assert conf["xpack.reporting.encryptionKey"] == KEYS["kibana_reporting_encryption_key"]
    assert conf["path.data"] == "/var/lib/kibana"
    assert conf["logging.root.level"] == "warn"
    assert not [k for k in conf if k.startswith("opensearch")]
    dropin = out["hardening.conf"]
    assert "# Ansible managed" in dropin.splitlines()[:3]
    assert "\n[Service]\n" in dropin
    for line in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=-/var/lib/kibana -/var/log/kibana -/run/kibana",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "ProtectHome=yes",
    ]:
        assert f"\n{line}\n" in dropin, line
    assert "\nMemoryDenyWriteExecute" not in dropin  # V8's JIT


def test_debian_repository_and_inventory_group(playbook, tmp_path):
    extra = dict(
        KIBANA,
        kibana_elasticsearch_hosts=[],
        kibana_install_method="mirror",
        kibana_mirror_url="http://127.0.0.1:8080/apt",
        kibana_mirror_key_url="http://127.0.0.1:8080/key.asc",
    )
    out = render(playbook, tmp_path, "Debian", DEB, extra, es_group=["soc-es1", "soc-es2"])
    probes = out["probes"]
    assert probes["__kibana_repo_url"] == "http://127.0.0.1:8080/apt"
    assert probes["__kibana_repo_key_url"] == "http://127.0.0.1:8080/key.asc"
    assert probes["__kibana_app.package"] == "kibana"
    conf = settings(out["kibana.yml"])
    assert conf["elasticsearch.hosts"] == ["https://soc-es1:9200", "https://soc-es2:9200"]


def test_opensearch_dashboards_variant_renders(playbook, tmp_path):
    extra = dict(DASHBOARDS_SITE, kibana_version="2.19.1", kibana_elasticsearch_port=9201)
    extra["kibana_elasticsearch_hosts"] = []
    out = render(playbook, tmp_path, "RedHat", ALMA, extra, es_group=["soc-os1"])
    probes = out["probes"]
    assert (
        probes["__kibana_repo_url"] == "https://artifacts.opensearch.org/releases/bundle/opensearch-dashboards/2.x/yum"
    )
    assert probes["__kibana_repo_key_url"] == "https://artifacts.opensearch.org/publickeys/opensearch-release.pgp"
    assert probes["__kibana_app.package"] == "opensearch-dashboards"
    assert probes["__kibana_conf_path"] == "/etc/opensearch-dashboards/opensearch_dashboards.yml"
    assert probes["__kibana_user"] == "opensearch-dashboards"
    conf = settings(out["opensearch_dashboards.yml"])
    certs = "/etc/opensearch-dashboards/certs"
    assert conf["server.ssl.certificate"] == f"{certs}/opensearch-dashboards.crt"
    assert conf["server.ssl.key"] == f"{certs}/opensearch-dashboards.key"
    assert conf["opensearch.hosts"] == ["https://soc-os1:9201"]
    assert conf["opensearch.ssl.certificateAuthorities"] == [f"{certs}/ca.crt"]
    assert conf["opensearch.ssl.verificationMode"] == "full"
    assert conf["opensearch.username"] == "kibanaserver"
    assert conf["opensearch.password"] == DASHBOARDS_SITE["kibana_opensearch_password"]
    assert conf["opensearch_security.cookie.password"] == DASHBOARDS_SITE["kibana_security_encryption_key"]
    assert conf["opensearch_security.cookie.secure"] is True
    assert conf["opensearch_security.auth.type"] == "basicauth"
    assert conf["path.data"] == "/var/lib/opensearch-dashboards"
    assert not [k for k in conf if k.startswith(("elasticsearch.", "xpack."))]
    assert "server.publicBaseUrl" not in conf
    assert "ReadWritePaths=-/var/lib/opensearch-dashboards" in out["hardening.conf"]
    assert "ProtectSystem=full\n" in out["hardening.conf"]
    assert probes["__kibana_app.dashboards"] == [
        "wlcg-soc-zeek-dashboards.ndjson",
        "wlcg-soc-flows-dashboards.ndjson",
        "wlcg-soc-misp-dashboards.ndjson",
        "wlcg-soc-capture-loss-dashboards.ndjson",
    ]


def test_opensearch_without_security_plugin(playbook, tmp_path):
    extra = dict(DASHBOARDS_SITE, kibana_opensearch_security=False)
    conf = settings(render(playbook, tmp_path, "Debian", DEB, extra)["opensearch_dashboards.yml"])
    assert not [k for k in conf if k.startswith("opensearch_security.")]
    assert conf["opensearch.username"] == "kibanaserver"


def test_archive_unit_renders(playbook, tmp_path):
    extra = dict(
        KIBANA,
        kibana_install_method="archive",
        kibana_version="8.15.3",
        kibana_archive_src="/srv/kibana-8.15.3-linux-x86_64.tar.gz",
    )
    out = render(playbook, tmp_path, "Debian", DEB, extra)
    assert out["probes"]["__kibana_home"] == "/opt/wlcg-soc/kibana"
    unit = out["archive.service"]
    assert "# Ansible managed" in unit.splitlines()[:3]
    for line in [
        "User=kibana",
        "Environment=KBN_PATH_CONF=/etc/kibana",
        "ExecStart=/opt/wlcg-soc/kibana/bin/kibana",
        "RuntimeDirectory=kibana",
    ]:
        assert f"\n{line}\n" in unit, line


# ------------------------------------------------------------------ dashboards


def ndjson(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("path", sorted(DASHBOARDS.glob("*.ndjson")), ids=lambda p: p.name)
def test_dashboard_files_are_exports(path):
    """Each file: objects then the export details line, referenced objects present and first."""
    *objects, details = ndjson(path)
    assert "type" not in details and details["exportedCount"] == len(objects)
    seen = set()
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in seen, (obj["id"], ref)
        seen.add((obj["type"], obj["id"]))
    dashboards = [o for o in objects if o["type"] == "dashboard"]
    assert len(dashboards) == 1
    panels = json.loads(dashboards[0]["attributes"]["panelsJSON"])
    assert len(panels) == len(dashboards[0]["references"])
    kibana = not path.name.endswith("-dashboards.ndjson")
    for obj in objects:
        assert ("typeMigrationVersion" in obj) is kibana and ("migrationVersion" in obj) is not kibana


def test_the_issue_dashboards_and_data_views_are_shipped():
    for suffix in ("", "-dashboards"):
        titles, patterns = set(), set()
        for path in DASHBOARDS.glob(f"wlcg-soc-*{suffix}.ndjson"):
            if not suffix and path.name.endswith("-dashboards.ndjson"):
                continue
            for obj in ndjson(path)[:-1]:
                if obj["type"] == "dashboard":
                    titles.add(obj["attributes"]["title"])
                if obj["type"] == "index-pattern":
                    patterns.add(obj["attributes"]["title"])
        assert titles == {
            "WLCG SOC - Zeek overview",
            "WLCG SOC - Flows",
            "WLCG SOC - MISP hits",
            "WLCG SOC - Zeek capture loss",
        }, suffix
        assert patterns == {"zeek-*", "flows-*", "alerts-*"}, suffix


PUSH = {"ansible.builtin.include_role": {"name": "wlcg.soc.kibana", "tasks_from": "dashboards.yml"}}


def push_vars(double, engine: str, tmp_path: Path) -> dict:
    # The double speaks http; the CA file only has to exist.
    (tmp_path / "ca.crt").write_text("")
    return {
        "__kibana_ca": str(tmp_path / "ca.crt"),
        "kibana_engine": engine,
        "kibana_api_url": double.url,
        "kibana_api_username": double.username,
        "kibana_api_password": double.password,
    }


def changed(results: list[dict]) -> list[str]:
    """Loop items of the role's push tasks that changed something."""
    out = []
    for result in results:
        for item in result.get("results", []):
            assert not item.get("failed"), item.get("msg", item)
            if item.get("changed"):
                out.append(str(item.get("item")))
    return out


@pytest.mark.usefixtures("collections_path")
@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
def test_the_role_pushes_every_dashboard_once(request, tmp_path, engine):
    """The role's push tasks against the API double: everything written, then nothing to do."""
    double = request.getfixturevalue("kibana_api" if engine == "elasticsearch" else "dashboards_api")
    task = dict(PUSH, vars=push_vars(double, engine, tmp_path))
    results, out = run_tasks(tmp_path, [task])
    first = changed(results)
    assert len(first) == 3 + 4, out  # the three data views, the four files
    dashboards = {k for k in double.object_keys() if k.startswith("dashboard:")}
    assert dashboards == {
        "dashboard:wlcg-soc-zeek-overview",
        "dashboard:wlcg-soc-flows-overview",
        "dashboard:wlcg-soc-misp-overview",
        "dashboard:wlcg-soc-capture-loss-overview",
    }
    views = {k for k in double.object_keys() if k.startswith("index-pattern:")}
    assert views == {"index-pattern:wlcg-soc-zeek", "index-pattern:wlcg-soc-flows", "index-pattern:wlcg-soc-alerts"}
    writes = len(double.writes)

    results, out = run_tasks(tmp_path, [task])
    assert changed(results) == [], out
    assert len(double.writes) == writes
    results, out = run_tasks(tmp_path, [task], check=True)
    assert changed(results) == [], out
    # Every request carried the xsrf header OpenSearch Dashboards wants.
    assert all(h.get("osd-xsrf") == "true" for m, _p, h in double.requests if m != "GET")
