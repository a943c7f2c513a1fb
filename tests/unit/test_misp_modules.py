"""The MISP modules end to end: ansible-playbook -> module -> the MISP API double (fed
with CIRCL's OSINT events) and a real memcached.

The exported intel is checked against tests/misp_double/zeek_expect.py, a port of MISP's
own Zeek export written apart from the collection's code.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import module_runner
import pytest
from conftest import misp_event
from pymemcache.client.base import Client
from search.engine import free_port

pytestmark = pytest.mark.usefixtures("collections_path")

CIRCL_UUID = re.compile(r"\(([0-9a-f-]{36})\)")


def run_task(tmp_path: Path, module: str, args: dict, check: bool = False, diff: bool = False) -> dict:
    """Run one task of ``wlcg.soc.<module>`` on localhost; its result as a dict."""
    return module_runner.run_task(tmp_path, module, args, check=check, diff=diff)[0]


@pytest.fixture
def loaded(misp_double, circl_events):
    misp_double.add_events(circl_events)
    return misp_double, circl_events


def export_args(double, tmp_path: Path, **extra) -> dict:
    args = {
        "misp_url": double.url,
        "misp_key": double.key,
        "validate_certs": False,  # the double serves plain http on loopback
        "zeek_intel_path": str(tmp_path / "misp.intel"),
        "timeout": 5,
    }
    args.update(extra)
    return args


def intel_rows(path: Path) -> set[tuple[str, str, str]]:
    rows = set()
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url")
    for line in lines[1:]:
        cells = line.split("\t")
        assert len(cells) == len(lines[0].split("\t")) - 1, line
        rows.add((cells[0], cells[1], CIRCL_UUID.search(cells[2]).group(1)))
    return rows


def test_circl_export_matches_misps_zeek_export(loaded, tmp_path):
    from misp_double.zeek_expect import expected_rows

    double, events = loaded
    res = run_task(tmp_path, "misp_ioc_export", export_args(double, tmp_path, do_notice=True))
    assert res["changed"] is True, res
    ours = intel_rows(tmp_path / "misp.intel")
    # No CIRCL event carries tlp:red, so the default exclusion removes nothing here.
    assert not any(t["name"] == "tlp:red" for e in events for t in e["Event"].get("Tag", []))
    expected = expected_rows(events, sanitize_like_php=False)
    assert len(expected) > 300
    # Documented differences from MISP's export: addresses in canonical form, the
    # plain `email` type exported too, the URL scheme stripped whatever its case.
    missing = expected - ours
    assert missing == set(), sorted(missing)[:20]
    extra = ours - expected
    assert all(t == "Intel::EMAIL" for t in (row[1] for row in extra)), sorted(extra)[:20]
    assert res["intel_rows"] == len(ours)
    assert res["attributes"] > 0 and res["pages"] == 1
    # Known indicators of long_event.json and very_long_event.json (ip-dst|port).
    indicators = {row[:2] for row in ours}
    assert ("103.240.203.232", "Intel::ADDR") in indicators
    assert ("gugehotel.cn", "Intel::DOMAIN") in indicators
    assert ("174.127.99.225", "Intel::ADDR") in indicators
    meta = (tmp_path / "misp.intel").read_text()
    assert f"{double.url}/events/view/" in meta
    assert "\tT\n" in meta


def test_second_run_changes_nothing(loaded, tmp_path, memcached):
    double = loaded[0]
    args = export_args(double, tmp_path, memcached_servers=[memcached], memcached_ttl=600)
    first = run_task(tmp_path, "misp_ioc_export", args)
    assert first["changed"] and first["memcached_keys"] > 0
    assert first["memcached_keys_changed"] == first["memcached_keys"]
    stat = (tmp_path / "misp.intel").stat()
    second = run_task(tmp_path, "misp_ioc_export", args)
    assert second["changed"] is False, second
    assert second["memcached_keys_changed"] == 0
    assert (tmp_path / "misp.intel").stat().st_ino == stat.st_ino
    assert (tmp_path / "misp.intel").stat().st_mtime_ns == stat.st_mtime_ns
    # A key that was changed behind our back is a change, and is put back.
    host, port = memcached.split(":")
    client = Client((host, int(port)))
    key = next(k for k in ("ip-dst-174.127.99.225", "ip-src-174.127.99.225") if client.get(k))
    good = client.get(key)
    client.set(key, b"tampered", noreply=False)
    third = run_task(tmp_path, "misp_ioc_export", args)
    assert third["changed"] is True and third["memcached_keys_changed"] == 1
    assert client.get(key) == good
    value = json.loads(good)
    assert value["misp"][0]["type"] in ("ip-dst", "ip-dst|port", "ip-src", "ip-src|port")
    assert {"event_id", "event_uuid", "info", "type"} <= set(value["misp"][0])
    client.close()


def test_source_and_destination_keys_stay_distinct(misp_double, tmp_path, memcached):
    misp_double.add_event(misp_event("both directions", ("ip-src", "192.0.2.10"), ("ip-dst", "192.0.2.10")))
    res = run_task(tmp_path, "misp_ioc_export", export_args(misp_double, tmp_path, memcached_servers=[memcached]))
    assert res["memcached"] == {"ip-src": 1, "ip-dst": 1}
    host, port = memcached.split(":")
    client = Client((host, int(port)))
    assert json.loads(client.get("ip-src-192.0.2.10"))["misp"][0]["type"] == "ip-src"
    assert json.loads(client.get("ip-dst-192.0.2.10"))["misp"][0]["type"] == "ip-dst"
    client.close()


def test_check_mode_writes_nothing_and_shows_the_diff(loaded, tmp_path, memcached):
    double = loaded[0]
    args = export_args(double, tmp_path, memcached_servers=[memcached])
    res = run_task(tmp_path, "misp_ioc_export", args, check=True, diff=True)
    assert res["changed"] is True
    assert not (tmp_path / "misp.intel").exists()
    assert "gugehotel.cn\tIntel::DOMAIN" in res["diff"]["after"]
    host, port = memcached.split(":")
    assert Client((host, int(port))).get("ip-dst-174.127.99.225") is None


def test_malformed_values_and_unknown_types_are_counted(misp_double, tmp_path):
    misp_double.add_event(
        misp_event(
            "messy",
            ("ip-dst", "300.1.2.3"),
            ("domain", "tab\there.example"),
            ("btc", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "Financial fraud"),
            ("ja3-fingerprint-md5", "a" * 32),
            ("hostname", "ok.example"),
        )
    )
    res = run_task(
        tmp_path,
        "misp_ioc_export",
        export_args(misp_double, tmp_path, types=["ip-dst", "domain", "btc", "ja3-fingerprint-md5", "hostname"]),
    )
    assert res["changed"] is True, res
    assert res["not_exported"] == {
        "invalid address": 1,
        "unsupported type btc": 1,
        "unsupported type ja3-fingerprint-md5": 1,
    }
    text = (tmp_path / "misp.intel").read_text()
    assert "tab here.example\tIntel::DOMAIN" in text
    assert "ok.example\tIntel::DOMAIN" in text
    assert "300.1.2.3" not in text and "JA3" not in text


# An error answer whose body carries indicators (PyMISP quotes whole bodies).
LEAKY_BODY = json.dumps({"name": "Internal Server Error", "values": ["198.51.100.77"] * 60000}).encode()


def _leaky_server_error(double) -> None:
    double.fail_status["/attributes/restSearch"] = 500
    double.fail_body = LEAKY_BODY


def _faults():
    """Each fault: set it up on the double; may return module arguments to change."""
    return {
        "outage": lambda d: d.stop(),
        "timeout": lambda d: setattr(d, "delay", 8),
        "unauthorised": None,  # wrong key
        "server error": lambda d: d.fail_status.update({"/attributes/restSearch": 500}),
        "forbidden": lambda d: d.fail_status.update({"/attributes/restSearch": 403}),
        "invalid json": lambda d: d.invalid_json_on.add("/attributes/restSearch"),
        "page 2 fails": lambda d: setattr(d, "fail_on_page", 2),
        "error body with indicators": _leaky_server_error,
        "same page forever": lambda d: setattr(d, "repeat_page", 1),
        "limit ignored": lambda d: setattr(d, "ignore_limit", True),
        "count below the rows": lambda d: setattr(d, "result_count", 5),
        # A total announced (not MISP's per-page count), then full pages past it.
        "pages past the announced total": lambda d: setattr(d, "result_count", 250) or {"page_size": 100},
        "max_pages reached": lambda d: {"max_pages": 2},
        # One byte every 0.2 s: each read is well within `timeout`, the whole is not.
        "trickle": lambda d: d.trickle.update({"/attributes/restSearch": 0.2}) or {"fetch_timeout": 3},
    }


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("outage", "is unreachable"),
        ("timeout", "did not answer in time"),
        ("unauthorised", "refused the API key"),
        ("server error", "attributes restSearch page 1"),
        ("forbidden", "refused the API key (HTTP 403)"),
        ("invalid json", "attributes restSearch page 1: MISP at http://127.0.0.1:"),
        ("page 2 fails", "attributes restSearch page 2"),
        ("error body with indicators", "HTTP 500 (Internal Server Error) on /attributes/restSearch"),
        ("same page forever", "page 2: MISP sent the same attributes as page 1 (it ignores the page)"),
        ("limit ignored", "page 1: MISP sent 441 attributes for a limit of 200 (it ignores the limit)"),
        ("count below the rows", "page 1: MISP sent 200 attributes but announced 5 (X-Result-Count)"),
        ("pages past the announced total", "page 4: MISP announced 250 attributes, yet sends full pages beyond"),
        ("max_pages reached", "page 2: MISP still has more after max_pages (2) pages of 200"),
        ("trickle", "did not send everything within fetch_timeout (3 s); the fetch was cut"),
    ],
)
def test_misp_faults_keep_the_last_good_state(loaded, tmp_path, memcached, fault, message):
    double = loaded[0]
    args = export_args(double, tmp_path, memcached_servers=[memcached], page_size=200)
    good = run_task(tmp_path, "misp_ioc_export", args)
    assert good["changed"] and good["pages"] > 2
    before = (tmp_path / "misp.intel").read_bytes()
    host, port = memcached.split(":")
    client = Client((host, int(port)))
    key_value = client.get("ip-dst-174.127.99.225") or client.get("ip-src-174.127.99.225")
    # Something new in MISP that a successful run would export.
    double.add_event(misp_event("new", ("ip-dst", "198.51.100.99")))
    if fault == "unauthorised":
        args["misp_key"] = "x" * 40
    else:
        args.update(_faults()[fault](double) or {})
    res = run_task(tmp_path, "misp_ioc_export", args)
    assert res.get("failed") is True, res
    assert message in res["msg"], res["msg"]
    # Short, and nothing of a response body: no indicator, no key.
    assert len(res["msg"]) <= 400, len(res["msg"])
    assert "198.51.100.77" not in res["msg"] and "174.127.99.225" not in res["msg"]
    assert double.key not in json.dumps(res)
    assert (tmp_path / "misp.intel").read_bytes() == before
    assert client.get("ip-dst-198.51.100.99") is None
    assert (client.get("ip-dst-174.127.99.225") or client.get("ip-src-174.127.99.225")) == key_value
    client.close()


def test_paging_faults_end_at_once(loaded):
    """A MISP that pages forever is stopped after the page that shows it, not after a timeout."""
    from ansible_collections.wlcg.soc.plugins.module_utils.misp import MispError
    from ansible_collections.wlcg.soc.plugins.module_utils.misp_ioc import run

    double = loaded[0]
    cfg = {"misp_url": double.url, "misp_key": double.key, "validate_certs": False, "timeout": 5, "page_size": 100}
    for knob, value, pages in (("repeat_page", 1, 2), ("ignore_limit", True, 1), ("result_count", 5, 1)):
        setattr(double, knob, value)
        double.requests.clear()
        with pytest.raises(MispError):
            run(cfg)
        assert sum(1 for request in double.requests if "restSearch" in request[1]) == pages, knob
        setattr(double, knob, None if knob != "ignore_limit" else False)
    assert run(cfg)["pages"] == 5


def test_fetch_timeout_cuts_a_trickling_answer(loaded):
    """The deadline holds while a read is in progress: one byte every 0.2 s, each read
    well within `timeout`, still ends at fetch_timeout."""
    import threading

    from ansible_collections.wlcg.soc.plugins.module_utils.misp_ioc import run

    double = loaded[0]
    double.trickle["/attributes/restSearch"] = 0.2
    cfg = {
        "misp_url": double.url,
        "misp_key": double.key,
        "validate_certs": False,
        "timeout": 5,
        "fetch_timeout": 2,
        "page_size": 200,
    }
    outcome: dict = {}

    def sync() -> None:
        try:
            run(cfg)
        except Exception as exc:
            outcome["error"] = exc

    started = time.monotonic()
    worker = threading.Thread(target=sync, daemon=True)
    worker.start()
    worker.join(20)
    elapsed = time.monotonic() - started
    assert not worker.is_alive(), "the run did not end"
    assert elapsed < 2 + 1.5, elapsed
    assert "within fetch_timeout (2 s); the fetch was cut" in str(outcome.get("error")), outcome


WARNINGLISTS = Path(__file__).resolve().parents[1] / "misp_double/warninglists"


def test_warninglisted_values_never_reach_zeek_or_memcached(misp_double, tmp_path, memcached):
    """MISP's public-resolver lists (a subset of misp-warninglists) drop 8.8.8.8 and
    dns.google; on pages of 2, warninglists empty page 1 and thin page 2, yet the
    values after them still arrive."""
    misp_double.load_warninglist(WARNINGLISTS / "public-dns-v4.json")
    misp_double.load_warninglist(WARNINGLISTS / "public-dns-hostname.json")
    misp_double.add_event(
        misp_event(
            "resolvers and C2",
            ("ip-dst", "8.8.8.8"),
            ("ip-dst|port", "9.9.9.9|53"),
            ("ip-dst", "192.0.2.55"),
            ("hostname", "dns.google"),
            ("domain", "c2.example"),
        )
    )
    args = export_args(misp_double, tmp_path, memcached_servers=[memcached], page_size=2)
    res = run_task(tmp_path, "misp_ioc_export", args)
    assert res["changed"] is True, res
    text = (tmp_path / "misp.intel").read_text()
    assert "192.0.2.55\tIntel::ADDR" in text and "c2.example\tIntel::DOMAIN" in text
    assert "8.8.8.8" not in text and "9.9.9.9" not in text and "dns.google" not in text
    host, port = memcached.split(":")
    client = Client((host, int(port)))
    assert client.get("ip-dst-192.0.2.55") is not None
    assert client.get("ip-dst-8.8.8.8") is None and client.get("ip-dst-9.9.9.9") is None
    assert all(body["enforceWarninglist"] == 1 for _m, path, body in misp_double.requests if "restSearch" in path)
    # With the filter off, MISP sends them all.
    res = run_task(tmp_path, "misp_ioc_export", {**args, "enforce_warninglist": False})
    text = (tmp_path / "misp.intel").read_text()
    assert "8.8.8.8\tIntel::ADDR" in text and "9.9.9.9\tIntel::ADDR" in text and "dns.google\tIntel::DOMAIN" in text
    assert client.get("ip-dst-8.8.8.8") is not None and client.get("ip-dst-9.9.9.9") is not None
    client.close()


def test_memcached_down_keeps_the_intel_file(loaded, tmp_path):
    double = loaded[0]
    path = tmp_path / "misp.intel"
    path.write_bytes(b"#fields\tindicator\tindicator_type\tmeta.source\nold\tIntel::DOMAIN\tx\n")
    before = path.read_bytes()
    res = run_task(
        tmp_path, "misp_ioc_export", export_args(double, tmp_path, memcached_servers=[f"127.0.0.1:{free_port()}"])
    )
    assert res.get("failed") is True
    assert "memcached 127.0.0.1:" in res["msg"]
    assert path.read_bytes() == before


def test_tags_and_types_filters(loaded, tmp_path):
    double, events = loaded
    res = run_task(
        tmp_path,
        "misp_ioc_export",
        export_args(double, tmp_path, types=["domain", "hostname"], tags_exclude=['misp-galaxy:malpedia="SamSam"']),
    )
    rows = intel_rows(tmp_path / "misp.intel")
    assert {row[1] for row in rows} == {"Intel::DOMAIN"}
    samsam = {e["Event"]["uuid"] for e in events if "SamSam" in e["Event"]["info"]}
    assert samsam and not {row[2] for row in rows} & samsam
    assert res["intel"] == {"Intel::DOMAIN": len(rows)}


WORKSHOP_EVENT = {
    "info": "Bot contacting C2 at 172.19.0.77",
    "distribution": "this_community_only",
    "threat_level": "high",
    "analysis": "ongoing",
    "tags": ["tlp:green"],
    "attributes": [
        {"type": "ip-dst|port", "value": "172.19.0.77|8080"},
        {"type": "url", "value": "http://172.19.0.77:8080/payload.bin"},
    ],
    "objects": [
        {
            "name": "file",
            "attributes": [
                {"relation": "filename", "value": "payload.bin"},
                {"relation": "md5", "value": "0cc175b9c0f1b6a831c399e269772661"},
                {"relation": "sha1", "value": "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"},
            ],
        }
    ],
    "published": True,
}


def test_misp_event_workshop_flow(misp_double, tmp_path):
    args = {"misp_url": misp_double.url, "misp_key": misp_double.key, "validate_certs": False, **WORKSHOP_EVENT}
    planned = run_task(tmp_path, "misp_event", args, check=True)
    assert planned["changed"] is True and "create event" in planned["changes"]
    assert misp_double.event_ids == []
    created = run_task(tmp_path, "misp_event", args)
    assert created["changed"] is True, created
    assert created["event"]["published"] is True
    event = misp_double.get_event(created["event"]["uuid"])["Event"]
    assert [t["name"] for t in event["Tag"]] == ["tlp:green"]
    assert {(a["type"], a["value"], a["to_ids"]) for a in event["Attribute"]} == {
        ("ip-dst|port", "172.19.0.77|8080", True),
        ("url", "http://172.19.0.77:8080/payload.bin", True),
    }
    (obj,) = event["Object"]
    assert {(a["object_relation"], a["value"]) for a in obj["Attribute"]} == {
        ("filename", "payload.bin"),
        ("md5", "0cc175b9c0f1b6a831c399e269772661"),
        ("sha1", "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"),
    }
    again = run_task(tmp_path, "misp_event", args)
    assert again["changed"] is False, again["changes"]
    # A new attribute: added, and the event published again.
    more = dict(args, attributes=[*args["attributes"], {"type": "domain", "value": "c2.example"}])
    updated = run_task(tmp_path, "misp_event", more)
    assert updated["changes"] == ["add attribute domain c2.example", "publish"]
    assert misp_double.get_event(created["event"]["uuid"])["Event"]["published"] in (True, 1, "1")
    assert run_task(tmp_path, "misp_event", more)["changed"] is False
    # The export then carries the workshop's indicators into Zeek intel.
    run_task(tmp_path, "misp_ioc_export", export_args(misp_double, tmp_path))
    text = (tmp_path / "misp.intel").read_text()
    for row in (
        "172.19.0.77\tIntel::ADDR",
        "172.19.0.77:8080/payload.bin\tIntel::URL",
        "0cc175b9c0f1b6a831c399e269772661\tIntel::FILE_HASH",
        "payload.bin\tIntel::FILE_NAME",
        "c2.example\tIntel::DOMAIN",
    ):
        assert row in text, row
    gone = run_task(tmp_path, "misp_event", {**args, "state": "absent"})
    assert gone["changed"] is True, gone.get("msg")
    assert misp_double.event_ids == []


def test_misp_event_bad_object_relation(misp_double, tmp_path):
    args = {
        "misp_url": misp_double.url,
        "misp_key": misp_double.key,
        "validate_certs": False,
        "info": "bad object",
        "objects": [{"name": "file", "attributes": [{"relation": "no-such-relation", "value": "x"}]}],
    }
    res = run_task(tmp_path, "misp_event", args)
    assert res.get("failed") is True
    assert "object 'file'" in res["msg"]


def test_zeek_intel_module(tmp_path):
    path = tmp_path / "site.intel"
    base = {"path": str(path), "mode": "0644"}
    present = {
        **base,
        "indicators": [
            {"indicator": "192.0.2.77", "type": "ADDR", "desc": "C2\treported", "url": "https://t.example/1"},
            {"indicator": "198.51.100.7/24", "type": "Intel::SUBNET"},
        ],
    }
    res = run_task(tmp_path, "zeek_intel", present, check=True, diff=True)
    assert res["changed"] and not path.exists()
    res = run_task(tmp_path, "zeek_intel", present)
    assert res["changed"] and res["added"] == ["Intel::ADDR 192.0.2.77", "Intel::SUBNET 198.51.100.0/24"]
    assert path.read_text() == (
        "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url\n"
        "192.0.2.77\tIntel::ADDR\tsite\tC2 reported\thttps://t.example/1\n"
        "198.51.100.0/24\tIntel::SUBNET\tsite\t-\t-\n"
    )
    assert run_task(tmp_path, "zeek_intel", present)["changed"] is False
    absent = {**base, "indicators": [{"indicator": "192.0.2.77", "type": "ADDR", "state": "absent"}]}
    res = run_task(tmp_path, "zeek_intel", absent)
    assert res["removed"] == ["Intel::ADDR 192.0.2.77"]
    assert "192.0.2.77" not in path.read_text() and "198.51.100.0/24" in path.read_text()
    bad = run_task(tmp_path, "zeek_intel", {**base, "indicators": [{"indicator": "192.0.2.300", "type": "ADDR"}]})
    assert bad.get("failed") and "indicators[0] ('192.0.2.300'): not a valid Intel::ADDR" in bad["msg"]


def hostile_event(info: str = "Hostile") -> dict:
    """Values a member of a sharing community can publish, each of which broke or misled the export."""
    values = [
        ("user-agent", "Evil\u2028Bot"),
        ("filename", "#payload.exe"),
        ("ip-dst", "0.0.0.0/0"),
        ("ip-dst", "::ffff:192.0.2.11"),
        ("ip-src", "fe80::1%eth 0"),
        ("domain", "partner.example"),
        ("ip-dst", "203.0.113.5"),
        ("domain", "ok.example"),
    ]
    return misp_event(info, *values)


def test_hostile_values_are_counted_and_the_policy_applies(misp_double, tmp_path, memcached):
    misp_double.add_event(hostile_event("I" * 60000))
    excluded = misp_double.add_event(hostile_event("Excluded"))
    args = export_args(
        misp_double,
        tmp_path,
        memcached_servers=[memcached],
        exclude_events=[str(excluded)],
        exclude_values=["PARTNER.example", "203.0.113.0/24"],
    )
    res = run_task(tmp_path, "misp_ioc_export", args)
    assert res["changed"] is True, res
    assert res["not_exported"] == {
        "IPv4 network wider than /8": 1,
        "address with zone id": 1,
        "starts with #": 1,
        "excluded value": 2,
        "excluded event": 8,
    }
    assert res["trimmed"] == {"event info in a memcached value": 1}
    text = (tmp_path / "misp.intel").read_text()
    assert [line.split("\t")[0] for line in text.split("\n")[1:-1]] == ["192.0.2.11", "Evil Bot", "ok.example"]
    client = Client(tuple(memcached.split(":")))
    assert len(json.loads(client.get("ip-dst-192.0.2.11"))["misp"][0]["info"]) == 256
    client.close()


def test_an_empty_answer_after_a_full_one_is_refused_unless_forced(loaded, tmp_path):
    double = loaded[0]
    args = export_args(double, tmp_path)
    assert run_task(tmp_path, "misp_ioc_export", args)["changed"] is True
    before = (tmp_path / "misp.intel").read_bytes()
    wrong_filter = dict(args, event_ids=["999999"])
    res = run_task(tmp_path, "misp_ioc_export", wrong_filter)
    assert res.get("failed") is True
    assert re.search(r"has 0 intel rows where the last one had \d+ .* \(force: true\)$", res["msg"]), res["msg"]
    assert (tmp_path / "misp.intel").read_bytes() == before
    assert run_task(tmp_path, "misp_ioc_export", wrong_filter, check=True).get("failed") is True
    forced = run_task(tmp_path, "misp_ioc_export", dict(wrong_filter, force=True))
    assert forced["changed"] is True and forced["intel_rows"] == 0
