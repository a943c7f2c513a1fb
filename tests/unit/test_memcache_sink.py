"""The memcached writer against a real memcached (Debian's package)."""

from __future__ import annotations

import time

import pytest
from ansible_collections.wlcg.soc.plugins.module_utils.memcache import MemcacheError, MemcacheSink, parse_server
from conftest import running_memcached
from pymemcache.client.base import Client
from search.engine import free_port


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mc.example:11222", ("mc.example", 11222)),
        ("mc.example", ("mc.example", 11211)),
        ("[2001:db8::1]:11212", ("2001:db8::1", 11212)),
        ("[2001:db8::1]", ("2001:db8::1", 11211)),
    ],
)
def test_parse_server(spec, expected):
    assert parse_server(spec) == expected


@pytest.mark.parametrize("spec", ["mc:notaport", "mc:0", ":11211", "mc:70000"])
def test_parse_server_refuses(spec):
    with pytest.raises(MemcacheError, match="invalid memcached server"):
        parse_server(spec)


def test_set_compare_and_ttl(memcached):
    server = memcached
    values = {f"ip-src-192.0.2.{i}": f'{{"n":{i}}}'.encode() for i in range(12000)}
    sink = MemcacheSink([server], ttl=2)
    try:
        assert sink.count_different(values) == 12000
        sink.set_all(values)
        assert sink.count_different(values) == 0
        changed = dict(values, **{"ip-src-192.0.2.5": b"other"})
        assert sink.count_different(changed) == 1
        reader = Client(parse_server(server))
        assert reader.get("ip-src-192.0.2.7") == b'{"n":7}'
        time.sleep(3.1)
        assert reader.get("ip-src-192.0.2.7") is None  # the TTL was applied
        reader.close()
    finally:
        sink.close()


def test_every_server_gets_every_key(memcached):
    with running_memcached() as server_b:
        sink = MemcacheSink([memcached, server_b], ttl=60)
        sink.set_all({"ip-dst-192.0.2.1": b"x", "ip-dst-192.0.2.2": b"y"})
        for spec in (memcached, server_b):
            c = Client(parse_server(spec))
            assert c.get_many(["ip-dst-192.0.2.1", "ip-dst-192.0.2.2"]) == {
                "ip-dst-192.0.2.1": b"x",
                "ip-dst-192.0.2.2": b"y",
            }
            c.close()
        sink.close()


def test_server_down_is_a_clear_error():
    sink = MemcacheSink([f"127.0.0.1:{free_port()}"], ttl=60, timeout=1)
    with pytest.raises(MemcacheError, match=r"memcached 127\.0\.0\.1:\d+"):
        sink.count_different({"ip-src-192.0.2.1": b"x"})
    with pytest.raises(MemcacheError):
        sink.set_all({"ip-src-192.0.2.1": b"x"})


def test_non_positive_ttl_refused():
    with pytest.raises(MemcacheError, match="TTL"):
        MemcacheSink(["127.0.0.1:11211"], ttl=0)
