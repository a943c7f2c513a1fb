"""A stand-in for Filebeat 8.19, for test hosts where Elastic's binary cannot be had.

It runs the filebeat.yml the role renders, with Filebeat's command line (the vendor unit's
``filebeat --environment systemd -c ... --path.home ... --path.data ...``, ``filebeat test
config``, ``filebeat test output``, ``filebeat version``) and follows Filebeat's documented
behaviour for the subset of options listed in filebeat_reference.py (the one table of
options; unknown keys are refused). It reads files with the filestream input's rules
(native identity, registry offsets advanced only after the output's ACK, rename/remove/
inactive handling) and ships events over the Beats protocol (lumberjack v2, via
``pylogbeat``) with mutual TLS, to Logstash or any lumberjack v2 server, or to Kafka
(``output.kafka`` through kafka-python: hosts, topic as a format string with
``%{[field.path]}`` and ``%{[field.path]:default}``, required_acks, compression none/gzip/lz4,
client_id, bulk_max_size, timeout, backoff, ssl.* with verification modes; the value is the
event as codec.json writes it, with ``@metadata`` beat/type/version; registry offsets advance
only for events the broker acknowledged; an event whose topic cannot be formatted is dropped).

Not implemented (and therefore refused or reported): parsers, processors, fingerprint
identity, output.kafka's snappy and zstd compression and its ``version`` (accepted, the
client negotiates), ``filebeat test output`` for Kafka, pipelining (one batch in flight per
connection). ``queue.disk`` is accepted but kept in memory: unacknowledged
lines are re-read from the files after a restart, from the registry's offsets.

Runs on Debian's python3 (3.11) with python3-yaml and pylogbeat (a single module, placed
beside this file or on sys.path); filebeat_reference.py must sit beside this file. The Kafka
output needs kafka-python 2.3 (pure Python; beside this file or on sys.path, imported only
when output.kafka is enabled) and, for compression lz4, the lz4 module (python3-lz4).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import glob
import json
import os
import platform
import random
import re
import signal
import socket
import ssl
import stat
import struct
import sys
import threading
import time
import uuid
import warnings
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
for _candidate in (_HERE, _HERE.parent):  # beside it on a host; tests/ in the repository
    if (_candidate / "filebeat_reference.py").is_file() and str(_candidate) not in sys.path:
        sys.path.insert(0, str(_candidate))
        break

import filebeat_reference as ref  # noqa: E402
import pylogbeat  # noqa: E402
import yaml  # noqa: E402

VERSION = ref.VERSION
BUILD_COMMIT = "stand-in"
ECS_VERSION = "8.0.0"

# --- logging (ECS JSON lines on stderr, as Filebeat writes them to the journal) ----------

# Go's names for the architectures, as Filebeat reports them.
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50}


class Log:
    level = 20
    lock = threading.Lock()

    @classmethod
    def emit(cls, level: str, logger: str, message: str, **extra: Any) -> None:
        if _LEVELS[level] < cls.level:
            return
        record = {"log.level": level, "@timestamp": _now(), "log.logger": logger, "message": message, **extra}
        line = json.dumps(record, default=str)
        with cls.lock:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


def debug(logger: str, message: str, **extra: Any) -> None:
    Log.emit("debug", logger, message, **extra)


def info(logger: str, message: str, **extra: Any) -> None:
    Log.emit("info", logger, message, **extra)


def warn(logger: str, message: str, **extra: Any) -> None:
    Log.emit("warning", logger, message, **extra)


def error(logger: str, message: str, **extra: Any) -> None:
    Log.emit("error", logger, message, **extra)


def _now() -> str:
    """RFC 3339 UTC with milliseconds, as Filebeat's @timestamp."""
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Exit(Exception):
    """Stop with Filebeat's ``Exiting: ...`` message and exit code 1."""


# --- command line ---------------------------------------------------------------------


@dataclass
class Args:
    words: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    strict_perms: bool = True
    environment: str = "default"
    stderr: bool = False
    debug: bool = False


_VALUE_FLAGS = {"c", "E", "d", "environment", "path.home", "path.config", "path.data", "path.logs", "cpuprofile"}
_BOOL_FLAGS = {"e", "v", "strict.perms", "once", "N", "help", "h"}


def parse_args(argv: list[str]) -> Args:
    """Go-style flags (-flag, --flag, -flag=value), interspersed with subcommand words as
    Filebeat's cobra command line allows."""
    args, i = Args(), 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if not word.startswith("-") or word == "-":
            args.words.append(word)
            continue
        name, eq, value = word.lstrip("-").partition("=")
        if name in _VALUE_FLAGS:
            if not eq:
                if i >= len(argv):
                    raise Exit(f"flag needs an argument: -{name}")
                value, i = argv[i], i + 1
            if name == "c":
                args.configs.append(value)
            elif name == "E":
                args.overrides.append(value)
            elif name == "d":
                args.debug = True
            elif name == "environment":
                args.environment = value
            elif name.startswith("path."):
                args.paths[name.removeprefix("path.")] = value
        elif name in _BOOL_FLAGS:
            flag = value.lower() not in ("false", "0") if eq else True
            if name == "strict.perms":
                args.strict_perms = flag
            elif name == "e":
                args.stderr = flag
            elif name in ("h", "help"):
                args.words = ["help"]
        else:
            raise Exit(f"unknown flag: {word}")
    return args


# --- configuration --------------------------------------------------------------------


def check_permissions(path: Path) -> None:
    """Filebeat's strict.perms: the config file must belong to the running user or root
    and be writable by its owner only (libbeat's OwnerHasExclusiveWritePerms)."""
    info_ = path.stat()
    euid = os.geteuid()
    if info_.st_uid not in (0, euid):
        raise Exit(
            f'error loading config file: config file ("{path}") must be owned by the user identifier '
            f"(uid={euid}) or root"
        )
    if info_.st_mode & 0o022:
        raise Exit(
            f'error loading config file: config file ("{path}") can only be writable by the owner but the '
            f'permissions are "{stat.filemode(info_.st_mode)}" (to fix the permissions use: '
            f"'chmod go-w {path.resolve()}')"
        )


_REFERENCE = re.compile(r"\$\{([^}:]+)(?::([^}]*))?\}")


def _resolve(value: Any, config: Mapping[str, Any]) -> Any:
    """go-ucfg's ${name} / ${name:default}: another setting of the file, else the
    environment."""
    if isinstance(value, dict):
        return {k: _resolve(v, config) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, config) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = ref.lookup(config, name)
        if found is None:
            found = os.environ.get(name, default)
        if found is None:
            raise ref.ConfigError(f"missing field accessing '{name}'")
        return str(_resolve(found, config))

    whole = _REFERENCE.fullmatch(value)
    if whole and ref.lookup(config, whole.group(1)) is not None:
        return _resolve(ref.lookup(config, whole.group(1)), config)
    return _REFERENCE.sub(one, value)


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


@dataclass
class Settings:
    config: dict[str, Any]
    files: list[Path]
    paths: dict[str, Path]


def load_settings(args: Args) -> Settings:
    """The configuration as Filebeat builds it: -c files (relative to path.config), then
    -E overrides, then path flags (flags win over the file), then ${...} references."""
    home = Path(args.paths.get("home") or Path(sys.argv[0]).resolve().parent)
    config_dir = Path(args.paths.get("config") or home)
    files = [config_dir / c if not Path(c).is_absolute() else Path(c) for c in (args.configs or ["filebeat.yml"])]
    merged: dict[str, Any] = {}
    for path in files:
        if not path.is_file():
            raise Exit(f"error loading config file: stat {path}: no such file or directory")
        if args.strict_perms:
            check_permissions(path)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise Exit(f"error loading config file: {exc}") from None
        if not isinstance(loaded, Mapping):
            raise Exit(f"error loading config file: {path}: not a map of settings")
        _deep_merge(merged, ref.expand(loaded))
    for override in args.overrides:
        key, _sep, raw = override.partition("=")
        _deep_merge(merged, ref.expand({key: yaml.safe_load(raw) if raw else None}))
    for name, value in args.paths.items():
        _deep_merge(merged, {"path": {name: value}})
    path_cfg = merged.setdefault("path", {})
    path_cfg.setdefault("home", str(home))
    path_cfg.setdefault("config", str(config_dir))
    path_cfg.setdefault("data", str(Path(path_cfg["home"]) / "data"))
    path_cfg.setdefault("logs", str(Path(path_cfg["home"]) / "logs"))
    try:
        config = ref.validate(_resolve(merged, merged))
    except ref.ConfigError as exc:
        raise Exit(str(exc)) from None
    paths = {name: Path(config["path"][name]) for name in ("home", "config", "data", "logs")}
    return Settings(dict(config), files, paths)


# --- registry -------------------------------------------------------------------------


@dataclass
class FileState:
    key: str
    input_id: str
    identity: tuple[Any, ...]
    source: str
    offset: int = 0  # acknowledged: where a restart resumes
    read_offset: int = 0  # next byte to read (ahead of offset while events are in flight)
    updated: float = field(default_factory=time.time)
    pending: int = 0
    gone_since: float | None = None  # not found under the paths since
    harvester: Harvester | None = None
    ttl: float = -1

    def record(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "offset": self.offset,
            "identifier": list(self.identity),
            "input_id": self.input_id,
            "updated": self.updated,
            "ttl": self.ttl,
        }


class Registry:
    """States under <registry.path>/filebeat/, rewritten atomically (temp file, fsync,
    rename) at most every registry.flush and on shutdown."""

    def __init__(self, root: Path, permissions: int, flush: float, metrics: Metrics) -> None:
        self.dir = root / "filebeat"
        self.file = self.dir / "stand-in-states.json"
        self.permissions = permissions
        self.flush = flush
        self.metrics = metrics
        self.lock = threading.RLock()
        self.states: dict[str, FileState] = {}
        self.dirty = threading.Event()

    def load(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        meta = self.dir / "meta.json"
        if not meta.exists():
            self._atomic_write(meta, json.dumps({"version": "1"}))
        if not self.file.exists():
            return
        for key, rec in json.loads(self.file.read_text()).items():
            self.states[key] = FileState(
                key=key,
                input_id=rec["input_id"],
                identity=tuple(rec["identifier"]),
                source=rec["source"],
                offset=rec["offset"],
                read_offset=rec["offset"],
                updated=rec["updated"],
                ttl=rec.get("ttl", -1),
            )
        self.metrics.set("registrar.states.current", len(self.states))

    def _atomic_write(self, path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.permissions)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dirfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)

    def save(self) -> None:
        with self.lock:
            self.dirty.clear()
            text = json.dumps({k: s.record() for k, s in self.states.items()}, sort_keys=True)
            count = len(self.states)
        try:
            self._atomic_write(self.file, text)
            self.metrics.add("registrar.writes.success")
        except OSError as exc:
            self.metrics.add("registrar.writes.fail")
            error("registrar", f"writing the registry failed: {exc}")
        self.metrics.add("registrar.writes.total")
        self.metrics.set("registrar.states.current", count)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if self.dirty.wait(0.2):
                if self.flush > 0:
                    stop.wait(self.flush)
                self.save()

    def mark(self) -> None:
        self.dirty.set()


# --- metrics and the HTTP endpoint ------------------------------------------------------


class Metrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, int] = {}

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.values[key] = self.values.get(key, 0) + n

    def set(self, key: str, value: int) -> None:
        with self.lock:
            self.values[key] = value

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            flat = dict(self.values)
        nested: dict[str, Any] = {}
        for key, value in sorted(flat.items()):
            node = nested
            *parents, last = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        return nested


_COUNTERS = (
    "filebeat.events.active",
    "filebeat.events.added",
    "filebeat.events.done",
    "filebeat.harvester.open_files",
    "filebeat.harvester.running",
    "filebeat.harvester.started",
    "filebeat.harvester.closed",
    "filebeat.harvester.skipped",
    "libbeat.output.events.acked",
    "libbeat.output.events.failed",
    "libbeat.output.events.total",
    "libbeat.output.events.batches",
    "libbeat.output.events.active",
    "libbeat.output.events.dropped",
    "libbeat.output.write.errors",
    "libbeat.output.read.errors",
    "libbeat.pipeline.events.published",
    "libbeat.pipeline.events.total",
    "libbeat.pipeline.events.active",
    "libbeat.pipeline.events.retry",
    "libbeat.pipeline.events.failed",
    "libbeat.pipeline.events.dropped",
    "libbeat.pipeline.queue.acked",
    "registrar.states.current",
    "registrar.states.update",
    "registrar.states.cleanup",
    "registrar.writes.success",
    "registrar.writes.fail",
    "registrar.writes.total",
)


class Monitor:
    """Filebeat's HTTP endpoint: GET / (beat info) and GET /stats."""

    def __init__(self, host: str, port: int, beat_info: dict[str, Any], metrics: Metrics, started: float) -> None:
        monitor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path, _sep, query = self.path.partition("?")
                if path in ("", "/"):
                    body: Any = beat_info
                elif path.rstrip("/") == "/stats":
                    body = monitor.stats()
                else:
                    self.send_error(404)
                    return
                text = json.dumps(body, indent=2 if "pretty" in query else None).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

        self.metrics = metrics
        self.started = started
        self.beat_info = beat_info
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True

    def stats(self) -> dict[str, Any]:
        stats = self.metrics.snapshot()
        stats.setdefault("libbeat", {}).setdefault("output", {})["type"] = "logstash"
        stats["beat"] = {
            "info": {
                "ephemeral_id": self.beat_info["ephemeral_id"],
                "name": "filebeat",
                "version": VERSION,
                "uptime": {"ms": int((time.monotonic() - self.started) * 1000)},
            },
        }
        return stats

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, name="http", daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the publishing pipeline (queue.mem) -----------------------------------------------


@dataclass
class Event:
    seq: int
    body: str  # the JSON document as sent
    state: FileState
    end: int  # offset after the line: the state's offset once this event is acknowledged


class Pipeline:
    """The memory queue: at most queue.mem.events events between harvesters and the output
    (publishers block when full); batches of up to min(bulk_max_size, flush.min_events)
    once flush.min_events are queued or the oldest waited flush.timeout. ACKs advance
    file offsets strictly in publishing order, as Filebeat's acker does."""

    def __init__(
        self,
        capacity: int,
        min_events: int,
        flush_timeout: float,
        bulk_max_size: int,
        registry: Registry,
        metrics: Metrics,
    ) -> None:
        self.capacity = capacity
        immediate = flush_timeout <= 0 or min_events <= 1
        self.min_events = 1 if immediate else min_events
        self.flush_timeout = 0.0 if immediate else flush_timeout
        limits = [n for n in (bulk_max_size, min_events) if n > 1]
        self.batch_size = min(limits) if limits else capacity
        self.registry = registry
        self.metrics = metrics
        self.cond = threading.Condition()
        self.queue: deque[tuple[float, Event]] = deque()
        self.retry: deque[list[Event]] = deque()
        self.order: deque[Event] = deque()  # every unacknowledged event, in publishing order
        self.acked: set[int] = set()
        self.seq = 0
        self.closed = False

    def active(self) -> int:
        with self.cond:
            return len(self.order)

    def publish(self, body: str, state: FileState, end: int, stop: threading.Event) -> bool:
        with self.cond:
            while len(self.order) >= self.capacity and not stop.is_set():
                self.cond.wait(0.2)
            if stop.is_set():
                return False
            self.seq += 1
            event = Event(self.seq, body, state, end)
            self.queue.append((time.monotonic(), event))
            self.order.append(event)
            state.pending += 1
            self.cond.notify_all()
        for key in ("filebeat.events.added", "libbeat.pipeline.events.published", "libbeat.pipeline.events.total"):
            self.metrics.add(key)
        self._gauges()
        return True

    def get_batch(self, stop: threading.Event) -> list[Event] | None:
        with self.cond:
            while not stop.is_set():
                if self.retry:
                    return self.retry.popleft()
                if self.queue:
                    waited = time.monotonic() - self.queue[0][0]
                    if len(self.queue) >= self.min_events or waited >= self.flush_timeout or self.closed:
                        count = min(self.batch_size, len(self.queue))
                        return [self.queue.popleft()[1] for _n in range(count)]
                    self.cond.wait(self.flush_timeout - waited)
                else:
                    self.cond.wait(0.2)
            return None

    def give_back(self, batch: list[Event]) -> None:
        """A failed batch: retried first, by whichever worker is up (nothing is dropped)."""
        with self.cond:
            self.retry.append(batch)
            self.cond.notify_all()
        self.metrics.add("libbeat.pipeline.events.retry", len(batch))

    def ack(self, batch: list[Event]) -> None:
        changed = False
        with self.cond:
            self.acked.update(e.seq for e in batch)
            while self.order and self.order[0].seq in self.acked:
                event = self.order.popleft()
                self.acked.discard(event.seq)
                event.state.pending -= 1
                if event.end > event.state.offset:
                    event.state.offset = event.end
                    event.state.updated = time.time()
                    changed = True
            self.cond.notify_all()
        self.metrics.add("filebeat.events.done", len(batch))
        self.metrics.add("libbeat.pipeline.queue.acked", len(batch))
        if changed:
            self.metrics.add("registrar.states.update")
            self.registry.mark()
        self._gauges()

    def _gauges(self) -> None:
        active = self.active()
        self.metrics.set("filebeat.events.active", active)
        self.metrics.set("libbeat.pipeline.events.active", active)


# --- the Logstash output (lumberjack v2 over pylogbeat) --------------------------------

_PROTOCOLS = {
    "TLSv1.0": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def ssl_context(section: Mapping[str, Any] | None) -> ssl.SSLContext | None:
    """An SSLContext from Beats' ssl.* settings; None when the section is missing or
    disabled ('SSL settings are disabled if either enabled is set to false or the ssl
    section is missing')."""
    if not section or not section.get("enabled", True):
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cas = section.get("certificate_authorities") or []
    for ca in [cas] if isinstance(cas, str) else cas:
        if ca.lstrip().startswith("-----BEGIN"):
            ctx.load_verify_locations(cadata=ca)
        else:
            ctx.load_verify_locations(cafile=ca)
    if not cas:
        ctx.load_default_certs()
    mode = section.get("verification_mode", "full")
    if mode == "none":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        # full and strict check the name against the SANs (OpenSSL never falls back to
        # the CN, which is what strict adds); certificate checks the chain only.
        ctx.check_hostname = mode in ("full", "strict")
        ctx.verify_mode = ssl.CERT_REQUIRED
    versions = sorted(_PROTOCOLS[p] for p in section.get("supported_protocols") or ["TLSv1.1", "TLSv1.2", "TLSv1.3"])
    with warnings.catch_warnings():
        # Beats' default list starts at TLSv1.1, which Python flags as deprecated; OpenSSL's
        # security level refuses it anyway, as Go does for servers that do.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version, ctx.maximum_version = versions[0], versions[-1]
    if section.get("certificate"):
        ctx.load_cert_chain(section["certificate"], section["key"], password=section.get("key_passphrase"))
    return ctx


def split_host(entry: str, default_port: int = 5044) -> tuple[str, int]:
    host = entry.split("://", 1)[-1]
    if host.startswith("["):
        name, _sep, rest = host[1:].partition("]")
        return name, int(rest.lstrip(":") or default_port)
    if host.count(":") == 1:
        name, _sep, port = host.partition(":")
        return name, int(port)
    return host, default_port


class LumberjackClient(pylogbeat.PyLogBeatClient):
    """pylogbeat's v2 client with what Filebeat's client does differently:

    - each window's sequence numbers start at 1 (pylogbeat counts across windows, which a
      go-lumber server, ACKing the window's event count, never acknowledges);
    - the TLS context is ours (CA list, client certificate, verification mode, protocols)
      and the server name is sent and checked (pylogbeat turns hostname checks off);
    - sends and reads are complete (sendall; ACK frames read to their 6 bytes);
    - compression_level 0 sends plain JSON frames, as Filebeat does.
    """

    def __init__(
        self, host: str, port: int, timeout: float, context: ssl.SSLContext | None, compression_level: int
    ) -> None:
        super().__init__(host, port, timeout=timeout, ssl_enable=context is not None)
        self._context = context
        self._compression_level = compression_level
        self.connected_at = 0.0

    def _log(self, level: int, format_: str, *args: Any, **kwargs: Any) -> None:
        # pylogbeat prints its own plain-text warnings; keep stderr to our JSON lines.
        debug("logstash", format_.format(*args, **kwargs))

    def _create_and_connect_socket(self) -> None:
        self._socket = socket.create_connection((self._host, self._port), timeout=self._timeout)
        self.connected_at = time.monotonic()

    def _setup_ssl_socket(self) -> None:
        assert self._context is not None
        self._socket = self._context.wrap_socket(self._socket, server_hostname=self._host)

    @property
    def tls_version(self) -> str | None:
        return self._socket.version() if isinstance(self._socket, ssl.SSLSocket) else None

    def send(self, elements: list[str]) -> None:
        self._sequence = 0
        super().send(elements)

    def _compress_payload(self, payload: bytes) -> bytes:
        if self._compression_level <= 0:
            return payload
        compressed = zlib.compress(payload, self._compression_level)
        return (
            struct.pack(">BBI", pylogbeat.PROTOCOL_VERSION, pylogbeat.FRAME_TYPE_COMPRESSED_FRAME, len(compressed))
            + compressed
        )

    def _send_window_size(self) -> None:
        self._socket.sendall(
            struct.pack(">BBI", pylogbeat.PROTOCOL_VERSION, pylogbeat.FRAME_TYPE_WINDOW_SIZE, self._window_size)
        )

    def _send_payload(self, compressed_payload: bytes) -> None:
        self._socket.sendall(compressed_payload)

    def _recv_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self._socket.recv(size - len(data))
            if not chunk:
                raise pylogbeat.ConnectionException("connection closed by the server while waiting for ACK")
            data += chunk
        return data

    def _read_ack(self) -> None:
        _version, frame_type, seq = struct.unpack(">BBI", self._recv_exact(6))
        if frame_type != pylogbeat.FRAME_TYPE_ACK:
            raise pylogbeat.ConnectionException(f"No ACK received or wrong frame type 0x{frame_type:02X}")
        self._last_ack = seq

    def probe(self) -> None:
        """'talk to server': an empty window (which servers skip) and a short read, so a
        refused client certificate (reported by TLS 1.3 servers after the handshake) shows."""
        self.connect()
        self._socket.sendall(struct.pack(">BBI", pylogbeat.PROTOCOL_VERSION, pylogbeat.FRAME_TYPE_WINDOW_SIZE, 0))
        self._socket.settimeout(1.0)
        try:
            if self._socket.recv(1) == b"":
                raise pylogbeat.ConnectionException("connection closed by the server")
        except TimeoutError:
            pass


class Worker(threading.Thread):
    """One output worker: takes batches from the pipeline, sends, ACKs; on error gives the
    batch back and backs off (backoff.init doubling up to backoff.max)."""

    def __init__(
        self,
        name: str,
        hosts: list[tuple[str, int]],
        failover: bool,
        settings: Mapping[str, Any],
        pipeline: Pipeline,
        metrics: Metrics,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.hosts = hosts
        self.failover = failover
        self.pipeline = pipeline
        self.metrics = metrics
        self.stop = stop
        self.timeout = ref.duration(settings.get("timeout", "30s"))
        self.backoff_init = ref.duration(settings.get("backoff", {}).get("init", "1s"))
        self.backoff_max = ref.duration(settings.get("backoff", {}).get("max", "60s"))
        # ttl only applies to synchronous clients (pipelining: 0), as documented.
        self.ttl = ref.duration(settings.get("ttl", 0)) if settings.get("pipelining", 2) == 0 else 0
        self.context = ssl_context(settings.get("ssl"))
        self.compression = int(settings.get("compression_level", 3))
        self.client: LumberjackClient | None = None
        self.host = random.choice(hosts)  # noqa: S311 - Filebeat picks a host at random

    def _connect(self) -> LumberjackClient:
        if self.client is not None and self.ttl > 0 and time.monotonic() - self.client.connected_at > self.ttl:
            self._close()
        if self.client is None:
            client = LumberjackClient(
                *self.host, timeout=self.timeout, context=self.context, compression_level=self.compression
            )
            client.connect()
            info(
                "publisher_pipeline_output",
                f"Connection to backoff(async(tcp://{self.host[0]}:{self.host[1]})) established",
            )
            self.client = client
        return self.client

    def abort(self) -> None:
        """Shutdown: break a send or an ACK wait that would otherwise last up to timeout."""
        client = self.client
        sock = getattr(client, "_socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
            self.client = None

    def run(self) -> None:
        backoff = self.backoff_init
        while not self.stop.is_set():
            batch = self.pipeline.get_batch(self.stop)
            if batch is None:
                break
            self.metrics.add("libbeat.output.events.batches")
            self.metrics.add("libbeat.output.events.total", len(batch))
            self.metrics.add("libbeat.output.events.active", len(batch))
            try:
                self._connect().send([e.body for e in batch])
            except (OSError, pylogbeat.ConnectionException, ssl.SSLError) as exc:
                self.metrics.add("libbeat.output.events.active", -len(batch))
                self.metrics.add("libbeat.output.events.failed", len(batch))
                self.metrics.add("libbeat.output.write.errors")
                error("logstash", f"Failed to publish events caused by: {exc}", host=f"{self.host[0]}:{self.host[1]}")
                self._close()
                self.pipeline.give_back(batch)
                if self.failover and len(self.hosts) > 1:
                    self.host = random.choice([h for h in self.hosts if h != self.host])  # noqa: S311
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max) if backoff > 0 else self.backoff_init
                continue
            backoff = self.backoff_init
            self.metrics.add("libbeat.output.events.active", -len(batch))
            self.metrics.add("libbeat.output.events.acked", len(batch))
            self.pipeline.ack(batch)
        self._close()


def start_workers(
    output: Mapping[str, Any], pipeline: Pipeline, metrics: Metrics, stop: threading.Event
) -> list[Worker]:
    hosts_cfg = output["hosts"]
    hosts = [split_host(h) for h in ([hosts_cfg] if isinstance(hosts_cfg, str) else hosts_cfg)]
    count = max(1, int(output.get("worker", 1)))
    workers = []
    if output.get("loadbalance", False):
        # Every host gets `worker` connections; batches go to whichever is free.
        for host in hosts:
            workers += [
                Worker(f"lumberjack-{host[0]}:{host[1]}-{n}", [host], False, output, pipeline, metrics, stop)
                for n in range(count)
            ]
    else:
        # One host at a time (chosen at random), another when it fails.
        workers = [
            Worker(f"lumberjack-failover-{n}", hosts, True, output, pipeline, metrics, stop) for n in range(count)
        ]
    for worker in workers:
        worker.start()
    return workers


# --- the Kafka output (kafka-python) ----------------------------------------------------

_FMT_FIELD = re.compile(r"%\{\[([^\]]+)\](?::([^}]*))?\}")


def format_string(template: str, doc: Mapping[str, Any]) -> str:
    """Beats' format strings for event fields: ``%{[a.b]}`` is the field a.b (nested or a
    dotted key), ``%{[a.b]:default}`` falls back to default; a missing field without one is
    an error (KeyError), as Filebeat's fmtstr reports it."""

    def lookup(path: str) -> Any:
        node: Any = doc
        if path in node:
            return node[path]
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise KeyError(f"key not found: {path}")
            node = node[part]
        return node

    def one(match: re.Match[str]) -> str:
        try:
            value = lookup(match.group(1))
        except KeyError:
            if match.group(2) is None:
                raise
            return match.group(2)
        if isinstance(value, Mapping | list):
            raise KeyError(f"not a value: {match.group(1)}")
        return str(value).lower() if isinstance(value, bool) else str(value)

    return _FMT_FIELD.sub(one, template)


# Filebeat's compression names as kafka-python's producer spells them; snappy and zstd need
# python-snappy / zstandard, which the stand-in does not carry.
_KAFKA_COMPRESSION = {"none": None, "gzip": "gzip", "lz4": "lz4"}
_KAFKA_ACKS: dict[int, Any] = {-1: "all", 0: 0, 1: 1}


def kafka_settings(output: Mapping[str, Any]) -> dict[str, Any]:
    """kafka-python's KafkaProducer settings for output.kafka (raises Exit for what the
    stand-in does not run)."""
    compression = str(output.get("compression", "gzip"))
    if compression not in _KAFKA_COMPRESSION:
        raise Exit(f"output.kafka.compression {compression} is accepted by `test config` but not run by the stand-in")
    if compression == "lz4":
        try:
            import lz4.frame  # noqa: F401
        except ImportError as exc:
            raise Exit(f"output.kafka.compression lz4 needs the lz4 module (python3-lz4): {exc}") from None
    hosts_cfg = output["hosts"]
    hosts = [split_host(h, 9092) for h in ([hosts_cfg] if isinstance(hosts_cfg, str) else hosts_cfg)]
    context = ssl_context(output.get("ssl"))
    settings: dict[str, Any] = {
        "bootstrap_servers": [f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p in hosts],
        "client_id": str(output.get("client_id", "beats")),
        "acks": _KAFKA_ACKS[int(output.get("required_acks", 1))],
        "compression_type": _KAFKA_COMPRESSION[compression],
        "request_timeout_ms": int(ref.duration(output.get("timeout", "30s")) * 1000),
        "max_block_ms": int(ref.duration(output.get("timeout", "30s")) * 1000),
        "retries": 0,  # the worker retries whole batches, with backoff
        "linger_ms": 0,
        "security_protocol": "SSL" if context is not None else "PLAINTEXT",
    }
    if context is not None:
        settings["ssl_context"] = context
    return settings


class KafkaWorker(threading.Thread):
    """The Kafka output's client: one producer (kafka-python); each batch's events are sent
    to the topic their format string names, the producer flushed, and only the events the
    broker acknowledged (required_acks) are ACKed to the pipeline, which then advances the
    registry; the others are given back and the worker backs off (backoff.init doubling up
    to backoff.max), reconnecting. Events whose topic cannot be formatted are dropped."""

    def __init__(self, output: Mapping[str, Any], pipeline: Pipeline, metrics: Metrics, stop: threading.Event) -> None:
        super().__init__(name="kafka-output", daemon=True)
        self.settings = kafka_settings(output)
        self.topic = str(output["topic"])
        self.pipeline = pipeline
        self.metrics = metrics
        self.stop = stop
        self.backoff_init = ref.duration(output.get("backoff", {}).get("init", "1s"))
        self.backoff_max = ref.duration(output.get("backoff", {}).get("max", "60s"))
        self.producer: Any = None

    def _connect(self) -> Any:
        if self.producer is None:
            import logging

            from kafka import KafkaProducer

            # kafka-python's own log lines would be plain text among our JSON lines.
            logging.getLogger("kafka").addHandler(logging.NullHandler())
            logging.getLogger("kafka").propagate = False
            self.producer = KafkaProducer(**self.settings)
            info("kafka", f"Connection to kafka({','.join(self.settings['bootstrap_servers'])}) established")
        return self.producer

    def abort(self) -> None:
        pass

    def _close(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(Exception):
                self.producer.close(timeout=5)
            self.producer = None

    def _send(self, batch: list[Event]) -> tuple[list[Event], list[Event], list[Event]]:
        """(acknowledged, dropped, failed) events of a batch."""
        producer = self._connect()
        futures, dropped = [], []
        for event in batch:
            try:
                topic = format_string(self.topic, json.loads(event.body))
            except KeyError as exc:
                error("kafka", f"Dropping event: no topic could be selected: {exc}")
                dropped.append(event)
                continue
            futures.append((event, producer.send(topic, event.body.encode())))
        producer.flush(timeout=self.settings["request_timeout_ms"] / 1000)
        acked, failed, last = [], [], None
        for event, future in futures:
            try:
                future.get(timeout=0)
                acked.append(event)
            except Exception as exc:  # the broker's error, a timeout, a closed connection
                failed.append(event)
                last = exc
        if failed:
            error("kafka", f"Kafka publish failed with: {last}", count=len(failed))
        return acked, dropped, failed

    def run(self) -> None:
        backoff = self.backoff_init
        while not self.stop.is_set():
            batch = self.pipeline.get_batch(self.stop)
            if batch is None:
                break
            self.metrics.add("libbeat.output.events.batches")
            self.metrics.add("libbeat.output.events.total", len(batch))
            try:
                acked, dropped, failed = self._send(batch)
            except Exception as exc:  # no broker reachable, a refused handshake
                acked, dropped, failed = [], [], batch
                error("kafka", f"Failed to connect to broker: {exc}", hosts=self.settings["bootstrap_servers"])
                self._close()
            self.metrics.add("libbeat.output.events.acked", len(acked))
            self.metrics.add("libbeat.output.events.dropped", len(dropped))
            if acked or dropped:
                self.pipeline.ack(acked + dropped)
            if failed:
                self.metrics.add("libbeat.output.events.failed", len(failed))
                self.metrics.add("libbeat.output.write.errors")
                self.pipeline.give_back(failed)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max) if backoff > 0 else self.backoff_init
                continue
            backoff = self.backoff_init
        self._close()


# --- the filestream input --------------------------------------------------------------


@dataclass
class InputConfig:
    id: str
    paths: list[str]
    fields: dict[str, Any]
    fields_under_root: bool
    tags: list[str]
    identity: str
    check_interval: float
    exclude: list[re.Pattern[str]]
    include: list[re.Pattern[str]]
    symlinks: bool
    recursive_glob: bool
    ignore_older: float
    inactive: float
    close_renamed: bool
    close_removed: bool
    state_check: float
    close_eof: bool
    clean_inactive: float
    clean_removed: bool
    harvester_limit: int
    backoff_init: float
    backoff_max: float

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> InputConfig:
        def get(key: str) -> Any:
            return ref.input_setting(item, key)

        identity = next(iter(item.get("file_identity") or {"native": None}))
        return cls(
            id=str(item.get("id", "")),
            paths=[get("paths")] if isinstance(get("paths"), str) else list(get("paths")),
            fields=dict(get("fields") or {}),
            fields_under_root=bool(get("fields_under_root")),
            tags=list(get("tags") or []),
            identity=identity,
            check_interval=ref.duration(get("prospector.scanner.check_interval")),
            exclude=[re.compile(p) for p in get("prospector.scanner.exclude_files") or []],
            include=[re.compile(p) for p in get("prospector.scanner.include_files") or []],
            symlinks=bool(get("prospector.scanner.symlinks")),
            recursive_glob=bool(get("prospector.scanner.recursive_glob")),
            ignore_older=ref.duration(get("ignore_older")),
            inactive=ref.duration(get("close.on_state_change.inactive")),
            close_renamed=bool(get("close.on_state_change.renamed")),
            close_removed=bool(get("close.on_state_change.removed")),
            state_check=ref.duration(get("close.on_state_change.check_interval")),
            close_eof=bool(get("close.reader.on_eof")),
            clean_inactive=ref.duration(get("clean_inactive")),
            clean_removed=bool(get("clean_removed")),
            harvester_limit=int(get("harvester_limit")),
            backoff_init=ref.duration(get("backoff.init")),
            backoff_max=ref.duration(get("backoff.max")),
        )


class Beat:
    """What every event carries about this Beat."""

    def __init__(self, name: str, tags: list[str], index: str, beat_id: str) -> None:
        self.hostname = socket.gethostname()
        self.name = name or self.hostname
        self.tags = tags
        self.index = index
        self.id = beat_id
        self.ephemeral_id = str(uuid.uuid4())

    def event(self, cfg: InputConfig, message: str, path: str, offset: int) -> str:
        doc: dict[str, Any] = {
            "@timestamp": _now(),
            "@metadata": {"beat": self.index, "type": "_doc", "version": VERSION},
            "message": message,
            "log": {"file": {"path": path}, "offset": offset},
            "input": {"type": "filestream"},
            "agent": {
                "type": "filebeat",
                "version": VERSION,
                "name": self.name,
                "id": self.id,
                "ephemeral_id": self.ephemeral_id,
            },
            "host": {"name": self.name},
            "ecs": {"version": ECS_VERSION},
        }
        tags = self.tags + cfg.tags
        if tags:
            doc["tags"] = tags
        if cfg.fields:
            if cfg.fields_under_root:
                _deep_merge(doc, json.loads(json.dumps(cfg.fields)))
            else:
                doc["fields"] = cfg.fields
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


class Harvester(threading.Thread):
    """Reads one open file from its state's read offset: one event per completed line
    (without the newline; a line without its newline yet waits), until inactive, EOF
    (close.reader.on_eof), rename or removal (when those close options are on), or stop."""

    def __init__(self, prospector: Prospector, state: FileState, fd: int) -> None:
        super().__init__(name=f"harvester-{state.source}", daemon=True)
        self.prospector = prospector
        self.state = state
        self.fd = fd
        self.stop = threading.Event()

    def _should_close(self, cfg: InputConfig) -> str | None:
        st = os.fstat(self.fd)
        if cfg.close_removed and st.st_nlink == 0:
            return "removed"
        if cfg.close_renamed:
            try:
                now = os.stat(self.state.source)
                if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                    return "renamed"
            except FileNotFoundError:
                return "renamed"
        return None

    def run(self) -> None:
        p = self.prospector
        cfg, state, stop = p.cfg, self.state, p.stop
        metrics = p.metrics
        metrics.add("filebeat.harvester.started")
        metrics.add("filebeat.harvester.running")
        metrics.add("filebeat.harvester.open_files")
        buf = b""
        pos = state.read_offset  # start of the unfinished line in buf
        os.lseek(self.fd, pos, os.SEEK_SET)
        last_read = time.monotonic()
        last_check = 0.0
        backoff = cfg.backoff_init
        reason = "stopped"
        try:
            while not stop.is_set() and not self.stop.is_set():
                chunk = os.read(self.fd, 65536)
                if chunk:
                    buf += chunk
                    while (newline := buf.find(b"\n")) >= 0:
                        line, buf = buf[:newline], buf[newline + 1 :]
                        end = pos + newline + 1
                        text = line.removesuffix(b"\r").decode("utf-8", errors="replace")
                        body = p.beat.event(cfg, text, state.source, pos)
                        if not p.pipeline.publish(body, state, end, stop):
                            return
                        pos = state.read_offset = end
                    last_read = time.monotonic()
                    backoff = cfg.backoff_init
                    continue
                size = os.fstat(self.fd).st_size
                if size < pos + len(buf):
                    # Truncated under us: Filebeat starts such a file again from offset 0.
                    warn("input.filestream", f"File was truncated. Reading file from offset 0. Path={state.source}")
                    buf, pos = b"", 0
                    state.read_offset = state.offset = 0
                    os.lseek(self.fd, 0, os.SEEK_SET)
                    continue
                if cfg.close_eof:
                    reason = "EOF"
                    break
                if time.monotonic() - last_read >= cfg.inactive:
                    reason = "inactive"
                    break
                if time.monotonic() - last_check >= min(cfg.state_check, backoff):
                    last_check = time.monotonic()
                    if closing := self._should_close(cfg):
                        reason = closing
                        break
                if stop.wait(backoff) or self.stop.is_set():
                    break
                backoff = min(backoff * 2, cfg.backoff_max) if backoff > 0 else cfg.backoff_init
        finally:
            os.close(self.fd)
            metrics.add("filebeat.harvester.running", -1)
            metrics.add("filebeat.harvester.open_files", -1)
            metrics.add("filebeat.harvester.closed")
            debug("input.harvester", f"Stopped harvester for file ({reason})", **{"log.file.path": state.source})
            with p.registry.lock:
                state.harvester = None


class Prospector(threading.Thread):
    """Scans an input's paths every check_interval; starts harvesters for new and grown
    files; applies ignore_older, clean_removed and clean_inactive to its states."""

    def __init__(
        self,
        cfg: InputConfig,
        registry: Registry,
        pipeline: Pipeline,
        beat: Beat,
        metrics: Metrics,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"prospector-{cfg.id}", daemon=True)
        self.cfg = cfg
        self.registry = registry
        self.pipeline = pipeline
        self.beat = beat
        self.metrics = metrics
        self.stop = stop
        self.harvesters: list[Harvester] = []

    def key(self, identity: tuple[Any, ...]) -> str:
        if self.cfg.identity == "path":
            return f"filestream::{self.cfg.id}::path::{identity[0]}"
        return f"filestream::{self.cfg.id}::native::{identity[1]}-{identity[0]}"

    def identity(self, path: str, st: os.stat_result) -> tuple[Any, ...]:
        return (path,) if self.cfg.identity == "path" else (st.st_dev, st.st_ino)

    def matches(self) -> dict[str, os.stat_result]:
        found: dict[str, os.stat_result] = {}
        for pattern in self.cfg.paths:
            for path in glob.glob(pattern, recursive=self.cfg.recursive_glob and "**" in pattern):
                if self.cfg.exclude and any(r.search(path) for r in self.cfg.exclude):
                    continue
                if self.cfg.include and not any(r.search(path) for r in self.cfg.include):
                    continue
                try:
                    lst = os.lstat(path)
                    if stat.S_ISLNK(lst.st_mode) and not self.cfg.symlinks:
                        continue
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    found[path] = st
        return found

    def run(self) -> None:
        info("input.filestream", "Input 'filestream' starting", id=self.cfg.id)
        while not self.stop.is_set():
            try:
                self.scan()
            except Exception as exc:  # a scan error must not end the input
                error("input.filestream", f"scan failed: {exc!r}", id=self.cfg.id)
            self.stop.wait(self.cfg.check_interval)
        for harvester in self.harvesters:
            harvester.stop.set()
        for harvester in self.harvesters:
            harvester.join(5)

    def _running(self) -> int:
        self.harvesters = [h for h in self.harvesters if h.is_alive()]
        return len(self.harvesters)

    def scan(self) -> None:
        cfg, now = self.cfg, time.time()
        seen: set[str] = set()
        for path, st in sorted(self.matches().items()):
            key = self.key(self.identity(path, st))
            seen.add(key)
            with self.registry.lock:
                state = self.registry.states.get(key)
                old = cfg.ignore_older > 0 and now - st.st_mtime > cfg.ignore_older
                if state is None:
                    state = FileState(key, cfg.id, self.identity(path, st), path, ttl=cfg.clean_inactive)
                    if old:
                        # 'For files which were never seen before, the offset state is set
                        # to the end of the file.'
                        state.offset = state.read_offset = st.st_size
                    self.registry.states[key] = state
                    self.registry.mark()
                state.gone_since = None
                if state.source != path:
                    debug("input.filestream", f"File {state.source} has been renamed to {path}")
                    state.source, state.updated = path, now
                    self.registry.mark()
                if state.harvester is not None:
                    continue
                if old:
                    if state.pending == 0 and state.offset < st.st_size:
                        state.offset = state.read_offset = st.st_size  # 'reset to the size of the file'
                        self.registry.mark()
                    continue
                if st.st_size < state.read_offset and state.pending == 0:
                    state.offset = state.read_offset = 0  # truncated while closed
                if st.st_size <= state.read_offset:
                    continue
                if cfg.harvester_limit and self._running() >= cfg.harvester_limit:
                    self.metrics.add("filebeat.harvester.skipped")
                    continue
                self._start(state, path)
        self._clean(seen, now)

    def _start(self, state: FileState, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            error("input.filestream", f"Failed opening {path}: {exc}")
            return
        st = os.fstat(fd)
        if self.cfg.identity != "path" and (st.st_dev, st.st_ino) != tuple(state.identity):
            os.close(fd)  # replaced between the scan and the open: next scan
            return
        harvester = Harvester(self, state, fd)
        state.harvester = harvester
        self.harvesters.append(harvester)
        info("input.harvester", "Harvester started", **{"log.file.path": path, "id": self.cfg.id})
        harvester.start()

    def _clean(self, seen: set[str], now: float) -> None:
        cfg = self.cfg
        with self.registry.lock:
            for key, state in list(self.registry.states.items()):
                if state.input_id != cfg.id or state.harvester is not None or state.pending:
                    continue
                if key not in seen:
                    state.gone_since = state.gone_since or now
                    if cfg.clean_removed:
                        del self.registry.states[key]
                        self.metrics.add("registrar.states.cleanup")
                        self.registry.mark()
                        continue
                if cfg.clean_inactive > 0 and now - state.updated > cfg.clean_inactive:
                    del self.registry.states[key]
                    self.metrics.add("registrar.states.cleanup")
                    self.registry.mark()


# --- commands ---------------------------------------------------------------------------


def beat_meta(data: Path) -> dict[str, str]:
    """path.data/meta.json: the Beat's persistent uuid, as Filebeat keeps it."""
    meta = data / "meta.json"
    if meta.is_file():
        return json.loads(meta.read_text())
    record = {"uuid": str(uuid.uuid4()), "first_start": _now()}
    tmp = meta.with_suffix(".new")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, meta)
    return record


def lock_data_path(data: Path) -> int:
    fd = os.open(data / "filebeat.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Exit(
            "data path already locked by another beat. Please make sure that multiple beats are not sharing "
            "the same data path (path.data)"
        ) from None
    os.write(fd, str(os.getpid()).encode())
    return fd


def run(settings: Settings) -> int:
    config = settings.config
    kafka = ref.lookup(config, "output.kafka")
    output = ref.lookup(config, "output.logstash")
    if kafka and kafka.get("enabled", True):
        if output and output.get("enabled", True):
            raise Exit("more than one output is enabled (output.logstash and output.kafka)")
        output = kafka
    elif not output or not output.get("enabled", True):
        raise Exit("No outputs are defined. Please define one under the output section.")
    else:
        kafka = None
    Log.level = _LEVELS[ref.setting(config, "logging.level")]
    for problem in ref.documented_constraints(config):
        warn("input.filestream", f"configuration against the documentation: {problem}")
    data = settings.paths["data"]
    data.mkdir(parents=True, exist_ok=True, mode=0o750)
    lock_fd = lock_data_path(data)
    meta = beat_meta(data)

    stop = threading.Event()  # inputs and outputs
    metrics = Metrics()
    for key in _COUNTERS:
        metrics.set(key, 0)
    registry_root = Path(_resolve(ref.setting(config, "filebeat.registry.path"), config))
    if not registry_root.is_absolute():
        registry_root = data / registry_root
    registry = Registry(
        registry_root,
        int(str(ref.setting(config, "filebeat.registry.file_permissions")), 8),
        ref.duration(ref.setting(config, "filebeat.registry.flush")),
        metrics,
    )
    registry.load()
    if ref.lookup(config, "queue.disk") is not None:
        # Accepted, held in memory: unacknowledged lines are re-read from the files.
        Path(_resolve(ref.setting(config, "queue.disk.path"), config)).mkdir(parents=True, exist_ok=True)
        capacity, min_events, flush_timeout = 65536, 0, 0.0
    else:
        capacity = int(ref.setting(config, "queue.mem.events"))
        min_events = int(ref.setting(config, "queue.mem.flush.min_events"))
        flush_timeout = ref.duration(ref.setting(config, "queue.mem.flush.timeout"))
    pipeline = Pipeline(capacity, min_events, flush_timeout, int(output.get("bulk_max_size", 2048)), registry, metrics)
    beat = Beat(
        str(ref.lookup(config, "name") or ""),
        list(ref.setting(config, "tags") or []),
        "filebeat" if kafka else str(output.get("index", "filebeat")),
        meta["uuid"],
    )
    beat_info = {
        "beat": "filebeat",
        "binary_arch": ARCH,
        "build_commit": BUILD_COMMIT,
        "ephemeral_id": beat.ephemeral_id,
        "hostname": beat.hostname,
        "name": beat.name,
        "uuid": beat.id,
        "version": VERSION,
    }
    started = time.monotonic()
    monitor = None
    if ref.setting(config, "http.enabled"):
        monitor = Monitor(
            str(ref.setting(config, "http.host")), int(ref.setting(config, "http.port")), beat_info, metrics, started
        )
        monitor.start()
        info("api", f"Starting stats endpoint on {ref.setting(config, 'http.host')}:{ref.setting(config, 'http.port')}")

    terminate = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        info("service", f"Received signal {signal.Signals(signum).name}, stopping")
        terminate.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    info("filebeat", f"filebeat start running. version={VERSION}", **{"service.name": "filebeat"})
    output_stop = threading.Event()
    registrar_stop = threading.Event()
    if kafka:
        kafka_worker = KafkaWorker(kafka, pipeline, metrics, output_stop)
        kafka_worker.start()
        workers: list[Worker | KafkaWorker] = [kafka_worker]
    else:
        workers = list(start_workers(output, pipeline, metrics, output_stop))
    registrar = threading.Thread(target=registry.run, args=(registrar_stop,), name="registrar", daemon=True)
    registrar.start()
    prospectors = []
    for item in ref.lookup(config, "filebeat.inputs", []) or []:
        if not ref.input_setting(item, "enabled"):
            continue
        prospector = Prospector(InputConfig.of(item), registry, pipeline, beat, metrics, stop)
        prospector.start()
        prospectors.append(prospector)
    metrics_period = ref.duration(ref.setting(config, "logging.metrics.period"))
    next_metrics = time.monotonic() + metrics_period
    while not terminate.wait(0.5):
        if ref.setting(config, "logging.metrics.enabled") and time.monotonic() >= next_metrics:
            next_metrics += metrics_period
            info(
                "monitoring",
                f"Non-zero metrics in the last {metrics_period:g}s",
                monitoring={"metrics": metrics.snapshot()},
            )

    # Shutdown: stop reading, let the output drain for shutdown_timeout, save the registry.
    info("filebeat", "Stopping filebeat")
    stop.set()
    for prospector in prospectors:
        prospector.join(10)
    deadline = time.monotonic() + ref.duration(ref.setting(config, "filebeat.shutdown_timeout"))
    while pipeline.active() and time.monotonic() < deadline:
        time.sleep(0.05)
    output_stop.set()
    with pipeline.cond:
        pipeline.cond.notify_all()
    for worker in workers:
        worker.abort()
    for worker in workers:
        worker.join(5)
    registrar_stop.set()
    registrar.join(5)
    registry.save()
    if monitor:
        monitor.stop()
    os.close(lock_fd)
    info("filebeat", "filebeat stopped.", **{"service.name": "filebeat"})
    return 0


def test_output(settings: Settings, out: Callable[[str], None] = print) -> int:
    """`filebeat test output`: dial every host with the configured TLS, as Filebeat does."""
    output = ref.lookup(settings.config, "output.logstash")
    if not output:
        out("the stand-in tests output.logstash only")
        return 1
    hosts = output["hosts"] if isinstance(output["hosts"], list) else [output["hosts"]]
    failed = False
    for entry in hosts:
        host, port = split_host(entry)
        out(f"logstash: {host}:{port}...")
        out("  connection...")
        out("    parse host... OK")
        try:
            addresses = sorted({a[4][0] for a in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})
            out("    dns lookup... OK")
            out(f"    addresses: {', '.join(addresses)}")
            context = ssl_context(output.get("ssl"))
            client = LumberjackClient(
                host, port, timeout=ref.duration(output.get("timeout", "30s")), context=context, compression_level=0
            )
            client._create_and_connect_socket()
            out("    dial up... OK")
            if context is None:
                out("  TLS... WARN secure connection disabled")
            else:
                out("  TLS...")
                verified = context.verify_mode != ssl.CERT_NONE
                out(f"    security: server's certificate chain verification is {'enabled' if verified else 'disabled'}")
                client._setup_ssl_socket()
                out("    handshake... OK")
                out(f"    TLS version: {client.tls_version}")
                out("    dial up... OK")
            client.probe()
            out("  talk to server... OK")
            client.close()
        except (OSError, pylogbeat.ConnectionException, ssl.SSLError) as exc:
            out(f"    ... ERROR {exc}")
            failed = True
    return 1 if failed else 0


USAGE = """Usage:
  filebeat [flags]
  filebeat [command]

Available Commands:
  run         Run filebeat
  test        Test config / output
  version     Show current version info
"""


def main(argv: Iterable[str] | None = None) -> int:
    try:
        args = parse_args(list(sys.argv[1:] if argv is None else argv))
        if args.debug:
            Log.level = 10
        words = args.words or ["run"]
        if words[0] == "version":
            print(f"filebeat version {VERSION} ({ARCH}), libbeat {VERSION} [{BUILD_COMMIT} built stand-in]")
            return 0
        if words[0] == "help":
            print(USAGE)
            return 0
        if words[0] == "test" and words[1:2] == ["config"]:
            settings = load_settings(args)
            for problem in ref.documented_constraints(settings.config):
                print(f"WARNING: {problem}", file=sys.stderr)
            print("Config OK")
            return 0
        if words[0] == "test" and words[1:2] == ["output"]:
            return test_output(load_settings(args))
        if words[0] != "run" or len(words) > 1:
            raise Exit(f'unknown command "{" ".join(words)}" for "filebeat"')
        return run(load_settings(args))
    except Exit as exc:
        print(f"Exiting: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
