"""The Logstash 8.19 settings and plugin options our logstash role may render: type,
allowed values, default, and the page each comes from. One table serves the Logstash
stand-in's ``--config.test_and_exit`` (tests/logstash_standin, which gets a copy of this
file beside it on a test host: stdlib only, importable by path) and the unit tests.

Types are Logstash's own config validators (``LogStash::Config::Mixin``): ``string``,
``number``, ``boolean``, ``array``, ``hash``, ``path`` (must name an existing file), ``password``,
``uri``, ``codec``, ``field_reference``, ``bytes``, ``enum`` (one of ``choices``) and
``enum_list`` (``:list => true`` over ``choices``). Real Logstash refuses an unknown option
(``Unknown setting 'x' for beats``), an obsolete one and an unknown plugin, and refuses an
unknown ``logstash.yml`` key (``Setting "x" doesn't exist``) and a ``pipelines.yml`` key
outside its per-pipeline list. Options that the stand-in does not implement are left out on
purpose, so a test fails instead of a site finding out.

Plugin versions: the 8.19 reference documents the plugins bundled with 8.19; the option
lists here were read in each plugin's ``docs/index.asciidoc`` and ``config`` declarations
at the tag of the line that 8.19 bundles (beats 6.9.x, elasticsearch output 11.22.x,
kafka integration 11.8.x, json 3.2.x, mutate 3.5.x, memcached 1.2.0). The later major
versions (beats 7.0, elasticsearch output 12.0, kafka 12) are Logstash 9's: they make the
deprecated ``ssl``/``cacert``/``ssl_certificate_verification`` style options obsolete.
``logstash-output-opensearch`` (2.x, OpenSearch project) is not bundled with Logstash: it
is installed with ``bin/logstash-plugin install logstash-output-opensearch`` or comes with
the ``logstash-oss-with-opensearch-output-plugin`` distribution.

Pages:
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

VERSION = "8.19"
_REF = "https://www.elastic.co/guide/en/logstash/8.19/"
_GH = "https://github.com/logstash-plugins/"
PAGES = {
    "settings": _REF + "logstash-settings-file.html",
    "pipelines": _REF + "multiple-pipelines.html",
    "pq": _REF + "persistent-queues.html",
    "dlq": _REF + "dead-letter-queues.html",
    "env": _REF + "environment-variables.html",
    "event": _REF + "event-dependent-configuration.html",
    "field_ref": _REF + "field-references-deepdive.html",
    "config": _REF + "configuration-file-structure.html",
    "p2p": _REF + "pipeline-to-pipeline.html",
    "flags": _REF + "running-logstash-command-line.html",
    "node_stats": _REF + "node-stats-api.html",
    "beats": _REF + "plugins-inputs-beats.html",
    "kafka": _REF + "plugins-inputs-kafka.html",
    "json": _REF + "plugins-filters-json.html",
    "memcached": _REF + "plugins-filters-memcached.html",
    "mutate": _REF + "plugins-filters-mutate.html",
    "elasticsearch": _REF + "plugins-outputs-elasticsearch.html",
    "opensearch": "https://docs.opensearch.org/latest/tools/logstash/ship-to-opensearch/",
    # The sources the rendered pages are built from, read for the details below.
    "beats_src": _GH + "logstash-input-beats/blob/v6.9.8/docs/index.asciidoc",
    "memcached_src": _GH + "logstash-filter-memcached/blob/v1.2.0/lib/logstash/filters/memcached.rb",
    "elasticsearch_src": _GH + "logstash-output-elasticsearch/blob/v11.22.17/docs/index.asciidoc",
    "kafka_src": _GH + "logstash-integration-kafka/blob/v11.8.10/lib/logstash/inputs/kafka.rb",
    "opensearch_src": "https://github.com/opensearch-project/logstash-output-opensearch/blob/main/"
    "lib/logstash/plugin_mixins/opensearch/api_configs.rb",
    "settings_src": "https://github.com/elastic/logstash/blob/8.19/logstash-core/lib/logstash/environment.rb",
}
PLUGIN_VERSIONS = {
    "beats": "6.9.x",
    "kafka": "11.8.x (logstash-integration-kafka)",
    "pipeline": "core",
    "json": "3.2.x",
    "memcached": "1.2.0",
    "mutate": "3.5.x",
    "elasticsearch": "11.22.x",
    "opensearch": "2.x (logstash-output-opensearch, not bundled)",
}

# Documented facts that decide what the role renders (notes, not configuration).
NOTES = {
    "beats_pkcs8": (
        "beats input ssl_key 'must be in the PKCS8 format and PEM encoded' (openssl pkcs8 "
        "-topk8 -nocrypt converts a PKCS#1 'BEGIN RSA PRIVATE KEY' or SEC1 'BEGIN EC PRIVATE "
        "KEY' file). Netty's SslContextBuilder fails on any other key ('File does not contain "
        "valid private key'): the input raises at register and the pipeline does not start."
    ),
    "beats_tls": (
        "ssl_enabled true needs ssl_certificate and ssl_key; ssl_client_authentication "
        "optional/required needs ssl_certificate_authorities, and giving "
        "ssl_certificate_authorities with ssl_client_authentication none is a configuration "
        "error. The client certificate is checked against the CAs only: its CN/SAN are not "
        "validated. ssl_supported_protocols defaults to TLSv1.2 and TLSv1.3."
    ),
    "beats_event": (
        "A Filebeat event with a 'message' goes through the codec (plain): with ECS "
        "compatibility on (pipeline.ecs_compatibility v8 is the 8.x default) the default codec "
        "also sets [event][original] to the line, and codec_metadata (on by default) tags "
        "'beats_input_codec_plain_applied'. The other Beats fields are merged in as they came, "
        "with @metadata.beat/type/version from Filebeat; source_metadata adds "
        "[@metadata][input][beats][host][ip] (ECS) or [@metadata][ip_address] (ECS disabled). "
        "enrich => [source_metadata] leaves out the tag and, with no explicit codec, "
        "[event][original]. Batches are ACKed once their events are in the pipeline's queue."
    ),
    "beats_deprecated": (
        "6.9.x still accepts ssl, ssl_verify_mode, ssl_peer_metadata, cipher_suites, "
        "tls_min_version, tls_max_version and add_hostname as deprecated; 7.0 (Logstash 9) "
        "makes all but add_hostname obsolete, so they are left out of this table."
    ),
    "memcached_failure": (
        "memcached filter 1.2.0: register connects (Dalli alive!) and fails ('failed to connect "
        "to memcached') when no server answers, so the pipeline does not start while memcached "
        "is down. At run time a Dalli::NetworkError/RingError tags the event with "
        "tag_on_failure (default _memcached_failure), logs 'memcached communication error' and "
        "closes the connection; the event goes on. Later events try to reconnect first, and are "
        "tagged while that fails. A key that is not found sets nothing and is no failure. "
        "add_tag/add_field and the other common options apply only when at least one get "
        "hit (filter_matched). namespace prefixes every key with '<namespace>:'."
    ),
    "memcached_metrics": (
        "The memcached filter registers no metric of its own: node stats show only its "
        "events in/out/duration_in_millis. Failed lookups are visible in node stats only "
        "through a plugin that counts them, e.g. a mutate with an id inside "
        "'if \"_memcached_failure\" in [tags]' (its events.in). Filters that count failures "
        "themselves (grok: matches/failures) do it with plugin metrics; memcached does not."
    ),
    "sprintf_missing": (
        "sprintf ('%{[a][b]}') of a field that does not exist leaves the reference as it is "
        "('%{[a][b]}'): a memcached key or an index name built from a missing field is the "
        "literal text."
    ),
    "field_reference": (
        "[a][b] is a path; a dot inside brackets is part of the key: [@metadata][record][id.orig_h] "
        "is the key 'id.orig_h' of [@metadata][record]. A bare 'a.b' is the top-level key 'a.b'."
    ),
    "es_dlq": (
        "elasticsearch output: the _bulk request is retried indefinitely on any HTTP status "
        "other than 200 and on connection errors (retry_initial_interval 2 s doubling to "
        "retry_max_interval 64 s). Per document: 200/201 success; 409 logged and dropped; "
        "400 and 404 (plus dlq_custom_codes) go to the dead-letter queue when "
        "dead_letter_queue.enable is true, else they are logged and DROPPED; any other status "
        "(429, 5xx) is retried. An action that does not resolve to index/create/update/delete, "
        "and (dlq_on_failed_indexname_interpolation, default true) an index name left with "
        "'%{...}', go to the DLQ too. logstash-output-opensearch: the same codes (400, 404 to "
        "the DLQ, 409 dropped, others retried)."
    ),
    "data_streams": (
        "A data stream accepts only op_type create: action must be 'create' (the elasticsearch "
        "output's default is create only in data stream mode). elasticsearch output data_stream "
        "defaults to 'auto' in 8.x: with index given it is off, and data_stream => true refuses "
        "index/manage_template style options. logstash-output-opensearch has no data stream "
        "mode: write with index => <stream name> and action => create."
    ),
    "env": (
        "${VAR} and ${VAR:default} are replaced at startup in plugin options of any type and in "
        "logstash.yml; an undefined variable without a default is a configuration error. "
        "A key of the Logstash keystore of the same name takes precedence over the environment."
    ),
    "pq": (
        "queue.type persisted keeps each pipeline's queue under path.queue/<pipeline.id> "
        "(default path.data/queue). At start Logstash only WARNS when the sum of queue.max_bytes "
        "of the pipelines on one file system does not fit ('won't fit in file system')."
    ),
    "p2p": (
        "The pipeline output blocks while a send_to address has no running pipeline input when "
        "ensure_delivery is true (default), so nothing is lost but the upstream pipeline stalls "
        "(here: the beats input stops ACKing, Filebeat backs off)."
    ),
}


@dataclass(frozen=True)
class Option:
    kind: str
    default: Any
    page: str
    choices: tuple[str, ...] = ()
    required: bool = False
    deprecated: str = ""


def _o(kind: str, default: Any, page: str, *choices: str, required: bool = False, deprecated: str = "") -> Option:
    return Option(kind, default, PAGES[page], tuple(choices), required, deprecated)


# --- logstash.yml and pipelines.yml ---------------------------------------------------

SETTINGS: dict[str, Option] = {
    "node.name": _o("string", "<hostname>", "settings"),
    "path.data": _o("path_dir", "LOGSTASH_HOME/data", "settings"),
    "path.logs": _o("path_dir", "LOGSTASH_HOME/logs", "settings"),
    "path.config": _o("string", None, "settings"),
    "path.queue": _o("path_dir", "path.data/queue", "settings"),
    "path.dead_letter_queue": _o("path_dir", "path.data/dead_letter_queue", "settings"),
    "config.string": _o("string", None, "settings"),
    "pipeline.id": _o("string", "main", "settings"),
    "pipeline.ordered": _o("enum", "auto", "settings", "auto", "true", "false"),
    "pipeline.workers": _o("positive", "<cpu cores>", "settings"),
    "pipeline.batch.size": _o("positive", 125, "settings"),
    "pipeline.batch.delay": _o("number", 50, "settings"),
    "pipeline.ecs_compatibility": _o("enum", "v8", "settings", "disabled", "v1", "v8"),
    "pipeline.unsafe_shutdown": _o("boolean", False, "settings"),
    "pipeline.separate_logs": _o("boolean", False, "settings"),
    "queue.type": _o("enum", "memory", "settings", "memory", "persisted"),
    "queue.max_bytes": _o("bytes", "1024mb", "settings"),
    "queue.max_events": _o("number", 0, "settings"),
    "queue.page_capacity": _o("bytes", "64mb", "settings"),
    "queue.checkpoint.acks": _o("number", 1024, "settings"),
    "queue.checkpoint.writes": _o("number", 1024, "settings"),
    "queue.checkpoint.interval": _o("number", 1000, "settings"),
    "queue.drain": _o("boolean", False, "settings"),
    "dead_letter_queue.enable": _o("boolean", False, "settings"),
    "dead_letter_queue.max_bytes": _o("bytes", "1024mb", "settings"),
    "dead_letter_queue.storage_policy": _o("enum", "drop_newer", "settings", "drop_newer", "drop_older"),
    "dead_letter_queue.retain.age": _o("string", None, "settings"),
    "dead_letter_queue.flush_interval": _o("number", 5000, "settings"),
    "api.enabled": _o("boolean", True, "settings"),
    "api.http.host": _o("string", "127.0.0.1", "settings"),
    "api.http.port": _o("port_range", "9600-9700", "settings"),
    "api.environment": _o("string", "production", "settings"),
    "log.level": _o("enum", "info", "settings", "fatal", "error", "warn", "info", "debug", "trace"),
    "log.format": _o("enum", "plain", "settings", "plain", "json"),
    "config.reload.automatic": _o("boolean", False, "settings"),
    "config.reload.interval": _o("string", "3s", "settings"),
    "config.support_escapes": _o("boolean", False, "settings"),
    "config.debug": _o("boolean", False, "settings"),
    "config.test_and_exit": _o("boolean", False, "settings"),
}

# Keys a pipelines.yml entry may set (LogStash::PipelineSettings' list, 8.x).
PIPELINE_KEYS = (
    "pipeline.id",
    "path.config",
    "config.string",
    "config.support_escapes",
    "config.reload.automatic",
    "config.reload.interval",
    "config.debug",
    "pipeline.workers",
    "pipeline.batch.size",
    "pipeline.batch.delay",
    "pipeline.ordered",
    "pipeline.ecs_compatibility",
    "queue.type",
    "queue.max_bytes",
    "queue.max_events",
    "queue.page_capacity",
    "queue.checkpoint.acks",
    "queue.checkpoint.writes",
    "queue.checkpoint.interval",
    "queue.drain",
    "path.queue",
    "dead_letter_queue.enable",
    "dead_letter_queue.max_bytes",
    "dead_letter_queue.storage_policy",
    "path.dead_letter_queue",
)
PIPELINE_SETTINGS: dict[str, Option] = {key: SETTINGS[key] for key in PIPELINE_KEYS}

# --- plugins --------------------------------------------------------------------------

COMMON: dict[str, dict[str, Option]] = {
    "input": {
        "id": _o("string", None, "config"),
        "add_field": _o("hash", {}, "config"),
        "tags": _o("array", [], "config"),
        "type": _o("string", None, "config"),
        "codec": _o("codec", "plain", "config"),
        "enable_metric": _o("boolean", True, "config"),
    },
    "filter": {
        "id": _o("string", None, "config"),
        "add_field": _o("hash", {}, "config"),
        "add_tag": _o("array", [], "config"),
        "remove_field": _o("array", [], "config"),
        "remove_tag": _o("array", [], "config"),
        "enable_metric": _o("boolean", True, "config"),
        "periodic_flush": _o("boolean", False, "config"),
    },
    "output": {
        "id": _o("string", None, "config"),
        "codec": _o("codec", "plain", "config"),
        "enable_metric": _o("boolean", True, "config"),
    },
}

_TLS_PROTOCOLS = ("TLSv1.1", "TLSv1.2", "TLSv1.3")

PLUGINS: dict[tuple[str, str], dict[str, Option]] = {
    ("input", "beats"): {
        "port": _o("number", None, "beats", required=True),
        "host": _o("string", "0.0.0.0", "beats"),  # noqa: S104 - the plugin's documented default
        "ssl_enabled": _o("boolean", False, "beats"),
        "ssl_certificate": _o("path", None, "beats"),
        "ssl_key": _o("path", None, "beats"),
        "ssl_key_passphrase": _o("password", None, "beats"),
        "ssl_certificate_authorities": _o("array", [], "beats"),
        "ssl_client_authentication": _o("enum", "none", "beats", "none", "optional", "required"),
        "ssl_supported_protocols": _o("enum_list", ["TLSv1.2", "TLSv1.3"], "beats", *_TLS_PROTOCOLS),
        "ssl_cipher_suites": _o("array", "<JDK default list>", "beats"),
        "ssl_handshake_timeout": _o("number", 10000, "beats"),
        "client_inactivity_timeout": _o("number", 60, "beats"),
        "executor_threads": _o("number", "<cpu cores>", "beats"),
        "event_loop_threads": _o("number", 0, "beats"),
        "enrich": _o(
            "enum_list",
            ["codec_metadata", "source_metadata"],
            "beats",
            "codec_metadata",
            "source_metadata",
            "ssl_peer_metadata",
            "all",
            "none",
        ),
        "ecs_compatibility": _o("enum", "<pipeline.ecs_compatibility>", "beats", "disabled", "v1", "v8"),
        "add_hostname": _o("boolean", False, "beats", deprecated="removed in 7.0 (Logstash 9)"),
    },
    ("input", "kafka"): {
        "bootstrap_servers": _o("string", "localhost:9092", "kafka"),
        "topics": _o("array", ["logstash"], "kafka"),
        "topics_pattern": _o("string", None, "kafka"),
        "group_id": _o("string", "logstash", "kafka"),
        "client_id": _o("string", "logstash", "kafka"),
        "consumer_threads": _o("number", 1, "kafka"),
        "auto_offset_reset": _o("string", None, "kafka"),  # Kafka's own default: latest
        "security_protocol": _o("enum", "PLAINTEXT", "kafka", "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
        "ssl_truststore_location": _o("path", None, "kafka"),
        "ssl_truststore_type": _o("string", None, "kafka"),  # Kafka's own default: JKS
        "ssl_truststore_password": _o("password", None, "kafka"),
        "ssl_keystore_location": _o("path", None, "kafka"),
        "ssl_keystore_type": _o("string", None, "kafka"),
        "ssl_keystore_password": _o("password", None, "kafka"),
        "ssl_key_password": _o("password", None, "kafka"),
        "ssl_endpoint_identification_algorithm": _o("string", "https", "kafka"),
        "decorate_events": _o("enum", "none", "kafka", "none", "basic", "extended", "false", "true"),
        "enable_auto_commit": _o("boolean", True, "kafka"),
        "auto_commit_interval_ms": _o("number", 5000, "kafka"),
        "max_poll_records": _o("number", 500, "kafka"),
        "poll_timeout_ms": _o("number", 100, "kafka"),
    },
    ("input", "pipeline"): {
        "address": _o("string", None, "p2p", required=True),
    },
    ("filter", "json"): {
        "source": _o("string", None, "json", required=True),
        "target": _o("field_reference", None, "json"),
        "skip_on_invalid_json": _o("boolean", False, "json"),
        "tag_on_failure": _o("array", ["_jsonparsefailure"], "json"),
    },
    ("filter", "memcached"): {
        "hosts": _o("array", ["localhost"], "memcached"),
        "namespace": _o("string", None, "memcached"),
        "get": _o("hash", None, "memcached"),
        "set": _o("hash", None, "memcached"),
        "ttl": _o("number", 0, "memcached"),
        "tag_on_failure": _o("string", "_memcached_failure", "memcached"),
    },
    ("filter", "mutate"): {
        "rename": _o("hash", None, "mutate"),
        "copy": _o("hash", None, "mutate"),
        "tag_on_failure": _o("string", "_mutate_error", "mutate"),
    },
    ("output", "pipeline"): {
        "send_to": _o("array", None, "p2p", required=True),
        "ensure_delivery": _o("boolean", True, "p2p"),
    },
    ("output", "elasticsearch"): {
        "hosts": _o("uri_list", ["//127.0.0.1"], "elasticsearch"),
        "user": _o("string", None, "elasticsearch"),
        "password": _o("password", None, "elasticsearch"),
        "api_key": _o("password", None, "elasticsearch"),
        "ssl_enabled": _o("boolean", None, "elasticsearch"),
        "ssl_certificate_authorities": _o("path_list", None, "elasticsearch"),
        "ssl_verification_mode": _o("enum", "full", "elasticsearch", "full", "none"),
        "ssl_supported_protocols": _o("enum_list", [], "elasticsearch", *_TLS_PROTOCOLS),
        "index": _o("string", "<ecs: data stream; else logstash-%{+yyyy.MM.dd}>", "elasticsearch"),
        "action": _o("string", "<create for data streams, else index>", "elasticsearch"),
        "pipeline": _o("string", None, "elasticsearch"),
        "document_id": _o("string", None, "elasticsearch"),
        "manage_template": _o("boolean", "<true; false for data streams>", "elasticsearch"),
        "ilm_enabled": _o("enum", "auto", "elasticsearch", "true", "false", "auto"),
        "data_stream": _o("enum", "auto", "elasticsearch", "true", "false", "auto"),
        "dlq_on_failed_indexname_interpolation": _o("boolean", True, "elasticsearch"),
        "dlq_custom_codes": _o("number_list", [], "elasticsearch"),
        "retry_initial_interval": _o("number", 2, "elasticsearch"),
        "retry_max_interval": _o("number", 64, "elasticsearch"),
        "timeout": _o("number", 60, "elasticsearch"),
        "ecs_compatibility": _o("enum", "<pipeline.ecs_compatibility>", "elasticsearch", "disabled", "v1", "v8"),
    },
    ("output", "opensearch"): {
        "hosts": _o("uri_list", ["//127.0.0.1"], "opensearch_src"),
        "user": _o("string", None, "opensearch_src"),
        "password": _o("password", None, "opensearch_src"),
        "ssl": _o("boolean", None, "opensearch_src"),
        "cacert": _o("path", None, "opensearch_src"),
        "ssl_certificate_verification": _o("boolean", True, "opensearch_src"),
        "index": _o("string", "<ecs: ecs-logstash-%{+yyyy.MM.dd}; else logstash-%{+yyyy.MM.dd}>", "opensearch_src"),
        "action": _o("string", "index", "opensearch_src"),
        "pipeline": _o("string", None, "opensearch_src"),
        "document_id": _o("string", None, "opensearch_src"),
        "manage_template": _o("boolean", True, "opensearch_src"),
        "retry_initial_interval": _o("number", 2, "opensearch_src"),
        "retry_max_interval": _o("number", 64, "opensearch_src"),
        "timeout": _o("number", 60, "opensearch_src"),
        "ecs_compatibility": _o("enum", "<pipeline.ecs_compatibility>", "opensearch_src", "disabled", "v1", "v8"),
    },
}
# Plugins Logstash 8.19 ships that the stand-in does not take: named, so that a test can
# tell a misspelt plugin from one we chose to leave out.
KNOWN_ELSEWHERE = ("stdin", "stdout", "file", "tcp", "udp", "http", "grok", "date", "translate", "drop")


class ConfigError(ValueError):
    """A configuration Logstash refuses; the message names the plugin and the option."""


def options(section: str, plugin: str) -> dict[str, Option] | None:
    found = PLUGINS.get((section, plugin))
    if found is None:
        return None
    return {**COMMON[section], **found}


_BYTES = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb|tb|pb)?\s*$", re.IGNORECASE)


def bytesize(value: Any) -> int:
    """Bytes of a Logstash size (``4gb``, ``1024mb``, plain bytes; powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _BYTES.match(str(value))
    if not match:
        raise ConfigError(f"not a size: {value!r} (expected a number with b, kb, mb, gb, tb or pb)")
    unit = (match.group(2) or "b").lower()
    return int(match.group(1)) * 1024 ** (["b", "kb", "mb", "gb", "tb", "pb"].index(unit))


def _scalar(value: Any) -> Any:
    # The config language gives every option an array; one element is the value.
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def check_value(where: str, name: str, option: Option, value: Any) -> Any:
    """Logstash's validation of one option value (``where`` names the plugin); returns the
    value as the plugin sees it, or raises ConfigError."""
    kind = option.kind

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: invalid value for '{name}': {value!r} (expected {expected}; see {option.page})")

    if kind in ("array", "enum_list", "path_list", "uri_list", "number_list"):
        items = value if isinstance(value, list) else [value]
        if any(isinstance(i, dict | list) for i in items):
            raise bad("an array of scalars")
        if kind == "enum_list":
            for item in items:
                if str(item) not in option.choices:
                    raise bad("one of " + ", ".join(option.choices))
        if kind == "number_list" and not all(isinstance(i, int | float) for i in items):
            raise bad("numbers")
        if kind == "path_list":
            for item in items:
                if not os.path.exists(str(item)):
                    raise ConfigError(f"{where}: '{name}': File does not exist or cannot be opened {item}")
        return [str(i) if not isinstance(i, int | float | bool) else i for i in items]
    if kind == "hash":
        if not isinstance(value, dict):
            raise bad("a hash")
        return value
    value = _scalar(value)
    if isinstance(value, list | dict):
        raise bad(kind)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if str(value) in ("true", "false"):
            return str(value) == "true"
        raise bad("true or false")
    if kind in ("number", "positive"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad("a number") from None
        if kind == "positive" and number <= 0:
            raise bad("a positive integer")
        return int(number) if number == int(number) else number
    if kind == "enum":
        if isinstance(value, bool):
            value = "true" if value else "false"
        if str(value) not in option.choices:
            raise bad("one of " + ", ".join(option.choices))
        return str(value)
    if kind == "path":
        if not os.path.exists(str(value)):
            raise ConfigError(f"{where}: '{name}': File does not exist or cannot be opened {value}")
        return str(value)
    if kind == "bytes":
        return bytesize(value)
    if kind == "port_range":
        if not re.fullmatch(r"\d+(-\d+)?", str(value)):
            raise bad("a port or a range such as 9600-9700")
        return str(value)
    if kind == "field_reference":
        if not re.fullmatch(r"(\[[^\[\],]+\])+|[^\[\],]+", str(value)):
            raise bad("a field reference")
        return str(value)
    if kind == "codec":
        if str(value) not in ("plain", "json", "json_lines", "line"):
            raise bad("a codec name")
        return str(value)
    # string, password, path_dir
    return str(value)


def check_setting(name: str, value: Any, per_pipeline: bool = False) -> Any:
    table = PIPELINE_SETTINGS if per_pipeline else SETTINGS
    option = table.get(name)
    if option is None:
        if per_pipeline and name in SETTINGS:
            raise ConfigError(f'pipelines.yml: setting "{name}" cannot be set per pipeline')
        raise ConfigError(f"Setting \"{name}\" doesn't exist. Please check if you haven't made a typo.")
    if value is None:
        return None
    return check_value("pipelines.yml" if per_pipeline else "logstash.yml", name, option, value)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """logstash.yml in hierarchical or flat form, as flat dotted keys."""
    out: dict[str, Any] = {}
    if not isinstance(node, dict):
        return {prefix: node} if prefix else {}
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value and path not in SETTINGS:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def _page_list() -> str:
    return "\n".join(f"- {name}: {url}" for name, url in PAGES.items())


__doc__ = (__doc__ or "") + _page_list() + "\n"
