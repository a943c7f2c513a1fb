"""Synthetic MISP events for load tests and benchmarks (``generate_events``)."""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid as uuidlib
from collections.abc import Iterator

_TLDS = ("com", "net", "org", "info", "biz", "ru", "cn", "top", "xyz", "io")
_WORDS = (
    "update",
    "secure",
    "login",
    "cdn",
    "mail",
    "portal",
    "static",
    "api",
    "files",
    "sync",
    "cloud",
    "micro",
    "soft",
    "data",
    "track",
)
# (type, weight, category): about 40% ip-src/ip-dst/ip-dst|port.
_MIX = (
    ("ip-src", 15, "Network activity"),
    ("ip-dst", 15, "Network activity"),
    ("ip-dst|port", 10, "Network activity"),
    ("domain", 10, "Network activity"),
    ("hostname", 8, "Network activity"),
    ("url", 8, "Network activity"),
    ("md5", 6, "Payload delivery"),
    ("sha1", 4, "Payload delivery"),
    ("sha256", 6, "Payload delivery"),
    ("filename|md5", 4, "Payload delivery"),
    ("email-src", 3, "Payload delivery"),
    ("user-agent", 4, "Network activity"),
    ("x509-fingerprint-sha1", 4, "Network activity"),
    ("ja3-fingerprint-md5", 3, "Network activity"),
)


def generate_events(
    n_attributes: int,
    seed: int = 0,
    *,
    attributes_per_event: int = 1000,
    now: int | None = None,
    org_name: str = "CIRCL",
) -> Iterator[dict]:
    """Synthetic published MISP events with ``n_attributes`` attributes in total.

    Yields ``{"Event": {...}}`` dicts (an iterator, to keep memory low for a
    1,000,000-attribute benchmark). Deterministic for a given ``seed`` and ``now``.
    Type mix: about 40% ip-src/ip-dst/ip-dst|port (5% of the plain IPs are CIDR
    ranges, 3% IPv6), then domain, hostname, url, md5, sha1, sha256, filename|md5,
    email-src, user-agent, x509-fingerprint-sha1, ja3-fingerprint-md5; about 10% are
    not to_ids; every event carries a TLP tag (white/green/amber/red) and
    ``type:OSINT``; 2% of attributes carry an attribute tag; about 4% of the attributes
    are in ``domain-ip`` objects (domain + ip-dst).
    """
    gen = _Generator(random.Random(seed), org_name)  # noqa: S311 - reproducible test data, not secrets
    now = int(time.time()) if now is None else now
    produced = 0
    number = 0
    while produced < n_attributes:
        number += 1
        size = min(attributes_per_event, n_attributes - produced)
        produced += size
        yield gen.event(number, size, now)


class _Generator:
    """The random draws of ``generate_events``, in a fixed order (so a seed gives one result)."""

    def __init__(self, rng: random.Random, org_name: str):
        self.rng = rng
        self.org_name = org_name
        self.org_uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, org_name))
        self.types = [t for t, w, _cat in _MIX for _copy in range(w)]
        self.categories = {t: c for t, _weight, c in _MIX}
        self.tlps = ["tlp:white"] * 40 + ["tlp:green"] * 40 + ["tlp:amber"] * 15 + ["tlp:red"] * 5

    def uid(self) -> str:
        return str(uuidlib.UUID(int=self.rng.getrandbits(128), version=4))

    def ip(self) -> str:
        rng = self.rng
        return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"

    def host(self) -> str:
        return f"{self.rng.choice(_WORDS)}{self.rng.randint(0, 99999)}.{self.rng.choice(_TLDS)}"

    def value_for(self, attr_type: str) -> str:
        rng = self.rng
        if attr_type in ("ip-src", "ip-dst"):
            roll = rng.random()
            if roll < 0.05:
                return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.0/24"
            if roll < 0.08:
                return f"2001:db8:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
            return self.ip()
        if attr_type == "ip-dst|port":
            return f"{self.ip()}|{rng.choice((22, 80, 443, 4444, 8080, 8443))}"
        if attr_type == "domain":
            return self.host()
        if attr_type == "hostname":
            return f"{rng.choice(_WORDS)}.{self.host()}"
        if attr_type == "url":
            scheme = rng.choice(("http", "https"))
            return (
                f"{scheme}://{self.host()}/{rng.choice(_WORDS)}/{rng.getrandbits(32):x}.php?id={rng.randint(1, 9999)}"
            )
        if attr_type in ("md5", "ja3-fingerprint-md5"):
            return f"{rng.getrandbits(128):032x}"
        if attr_type in ("sha1", "x509-fingerprint-sha1"):
            return f"{rng.getrandbits(160):040x}"
        if attr_type == "sha256":
            return f"{rng.getrandbits(256):064x}"
        if attr_type == "filename|md5":
            return f"{rng.choice(_WORDS)}{rng.randint(0, 999)}.exe|{rng.getrandbits(128):032x}"
        if attr_type == "email-src":
            return f"{rng.choice(_WORDS)}{rng.randint(0, 9999)}@{self.host()}"
        return f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Agent/{rng.randint(1, 99999)}"

    def domain_ip_object(self, event_ts: int) -> dict:
        pair = (("domain", "domain", self.host()), ("ip", "ip-dst", self.ip()))
        return {
            "name": "domain-ip",
            "meta-category": "network",
            "description": "A domain/hostname and IP address seen as a tuple.",
            "template_uuid": "43b3b146-77eb-4931-b4cc-b66c60f28734",
            "template_version": "11",
            "uuid": self.uid(),
            "timestamp": str(event_ts),
            "distribution": "5",
            "sharing_group_id": "0",
            "comment": "",
            "deleted": False,
            "Attribute": [
                {
                    "type": t,
                    "category": "Network activity",
                    "to_ids": True,
                    "uuid": self.uid(),
                    "timestamp": str(event_ts),
                    "object_relation": rel,
                    "value": v,
                }
                for rel, t, v in pair
            ],
        }

    def attribute(self, event_ts: int) -> dict:
        attr_type = self.rng.choice(self.types)
        attr = {
            "type": attr_type,
            "category": self.categories[attr_type],
            "to_ids": self.rng.random() >= 0.10,
            "uuid": self.uid(),
            "timestamp": str(event_ts),
            "comment": "",
            "value": self.value_for(attr_type),
        }
        if self.rng.random() < 0.02:
            attr["Tag"] = [{"name": self.rng.choice(("tlp:amber", "kill-chain:Delivery"))}]
        return attr

    def event(self, number: int, size: int, now: int) -> dict:
        """Event ``number`` with ``size`` attributes, every 50th pair of them in a domain-ip object."""
        rng = self.rng
        published_at = now - rng.randint(3600, 20 * 86400)
        event_ts = published_at - rng.randint(0, 3600)
        attributes: list[dict] = []
        objects: list[dict] = []
        made = 0
        while made < size:
            if size - made >= 2 and made % 50 == 25:
                objects.append(self.domain_ip_object(event_ts))
                made += 2
            else:
                attributes.append(self.attribute(event_ts))
                made += 1
        return {
            "Event": {
                "info": f"Synthetic OSINT event {number}",
                "date": dt.datetime.fromtimestamp(event_ts, dt.UTC).strftime("%Y-%m-%d"),
                "threat_level_id": str(rng.randint(1, 4)),
                "analysis": "2",
                "distribution": "3",
                "published": True,
                "uuid": self.uid(),
                "timestamp": str(event_ts),
                "publish_timestamp": str(published_at),
                "Orgc": {"name": self.org_name, "uuid": self.org_uuid},
                "Tag": [{"name": rng.choice(self.tlps)}, {"name": "type:OSINT"}],
                "Attribute": attributes,
                "Object": objects,
            }
        }
