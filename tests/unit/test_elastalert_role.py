"""The elastalert role: its input checks (before any change), and its configuration, unit and
rules rendered for both families - Debian 12 (Python 3.11, ElastAlert2 2.19.0) and EL9
(python3.12, 2.31.0): every rule is valid against the rule schema of the ElastAlert2 release
the family gets (schema.yaml of its sdist), and the configuration carries what ElastAlert2
requires and the security settings the role promises.

The role runs in check mode on this machine with fake facts, so nothing changes on it; the
templates are rendered into a temporary directory and parsed.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import sdists
import yaml
from conftest import ALMA9, DEBIAN12, ROOT, probes_task, read_probes, role_play, template_task
from role_checks import input_check_tests

ROLE = ROOT / "roles/elastalert"
HOST = {"fqdn": "soc-intel01.example.org"}
DEB = dict(DEBIAN12, **HOST)
ALMA = dict(ALMA9, **HOST)

SITE = {
    "elastalert_elasticsearch_hosts": ["https://es1.example.org:9200", "https://es2.example.org:9201"],
    "elastalert_elasticsearch_password": 'alerting-Passw0rd"$x',
}
SMTP_PASSWORD = "smtp-Secret-0123"  # noqa: S105 - a test value
EMAIL = {
    "elastalert_alerters": ["email"],
    "elastalert_email_to": ["soc@example.org"],
    "elastalert_smtp_host": "smtp.example.org",
    "elastalert_smtp_username": "soc-alerts",
    "elastalert_smtp_password": SMTP_PASSWORD,
}
CHAT = {
    "elastalert_alerters": ["slack", "mattermost", "teams", "telegram", "command"],
    "elastalert_slack_webhook_url": "https://hooks.slack.com/services/T0/B0/secret",
    "elastalert_mattermost_webhook_url": "https://chat.example.org/hooks/secret",
    "elastalert_teams_webhook_url": "https://prod.example.logic.azure.com/workflows/secret",
    "elastalert_telegram_bot_token": "123456:ABC-secret",
    "elastalert_telegram_chat_id": "-100200300",
    "elastalert_command": ["/usr/local/bin/page-oncall", "--soc"],
    "elastalert_https_proxy": "http://proxy.example.org:3128",
}
MISP_KEY = "misp-Sighting-Key-0123456789"
SIGHTINGS = {
    "elastalert_misp_sightings": True,
    "elastalert_misp_url": "https://misp.example.org",
    "elastalert_misp_key": MISP_KEY,
    "elastalert_misp_sighting_source": "Example Site SOC",
}
SITE_RULE = {
    "name": "ssh-from-outside",
    "rule": {
        "name": "SSH from outside",
        "type": "frequency",
        "index": "zeek-*",
        "num_events": 20,
        "timeframe": {"minutes": 5},
        "filter": [{"term": {"destination.port": 22}}],
        "query_key": "source.ip",
    },
}

FIRST_CHANGE = "Install Python"
OTHER_GOOD_INPUT = {
    "email": EMAIL,
    "chat": CHAT,
    "tuned": {
        "elastalert_shipped_rules": {
            "capture_loss": {"threshold_percent": 5, "alerters": ["email"]},
            "zeek_notice": {"enabled": False},
            "silent_sensor": {"minutes": 10, "max_hosts": 50, "query_delay_seconds": 300},
        },
        **EMAIL,
    },
    "site-rule": {"elastalert_rules": [SITE_RULE]},
    "sightings": SIGHTINGS,
    "sightings-intel-only": dict(
        SIGHTINGS, elastalert_misp_sightings=False, elastalert_shipped_rules={"zeek_intel": {"misp_sighting": True}}
    ),
    "group-hosts": {"elastalert_elasticsearch_hosts": [], "elastalert_elasticsearch_group": "all"},
}
BAD_INPUT = [
    ({"elastalert_elasticsearch_password": ""}, "elastalert_elasticsearch_password (from Ansible Vault; one line"),
    ({"elastalert_elasticsearch_password": "CHANGE-ME-x"}, "not a CHANGE-ME placeholder) must be"),
    ({"elastalert_elasticsearch_hosts": ["https://es1.example.org"]}, "https URLs with their ports"),
    ({"elastalert_elasticsearch_hosts": ["http://es1:9200"]}, "https URLs with their ports"),
    (
        {"elastalert_elasticsearch_hosts": [], "elastalert_elasticsearch_group": "search"},
        "elastalert_elasticsearch_group (search) are used, and it has no host(s)",
    ),
    ({"elastalert_run_every_seconds": 0}, "elastalert_run_every_seconds (0),"),
    ({"elastalert_writeback_index": "alerts"}, 'elastalert_writeback_index ("alerts") must start with elastalert'),
    ({"elastalert_data_stream_namespace": "Site A"}, 'elastalert_data_stream_namespace ("Site A") must be'),
    ({"elastalert_alerters": ["pagerduty"]}, 'elastalert_alerters (["pagerduty"]) may name'),
    ({"elastalert_alerters": ["email"]}, "The email alerter needs elastalert_email_to ([])"),
    (dict(EMAIL, elastalert_smtp_password=""), "elastalert_smtp_username and elastalert_smtp_password (vault"),
    (dict(EMAIL, elastalert_smtp_security="none"), "the SMTP password would cross the network in clear"),
    ({"elastalert_smtp_security": "ssl"}, "value of elastalert_smtp_security must be one of"),
    ({"elastalert_alerters": ["slack"]}, "The slack alerter needs elastalert_slack_webhook_url"),
    ({"elastalert_alerters": ["telegram"]}, "The telegram alerter needs elastalert_telegram_bot_token"),
    ({"elastalert_alerters": ["command"], "elastalert_command": ["page"]}, "its absolute path first"),
    ({"elastalert_shipped_rules": {"misp": {}}}, "misp is not a shipped rule"),
    ({"elastalert_shipped_rules": {"capture_loss": {"minutes": 5}}}, "capture_loss.minutes is not a setting of it"),
    (
        {"elastalert_shipped_rules": {"capture_loss": {"threshold_percent": 150}}},
        "capture_loss.threshold_percent must be a percentage, 0 to 100",
    ),
    ({"elastalert_shipped_rules": {"zeek_notice": {"notes": "Scan::Port_Scan"}}}, "zeek_notice.notes must be a list"),
    (
        {"elastalert_shipped_rules": {"silent_source": {"query_delay_seconds": "2m"}}},
        "silent_source.query_delay_seconds must be a number of seconds, 0 or more",
    ),
    ({"elastalert_shipped_rules": {"misp_match": {"alerters": ["sms"]}}}, "misp_match.alerters names unknown"),
    ({"elastalert_rules": [{"name": "misp_match", "rule": {}}]}, "none of the shipped rules'"),
    (dict(SIGHTINGS, elastalert_misp_key=""), "MISP sightings (misp_match, zeek_intel) need elastalert_misp_url"),
    (dict(SIGHTINGS, elastalert_misp_url="http://misp.example.org"), 'elastalert_misp_url ("http://misp.example.org")'),
    (dict(SIGHTINGS, elastalert_misp_key="CHANGE-ME-key"), "elastalert_misp_key (vault; one line, not a CHANGE-ME"),
    (
        {"elastalert_shipped_rules": {"zeek_intel": {"misp_sighting": "yes"}}},
        "zeek_intel.misp_sighting must be true or false",
    ),
    ({"elastalert_shipped_rules": {"capture_loss": {"misp_sighting": True}}}, "capture_loss.misp_sighting is not a"),
    ({"elastalert_rules": [{"name": "bad name", "rule": {}}]}, "a file name of letters, digits, _ and -"),
]

PLATFORMS = {"debian12": DEB, "alma9": ALMA}
globals().update(
    input_check_tests(
        "elastalert",
        SITE,
        PLATFORMS,
        OTHER_GOOD_INPUT,
        BAD_INPUT,
        FIRST_CHANGE,
        secret=SITE["elastalert_elasticsearch_password"],
    )
)


# ------------------------------------------------------------------ rendering

PYTHON = {"Debian": ("3.11", "2.19.0"), "RedHat": ("3.12", "2.31.0")}
PROBES = ["__elastalert_install_version", "__elastalert_teams_alerter", "__elastalert_environment"]


def render(playbook, tmp_path: Path, family: str, facts: dict, extra: dict) -> dict:
    """The configuration, the unit and every rule, by file name."""
    python, _release = PYTHON[family]
    tmp_path.mkdir(exist_ok=True)
    rules = f"""
    - wlcg_soc_render:
        src: "{ROLE}/templates/rules/{{{{ __elastalert_rule.name }}}}.yaml.j2"
        dest: "{tmp_path}/rule-{{{{ __elastalert_rule.name }}}}.yaml"
        mode: "0644"
      loop: "{{{{ __elastalert_shipped | selectattr('settings.enabled') | list }}}}"
      loop_control:
        loop_var: __elastalert_rule
    - wlcg_soc_render:
        src: "{ROLE}/templates/rules/site.yaml.j2"
        dest: "{tmp_path}/rule-{{{{ __elastalert_rule.name }}}}.yaml"
        mode: "0644"
      loop: "{{{{ elastalert_rules }}}}"
      loop_control:
        loop_var: __elastalert_rule
"""
    templates = template_task(ROLE, tmp_path, {"config.yaml.j2": "config.yaml", "elastalert.service.j2": "unit"})
    variables = dict(extra, __elastalert_python_version=python, role_path=str(ROLE))
    res = playbook(
        role_play(ROLE, family, templates + rules + probes_task(tmp_path, PROBES)), facts, variables, check=False
    )
    assert res.rc == 0, res.out
    out: dict = {p.name: p.read_text() for p in tmp_path.iterdir() if p.name.startswith("rule-")}
    out |= {"config.yaml": (tmp_path / "config.yaml").read_text(), "unit": (tmp_path / "unit").read_text()}
    out["probes"] = read_probes(tmp_path)
    return out


def schema(release: str) -> dict:
    """ElastAlert2's own rule schema (schema.yaml of the release's sdist on PyPI)."""
    return yaml.safe_load(
        (sdists.extracted("elastalert2", release, "elastalert", (".yaml",)) / "schema.yaml").read_text()
    )


@pytest.mark.parametrize(("family", "facts"), [("Debian", DEB), ("RedHat", ALMA)], ids=["debian12", "alma9"])
def test_rules_valid_for_the_release_of_the_family(playbook, tmp_path, family, facts):
    out = render(playbook, tmp_path, family, facts, dict(SITE, **EMAIL, elastalert_rules=[SITE_RULE]))
    release = PYTHON[family][1]
    assert out["probes"]["__elastalert_install_version"] == release
    validator = jsonschema.Draft7Validator(schema(release))
    rules = {name: yaml.safe_load(text) for name, text in out.items() if name.startswith("rule-")}
    shipped = ["misp_match", "zeek_intel", "zeek_notice", "capture_loss", "misp_sync_stale", "misp_sync_failing"]
    shipped += ["silent_sensor", "silent_exporter", "silent_source"]
    assert sorted(rules) == sorted(f"rule-{n}.yaml" for n in [*shipped, SITE_RULE["name"]])
    for name, rule in rules.items():
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(rule)]
        assert not errors, (name, errors)
        assert "# Ansible managed" in out[name].splitlines()[:3], name
        # The marker the role's clean-up looks for.
        assert any(line.startswith("# wlcg.soc.elastalert rule ") for line in out[name].splitlines())
        # Every alert is a document in alerts-*, and mailed.
        assert rule["alert"] == [
            "wlcg_soc_alerting.alerters.AlertsIndexAlerter",
            "wlcg_soc_alerting.alerters.VerifiedEmailAlerter",
        ], name
    misp = rules["rule-misp_match.yaml"]
    assert misp["query_key"] == "misp.indicator" and misp["realert"] == {"minutes": 60}
    assert misp["filter"][0]["query"]["bool"]["filter"][0] == {
        "terms": {"event.dataset": ["zeek.connection", "netflow.flow", "sflow.flow"]}
    }
    # ElastAlert2's Jinja reaches the rule untouched by Ansible's.
    assert "{{ misp.indicator | join(', ') }}" in misp["alert_subject"]
    loss = rules["rule-capture_loss.yaml"]["filter"][0]["query"]["bool"]["filter"][1]
    assert loss == {"range": {"zeek.capture_loss.percent_lost": {"gt": 1.0}}}
    silent = rules["rule-silent_sensor.yaml"]
    assert (silent["type"], silent["query_key"], silent["use_terms_query"]) == ("flatline", "host.name", True)
    # Terms queries go on from the previous run: late documents are counted within the delay.
    silence = ("silent_sensor", "silent_exporter", "silent_source", "misp_sync_stale")
    assert all(rules[f"rule-{n}.yaml"]["query_delay"] == {"seconds": 120} for n in silence)
    assert not any("query_delay" in rule for name, rule in rules.items() if name[5:-5] not in silence)
    stale = rules["rule-misp_sync_stale.yaml"]
    assert (stale["index"], stale["timeframe"], stale["query_key"]) == ("status-*", {"minutes": 45}, "host.name")


def test_configuration_and_unit(playbook, tmp_path):
    out = render(playbook, tmp_path, "Debian", DEB, dict(SITE, **EMAIL, **{"elastalert_elasticsearch_version": ""}))
    config = yaml.safe_load(out["config.yaml"])
    assert "# Ansible managed" in out["config.yaml"].splitlines()[:3]
    for key in ("rules_folder", "run_every", "buffer_time", "es_host", "es_port", "writeback_index"):
        assert key in config, key
    assert (config["es_host"], config["es_port"]) == ("es1.example.org", 9200)
    assert config["es_hosts"] == ["es1.example.org:9200", "es2.example.org:9201"]
    assert (config["use_ssl"], config["verify_certs"]) == (True, True)
    assert config["ca_certs"] == "/etc/ssl/certs/ca-certificates.crt"
    assert config["es_password"] == SITE["elastalert_elasticsearch_password"]
    assert config["disable_rules_on_error"] is False
    assert config["run_every"] == {"seconds": 60} and config["buffer_time"] == {"minutes": 15}
    assert config["wlcg_soc_alerts_data_stream"] == "alerts-default"
    assert (config["smtp_host"], config["smtp_port"], config["smtp_security"]) == ("smtp.example.org", 587, "starttls")
    assert config["smtp_auth_file"] == "/etc/wlcg-soc/elastalert/smtp-auth.yaml"
    # The SMTP password is in the account file only.
    assert SMTP_PASSWORD not in out["config.yaml"]
    unit = out["unit"]
    assert "User=elastalert" in unit and "NoNewPrivileges=yes" in unit and "CapabilityBoundingSet=\n" in unit
    assert "Environment=PYTHONPATH=/opt/wlcg-soc/elastalert/lib" in unit and "ES_VERSION" not in unit
    assert SITE["elastalert_elasticsearch_password"] not in unit


def test_misp_sightings(playbook, tmp_path):
    """The indicator rules report sightings, with the MISP's settings in the configuration and the key in a file."""
    tuned = dict(SITE, **SIGHTINGS, elastalert_shipped_rules={"zeek_intel": {"misp_sighting": False}})
    out = render(playbook, tmp_path, "RedHat", ALMA, tuned)
    config = yaml.safe_load(out["config.yaml"])
    assert config["misp_url"] == "https://misp.example.org"
    assert config["misp_key_file"] == "/etc/wlcg-soc/elastalert/misp.key"
    assert config["misp_ca_certs"] == "/etc/pki/tls/certs/ca-bundle.crt"
    assert (config["misp_sighting_source"], config["misp_timeout"]) == ("Example Site SOC", 30)
    assert MISP_KEY not in out["config.yaml"]
    rules = {name[5:-5]: yaml.safe_load(text) for name, text in out.items() if name.startswith("rule-")}
    sighting = "wlcg_soc_alerting.alerters.MispSightingAlerter"
    assert [name for name, rule in rules.items() if sighting in rule["alert"]] == ["misp_match"]
    assert rules["misp_match"]["alert"] == ["wlcg_soc_alerting.alerters.AlertsIndexAlerter", sighting]
    validator = jsonschema.Draft7Validator(schema(PYTHON["RedHat"][1]))
    assert not list(validator.iter_errors(rules["misp_match"]))
    # Without it, nothing of the MISP in the configuration.
    plain = yaml.safe_load(render(playbook, tmp_path / "plain", "Debian", DEB, SITE)["config.yaml"])
    assert not any(key.startswith("misp_") for key in plain)


def test_chat_alerters_for_each_release(playbook, tmp_path):
    debian = yaml.safe_load(render(playbook, tmp_path / "deb", "Debian", DEB, dict(SITE, **CHAT))["config.yaml"])
    alma_out = render(
        playbook, tmp_path / "alma", "RedHat", ALMA, dict(SITE, **CHAT, elastalert_elasticsearch_version="8.19.7")
    )
    alma = yaml.safe_load(alma_out["config.yaml"])
    # 2.19 has the Teams connector alerter, 2.20 and later the Power Automate one.
    assert (
        debian["ms_teams_webhook_url"] == alma["ms_power_automate_webhook_url"] == CHAT["elastalert_teams_webhook_url"]
    )
    assert alma_out["probes"]["__elastalert_teams_alerter"] == "ms_power_automate"
    for config, bundle in ((debian, "/etc/ssl/certs/ca-certificates.crt"), (alma, "/etc/pki/tls/certs/ca-bundle.crt")):
        assert config["slack_ca_certs"] == bundle and config["ca_certs"] == bundle
        assert config["telegram_room_id"] == "-100200300" and config["telegram_proxy"] == CHAT["elastalert_https_proxy"]
        assert config["command"] == CHAT["elastalert_command"] and config["pipe_match_json"] is True
        assert "email" not in config and "smtp_host" not in config
    assert "Environment=ES_VERSION=8.19.7" in alma_out["unit"]
    assert "Environment=REQUESTS_CA_BUNDLE=/etc/pki/tls/certs/ca-bundle.crt" in alma_out["unit"]


def test_pins_name_their_release():
    """The releases the role's documentation gives per Python (Ubuntu 22.04's 3.10 to Debian 13's 3.13)."""
    releases = {"3.10": "2.19.0", "3.11": "2.19.0", "3.12": "2.31.0", "3.13": "2.31.0"}
    files = {p.name for p in (ROLE / "files/constraints").glob("*.txt")}
    assert files == {f"constraints-py{python.replace('.', '')}.txt" for python in releases}
    for python, release in releases.items():
        pins = (ROLE / f"files/constraints/constraints-py{python.replace('.', '')}.txt").read_text().splitlines()
        assert f"elastalert2=={release}" in pins and any(p.startswith("pytz==") for p in pins)
        # The sighting alerter's client, at the release the misp_sync role pins.
        assert "pymisp==2.5.34.4" in pins
        assert all("==" in p for p in pins if p and not p.startswith("#"))
