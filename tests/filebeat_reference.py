"""The Filebeat 8.19 options our filebeat.yml may use: key, type, default, and the page of
Elastic's Filebeat reference each comes from. One table serves the Filebeat stand-in's
``test config`` (tests/filebeat_standin, which gets a copy of this file beside it on a
test host: stdlib only, importable by path) and the unit test of the role's rendered
configuration.

Keys are dotted paths as go-ucfg reads them (``a.b: x`` is ``a: {b: x}``); per-input keys
are ``filebeat.inputs[].<key>``. Real Filebeat ignores most keys it does not know; this
table is stricter on purpose, so a misspelt key in the role fails a test instead of being
silently dropped. Keys the stand-in does not implement (``parsers``, ``processors``,
``file_identity.fingerprint``, ...) are left out, so they are refused too.

Pages (Elastic's Filebeat reference 8.19; the asciidoc sources of the same pages in
elastic/beats were read where the rendered page was not at hand):
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

VERSION = "8.19.0"
_REF = "https://www.elastic.co/guide/en/beats/filebeat/8.19/"
PAGES = {
    "filestream": _REF + "filebeat-input-filestream.html",
    "general": _REF + "configuration-general-options.html",
    "paths": _REF + "configuration-path.html",
    "queue": _REF + "configuring-internal-queue.html",
    "logstash": _REF + "logstash-output.html",
    "kafka": _REF + "kafka-output.html",
    "ssl": _REF + "configuration-ssl.html",
    "http": _REF + "http-endpoint.html",
    "logging": _REF + "configuration-logging.html",
    "perms": "https://www.elastic.co/guide/en/beats/libbeat/8.19/config-file-permissions.html",
    # 9.x: the filestream page that documents fingerprint as the default identity.
    "filestream_9": "https://www.elastic.co/docs/reference/beats/filebeat/filebeat-input-filestream",
    # The 8.16/8.17 release notes list the clean_inactive known issues quoted below.
    "known_issues": "https://www.elastic.co/guide/en/beats/libbeat/current/release-notes-8.17.10.html",
}

# Documented facts that decide how Zeek's logs must be read (notes, not configuration).
NOTES = {
    "rotation": (
        "zeekctl rotates by renaming current/<log>.log to <log>.<timestamp>.log (out of "
        "the input's paths), then its archiver moves it to logs/<date>/ and gzips it (a new "
        "file; the renamed one is deleted). With file_identity native (device+inode) the "
        "renamed file is the same file: with close.on_state_change.renamed false (default) "
        "the open harvester keeps reading it to its end, because the file handle does not "
        "depend on the name; with close.on_state_change.removed false it also survives the "
        "archiver's delete. A harvester that was already closed (inactive) when the rename "
        "happened does not pick the file up again: 'if the file is moved or deleted while "
        "the harvester is closed, Filebeat will not be able to pick up the file again, and "
        "any data that the harvester hasn't read will be lost' (filestream, close.*). So "
        "close.on_state_change.inactive must be longer than the gap between a log's writes "
        "and the rotation, and the .gz archives must not be in paths (they are new files)."
    ),
    "close_defaults": (
        "close.on_state_change.inactive 5m (counted from the last line read, not mtime); "
        "close.on_state_change.renamed false; close.on_state_change.removed true; "
        "close.on_state_change.check_interval 5s; close.reader.on_eof false."
    ),
    "close_removed_vs_clean_removed": (
        "close.on_state_change.removed: 'This option is enabled by default. If you disable "
        "this option, you must also disable clean_removed' (filestream). clean_removed "
        "(default true) drops a file's state once it is not found under its last known "
        "name, which includes files renamed after the harvester finished."
    ),
    "clean_inactive": (
        "clean_inactive removes a file's state after that period of inactivity; the state "
        "'can only be removed if the file is already ignored' (older than ignore_older), "
        "and clean_inactive 'must be greater than ignore_older + "
        "prospector.scanner.check_interval'. Known issue in 8.16-8.19: filestream does not "
        "enforce this restriction, and clean_inactive: 0 cleans every state on start "
        "(re-ingesting everything); -1 disables it (the default)."
    ),
    "ignore_older": (
        "ignore_older (default 0, off) must be greater than close.on_state_change.inactive. "
        "A file never seen before and older than ignore_older gets its offset set to the "
        "end of the file; an existing state is moved to the file's size."
    ),
    "file_identity": (
        "8.x: native (device+inode) is the default; path and inode_marker exist; "
        "fingerprint needs prospector.scanner.fingerprint.enabled (off in 8.x). 9.x: "
        "fingerprint is the default identity and files are only ingested once they reach "
        "1024 bytes (prospector.scanner.fingerprint.length). Changing file_identity between "
        "runs may duplicate events: pin file_identity.native explicitly so an upgrade to "
        "9.x does not switch identity under the registry."
    ),
    "backoff": "filestream backoff.init <= backoff.max <= prospector.scanner.check_interval.",
}


@dataclass(frozen=True)
class Option:
    kind: str  # see _check()
    default: Any
    page: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None


def _o(kind: str, default: Any, page: str, choices: tuple[str, ...] = (), minimum: float | None = None) -> Option:
    return Option(kind, default, PAGES[page], choices, minimum)


_SSL_PROTOCOLS = ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")


def _ssl(prefix: str) -> dict[str, Option]:
    return {
        f"{prefix}.ssl.enabled": _o("bool", True, "ssl"),
        f"{prefix}.ssl.certificate_authorities": _o("list[str]", [], "ssl"),
        f"{prefix}.ssl.certificate": _o("path", None, "ssl"),
        f"{prefix}.ssl.key": _o("path", None, "ssl"),
        f"{prefix}.ssl.key_passphrase": _o("str", None, "ssl"),
        f"{prefix}.ssl.verification_mode": _o("enum", "full", "ssl", ("full", "strict", "certificate", "none")),
        f"{prefix}.ssl.supported_protocols": _o("list[enum]", ["TLSv1.1", "TLSv1.2", "TLSv1.3"], "ssl", _SSL_PROTOCOLS),
    }


INPUT = "filebeat.inputs[]"

OPTIONS: dict[str, Option] = {
    # filestream input (prospector, close.*, clean_*, backoff, file_identity)
    f"{INPUT}.type": _o("enum", None, "filestream", ("filestream",)),
    f"{INPUT}.id": _o("str", None, "filestream"),
    f"{INPUT}.enabled": _o("bool", True, "filestream"),
    f"{INPUT}.paths": _o("list[str]", [], "filestream"),
    f"{INPUT}.fields": _o("map", {}, "filestream"),
    f"{INPUT}.fields_under_root": _o("bool", False, "filestream"),
    f"{INPUT}.tags": _o("list[str]", [], "filestream"),
    f"{INPUT}.file_identity.native": _o("null_or_map", None, "filestream"),
    f"{INPUT}.file_identity.path": _o("null_or_map", None, "filestream"),
    f"{INPUT}.prospector.scanner.check_interval": _o("duration", "10s", "filestream", minimum=0),
    f"{INPUT}.prospector.scanner.exclude_files": _o("list[regex]", [], "filestream"),
    f"{INPUT}.prospector.scanner.include_files": _o("list[regex]", [], "filestream"),
    f"{INPUT}.prospector.scanner.symlinks": _o("bool", False, "filestream"),
    f"{INPUT}.prospector.scanner.recursive_glob": _o("bool", True, "filestream"),
    f"{INPUT}.ignore_older": _o("duration", "0", "filestream", minimum=0),
    f"{INPUT}.close.on_state_change.inactive": _o("duration", "5m", "filestream", minimum=0),
    f"{INPUT}.close.on_state_change.renamed": _o("bool", False, "filestream"),
    f"{INPUT}.close.on_state_change.removed": _o("bool", True, "filestream"),
    f"{INPUT}.close.on_state_change.check_interval": _o("duration", "5s", "filestream", minimum=0),
    f"{INPUT}.close.reader.on_eof": _o("bool", False, "filestream"),
    f"{INPUT}.clean_inactive": _o("duration", "-1", "filestream"),
    f"{INPUT}.clean_removed": _o("bool", True, "filestream"),
    f"{INPUT}.harvester_limit": _o("int", 0, "filestream", minimum=0),
    f"{INPUT}.backoff.init": _o("duration", "2s", "filestream", minimum=0),
    f"{INPUT}.backoff.max": _o("duration", "10s", "filestream", minimum=0),
    # general settings, registry, paths
    "name": _o("str", None, "general"),
    "tags": _o("list[str]", [], "general"),
    "filebeat.registry.path": _o("path", "${path.data}/registry", "general"),
    "filebeat.registry.file_permissions": _o("octal", "0600", "general"),
    "filebeat.registry.flush": _o("duration", "1s", "general", minimum=0),
    "filebeat.shutdown_timeout": _o("duration", "0", "general", minimum=0),
    "path.home": _o("path", None, "paths"),
    "path.config": _o("path", "${path.home}", "paths"),
    "path.data": _o("path", "${path.home}/data", "paths"),
    "path.logs": _o("path", "${path.home}/logs", "paths"),
    # internal queue (memqueue defaults as of 8.13: 3200 / 1600 / 10s)
    "queue.mem.events": _o("int", 3200, "queue", minimum=32),
    "queue.mem.flush.min_events": _o("int", 1600, "queue", minimum=0),
    "queue.mem.flush.timeout": _o("duration", "10s", "queue", minimum=0),
    "queue.disk.path": _o("path", "${path.data}/diskqueue", "queue"),
    "queue.disk.max_size": _o("bytesize", "10GB", "queue", minimum=0),
    "queue.disk.segment_size": _o("bytesize", None, "queue", minimum=0),
    # Logstash output
    "output.logstash.enabled": _o("bool", True, "logstash"),
    "output.logstash.hosts": _o("hosts", None, "logstash"),
    "output.logstash.loadbalance": _o("bool", False, "logstash"),
    "output.logstash.worker": _o("int", 1, "logstash", minimum=1),
    "output.logstash.bulk_max_size": _o("int", 2048, "logstash"),
    "output.logstash.timeout": _o("duration", "30s", "logstash", minimum=0),
    "output.logstash.backoff.init": _o("duration", "1s", "logstash", minimum=0),
    "output.logstash.backoff.max": _o("duration", "60s", "logstash", minimum=0),
    "output.logstash.ttl": _o("duration", "0", "logstash", minimum=0),
    "output.logstash.compression_level": _o("int", 3, "logstash", minimum=0),
    "output.logstash.pipelining": _o("int", 2, "logstash", minimum=0),
    "output.logstash.slow_start": _o("bool", False, "logstash"),
    "output.logstash.escape_html": _o("bool", False, "logstash"),
    "output.logstash.index": _o("str", "filebeat", "logstash"),
    "output.logstash.max_retries": _o("int", 3, "logstash"),
    **_ssl("output.logstash"),
    # Kafka output (the stand-in runs it with kafka-python; version is accepted, not used).
    "output.kafka.enabled": _o("bool", True, "kafka"),
    "output.kafka.hosts": _o("hosts", None, "kafka"),
    "output.kafka.topic": _o("str", None, "kafka"),
    "output.kafka.version": _o("str", "2.1.0", "kafka"),
    "output.kafka.required_acks": _o("enum_int", 1, "kafka", ("-1", "0", "1")),
    "output.kafka.compression": _o("enum", "gzip", "kafka", ("none", "snappy", "lz4", "gzip", "zstd")),
    "output.kafka.client_id": _o("str", "beats", "kafka"),
    "output.kafka.bulk_max_size": _o("int", 2048, "kafka", minimum=0),
    "output.kafka.timeout": _o("duration", "30s", "kafka", minimum=0),
    "output.kafka.backoff.init": _o("duration", "1s", "kafka", minimum=0),
    "output.kafka.backoff.max": _o("duration", "60s", "kafka", minimum=0),
    **_ssl("output.kafka"),
    # HTTP monitoring endpoint
    "http.enabled": _o("bool", False, "http"),
    "http.host": _o("str", "localhost", "http"),
    "http.port": _o("int", 5066, "http", minimum=0),
    # logging
    "logging.level": _o("enum", "info", "logging", ("debug", "info", "warning", "error", "critical")),
    "logging.selectors": _o("list[str]", [], "logging"),
    "logging.to_stderr": _o("bool", False, "logging"),
    "logging.to_syslog": _o("bool", False, "logging"),
    "logging.to_files": _o("bool", True, "logging"),
    "logging.json": _o("bool", False, "logging"),
    "logging.metrics.enabled": _o("bool", True, "logging"),
    "logging.metrics.period": _o("duration", "30s", "logging", minimum=0),
    "logging.files.path": _o("path", "${path.logs}", "logging"),
    "logging.files.name": _o("str", "filebeat", "logging"),
    "logging.files.keepfiles": _o("int", 7, "logging", minimum=2),
    "logging.files.permissions": _o("octal", "0600", "logging"),
}

# Sections that are maps of their own: their keys are checked against the table, never
# taken as free-form values.
OUTPUTS = ("logstash", "kafka")


class ConfigError(ValueError):
    """A configuration Filebeat (or this stricter table) refuses; the message names the key."""


# --- go-ucfg semantics ----------------------------------------------------------------


def expand(value: Any) -> Any:
    """Nest dotted keys as go-ucfg does: ``{"a.b": 1, "a": {"c": 2}}`` is ``{"a": {"b": 1,
    "c": 2}}``. Lists are expanded item by item. Free-form maps (``fields``) are expanded
    too, as Filebeat does for them."""
    if isinstance(value, list):
        return [expand(item) for item in value]
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        parts = str(key).split(".")
        node = out
        for n, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"conflicting values for '{'.'.join(parts[: n + 1])}'")
            node = child
        _merge(node, parts[-1], expand(item), ".".join(parts))
    return out


def _merge(node: dict[str, Any], key: str, value: Any, where: str) -> None:
    if key in node and isinstance(node[key], dict) and isinstance(value, dict):
        for k, v in value.items():
            _merge(node[key], k, v, f"{where}.{k}")
    elif key in node and node[key] is not None and not (isinstance(node[key], dict) and not node[key]):
        if value != node[key]:
            raise ConfigError(f"conflicting values for '{where}'")
    else:
        node[key] = value


def lookup(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """A value of an expanded configuration by dotted path."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(value: Any) -> float:
    """Seconds of a Go duration (``1h30m``, ``500ms``, ``-1``); a bare number is seconds,
    as go-ucfg reads it."""
    if isinstance(value, bool):
        raise ConfigError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    total, pos = 0.0, 0
    for match in _DURATION.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise ConfigError(f"time: invalid duration {text!r}")
    return sign * total


_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtpe]?i?b?)?\s*$", re.IGNORECASE)


def bytesize(value: Any) -> int:
    """Bytes of a size such as ``10GB``, ``512MiB`` or a plain number (go-humanize, as
    Beats parses them: GB is 1000^3, GiB 1024^3)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _BYTES.match(str(value))
    if not match:
        raise ConfigError(f"not a size: {value!r}")
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    power = "bkmgtpe".index(unit[0]) if unit and unit[0] != "b" else 0
    base = 1024 if "i" in unit else 1000
    return int(number * base**power)


def _check(key: str, option: Option, value: Any) -> None:
    kind = option.kind
    bad = ConfigError(f"invalid value for '{key}': {value!r} (expected {kind}; see {option.page})")
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif kind in ("str", "path"):
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise bad
    elif kind == "octal":
        if not re.fullmatch(r"0?[0-7]{3,4}", str(value)):
            raise bad
    elif kind == "duration":
        value = duration(value)
    elif kind == "bytesize":
        value = bytesize(value)
    elif kind in ("map", "null_or_map"):
        if value is not None and not isinstance(value, Mapping):
            raise bad
    elif kind in ("enum", "enum_int"):
        if str(value) not in option.choices:
            raise ConfigError(f"invalid value for '{key}': {value!r} (one of {', '.join(option.choices)})")
    elif kind in ("list[str]", "list[regex]", "list[enum]", "hosts"):
        items = value if isinstance(value, list) else [value]  # go-ucfg takes a scalar as [scalar]
        for item in items:
            if not isinstance(item, str) or (kind == "hosts" and not item):
                raise bad
            if kind == "list[enum]" and item not in option.choices:
                raise ConfigError(f"invalid value for '{key}': {item!r} (one of {', '.join(option.choices)})")
            if kind == "list[regex]":
                try:
                    re.compile(item)
                except re.error as exc:
                    raise ConfigError(f"invalid regular expression in '{key}': {exc}") from None
    else:  # pragma: no cover - a typo in the table itself
        raise AssertionError(kind)
    if option.minimum is not None and kind in ("int", "duration", "bytesize") and value < option.minimum:
        raise ConfigError(f"invalid value for '{key}': {value!r} (minimum {option.minimum:g})")


def _walk(node: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if path in OPTIONS or not isinstance(value, Mapping) or not value:
            yield path, value
        else:
            yield from _walk(value, path)


def validate(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """Check an expanded (or raw: it is expanded here) configuration against the table and
    Filebeat's own checks. Returns the expanded configuration; raises ``ConfigError``."""
    config = expand(config)
    inputs = lookup(config, "filebeat.inputs", [])
    if not isinstance(inputs, list):
        raise ConfigError("'filebeat.inputs' must be a list")
    for path, value in _walk(config, ""):
        if path == "filebeat.inputs":
            continue
        option = OPTIONS.get(path)
        if option is None:
            raise ConfigError(f"unknown configuration key '{path}'")
        if value is not None or option.kind == "null_or_map":
            _check(path, option, value)
    outputs = [
        name for name in OUTPUTS if lookup(config, f"output.{name}.enabled", True) and lookup(config, f"output.{name}")
    ]
    if len(outputs) > 1:
        raise ConfigError(f"more than one output configured: {', '.join(outputs)}")
    ids: dict[str, int] = {}
    for n, item in enumerate(inputs):
        if not isinstance(item, Mapping):
            raise ConfigError(f"filebeat.inputs[{n}] must be a map")
        if "type" not in item:
            raise ConfigError(f"filebeat.inputs[{n}]: missing required field 'type'")
        for path, value in _walk(item, INPUT):
            option = OPTIONS.get(path)
            if option is None:
                raise ConfigError(
                    f"filebeat.inputs[{n}] ({item.get('id', '?')}): unknown key '{path[len(INPUT) + 1 :]}'"
                )
            if value is not None or option.kind == "null_or_map":
                _check(path, option, value)
        identities = list(item.get("file_identity") or {})
        if len(identities) > 1:
            raise ConfigError(f"filebeat.inputs[{n}]: more than one file_identity: {', '.join(identities)}")
        if lookup(item, "enabled", True) and item["type"] == "filestream":
            ids[str(item.get("id", ""))] = ids.get(str(item.get("id", "")), 0) + 1
    duplicated = sorted(i for i, count in ids.items() if count > 1)
    if duplicated:
        # Filebeat refuses filestream inputs sharing an ID: they would share registry state
        # (elastic/beats#35964 shows the older panic on "name ... already used").
        raise ConfigError(
            "filestream inputs validation error: filestream inputs with duplicated IDs: "
            + ", ".join(f'"{i}"' for i in duplicated)
        )
    events = lookup(config, "queue.mem.events", OPTIONS["queue.mem.events"].default)
    min_events = lookup(config, "queue.mem.flush.min_events", OPTIONS["queue.mem.flush.min_events"].default)
    if lookup(config, "queue.mem") is not None and min_events > events:
        # memqueue's own Validate(), libbeat/publisher/queue/memqueue/config.go
        raise ConfigError("flush.min_events must be less events")
    if lookup(config, "queue.mem") is not None and lookup(config, "queue.disk") is not None:
        raise ConfigError("only one queue type can be configured: queue.mem and queue.disk are both set")
    for name in OUTPUTS:
        if lookup(config, f"output.{name}") and not lookup(config, f"output.{name}.hosts"):
            raise ConfigError(f"missing required field accessing 'output.{name}.hosts'")
        cert = lookup(config, f"output.{name}.ssl.certificate")
        key = lookup(config, f"output.{name}.ssl.key")
        if bool(cert) != bool(key):
            raise ConfigError(f"output.{name}.ssl: certificate and key must be given together")
    return config


def setting(config: Mapping[str, Any], key: str) -> Any:
    """A top-level setting of an expanded configuration, or its documented default."""
    return lookup(config, key, OPTIONS[key].default)


def input_setting(item: Mapping[str, Any], key: str) -> Any:
    """A per-input setting (expanded input), or its documented default."""
    return lookup(item, key, OPTIONS[f"{INPUT}.{key}"].default)


def documented_constraints(config: Mapping[str, Any]) -> list[str]:
    """Requirements the documentation states but Filebeat 8.19 does not enforce (see NOTES):
    each broken one, as a sentence naming the input."""
    config = expand(config)
    problems = []
    for item in lookup(config, "filebeat.inputs", []) or []:
        name = item.get("id", "?")
        inactive = duration(input_setting(item, "close.on_state_change.inactive"))
        ignore_older = duration(input_setting(item, "ignore_older"))
        clean_inactive = duration(input_setting(item, "clean_inactive"))
        check = duration(input_setting(item, "prospector.scanner.check_interval"))
        b_init, b_max = duration(input_setting(item, "backoff.init")), duration(input_setting(item, "backoff.max"))
        if ignore_older > 0 and ignore_older <= inactive:
            problems.append(f"{name}: ignore_older must be greater than close.on_state_change.inactive")
        if clean_inactive > 0 and (ignore_older <= 0 or clean_inactive <= ignore_older + check):
            problems.append(f"{name}: clean_inactive must be greater than ignore_older + check_interval")
        if not input_setting(item, "close.on_state_change.removed") and input_setting(item, "clean_removed"):
            problems.append(f"{name}: close.on_state_change.removed is disabled, so clean_removed must be too")
        if not b_init <= b_max <= check:
            problems.append(f"{name}: backoff.init <= backoff.max <= prospector.scanner.check_interval does not hold")
    return problems


def _page_list() -> str:
    return "\n".join(f"- {name}: {url}" for name, url in PAGES.items())


__doc__ = (__doc__ or "") + _page_list() + "\n"
