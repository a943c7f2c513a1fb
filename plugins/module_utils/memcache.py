# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write enrichment keys to memcached (pymemcache), in pipelined batches.

Importable without Ansible. Every key goes to every server: readers such as
Logstash's memcached filter hash keys over servers their own way, so a copy on each
is the only layout every reader finds.
"""

from __future__ import annotations

from typing import Any

try:
    from pymemcache.client.base import Client
    from pymemcache.exceptions import MemcacheError as _PymemcacheError
except ImportError as exc:
    PYMEMCACHE_IMPORT_ERROR: ImportError | None = exc
    _PymemcacheError = Exception  # keeps the except clauses valid
else:
    PYMEMCACHE_IMPORT_ERROR = None

# Keys per request: one request carries a batch of commands and reads their replies
# together, so a LAN round trip is paid per batch, not per key.
BATCH = 5000


class MemcacheError(Exception):
    """A memcached server failed or refused keys."""


def parse_server(spec: str) -> tuple[str, int]:
    """``host:port``, ``host`` (port 11211) or ``[v6addr]:port`` -> (host, port)."""
    spec = spec.strip()
    if spec.startswith("["):
        host, _bracket, rest = spec[1:].partition("]")
        port = rest.lstrip(":") or "11211"
    elif spec.count(":") == 1:
        host, port = spec.split(":")
    else:
        host, port = spec, "11211"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MemcacheError(f"invalid memcached server {spec!r}: expected host:port")
    return host, int(port)


class MemcacheSink:
    def __init__(self, servers: list[str], ttl: int, timeout: float = 5.0):
        if PYMEMCACHE_IMPORT_ERROR is not None:
            raise MemcacheError(f"the pymemcache library is required: {PYMEMCACHE_IMPORT_ERROR}")
        if ttl <= 0:
            raise MemcacheError("memcached TTL must be a positive number of seconds")
        self.ttl = ttl
        self.clients: list[tuple[str, Any]] = []
        for spec in servers:
            host, port = parse_server(spec)
            client = Client((host, port), connect_timeout=timeout, timeout=timeout, no_delay=True)
            self.clients.append((f"{host}:{port}", client))

    def _run(self, name: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (_PymemcacheError, OSError) as exc:
            raise MemcacheError(f"memcached {name}: {exc or type(exc).__name__}") from None

    def count_different(self, values: dict[str, bytes]) -> int:
        """How many (server, key) pairs are missing or hold another value."""
        keys = list(values)
        different = 0
        for name, client in self.clients:
            for i in range(0, len(keys), BATCH):
                chunk = keys[i : i + BATCH]
                found = self._run(name, client.get_many, chunk)
                different += sum(1 for k in chunk if found.get(k) != values[k])
        return different

    def set_all(self, values: dict[str, bytes]) -> None:
        """Set every key on every server with the TTL; raise if any is refused."""
        items = list(values.items())
        for name, client in self.clients:
            for i in range(0, len(items), BATCH):
                failed = self._run(
                    name,
                    client.set_many,
                    dict(items[i : i + BATCH]),
                    expire=self.ttl,
                    noreply=False,
                )
                if failed:
                    raise MemcacheError(f"memcached {name} refused {len(failed)} keys, e.g. {failed[0]!r}")

    def close(self) -> None:
        for _name, client in self.clients:
            client.close()
