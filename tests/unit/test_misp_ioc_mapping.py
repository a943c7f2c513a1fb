"""Mapping of MISP attributes (restSearch JSON) to Zeek intel rows and memcached keys.

The expected rows follow MISP's Zeek export (app/Lib/Export/ZeekExport.php): meta.source
"<instance> (<event uuid>) - <org>", meta.desc "<event info>. <comment>", meta.url
"<misp>/events/view/<id>".
"""

from __future__ import annotations

import ipaddress
import json
import random
import re

import pytest
import yaml
from ansible_collections.wlcg.soc.plugins.module_utils import misp_ioc
from ansible_collections.wlcg.soc.plugins.module_utils.memcache import MemcacheError
from ansible_collections.wlcg.soc.plugins.module_utils.misp_ioc import (
    DropRefused,
    Filters,
    Mapper,
    Policy,
    _ip,
    apply,
    filter_argument_spec,
    filter_defaults,
)
from ansible_collections.wlcg.soc.plugins.module_utils.zeek_intel import count_rows, parse, render
from ansible_collections.wlcg.soc.plugins.modules import misp_ioc_export
from conftest import DEBIAN12, ROOT, role_play, template_task

EVENT = {"id": "42", "uuid": "5e1b0c8a-0000-4000-8000-000000000042", "info": "Botnet C2", "orgc_id": "7"}
SOURCE = f"MISP ({EVENT['uuid']}) - CIRCL"
URL = "https://misp.example.org/events/view/42"


def mapped(*attrs, event=None):
    event = event or EVENT
    mapper = Mapper("https://misp.example.org/", "MISP", {"7": "CIRCL"})
    for i, (mtype, value, *comment) in enumerate(attrs):
        mapper.add(
            {"id": str(i), "type": mtype, "value": value, "comment": comment[0] if comment else "", "Event": event}
        )
    return mapper.export


def rows(export):
    return sorted(key[:2] for key in export.rows)


@pytest.mark.parametrize(
    ("mtype", "value", "expected"),
    [
        ("ip-src", "192.0.2.1", [("192.0.2.1", "Intel::ADDR")]),
        ("ip-dst", "198.51.100.0/24", [("198.51.100.0/24", "Intel::SUBNET")]),
        ("ip-dst", "2001:0db8:0000::0001", [("2001:db8::1", "Intel::ADDR")]),
        ("ip-dst|port", "203.0.113.9|443", [("203.0.113.9", "Intel::ADDR")]),
        ("ip-src|port", "203.0.113.0/28|22", [("203.0.113.0/28", "Intel::SUBNET")]),
        ("domain|ip", "evil.example|192.0.2.7", [("192.0.2.7", "Intel::ADDR"), ("evil.example", "Intel::DOMAIN")]),
        ("hostname", "c2.evil.example", [("c2.evil.example", "Intel::DOMAIN")]),
        ("url", "https://evil.example/x?a=1", [("evil.example/x?a=1", "Intel::URL")]),
        ("url", "HTTP://evil.example/", [("evil.example/", "Intel::URL")]),
        ("url", "ftp://evil.example/f", [("ftp://evil.example/f", "Intel::URL")]),
        ("email-src", "a@evil.example", [("a@evil.example", "Intel::EMAIL")]),
        ("target-email", "b@site.example", [("b@site.example", "Intel::EMAIL")]),
        ("filename", "invoice.pdf.exe", [("invoice.pdf.exe", "Intel::FILE_NAME")]),
        ("sha256", "a" * 64, [("a" * 64, "Intel::FILE_HASH")]),
        ("ssdeep", "24:abc:def", [("24:abc:def", "Intel::FILE_HASH")]),
        (
            "filename|md5",
            "x.exe|" + "b" * 32,
            [("b" * 32, "Intel::FILE_HASH"), ("x.exe", "Intel::FILE_NAME")],
        ),
        ("filename|sha512", "z.bin|" + "e" * 128, [("e" * 128, "Intel::FILE_HASH")]),
        ("malware-sample", "y.dll|" + "c" * 32, [("c" * 32, "Intel::FILE_HASH"), ("y.dll", "Intel::FILE_NAME")]),
        ("x509-fingerprint-sha1", "d" * 40, [("d" * 40, "Intel::CERT_HASH")]),
        ("user-agent", "EvilBot/1.0", [("EvilBot/1.0", "Intel::SOFTWARE")]),
    ],
)
def test_zeek_mapping(mtype, value, expected):
    assert rows(mapped((mtype, value))) == expected


def test_meta_fields_as_misp_exports_them():
    rows_ = mapped(("ip-src", "192.0.2.1", "seen\tin\nlogs")).rows
    assert len(rows_) == 1
    key, (desc, url) = next(iter(rows_.items()))
    assert key == ("192.0.2.1", "Intel::ADDR", SOURCE)
    assert desc == "Botnet C2. seen in logs"
    assert url == URL
    desc = next(iter(mapped(("ip-src", "192.0.2.1")).rows.values()))[0]
    assert desc == "Botnet C2"


def test_unknown_org_falls_back_to_its_id():
    mapper = Mapper("https://m", "MISP", {})
    mapper.add({"type": "domain", "value": "x.example", "Event": EVENT})
    assert next(iter(mapper.export.rows))[2] == f"MISP ({EVENT['uuid']}) - org 7"


@pytest.mark.parametrize(
    ("mtype", "value", "reason"),
    [
        ("ja3-fingerprint-md5", "e" * 32, "unsupported type ja3-fingerprint-md5"),
        ("btc", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "unsupported type btc"),
        ("ip-src", "999.1.1.1", "invalid address"),
        ("ip-dst", "not an ip", "invalid address"),
        ("domain", "", "empty value"),
        ("domain", " \t ", "empty value"),
    ],
)
def test_bad_values_are_counted_not_exported(mtype, value, reason):
    export = mapped((mtype, value))
    assert rows(export) == []
    assert export.skipped[reason] == 1
    assert export.keys == {}


def test_value_with_tab_and_newline_is_one_clean_row():
    assert rows(mapped(("user-agent", "Evil\tBot\n2.0"))) == [("Evil Bot 2.0", "Intel::SOFTWARE")]


def test_duplicates_merged_within_an_event():
    export = mapped(("ip-dst", "192.0.2.1"), ("ip-dst|port", "192.0.2.1|80"), ("domain|ip", "a.example|192.0.2.1"))
    assert rows(export) == [("192.0.2.1", "Intel::ADDR"), ("a.example", "Intel::DOMAIN")]


def test_same_indicator_in_two_events_keeps_both_sources():
    mapper = Mapper("https://m", "MISP", {"7": "CIRCL"})
    mapper.add({"type": "ip-dst", "value": "192.0.2.1", "Event": EVENT})
    mapper.add({"type": "ip-dst", "value": "192.0.2.1", "Event": dict(EVENT, id="43", uuid="u43")})
    assert len(mapper.export.rows) == 2


def test_memcached_keys_keep_direction_and_events():
    mapper = Mapper("https://m", "MISP", {})
    mapper.add({"type": "ip-src", "value": "192.0.2.1", "Event": EVENT})
    mapper.add({"type": "ip-dst|port", "value": "192.0.2.1|443", "Event": dict(EVENT, id="50", uuid="u50")})
    mapper.add({"type": "ip-dst", "value": "192.0.2.1", "Event": EVENT})
    mapper.add({"type": "ip-dst", "value": "198.51.100.0/24", "Event": EVENT})
    mapper.add({"type": "domain|ip", "value": "a.example|192.0.2.9", "Event": EVENT})
    export = mapper.export
    assert export.key_counts() == {"ip-src": 1, "ip-dst": 1}
    values = {k: json.loads(v) for k, v in export.key_values().items()}
    assert values["ip-src-192.0.2.1"] == {
        "misp": [{"event_id": 42, "event_uuid": EVENT["uuid"], "info": "Botnet C2", "type": "ip-src"}]
    }
    assert [e["event_id"] for e in values["ip-dst-192.0.2.1"]["misp"]] == [50, 42]  # newest first
    assert export.skipped["network, no memcached key"] == 1


def test_memcached_value_lists_at_most_ten_events():
    mapper = Mapper("https://m", "MISP", {})
    for i in range(15):
        mapper.add({"type": "ip-src", "value": "192.0.2.1", "Event": dict(EVENT, id=str(i), uuid=f"u{i}")})
    hits = json.loads(mapper.export.key_values()["ip-src-192.0.2.1"])["misp"]
    assert [h["event_id"] for h in hits] == list(range(14, 4, -1))


def test_default_query_is_the_wg_practice():
    q = Filters().query()
    assert q["to_ids"] == 1
    assert q["published"] is True
    assert q["publish_timestamp"] == "30d"
    assert q["tags"] == {"NOT": ["tlp:red"]}
    assert "ip-dst|port" in q["type_attribute"]
    assert "ja3-fingerprint-md5" not in q["type_attribute"]
    assert "eventid" not in q and "org" not in q


def test_query_with_every_filter():
    q = Filters(
        to_ids=False,
        published=False,
        publish_window=None,
        tags_include=("tlp:green",),
        tags_exclude=(),
        types=("ip-src",),
        event_ids=("1", "2"),
        orgs=("CERN",),
    ).query()
    assert "to_ids" not in q and "published" not in q and "publish_timestamp" not in q
    assert q["tags"] == {"OR": ["tlp:green"]}
    assert q["type_attribute"] == ["ip-src"]
    assert q["eventid"] == ["1", "2"]
    assert q["org"] == ["CERN"]


def reference_ip(value):
    """What the address parsing must give: Python's ipaddress, with IPv4-mapped IPv6 as IPv4."""
    try:
        if "/" in value:
            net = ipaddress.ip_network(value, strict=False)
            if net.version == 6 and net.subnet_of(ipaddress.ip_network("::ffff:0:0/96")):
                net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
            return str(net), "Intel::SUBNET"
        addr = ipaddress.ip_address(value)
        return str(getattr(addr, "ipv4_mapped", None) or addr), "Intel::ADDR"
    except ValueError:
        return None


def test_address_fast_path_agrees_with_ipaddress():
    tricky = [
        "192.0.2.1", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3.04", "1.2.3",  # noqa: S104
        "1.2.3.4.5", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4\x00", "1..3.4", "0x1.2.3.4", "1.2.3.-4",
        "+1.2.3.4", "1.2.3.4/32", "1.2.3.4/24", "::1", "::ffff:1.2.3.4", "2001:DB8::1", "1.2.3.٤", "",
        "::ffff:1.2.3.0/120", "::ffff:0:0/95",
    ]  # fmt: skip
    rng = random.Random(7)  # noqa: S311 - reproducible inputs
    pieces = ["0", "00", "1", "9", "10", "99", "255", "256", "007", "1000", "", "a"]
    generated = [".".join(rng.choices(pieces, k=rng.choice((3, 4, 4, 5)))) for _value in range(5000)]
    for value in tricky + generated:
        assert _ip(value) == reference_ip(value), value


# The filter defaults live in Filters only; everything that states them is checked against it.
FILTER_DEFAULTS = {
    "to_ids": True,
    "published": True,
    "publish_window": "30d",
    "tags_include": [],
    "tags_exclude": ["tlp:red"],
    "types": [],
    "event_ids": [],
    "orgs": [],
    "enforce_warninglist": True,
}
MISP_SYNC = ROOT / "roles/misp_sync"


def test_filter_defaults_come_from_filters():
    assert filter_defaults() == FILTER_DEFAULTS
    spec = filter_argument_spec()
    assert {name: option["default"] for name, option in spec.items()} == FILTER_DEFAULTS
    assert spec["to_ids"]["type"] == "bool" and spec["publish_window"]["type"] == "str"
    assert spec["orgs"] == {"type": "list", "elements": "str", "default": []}


def test_module_documentation_states_the_filter_defaults():
    options = yaml.safe_load(misp_ioc_export.DOCUMENTATION)["options"]
    assert {name: options[name].get("default") for name in FILTER_DEFAULTS} == FILTER_DEFAULTS
    assert {name: options[name]["type"] for name in FILTER_DEFAULTS} == {
        name: option["type"] for name, option in filter_argument_spec().items()
    }


def test_role_leaves_the_filters_to_the_client():
    defaults = yaml.safe_load((MISP_SYNC / "defaults/main.yml").read_text())
    options = yaml.safe_load((MISP_SYNC / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    for name, default in FILTER_DEFAULTS.items():
        var = f"misp_sync_{name}"
        assert var not in defaults
        assert "default" not in options[var]
        stated = re.search(r"Unset, the sync client's default C\((.*)\)\.$", options[var]["description"])
        assert stated, options[var]["description"]
        assert yaml.safe_load(stated.group(1)) == default, var


def test_options_keep_the_defaults_they_do_not_name():
    assert Filters.from_options({}) == Filters()
    assert Filters.from_options(FILTER_DEFAULTS) == Filters()
    custom = Filters.from_options({"publish_window": "", "event_ids": [7, "8"], "to_ids": False})
    assert custom == Filters(to_ids=False, publish_window=None, event_ids=("7", "8"))
    assert Filters.from_options({"publish_window": None, "tags_exclude": None}) == Filters(
        publish_window=None, tags_exclude=()
    )


def render_sync_config(playbook, tmp_path, extra):
    """The role's misp-sync.json as the role writes it, with the site's variables `extra`."""
    text = role_play(MISP_SYNC, "Debian", template_task(MISP_SYNC, tmp_path, {"misp-sync.json.j2": "misp-sync.json"}))
    res = playbook(text, DEBIAN12, {"misp_sync_url": "https://misp.example.org", **extra}, check=False)
    assert res.rc == 0, res.out
    return json.loads((tmp_path / "misp-sync.json").read_text())


def test_sync_config_passes_only_the_filters_the_site_set(playbook, tmp_path):
    config = render_sync_config(playbook, tmp_path, {})
    assert config["filters"] == {}
    # The same restSearch query as when the role wrote every default out.
    assert Filters.from_options(config["filters"]).query() == Filters().query()
    site = {"misp_sync_publish_window": "", "misp_sync_event_ids": [12, 13], "misp_sync_tags_exclude": []}
    config = render_sync_config(playbook, tmp_path, site)
    assert config["filters"] == {"event_ids": [12, 13], "publish_window": "", "tags_exclude": []}
    assert Filters.from_options(config["filters"]) == Filters(
        publish_window=None, event_ids=("12", "13"), tags_exclude=()
    )


def test_sync_config_carries_the_fetch_bounds(playbook, tmp_path):
    config = render_sync_config(playbook, tmp_path, {})
    # fetch_timeout: one sync interval (15 minutes), within the service's TimeoutStartSec.
    assert (config["max_pages"], config["fetch_timeout"]) == (1000, 900)
    config = render_sync_config(playbook, tmp_path, {"misp_sync_max_pages": 50, "misp_sync_fetch_timeout": 600})
    assert (config["max_pages"], config["fetch_timeout"]) == (50, 600)
    assert config["filters"] == {}
    config = render_sync_config(playbook, tmp_path, {"misp_sync_enforce_warninglist": False})
    assert Filters.from_options(config["filters"]).query()["enforce_warninglist"] is False


# ---------------------------------------------------------------- hostile attributes
def mapped_with(policy, *attrs):
    mapper = Mapper("https://misp.example.org/", "MISP", {"7": "CIRCL"}, policy)
    for mtype, value in attrs:
        mapper.add({"type": mtype, "value": value, "Event": EVENT})
    return mapper.export


@pytest.mark.parametrize(
    "attr",
    [
        "ip-dst 192.0.2.1",
        ["ip-dst", "192.0.2.1"],
        None,
        42,
    ],
    ids=["string", "list", "null", "number"],
)
def test_an_attribute_that_is_not_an_object_is_counted(attr):
    mapper = Mapper("https://m", "MISP", {})
    mapper.add(attr)
    mapper.add({"type": "ip-dst", "value": "192.0.2.1", "Event": EVENT})
    assert mapper.export.skipped == {"malformed attribute": 1}
    assert rows(mapper.export) == [("192.0.2.1", "Intel::ADDR")]


def test_event_as_a_string_and_numbers_as_info_still_export():
    mapper = Mapper("https://m", "MISP", {})
    mapper.add({"type": "ip-dst", "value": "192.0.2.1", "event_id": "9", "Event": "not an object"})
    mapper.add({"type": "ip-src", "value": "192.0.2.2", "Event": {"id": 10, "uuid": 5, "info": 12345, "orgc_id": []}})
    mapper.add({"type": ["ip-dst"], "value": "192.0.2.3", "Event": EVENT})
    export = mapper.export
    by_indicator = {key[0]: (key, value) for key, value in export.rows.items()}
    assert by_indicator["192.0.2.1"][1] == ("-", "https://m/events/view/9")
    assert by_indicator["192.0.2.2"][1] == ("12345", "https://m/events/view/10")
    assert export.skipped == {"unsupported type (other)": 1}
    assert json.loads(export.key_values()["ip-src-192.0.2.2"])["misp"][0]["info"] == "12345"


def test_unsupported_type_reasons_are_bounded():
    mapper = Mapper("https://m", "MISP", {})
    for i in range(500):
        mapper.add({"type": f"made-up-{i}", "value": "x", "Event": EVENT})
    mapper.add({"type": "t" * 1000, "value": "x", "Event": EVENT})
    skipped = mapper.export.skipped
    assert len(skipped) <= 51 and sum(skipped.values()) == 501
    assert skipped["unsupported type (other)"] == 451


@pytest.mark.parametrize(
    "value",
    ["fe80::1%eth 0", "fe80::1%eth0\x07", "fe80::1%\u00e9th0", "fe80::1%" + "x" * 300, "fe80::1%eth0"],
    ids=["whitespace", "control", "non-ascii", "over-250-bytes", "plain"],
)
def test_addresses_with_a_zone_id_are_skipped_not_keyed(value):
    export = mapped(("ip-src", value), ("ip-dst|port", value + "|443"))
    assert rows(export) == []
    assert export.keys == {}
    assert export.skipped == {"address with zone id": 2}


def test_ipv4_mapped_addresses_are_the_ipv4_address():
    export = mapped(("ip-dst", "::ffff:192.0.2.11"), ("ip-src", "::FFFF:c000:20c"), ("ip-dst", "::ffff:192.0.2.0/120"))
    assert rows(export) == [
        ("192.0.2.0/24", "Intel::SUBNET"),
        ("192.0.2.11", "Intel::ADDR"),
        ("192.0.2.12", "Intel::ADDR"),
    ]
    assert sorted(export.keys) == ["ip-dst-192.0.2.11", "ip-src-192.0.2.12"]


def test_long_event_info_is_cut_in_memcached_values_only():
    mapper = Mapper("https://m", "MISP", {})
    info = "A" * 2_000_000
    for i in range(15):
        mapper.add({"type": "ip-src", "value": "192.0.2.1", "Event": dict(EVENT, id=str(i), info=info, uuid="u" * 500)})
    export = mapper.export
    value = export.key_values()["ip-src-192.0.2.1"]
    assert len(value) < 4096  # far below memcached's 1 MiB item
    assert [len(e["info"]) for e in json.loads(value)["misp"]] == [256] * 10
    assert export.trimmed == {"event info in a memcached value": 15, "event uuid in a memcached value": 15}
    assert {len(desc) for desc, _url in export.rows.values()} == {len(info)}  # the intel file keeps it


def test_lone_surrogates_skip_the_value_and_are_replaced_in_text():
    mapper = Mapper("https://m", "MISP", {})
    mapper.add({"type": "domain", "value": "evil\ud800.example", "Event": EVENT})
    mapper.add(
        {"type": "domain", "value": "ok.example", "comment": "bad \udfff", "Event": dict(EVENT, id="7", info="x\ud83d")}
    )
    export = mapper.export
    assert export.skipped == {"undecodable text": 1}
    assert rows(export) == [("ok.example", "Intel::DOMAIN")]
    text = render(export.rows).decode("utf-8")  # encodes: nothing undecodable is left
    assert "x\ufffd. bad \ufffd" in text


@pytest.mark.parametrize("breaker", ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\x0c", "\r", "\x00"])
def test_every_line_or_field_breaker_is_flattened(breaker):
    export = mapped(("user-agent", f"Evil{breaker}Bot"), ("domain", "a.example", f"see{breaker}there"))
    data = render(export.rows)
    parsed, _fields = parse(data)
    assert [r["indicator"] for r in parsed] == ["Evil Bot", "a.example"]
    assert data.decode().count("\n") == 3 and len(data.decode().splitlines()) == 3


def test_an_indicator_starting_with_hash_is_skipped():
    export = mapped(("user-agent", "#fields"), ("filename", " #evil.exe"), ("domain", "ok.example"))
    assert rows(export) == [("ok.example", "Intel::DOMAIN")]
    assert export.skipped == {"starts with #": 2}


def test_networks_wider_than_the_minimum_prefix_are_skipped():
    wide = [("ip-dst", v) for v in ("0.0.0.0/0", "10.0.0.0/7", "::/0", "2001:db8::/31", "::ffff:0.0.0.0/96")]
    kept = [("ip-dst", "10.0.0.0/8"), ("ip-src|port", "2001:db8::/32|80")]
    export = mapped(*wide, *kept)
    assert rows(export) == [("10.0.0.0/8", "Intel::SUBNET"), ("2001:db8::/32", "Intel::SUBNET")]
    assert export.skipped == {
        "IPv4 network wider than /8": 3,
        "IPv6 network wider than /32": 2,
        "network, no memcached key": 2,
    }
    stricter = mapped_with(Policy(min_prefix_ipv4=16, min_prefix_ipv6=48), *kept, ("ip-dst", "192.0.2.0/24"))
    assert rows(stricter) == [("192.0.2.0/24", "Intel::SUBNET")]


def test_excluded_events_and_values_are_not_exported():
    policy = Policy(
        exclude_events=("43", "5E1B0C8A-0000-4000-8000-000000000044"),
        exclude_values=("Partner.Example", "192.0.2.0/24", "2001:DB8::1", "HTTPS://evil.example/login"),
    )
    mapper = Mapper("https://m", "MISP", {}, policy)
    for event_id in ("42", "43", "44"):
        event = dict(EVENT, id=event_id, uuid=f"5e1b0c8a-0000-4000-8000-0000000000{event_id}")
        mapper.add({"type": "domain", "value": f"e{event_id}.example", "Event": event})
    for mtype, value in [
        ("domain", "partner.example"),
        ("ip-src", "192.0.2.77"),
        ("ip-dst", "192.0.2.128/25"),
        ("ip-dst", "2001:0db8::0001"),
        ("url", "https://evil.example/login"),
        ("domain|ip", "kept.example|192.0.2.9"),
        ("ip-dst", "198.51.100.1"),
    ]:
        mapper.add({"type": mtype, "value": value, "Event": EVENT})
    export = mapper.export
    assert rows(export) == [
        ("198.51.100.1", "Intel::ADDR"),
        ("e42.example", "Intel::DOMAIN"),
        ("kept.example", "Intel::DOMAIN"),
    ]
    assert export.skipped == {"excluded event": 2, "excluded value": 6}
    assert sorted(export.keys) == ["ip-dst-198.51.100.1"]


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"min_prefix_ipv4": 33}, "min_prefix_ipv4 must be a prefix length from 0 to 32"),
        ({"min_prefix_ipv6": -1}, "min_prefix_ipv6 must be a prefix length from 0 to 128"),
        ({"max_drop": 1.0}, "max_drop must be a fraction"),
        ({"exclude_values": ["a", " "]}, "exclude_values has an empty entry"),
    ],
)
def test_bad_policy_names_the_option(options, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        Policy.from_options(options)


def test_module_documentation_states_the_policy_defaults():
    options = yaml.safe_load(misp_ioc_export.DOCUMENTATION)["options"]
    for name, spec in Policy.argument_spec().items():
        assert options[name]["type"] == spec["type"], name
        assert options[name]["default"] == spec["default"], name


def test_role_leaves_the_policy_to_the_client():
    defaults = yaml.safe_load((MISP_SYNC / "defaults/main.yml").read_text())
    options = yaml.safe_load((MISP_SYNC / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    for name, spec in Policy.argument_spec().items():
        var = f"misp_sync_{name}"
        assert var not in defaults and "default" not in options[var]
        stated = re.search(r"Unset, the sync client's default C\((.*)\)\.$", options[var]["description"])
        assert stated and yaml.safe_load(stated.group(1)) == spec["default"], var


# ---------------------------------------------------------------- what is written, and when
def export_of(count):
    mapper = Mapper("https://m", "MISP", {})
    for i in range(count):
        mapper.add({"type": "ip-dst", "value": f"198.51.{i // 250}.{i % 250 + 1}", "Event": EVENT})
    return mapper.export


class RefusingSink:
    """memcached that answers reads and refuses writes (e.g. a full or broken server)."""

    def __init__(self):
        self.set_calls = 0

    def count_different(self, values):
        return len(values)

    def set_all(self, values):
        self.set_calls += 1
        raise MemcacheError("memcached 192.0.2.10:11211: SERVER_ERROR out of memory storing object")


@pytest.mark.parametrize(("after", "refused"), [(0, True), (49, True), (50, False), (120, False)])
def test_a_large_drop_is_refused_and_nothing_written(tmp_path, after, refused):
    path = tmp_path / "misp.intel"
    apply(export_of(100), str(path))
    before = path.read_bytes()
    if refused:
        with pytest.raises(DropRefused, match=rf"has {after} intel rows where the last one had 100"):
            apply(export_of(after), str(path))
        assert path.read_bytes() == before
        apply(export_of(after), str(path), max_drop=1)  # forced
    else:
        apply(export_of(after), str(path))
    assert count_rows(str(path)) == after


def test_a_large_drop_of_memcached_keys_is_refused():
    sink = RefusingSink()
    with pytest.raises(DropRefused, match="has 10 memcached keys where the last one had 100"):
        apply(export_of(10), sink=sink, previous_keys=100)
    assert sink.set_calls == 0
    with pytest.raises(DropRefused, match="a drop of 20%; at most 10%"):
        apply(export_of(80), sink=sink, previous_keys=100, max_drop=0.1)


def test_memcached_refusing_keys_leaves_the_intel_file_and_says_so(tmp_path):
    path = tmp_path / "misp.intel"
    apply(export_of(3), str(path))
    before = path.read_bytes()
    with pytest.raises(MemcacheError, match=r"out of memory .*; the intel file was not changed"):
        apply(export_of(4), str(path), sink=RefusingSink())
    assert path.read_bytes() == before


def test_a_failed_intel_write_says_the_keys_were_written(tmp_path, monkeypatch):
    class Sink(RefusingSink):
        def set_all(self, values):
            self.set_calls += 1

    def full_disk(path, data, mode=0o644):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(misp_ioc, "write_atomic", full_disk)
    sink = Sink()
    with pytest.raises(OSError, match=r"No space left on device.*; the memcached keys were updated"):
        apply(export_of(4), str(tmp_path / "misp.intel"), sink=sink)
    assert sink.set_calls == 1
