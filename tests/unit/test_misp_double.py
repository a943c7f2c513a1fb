"""The MISP API double (tests/misp_double) against real PyMISP and real CIRCL events.

Expected results are computed here from the raw event JSON with MISP's documented
semantics, independently of the double's own filter code.
"""

from __future__ import annotations

import collections
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from misp_double import circl, zeek_expect
from misp_double.server import MispDouble, generate_events
from pymisp import MISPAttribute, MISPEvent, MISPObject, PyMISP
from pymisp.exceptions import MISPServerError, PyMISPError, PyMISPUnexpectedResponse

NOW = int(time.time())
IOC_TYPES = ["ip-src", "ip-dst", "ip-dst|port", "domain", "hostname", "url", "md5", "sha1", "sha256", "filename|md5"]
ATTRIBUTE_KEYS = {
    "id",
    "event_id",
    "object_id",
    "object_relation",
    "category",
    "type",
    "to_ids",
    "uuid",
    "timestamp",
    "distribution",
    "sharing_group_id",
    "comment",
    "deleted",
    "disable_correlation",
    "first_seen",
    "last_seen",
    "value",
    "Event",
}
EVENT_KEYS = {"org_id", "distribution", "publish_timestamp", "id", "info", "orgc_id", "uuid"}


def client(double: MispDouble, **kwargs) -> PyMISP:
    # TLS verification is off only against this local, plain-http double.
    return PyMISP(double.url, double.key, ssl=False, **kwargs)


def raw(double: MispDouble, body, key: str | None = None, path: str = "/attributes/restSearch"):
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    headers["Authorization"] = double.key if key is None else key
    data = body if isinstance(body, bytes) else requests.models.complexjson.dumps(body)
    return requests.post(double.url + path, data=data, headers=headers, timeout=30)


def flat(event: dict):
    """(attribute, event) pairs of an event, attributes inside objects included."""
    ev = event["Event"]
    for attr in ev.get("Attribute", []):
        yield attr, ev
    for obj in ev.get("Object", []):
        for attr in obj.get("Attribute", []):
            yield attr, ev


def tag_names(holder: dict) -> set[str]:
    return {t["name"].lower() for t in holder.get("Tag", [])}


def expected(events, *, types=None, any_tags=(), no_tags=(), since=None, to_ids=None, published=None):
    """MISP's attribute restSearch semantics, written out plainly."""
    out = set()
    for event in events:
        for attr, ev in flat(event):
            tags = tag_names(attr) | tag_names(ev)
            if attr.get("deleted"):
                continue
            if types is not None and attr["type"] not in types:
                continue
            if to_ids is not None and bool(attr["to_ids"]) != to_ids:
                continue
            if published is not None and bool(ev["published"]) != published:
                continue
            if since is not None and int(ev.get("publish_timestamp") or 0) < since:
                continue
            if any_tags and not tags & {t.lower() for t in any_tags}:
                continue
            if tags & {t.lower() for t in no_tags}:
                continue
            out.add(attr["uuid"])
    return out


@pytest.fixture
def loaded(misp_double, circl_events):
    """The double with the CIRCL events; long_event.json published 60 days ago."""
    for event in circl_events:
        if event["Event"]["uuid"] == "57153590-f73c-49fa-be4b-4737950d210f":
            event["Event"]["publish_timestamp"] = str(NOW - 60 * 86400)
        misp_double.add_event(event)
    return misp_double, circl_events


# ----------------------------------------------------------------------------- basics


def test_pymisp_connects(misp_double):
    misp = client(misp_double)
    assert misp.misp_instance_version["version"] == misp_double.version
    calls = [(m, p) for m, p, _body in misp_double.requests]
    assert ("GET", "/servers/getVersion") in calls
    assert ("GET", "/users/view/me") in calls
    assert ("GET", "/attributes/describeTypes.json") in calls
    assert misp.describe_types["types"], "describeTypes served from pymisp's data file"
    assert len(misp_double.key) == 40


def test_wrong_key_is_refused_like_misp(misp_double):
    with pytest.raises(PyMISPError, match="Unable to get the user settings"):
        PyMISP(misp_double.url, "x" * 40, ssl=False)
    for key in ("y" * 40, ""):
        response = raw(misp_double, {"returnFormat": "json"}, key=key)
        assert response.status_code == 403
        assert response.json() == {
            "name": "Authentication failed. Please make sure you pass the API key of an API "
            "enabled user along in the Authorization header.",
            "message": "Authentication failed. Please make sure you pass the API key of an API "
            "enabled user along in the Authorization header.",
            "url": "/attributes/restSearch",
        }


def test_request_errors_follow_misp(loaded):
    double = loaded[0]
    bad = raw(double, b'{"returnFormat": "json", "type": ')
    assert bad.status_code == 405
    assert bad.json()["name"].startswith("Invalid JSON input.")
    empty = raw(double, {})
    assert empty.status_code == 400
    assert empty.json()["name"].startswith("Either specify the search terms")
    assert raw(double, {"returnFormat": "bogus"}).status_code == 404
    assert raw(double, {"returnFormat": "bogus"}).json()["name"] == "Invalid output format."
    assert raw(double, {"returnFormat": "csv"}).status_code == 501  # valid in MISP, not here
    assert raw(double, {"returnFormat": "json", "includeSightings": 1}).status_code == 501
    # Keys MISP does not know are dropped: the query then has no filter at all.
    everything = raw(double, {"returnFormat": "json"}).json()["response"]["Attribute"]
    unknown = raw(double, {"returnFormat": "json", "no_such_filter": "x"}).json()
    assert len(unknown["response"]["Attribute"]) == len(everything)


# ----------------------------------------------------------------------------- restSearch


def test_search_returns_what_misp_would_for_circl_events(loaded):
    double, events = loaded
    misp = client(double)
    tags = PyMISP.build_complex_query(
        or_parameters=["tlp:white", "tlp:green"], not_parameters=['osint:source-type="blog-post"']
    )
    result = misp.search(
        controller="attributes",
        return_format="json",
        type_attribute=IOC_TYPES,
        tags=tags,
        to_ids=True,
        published=True,
        publish_timestamp="30d",
        pythonify=False,
    )
    got = [a["uuid"] for a in result["Attribute"]]
    want = expected(
        events,
        types=IOC_TYPES,
        any_tags=["tlp:white", "tlp:green"],
        no_tags=['osint:source-type="blog-post"'],
        since=NOW - 30 * 86400,
        to_ids=True,
        published=True,
    )
    assert len(got) == len(set(got))
    assert set(got) == want
    assert len(want) > 50
    # long_event.json (published 60 days ago) and the unpublished events are out.
    assert not {a["Event"]["uuid"] for a in result["Attribute"]} & {
        "57153590-f73c-49fa-be4b-4737950d210f",
        "5a0d5bf4-99c8-4f15-9879-22b1950d210f",
    }
    ids = [int(a["id"]) for a in result["Attribute"]]
    assert ids == sorted(ids)
    sample = result["Attribute"][0]
    assert set(sample) in (ATTRIBUTE_KEYS, ATTRIBUTE_KEYS | {"Object"}, ATTRIBUTE_KEYS | {"Tag"})
    assert set(sample["Event"]) == EVENT_KEYS
    assert sample["to_ids"] is True and sample["deleted"] is False
    assert isinstance(sample["id"], str) and isinstance(sample["timestamp"], str)
    in_objects = [a for a in result["Attribute"] if a["object_id"] != "0"]
    assert in_objects, "attributes inside objects are part of the results"
    assert all(set(a["Object"]) == {"id", "distribution", "sharing_group_id"} for a in in_objects)


def test_paging_covers_every_attribute_once(loaded):
    double, events = loaded
    want = expected(events, to_ids=True, published=True)
    body = {"returnFormat": "json", "to_ids": 1, "published": 1, "limit": 37}
    seen, page = [], 1
    while True:
        response = raw(double, {**body, "page": page})
        rows = response.json()["response"]["Attribute"]
        # MispAttribute::__iteratedFetch: rows of the page, +1 when the page is full,
        # 1 for an empty page (MISP issue #9422) - not the total.
        count = int(response.headers["X-Result-Count"])
        assert count == (len(rows) + 1 if len(rows) == 37 else len(rows) or 1)
        seen += [a["uuid"] for a in rows]
        if len(rows) < 37:
            break
        page += 1
    assert len(seen) == len(set(seen))
    assert set(seen) == want
    assert int(raw(double, {**body, "page": page + 1}).headers["X-Result-Count"]) == 1
    whole = raw(double, {"returnFormat": "json", "to_ids": 1, "published": 1})
    assert int(whole.headers["X-Result-Count"]) == len(want)
    # page without limit is ignored; limit 0 means no limit.
    assert len(
        raw(double, {"returnFormat": "json", "to_ids": 1, "published": 1, "page": 3}).json()["response"]["Attribute"]
    ) == len(want)
    assert len(
        raw(double, {"returnFormat": "json", "to_ids": 1, "published": 1, "limit": 0}).json()["response"]["Attribute"]
    ) == len(want)
    # The same pages through PyMISP.
    misp = client(double)
    pages = [
        misp.search(controller="attributes", to_ids=1, published=1, limit=100, page=n, pythonify=False)
        for n in range(1, 12)
    ]
    uuids = [a["uuid"] for p in pages for a in p["Attribute"]]
    assert len(uuids) == len(set(uuids)) and set(uuids) == want


def search(double, **filters):
    response = raw(double, {"returnFormat": "json", **filters})
    assert response.status_code == 200, response.text
    return response.json()["response"]["Attribute"]


def uuids(rows):
    return {a["uuid"] for a in rows}


def test_filter_forms(loaded):
    double, events = loaded
    every = expected(events)
    assert uuids(search(double)) == every

    # type: string, list, "a||b", OR/NOT
    assert uuids(search(double, type="ip-dst")) == expected(events, types={"ip-dst"})
    assert uuids(search(double, type=["ip-dst", "domain"])) == expected(events, types={"ip-dst", "domain"})
    assert uuids(search(double, type="ip-dst||domain")) == expected(events, types={"ip-dst", "domain"})
    not_link = {"OR": ["link", "url"], "NOT": ["url"]}
    assert uuids(search(double, type=not_link)) == expected(events, types={"link"})
    assert uuids(search(double, type="IP-DST")) == expected(events, types={"ip-dst"})  # ci column
    assert uuids(search(double, type="sha%")) == expected(events, types={"sha1", "sha256", "sha512"})

    # category: case-sensitive (utf8mb3_bin)
    assert search(double, category="network activity") == []
    net = {
        a["uuid"] for e in events for a, _ev in flat(e) if a["category"] == "Network activity" and not a.get("deleted")
    }
    assert uuids(search(double, category="Network activity")) == net

    # to_ids: booleans, "1"/"0"; false is ignored as MISP ignores `=== false`
    assert uuids(search(double, to_ids=True)) == expected(events, to_ids=True)
    assert uuids(search(double, to_ids="1")) == expected(events, to_ids=True)
    assert uuids(search(double, to_ids="0")) == expected(events, to_ids=False)
    assert uuids(search(double, to_ids=0)) == expected(events, to_ids=False)
    assert uuids(search(double, to_ids=False)) == every

    # published: same rules
    assert uuids(search(double, published=True)) == expected(events, published=True)
    assert uuids(search(double, published=0)) == expected(events, published=False)
    assert uuids(search(double, published=False)) == every

    # tags: OR/NOT, % wildcard, "!tag" in a list, event and attribute tags
    blog = 'osint:source-type="blog-post"'
    assert uuids(search(double, tags=["tlp:white", "!" + blog])) == expected(
        events, any_tags=["tlp:white"], no_tags=[blog]
    )
    assert uuids(search(double, tags={"NOT": [blog]})) == expected(events, no_tags=[blog])
    assert uuids(search(double, tags="osint:source-type=%")) == expected(
        events, any_tags=[blog, 'osint:source-type="technical-report"']
    )
    assert uuids(search(double, tags="TLP:WHITE")) == expected(events, any_tags=["tlp:white"])
    assert search(double, tags="no-such-tag") == []
    assert uuids(search(double, tags={"NOT": ["no-such-tag"]})) == every
    attr_tagged = uuids(search(double, tags='misp-galaxy:stealer="TeleGrab"'))
    assert len(attr_tagged) == 1, "a tag only on one attribute matches only that attribute"

    # publish_timestamp / last / timestamp: relative, epoch, [from, to]
    since = NOW - 30 * 86400
    assert uuids(search(double, publish_timestamp="30d")) == expected(events, since=since)
    assert uuids(search(double, last="720h")) == expected(events, since=NOW - 720 * 3600)
    assert uuids(search(double, publish_timestamp=str(since))) == expected(events, since=since)
    old = uuids(search(double, publish_timestamp=[NOW - 90 * 86400, NOW - 45 * 86400]))
    assert old == {a["uuid"] for a, ev in flat(events[4]) if not a.get("deleted")}
    recent_attrs = uuids(search(double, timestamp="2h"))
    assert recent_attrs and recent_attrs < every
    assert uuids(search(double, timestamp=0)) == every

    # eventid: single, list, NOT, uuid; org by name and id; uuid of event or attribute
    first = search(double, eventid="1")
    assert {a["event_id"] for a in first} == {"1"}
    assert {a["event_id"] for a in search(double, eventid=["1", "2"])} == {"1", "2"}
    assert "1" not in {a["event_id"] for a in search(double, eventid={"NOT": ["1"]})}
    ev_uuid = events[1]["Event"]["uuid"]
    assert {a["Event"]["uuid"] for a in search(double, eventid=ev_uuid)} == {ev_uuid}
    assert uuids(search(double, org="CIRCL")) == every
    assert search(double, org="Nobody") == []
    orgc_id = first[0]["Event"]["orgc_id"]
    assert uuids(search(double, org=orgc_id)) == every
    one = first[0]["uuid"]
    assert uuids(search(double, uuid=one)) == {one}
    assert {a["Event"]["uuid"] for a in search(double, uuid=ev_uuid)} == {ev_uuid}

    # value: against value1/value2, % wildcard
    assert {a["value"] for a in search(double, value="174.127.99.225")} == {
        "174.127.99.225|1999",
        "174.127.99.225|4987",
    }
    assert search(double, value="174.127.99.225|1999") == []  # composite value never matches
    assert all(a["value"].startswith("gugehotel") for a in search(double, value="gugehotel%"))

    # includeEventTags, includeEventUuid, enforceWarninglist (accepted, no effect)
    tagged = search(double, eventid="1", includeEventTags=1, includeEventUuid=1, enforceWarninglist=1)
    assert len(tagged) == len(first)
    assert all(a["event_uuid"] == a["Event"]["uuid"] for a in tagged)
    assert {t["name"] for t in tagged[0]["Tag"]} == {t["name"] for t in events[0]["Event"]["Tag"]}
    assert all(t["inherited"] == 1 for t in tagged[0]["Tag"])
    assert "Tag" not in first[0]


def test_deleted_attributes(misp_double, circl_events):
    event = circl_events[0]
    victim = event["Event"]["Attribute"][0]
    victim["deleted"] = True
    misp_double.add_event(event)
    assert victim["uuid"] not in uuids(search(misp_double))
    assert uuids(search(misp_double, deleted=1)) == {victim["uuid"]}
    assert victim["uuid"] in uuids(search(misp_double, deleted=[0, 1]))
    assert len(search(misp_double, deleted=[0, 1])) == 9


# ----------------------------------------------------------------------------- faults


def test_fault_knobs(loaded):
    double = loaded[0]
    misp = client(double, timeout=2)

    double.fail_status["/attributes/restSearch"] = 500
    with pytest.raises(MISPServerError):
        misp.search(controller="attributes", limit=10, page=1)
    double.fail_status["/attributes/restSearch"] = 403
    assert misp.search(controller="attributes", limit=10, page=1)["errors"][0] == 403
    double.fail_status.clear()

    double.fail_on_page = 2
    assert misp.search(controller="attributes", limit=10, page=1, pythonify=False)["Attribute"]
    with pytest.raises(MISPServerError):
        misp.search(controller="attributes", limit=10, page=2)
    double.fail_on_page = None

    double.invalid_json_on.add("/attributes/restSearch")
    response = raw(double, {"returnFormat": "json", "limit": 10})
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    with pytest.raises(PyMISPUnexpectedResponse):
        misp.search(controller="attributes", limit=10, page=1)
    double.invalid_json_on.clear()

    double.delay = 3
    with pytest.raises(requests.exceptions.Timeout):
        misp.search(controller="attributes", limit=10, page=1)
    double.delay = 0

    url = double.url
    double.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        misp.search(controller="attributes", limit=10, page=1)
    double.start()  # the outage ends, same URL
    assert double.url == url
    assert misp.search(controller="attributes", limit=10, page=1, pythonify=False)["Attribute"]


def test_tls(tmp_path):
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    with MispDouble(tls=(str(cert), str(key))) as double:
        assert double.url.startswith("https://127.0.0.1:")
        misp = PyMISP(double.url, double.key, ssl=str(cert))  # verified against the cert
        assert misp.misp_instance_version["version"] == double.version
        with pytest.raises(PyMISPError):
            PyMISP(double.url, double.key, ssl=True)  # unknown CA


# ----------------------------------------------------------------------------- events


def test_event_endpoints_follow_misp(misp_double):
    misp = client(misp_double)
    event = MISPEvent()
    event.info = "misp_event module test"
    event.add_attribute("ip-dst", "198.51.100.7", comment="c2")
    event.add_attribute("ip-dst", "198.51.100.7")  # duplicate: MISP drops it
    event.add_tag("tlp:green")
    obj = MISPObject("domain-ip", standalone=False)
    obj.add_attribute("domain", value="bad.example")
    event.add_object(obj)
    created = misp.add_event(event, pythonify=True)
    assert created.id and created.uuid == event.uuid
    assert len(created.attributes) == 1 and len(created.objects) == 1
    assert created.published is False and created.timestamp
    assert [t.name for t in created.tags] == ["tlp:green"]

    again = misp.add_event(event)
    assert again["errors"][0] == 404
    assert again["errors"][1]["name"].startswith("Event already exists")

    published = misp.publish(created)
    assert published["message"] == "Job queued" and published["id"] == str(created.id)
    fetched = misp.get_event(created.id, pythonify=True)
    assert fetched.published is True and fetched.publish_timestamp
    assert misp.get_event(created.uuid, pythonify=True).id == created.id
    assert misp.event_exists(created.uuid) and not misp.event_exists(999)

    # Event::_edit saves `published` as sent and 0 when it is missing; PyMISP sends the
    # round-tripped event's published=True, which MISP keeps (and republishes).
    fetched.info = "renamed"
    edited = misp.update_event(fetched, pythonify=True)
    assert edited.info == "renamed" and edited.published is True
    assert int(edited.timestamp.timestamp()) >= int(fetched.timestamp.timestamp())
    bare = raw(misp_double, {"info": "renamed"}, path=f"/events/edit/{created.id}").json()["Event"]
    assert bare["published"] is False, "an edit without `published` unpublishes the event"
    stale = raw(misp_double, {"info": "x", "timestamp": "1"}, path=f"/events/edit/{created.id}")
    assert stale.status_code == 403
    assert stale.json()["errors"] == "Event could not be saved: Event in the request not newer than the local copy."

    misp.publish(created)
    new_attr = MISPAttribute()
    new_attr.from_dict(type="domain", value="evil.example", to_ids=True)
    added = misp.add_attribute(created.id, new_attr, pythonify=True)
    assert added.id and added.type == "domain" and added.category == "Network activity"
    assert misp.get_event(created.id, pythonify=True).published is False
    dup = misp.add_attribute(created.id, new_attr)
    assert dup["errors"][0] == 403

    misp.publish(created)
    tagged = misp.tag(added, "tlp:amber")
    assert tagged["saved"] is True
    after = misp.get_event(created.id, pythonify=True)
    assert after.published is False
    assert [t.name for a in after.attributes if a.uuid == added.uuid for t in a.tags] == ["tlp:amber"]

    obj2 = MISPObject("domain-ip", standalone=False)
    obj2.add_attribute("ip", value="203.0.113.9")
    new_obj = misp.add_object(created.id, obj2, pythonify=True)
    assert new_obj.id and new_obj.attributes[0].value == "203.0.113.9"

    assert misp.get_event(999, pythonify=False)["errors"][0] == 404

    found = misp.search(controller="events", eventinfo="renamed", pythonify=True)
    assert [e.uuid for e in found] == [created.uuid]
    assert misp.search(controller="events", eventinfo="ren%", org="ORGNAME", pythonify=True)[0].uuid == created.uuid
    assert misp.search(controller="events", uuid=created.uuid, pythonify=True)[0].id == created.id
    assert misp.search(controller="events", org="CIRCL", pythonify=True) == []
    requests_seen = {(m, p.split("/")[1] + "/" + p.split("/")[2]) for m, p, _body in misp_double.requests}
    assert {
        ("POST", "events/add"),
        ("POST", "events/edit"),
        ("POST", "events/publish"),
        ("POST", "tags/attachTagToObject"),
    } <= requests_seen


# ----------------------------------------------------------------------------- sightings

SIGHTING_KEYS = {"id", "attribute_id", "event_id", "org_id", "date_sighting", "uuid", "source", "type"}
SIGHTING_ERROR = "Could not add the Sighting. Reason: "


def sighting_events(double: MispDouble) -> tuple[dict, dict]:
    """Two events sharing 198.51.100.7 (also as value1 of an ip-dst|port), one deleted attribute."""
    first = double.add_event(
        {
            "Event": {
                "info": "sightings one",
                "Attribute": [
                    {"type": "ip-dst", "value": "198.51.100.7"},
                    {"type": "ip-dst|port", "value": "198.51.100.7|443"},
                    {"type": "domain", "value": "C2.Example"},
                ],
            }
        }
    )
    second = double.add_event(
        {
            "Event": {
                "info": "sightings two",
                "Attribute": [
                    {"type": "ip-src", "value": "198.51.100.7"},
                    {"type": "domain", "value": "gone.example", "deleted": True},
                ],
            }
        }
    )
    return double.get_event(first)["Event"], double.get_event(second)["Event"]


def sightings(double: MispDouble, body: dict, context: str = "") -> list[dict]:
    path = "/sightings/restSearch" + (f"/{context}" if context else "")
    response = raw(double, body, path=path)
    assert response.status_code == 200, response.text
    assert response.headers["X-Result-Count"] == "0"  # Sighting::restSearch counts nothing
    return [row["Sighting"] for row in response.json()["response"]]


def test_sightings_add_follows_misp(misp_double):
    one, two = sighting_events(misp_double)
    attrs = {(ev["info"], a["value"]): a for ev in (one, two) for a in ev["Attribute"]}
    shared = sorted(int(a["id"]) for a in attrs.values() if "198.51.100.7" in a["value"].split("|"))
    assert len(shared) == 3

    # By value: every attribute with it as value1 or value2, in every event; MISP
    # answers with the last sighting saved.
    answer = raw(
        misp_double, {"values": ["198.51.100.7"], "source": " scanner ", "timestamp": NOW - 60}, path="/sightings/add"
    )
    assert answer.status_code == 200
    saved = answer.json()["Sighting"]
    assert set(saved) == SIGHTING_KEYS and all(isinstance(v, str) for v in saved.values())
    assert saved["attribute_id"] == str(shared[-1]) and saved["event_id"] == two["id"]
    assert (saved["source"], saved["type"], saved["date_sighting"]) == ("scanner", "0", str(NOW - 60))
    assert saved["org_id"] == one["org_id"]
    rows = sightings(misp_double, {"returnFormat": "json"})
    assert sorted(int(r["attribute_id"]) for r in rows) == shared
    assert len({r["uuid"] for r in rows}) == 3 and sorted(int(r["id"]) for r in rows) == [1, 2, 3]

    # Case-insensitive (utf8mb3_unicode_ci), deleted attributes included; `value`
    # wins over `values`; a `Sighting` or `request` wrapper is unwrapped.
    by_case = raw(misp_double, {"Sighting": {"value": "c2.EXAMPLE", "values": ["x"]}}, path="/sightings/add")
    assert by_case.json()["Sighting"]["attribute_id"] == attrs[("sightings one", "C2.Example")]["id"]
    gone = raw(misp_double, {"request": {"value": "GONE.example"}}, path="/sightings/add").json()["Sighting"]
    assert gone["attribute_id"] == attrs[("sightings two", "gone.example")]["id"]
    # The full composite value is neither value1 nor value2.
    composite = raw(misp_double, {"value": "198.51.100.7|443"}, path="/sightings/add")
    assert composite.json() == {"message": SIGHTING_ERROR + "No valid attributes found that match the criteria."}

    # By uuid: in the URL or the body; date + time as Y-m-d:H:i:s.
    target = attrs[("sightings one", "198.51.100.7|443")]
    in_url = raw(misp_double, {"source": "url"}, path=f"/sightings/add/{target['uuid']}").json()["Sighting"]
    assert in_url["attribute_id"] == target["id"] and in_url["source"] == "url"
    in_body = raw(
        misp_double, {"uuid": target["uuid"], "date": "2024-05-01", "time": "12:30:00"}, path="/sightings/add"
    )
    assert in_body.json()["Sighting"]["date_sighting"] == "1714566600"
    by_id = raw(misp_double, {"id": int(target["id"])}, path="/sightings/add").json()["Sighting"]
    assert by_id["attribute_id"] == target["id"]

    before = len(sightings(misp_double, {"last": 0}))
    unknown = raw(misp_double, {"value": "203.0.113.250"}, path="/sightings/add")
    assert unknown.status_code == 200
    assert unknown.json() == {"message": SIGHTING_ERROR + "No valid attributes found that match the criteria."}
    nothing = raw(misp_double, {"source": "x"}, path="/sightings/add").json()
    assert nothing == {"message": SIGHTING_ERROR + "No valid attributes found."}
    for bad in (3, "sighting", [1]):
        refused = raw(misp_double, {"value": "198.51.100.7", "type": bad}, path="/sightings/add")
        assert refused.status_code == 200
        assert refused.json() == {
            "message": SIGHTING_ERROR + "Invalid type, please change it before you POST 1000000 sightings."
        }
    # "1.0" passes the loose in_array() but not the model's inList validation.
    invalid = raw(misp_double, {"value": "198.51.100.7", "type": "1.0"}, path="/sightings/add").json()
    assert json.loads(invalid["message"].removeprefix(SIGHTING_ERROR)) == {
        "type": ["Invalid type. Valid options are: 0 (Sighting), 1 (False-positive), 2 (Expiration)."]
    }
    assert len(sightings(misp_double, {"last": 0})) == before
    assert (
        raw(misp_double, {"value": "198.51.100.7", "filters": {"type": "ip-dst"}}, path="/sightings/add").status_code
        == 501
    )
    describe = requests.get(misp_double.url + "/sightings/add", headers={"Authorization": misp_double.key}, timeout=30)
    assert describe.status_code == 405

    # Expiration (type "2") replaces the org's earlier expiration of the attribute; MISP
    # checks `$type === '2'`, so a JSON 2 adds one without replacing.
    expiring = attrs[("sightings one", "C2.Example")]
    first = raw(misp_double, {"uuid": expiring["uuid"], "type": "2"}, path="/sightings/add").json()["Sighting"]
    second = raw(misp_double, {"uuid": expiring["uuid"], "type": "2"}, path="/sightings/add").json()["Sighting"]
    expirations = sightings(misp_double, {"type": "2"})
    assert [r["id"] for r in expirations] == [second["id"]] and first["id"] != second["id"]
    raw(misp_double, {"uuid": expiring["uuid"], "type": 2}, path="/sightings/add")
    assert len(sightings(misp_double, {"type": 2})) == 2

    # PyMISP
    misp = client(misp_double)
    added = misp.add_sighting({"values": ["198.51.100.7"], "source": "pymisp", "timestamp": NOW})
    assert added["Sighting"]["source"] == "pymisp" and added["Sighting"]["attribute_id"] == str(shared[-1])
    on_uuid = misp.add_sighting({"source": "pymisp-uuid"}, attribute=target["uuid"], pythonify=True)
    assert on_uuid.attribute_id == target["id"] and on_uuid.source == "pymisp-uuid"
    found = misp.search_sightings(context="event", context_id=int(one["id"]), source="pymisp")
    assert sorted(s["Sighting"]["attribute_id"] for s in found) == sorted(str(i) for i in shared[:2])

    # Event::quickDelete deletes the event's sightings.
    assert raw(misp_double, {}, path=f"/events/delete/{two['id']}").status_code == 200
    assert {r["event_id"] for r in sightings(misp_double, {"last": 0})} == {one["id"]}


def test_sightings_rest_search_follows_misp(misp_double):
    one, two = sighting_events(misp_double)
    attrs = {(ev["info"], a["value"]): a for ev in (one, two) for a in ev["Attribute"]}
    composite = attrs[("sightings one", "198.51.100.7|443")]
    for source, when in (("scanner", NOW - 60), ("honeypot", NOW - 120), ("scanner", NOW - 40 * 86400)):
        body = {"value": "198.51.100.7", "source": source, "timestamp": when}
        assert raw(misp_double, body, path="/sightings/add").status_code == 200

    # Default: the last 30 days.
    assert len(sightings(misp_double, {"returnFormat": "json"})) == 6
    assert len(sightings(misp_double, {"last": "60d"})) == 9
    assert len(sightings(misp_double, {"from": NOW - 50 * 86400, "to": NOW - 86400})) == 3

    in_event = sightings(misp_double, {"id": int(one["id"]), "source": "scanner"}, context="event")
    assert {(r["event_id"], r["source"]) for r in in_event} == {(one["id"], "scanner")}
    assert sorted(r["attribute_id"] for r in in_event) == sorted(
        [composite["id"], attrs[("sightings one", "198.51.100.7")]["id"]]
    )
    plain = in_event[0]
    assert set(plain) == SIGHTING_KEYS | {"value", "Organisation"}
    assert set(plain["Organisation"]) == {"id", "uuid", "name"} and plain["Organisation"]["id"] == plain["org_id"]

    on_attribute = sightings(misp_double, {"id": [int(composite["id"])], "includeAttribute": 1}, context="attribute")
    assert len(on_attribute) == 2 and {r["source"] for r in on_attribute} == {"scanner", "honeypot"}
    assert on_attribute[0]["value"] == "198.51.100.7|443"
    assert on_attribute[0]["Attribute"] == {
        "id": composite["id"],
        "uuid": composite["uuid"],
        "type": "ip-dst|port",
        "category": composite["category"],
        "to_ids": composite["to_ids"],
        "value": "198.51.100.7|443",
    }
    by_uuid = sightings(
        misp_double, {"uuid": composite["uuid"], "includeEvent": 1, "includeUuid": 1}, context="attribute"
    )
    assert [r["attribute_uuid"] for r in by_uuid] == [composite["uuid"]] * 2
    assert by_uuid[0]["event_uuid"] == one["uuid"]
    assert by_uuid[0]["Event"] == {k: one[k] for k in ("id", "uuid", "orgc_id", "org_id", "info")} | {
        "Orgc": {"name": "ORGNAME"}
    }
    assert len(sightings(misp_double, {"uuid": [two["uuid"]]}, context="event")) == 2

    # id must be a JSON integer (is_int), also without a context, where it filters nothing.
    for context, body in (("event", {"id": one["id"]}), ("", {"id": [1, "2"]})):
        refused = raw(misp_double, body, path="/sightings/restSearch" + (f"/{context}" if context else ""))
        assert refused.status_code == 400
        bad = body["id"] if isinstance(body["id"], str) else "2"
        assert refused.json()["message"] == f"Invalid ID `{bad}` provided."
    assert len(sightings(misp_double, {"id": int(one["id"])})) == 6
    missing = raw(misp_double, {"source": "scanner"}, path="/sightings/restSearch/event")
    assert missing.status_code == 400
    assert missing.json()["message"] == "An ID or UUID must be provided if the context is set."
    wrong = raw(misp_double, {"id": 1}, path="/sightings/restSearch/object")
    assert wrong.status_code == 400 and wrong.json()["message"] == "Invalid context object."
    assert raw(misp_double, {"returnFormat": "yaml"}, path="/sightings/restSearch").status_code == 404
    assert raw(misp_double, {"returnFormat": "csv"}, path="/sightings/restSearch").status_code == 501
    assert raw(misp_double, {"last": "yesterday"}, path="/sightings/restSearch").status_code == 501

    # org_id: an organisation uuid filters; a numeric id matches nothing (MISP only
    # resolves uuids).
    org = one["Org"]  # the double's user's org, which sights
    assert len(sightings(misp_double, {"org_id": org["uuid"]})) == 6
    assert sightings(misp_double, {"org_id": "!" + org["uuid"]}) == []
    assert sightings(misp_double, {"org_id": org["id"]}) == []


# ----------------------------------------------------------------------------- data


def test_generate_events_mix_and_paging():
    events = list(generate_events(20_000, seed=7, now=NOW))
    assert events == list(generate_events(20_000, seed=7, now=NOW))
    attrs = [a for e in events for a, _ev in flat(e)]
    assert len(attrs) == 20_000
    kinds = collections.Counter(a["type"] for a in attrs)
    ip_share = sum(kinds[t] for t in ("ip-src", "ip-dst", "ip-dst|port")) / len(attrs)
    assert 0.35 < ip_share < 0.50
    expected_types = {
        "domain",
        "hostname",
        "url",
        "md5",
        "sha1",
        "sha256",
        "filename|md5",
        "email-src",
        "user-agent",
        "x509-fingerprint-sha1",
        "ja3-fingerprint-md5",
    }
    assert expected_types <= set(kinds)
    assert any("/" in a["value"] for a in attrs if a["type"] in ("ip-src", "ip-dst"))
    assert 0.05 < sum(not a["to_ids"] for a in attrs) / len(attrs) < 0.2
    assert all(e["Event"]["published"] for e in events)
    assert all(any(t["name"].startswith("tlp:") for t in e["Event"]["Tag"]) for e in events)

    with MispDouble() as double:
        double.add_events(generate_events(200_000, seed=1))
        body = {
            "returnFormat": "json",
            "type": IOC_TYPES,
            "tags": {"OR": ["tlp:%"], "NOT": ["tlp:red"]},
            "to_ids": True,
            "published": True,
            "publish_timestamp": "30d",
            "limit": 50_000,
        }
        raw(double, {**body, "page": 1})
        # Full pages from the cached result (its speed is measured in benchmarks/).
        for page in (2, 3):
            response = raw(double, {**body, "page": page})
            assert len(response.json()["response"]["Attribute"]) == 50_000


def test_circl_sources():
    assert circl.pymisp_version() == "2.5.34.4"
    assert circl.sdist_path().name == "pymisp-2.5.34.4.tar.gz"
    assert circl.describe_types_path().name == "describeTypes.json"
    events = circl.load_circl_events()
    counts = {e["Event"]["info"][:20]: sum(1 for _pair in flat(e)) for e in events}
    assert len(events) == len(circl.CIRCL_EVENT_FILES) == 12
    assert counts["OSINT - ASERT Threat"] == 370
    assert all(e["Event"]["Orgc"]["name"] == "CIRCL" for e in events)


# ----------------------------------------------------------------------------- zeek


LONG_EVENT = "57153590-f73c-49fa-be4b-4737950d210f"
JRAT_EVENT = "5abf6421-c1b8-477b-a9d2-9c0902de0b81"


def test_zeek_expectation_for_circl_events(circl_events):
    rows = zeek_expect.expected_rows(circl_events)
    assert ("103.240.203.232", "Intel::ADDR", LONG_EVENT) in rows
    assert ("gugehotel.cn", "Intel::DOMAIN", LONG_EVENT) in rows
    assert ("akm.epac.to", "Intel::DOMAIN", LONG_EVENT) in rows
    assert ("174.127.99.225", "Intel::ADDR", JRAT_EVENT) in rows, "ip-dst|port gives the IP"
    assert all(r[1][len("Intel::") :] in zeek_expect.ZEEK_INTEL_TYPES for r in rows)
    assert not any(r[1] == "Intel::JA3" for r in rows)
    assert not any("\t" in r[0] or "\n" in r[0] or r[0].startswith(("http://", "https://")) for r in rows)

    published = {e["Event"]["uuid"] for e in circl_events if e["Event"]["published"]}
    assert {r[2] for r in rows} <= published
    assert "5a0d5bf4-99c8-4f15-9879-22b1950d210f" not in {r[2] for r in rows}, "unpublished: no rows"

    def distinct(types, split=None):
        out = set()
        for event in circl_events:
            if not event["Event"]["published"]:
                continue
            for attr, ev in flat(event):
                if attr["to_ids"] and not attr.get("deleted") and attr["type"] in types:
                    value = attr["value"] if split is None else attr["value"].split("|")[split]
                    out.add((value, ev["uuid"]))
        return out

    per_type = collections.Counter(r[1] for r in rows)
    assert per_type["Intel::DOMAIN"] == len(distinct({"domain", "hostname"}))
    assert per_type["Intel::ADDR"] == len(distinct({"ip-dst", "ip-src"}) | distinct({"ip-dst|port"}, 0))
    hashes = distinct({"md5", "sha1", "sha256", "ssdeep", "imphash", "pehash", "sha512"})
    hashes |= distinct({"filename|md5", "filename|sha1", "filename|sha256", "malware-sample"}, 1)
    assert per_type["Intel::FILE_HASH"] == len(hashes)
    assert per_type["Intel::URL"] == len(
        {(v.removeprefix("http://").removeprefix("https://"), u) for v, u in distinct({"url"})}
    )
    assert sum(per_type.values()) == len(rows) > 300


def test_zeek_expectation_sanitising():
    event = {
        "Event": {
            "uuid": "00000000-0000-4000-8000-000000000001",
            "published": True,
            "Orgc": {"name": "X"},
            "Attribute": [
                {"type": "url", "value": "https://a.example/x\ty", "to_ids": True},
                {"type": "url", "value": "HTTP://b.example/", "to_ids": True},
                {"type": "domain", "value": "bücher.example", "to_ids": True},
                {"type": "filename|md5", "value": "<b>x</b>.exe|0123456789abcdef0123456789abcdef", "to_ids": True},
                {"type": "ip-src", "value": "192.0.2.0/24", "to_ids": True},
                {"type": "ja3-fingerprint-md5", "value": "0123456789abcdef0123456789abcdef", "to_ids": True},
                {"type": "domain", "value": "not-ids.example", "to_ids": False},
                {"type": "domain", "value": "gone.example", "to_ids": True, "deleted": True},
            ],
        }
    }
    rows = {(v, t) for v, t, _uuid in zeek_expect.expected_rows([event])}
    assert rows == {
        ("a.example/x y", "Intel::URL"),
        ("HTTP://b.example/", "Intel::URL"),  # MISP's #^https?://# is case-sensitive
        ("bcher.example", "Intel::DOMAIN"),  # FILTER_FLAG_STRIP_HIGH drops non-ASCII
        ("x.exe", "Intel::FILE_NAME"),  # FILTER_SANITIZE_STRING strips tags
        ("0123456789abcdef0123456789abcdef", "Intel::FILE_HASH"),
        ("192.0.2.0/24", "Intel::SUBNET"),
    }
    plain = {(v, t) for v, t, _uuid in zeek_expect.expected_rows([event], sanitize_like_php=False)}
    assert ("bücher.example", "Intel::DOMAIN") in plain
    event["Event"]["published"] = False
    assert zeek_expect.expected_rows([event]) == set()


# ----------------------------------------------------------------------------- warninglists

WARNINGLISTS = Path(__file__).resolve().parents[1] / "misp_double/warninglists"


def json_file(path: Path) -> dict:
    return json.loads(path.read_text())


def _event(*attributes: tuple[str, str]) -> dict:
    return {
        "Event": {
            "info": "warninglist values",
            "published": True,
            "Attribute": [
                {"type": t, "value": v, "to_ids": True, "category": "Network activity"} for t, v in attributes
            ],
        }
    }


def test_warninglists_follow_misps_matching(misp_double):
    from misp_double.warninglist import Warninglist

    resolvers = Warninglist.from_json(json_file(WARNINGLISTS / "public-dns-v4.json"))
    assert resolvers.type == "cidr" and resolvers.applies_to("ip-dst") and not resolvers.applies_to("domain")
    assert resolvers.matches("ip-dst", "8.8.8.8") and not resolvers.matches("ip-dst", "8.8.8.9")
    assert resolvers.matches("ip-dst|port", "9.9.9.9|53")  # composite: each part
    assert not resolvers.matches("ip-dst", "8.8.8.0/24")  # a network is no address
    names = Warninglist.from_json(json_file(WARNINGLISTS / "public-dns-hostname.json"))
    assert names.matches("hostname", "dns.google") and names.matches("domain", "a.b.dns.google")
    assert names.matches("url", "https://dns.google/resolve?name=x") and names.matches("url", "dns.google/x")
    assert not names.matches("domain", "notdns.google") and not names.matches("domain", "google")
    assert names.matches("domain|ip", "one.one.one.one|192.0.2.1")
    # MISP lower-cases the entries, not the value.
    assert not names.matches("domain", "DNS.GOOGLE")
    other = {"name": "t", "description": "t", "version": 1, "list": ["evil", "/^x[0-9]+\\.example$/i"]}
    assert Warninglist.from_json({**other, "type": "substring"}).matches("url", "http://not-evil.example/")
    regex = Warninglist.from_json({**other, "type": "regex", "list": ["/^x[0-9]+\\.example$/i"]})
    assert regex.matches("domain", "X12.example") and not regex.matches("domain", "x.example")
    plain = Warninglist.from_json({**other, "list": ["exact.example"]})  # type defaults to string
    assert plain.type == "string" and plain.types == ["ALL"] and plain.matches("email", "exact.example")
    assert not plain.matches("domain", "a.exact.example")


def test_enforce_warninglist_thins_pages_after_the_limit(misp_double):
    misp_double.load_warninglist(WARNINGLISTS / "public-dns-v4.json")
    misp_double.load_warninglist(WARNINGLISTS / "public-dns-hostname.json")
    misp_double.add_event(
        _event(
            ("ip-dst", "8.8.8.8"),
            ("ip-dst|port", "9.9.9.9|53"),
            ("ip-dst", "192.0.2.55"),
            ("hostname", "dns.google"),
            ("domain", "c2.example"),
        )
    )
    query = {"returnFormat": "json", "enforceWarninglist": 1}
    values = [a["value"] for a in raw(misp_double, query).json()["response"]["Attribute"]]
    assert values == ["192.0.2.55", "c2.example"]
    assert len(raw(misp_double, {"returnFormat": "json", "enforceWarninglist": 0}).json()["response"]["Attribute"]) == 5
    # MispAttribute::fetchAttributes filters after the paged query: page 1 (two rows)
    # comes empty, and X-Result-Count counts the two rows, not the page's 0 attributes.
    first = raw(misp_double, {**query, "limit": 2, "page": 1})
    assert first.json()["response"]["Attribute"] == [] and first.headers["X-Result-Count"] == "2"
    second = raw(misp_double, {**query, "limit": 2, "page": 2})
    assert [a["value"] for a in second.json()["response"]["Attribute"]] == ["192.0.2.55"]
    assert second.headers["X-Result-Count"] == "2"
    third = raw(misp_double, {**query, "limit": 2, "page": 3})
    assert [a["value"] for a in third.json()["response"]["Attribute"]] == ["c2.example"]
    assert third.headers["X-Result-Count"] == "1"
    # A disabled list applies to nothing.
    misp_double.load_warninglist(WARNINGLISTS / "public-dns-v4.json", enabled=False)
    values = [a["value"] for a in raw(misp_double, query).json()["response"]["Attribute"]]
    assert values == ["8.8.8.8", "9.9.9.9|53", "192.0.2.55", "c2.example"]


def test_paging_fault_knobs(loaded):
    double = loaded[0]
    query = {"returnFormat": "json", "limit": 10}
    page1 = raw(double, {**query, "page": 1}).json()["response"]["Attribute"]
    double.repeat_page = 1
    assert raw(double, {**query, "page": 7}).json()["response"]["Attribute"] == page1
    double.repeat_page = None
    double.ignore_limit = True
    assert len(raw(double, {**query, "page": 1}).json()["response"]["Attribute"]) > 10
    double.ignore_limit = False
    double.result_count = 3
    answer = raw(double, {**query, "page": 1})
    assert answer.headers["X-Result-Count"] == "3" and len(answer.json()["response"]["Attribute"]) == 10
    double.result_count = None
    double.fail_status["/attributes/restSearch"] = 500
    double.fail_body = b'{"values": ["198.51.100.77"]}'
    answer = raw(double, query)
    assert answer.status_code == 500 and answer.content == double.fail_body
    double.fail_status.clear()
    double.trickle["/attributes/restSearch"] = 0.002
    started = time.monotonic()
    answer = raw(double, {**query, "limit": 1})
    assert time.monotonic() - started > 0.002 * len(answer.content)
    assert answer.json()["response"]["Attribute"]
