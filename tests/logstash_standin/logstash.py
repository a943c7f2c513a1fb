"""A stand-in for Logstash 8.19 that runs the configuration our logstash role renders.

Logstash itself cannot be installed here (not on Maven Central, not in Debian), so the
tests run this instead. It follows Logstash's documented behaviour (tests/logstash_reference.py
holds the table of settings and options, with the pages) for what the role renders, and runs
the rendered files themselves; it never holds a copy of what a test expects.

Command line, as the package's unit runs it, and Logstash's ``-t``::

    logstash.py "--path.settings" "/etc/logstash"
    logstash.py --path.settings /etc/logstash --config.test_and_exit
    logstash.py -f /etc/logstash/conf.d/x.conf -t

Implemented: ``logstash.yml`` (unknown keys refused) and ``pipelines.yml`` (``path.config``
globs or ``config.string``); ``${VAR}``/``${VAR:default}`` from the environment in option
values and in ``logstash.yml``; the config grammar through ``logstash-pipeline-parser``
0.0.3 (its PEG is Logstash's treetop grammar; parse actions added here keep field
references, quoted strings, regexps and hashes apart), conditionals (``==`` ``!=`` ``<``
``>`` ``<=`` ``>=`` ``=~`` ``!~`` ``in`` ``not in`` ``!`` ``and`` ``or`` ``xor`` ``nand``;
``and``/``nand`` bind tighter than ``xor``, then ``or``), field references and sprintf
(a missing field stays literal); inputs ``beats`` (a lumberjack v2 server: window, compressed,
JSON and data frames, ACK once the window is in the queue, keep-alive ACKs while the queue
blocks; TLS with a PKCS#8 key only, client CAs, ssl_client_authentication, protocol versions),
``kafka`` (consumer_threads consumers of one group through kafka-python: bootstrap_servers,
topics, group_id, client_id, auto_offset_reset, max_poll_records, poll_timeout_ms, the
``plain`` and ``json`` codecs, decorate_events; security_protocol SSL with PEM stores only:
the truststore a CA file, the keystore one file with the PKCS#8 key and certificate chain,
ssl_key_password, ssl_endpoint_identification_algorithm; offsets committed once the
records of a poll are in the queue) and ``pipeline``; filters ``json``, ``memcached`` (a real
memcached through pymemcache), ``mutate`` (rename, copy) with the common options; outputs ``pipeline`` (in-process,
ensure_delivery), ``elasticsearch`` and ``opensearch`` (``_bulk`` over http(s) with basic
auth, CA file and verification mode; whole requests retried on connection errors and any
status but 200, documents on 429/5xx, with doubling backoff; 400/404 to the dead-letter
queue, 409 dropped); the memory queue and ``queue.type: persisted``; the monitoring API
(``GET /``, ``GET /_node/pipelines``, ``GET /_node/stats/pipelines``); logging to stderr;
SIGTERM stops inputs, drains and exits 0; with ``config.reload.automatic``, a pipeline that
failed to start is created again at every ``config.reload.interval`` (as Logstash's agent
converges), while changed configuration files are not reloaded (the role restarts the
service on changes). Run with ``LOGSTASH_HOME`` set (an installation's
``bin/logstash`` sets it, as Logstash's does), a plugin Logstash does not bundle (the
``opensearch`` output) is unknown until ``LOGSTASH_HOME/Gemfile`` names its gem, as
``bin/logstash-plugin install`` leaves it.

Only accepted (checked by ``-t``, not run): the kafka input's ``topics_pattern``, SASL
and JKS/PKCS12 stores (refused when the pipeline starts), its ``auto_commit_interval_ms``
(offsets are committed after every push), ``ssl_cipher_suites`` (JDK cipher names), ``executor_threads``,
``event_loop_threads``, ``enable_metric``, ``pipeline.ordered``, queue checkpoint tuning.

Files differ from Logstash's on purpose: the persisted queue is ``path.queue/<id>/events.jsonl``
(one JSON event a line) with ``checkpoint.json`` (the highest contiguous acknowledged
sequence), written and fsynced on every push; the dead-letter queue is
``path.dead_letter_queue/<id>/dlq.jsonl`` (one JSON entry a line), not Logstash's segment files.

Dependencies: Python 3.11, PyYAML, pymemcache, logstash-pipeline-parser (with pyparsing)
and, for the kafka input, kafka-python 2.3 (pure Python; vendored like the parser) with the
lz4 module for lz4-compressed batches (what the filebeat role's Kafka output writes;
python3-lz4 on a test host).
On the controller it runs from the project's venv. A Debian 12 test host has PyYAML from
Debian (python3-yaml) and pymemcache from Debian (python3-pymemcache); logstash-pipeline-parser
and pyparsing 3.1+ (Debian 12 has 3.0.9, too old for the parser's ``DelimitedList``) are
copied from the controller's venv site-packages into a directory beside this file
(``vendor/``, put on sys.path below): both are pure Python. logstash_reference.py goes
beside this file.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import glob
import io
import itertools
import json
import logging
import os
import re
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Beside this file on a test host; tests/ (its parent) on the controller.
sys.path[:0] = [str(HERE / "vendor"), str(HERE), str(HERE.parent)]

import logstash_reference as ref  # noqa: E402
import yaml  # noqa: E402

VERSION = "8.19.0"
LOG = logging.getLogger("logstash")
MISSING = object()


class ConfigError(ref.ConfigError):
    pass


# --- the config language ----------------------------------------------------------------


class Selector(str):
    """A field reference in a condition: ``[a][b]``."""


class Quoted(str):
    """A quoted string of the config."""


class Regexp(str):
    """A ``/.../`` regular expression of a condition."""


class Hash:
    """A ``{ key => value }`` value: ordered (key, value) pairs."""

    def __init__(self, pairs: list[tuple[Any, Any]]):
        self.pairs = pairs

    def to_dict(self) -> dict[str, Any]:
        return {str(k): v for k, v in self.pairs}


_TYPED = False


def _typed_grammar() -> Any:
    """logstash-pipeline-parser's grammar, with parse actions that keep the kinds of values
    apart (its own output turns selectors, strings and regexps alike into ``str``)."""
    global _TYPED
    from logstash_pipeline_parser import Pipeline, tree

    if not _TYPED:
        peg = tree.PEG
        peg.selector.add_parse_action(lambda t: Selector(t[0]))
        peg.double_quoted_string.add_parse_action(lambda t: Quoted(t[0]))
        peg.single_quoted_string.add_parse_action(lambda t: Quoted(t[0]))
        peg.regexp.add_parse_action(lambda t: Regexp(t[0]))
        peg.ip.add_parse_action(lambda t: Quoted(str(t[0])))  # a quoted address is a string
        peg.hashmap.add_parse_action(lambda t: Hash([(e[0], _value(e[1].as_list())) for e in t[0]]))
        _TYPED = True
    return Pipeline


def _value(wrapped: list) -> Any:
    # attribute and hash values come as [value]
    return wrapped[0] if len(wrapped) == 1 else wrapped


class Plugin:
    """One plugin block: section, name, options (raw), position among its section."""

    def __init__(self, section: str, name: str, options: list[tuple[str, Any]], index: int):
        self.section, self.name, self.raw, self.index = section, name, options, index
        self.options: dict[str, Any] = {}
        self.id = ""


class Branch:
    """if / else if / else: [(condition or None, body)]."""

    def __init__(self) -> None:
        self.arms: list[tuple[Any, list]] = []


def parse_config(text: str, source: str) -> dict[str, list]:
    """The sections of a pipeline config: {'input': [...], 'filter': [...], 'output': [...]}."""
    pipeline_cls = _typed_grammar()
    try:
        tree = pipeline_cls(text).parse()
    except Exception as exc:  # the library's ParseError, with pyparsing's explanation
        detail = str(exc).strip().splitlines()
        where = next((line for line in detail if "line" in line and "col" in line), detail[-1] if detail else "")
        raise ConfigError(f"{source}: Expected a valid pipeline configuration: {where.strip()}") from None
    sections: dict[str, list] = {"input": [], "filter": [], "output": []}
    counter = itertools.count()
    for section, body in tree:
        sections[section] += _body(section, body, counter)
    return sections


def _body(section: str, items: list, counter: Iterable[int]) -> list:
    out: list = []
    for item in items:
        head = item[0]
        if head.__class__ is str and head == "if":
            branch = Branch()
            branch.arms.append(_arm(section, item[1], counter))
            out.append(branch)
        elif head.__class__ is str and head == "else if":
            _previous_branch(out).arms.append(_arm(section, item[1], counter))
        elif head.__class__ is str and head == "else":
            _previous_branch(out).arms.append((None, _body(section, item[1], counter)))
        else:
            options = [(str(a[0]), _value(a[1])) for a in item[1]]
            out.append(Plugin(section, str(head), options, next(iter(counter))))
    return out


def _previous_branch(out: list) -> Branch:
    if not out or not isinstance(out[-1], Branch):
        raise ConfigError("else without if")
    return out[-1]


def _arm(section: str, content: list, counter: Iterable[int]) -> tuple[Any, list]:
    return _condition(content[:-1]), _body(section, content[-1][0], counter)


_COMPARE = ("==", "!=", "<", ">", "<=", ">=", "=~", "!~", "in")
_BOOL = ("and", "or", "xor", "nand")


def _is_op(token: Any) -> bool:
    return token.__class__ is str  # the parser's own string types are operands


def _condition(tokens: list) -> Any:
    """A condition tree: ('bool', op, a, b) / ('not', c) / ('cmp', op, l, r) / ('truthy', v)."""
    operands, operators = [], []
    for token in tokens:
        if _is_op(token) and token in _BOOL:
            operators.append(str(token))
        else:
            operands.append(_expression(token))
    for group in (("and", "nand"), ("xor",), ("or",)):  # and/nand first, then xor, then or
        i = 0
        while i < len(operators):
            if operators[i] in group:
                operands[i : i + 2] = [("bool", operators[i], operands[i], operands[i + 1])]
                del operators[i]
            else:
                i += 1
    return operands[0]


def _expression(expr: Any) -> Any:
    if not isinstance(expr, list):
        return ("truthy", expr)
    if expr and _is_op(expr[0]) and expr[0] == "!":
        rest = expr[1:]
        if len(rest) == 1 and isinstance(rest[0], Selector):
            return ("not", ("truthy", rest[0]))
        return ("not", _condition(rest))
    if len(expr) == 4 and _is_op(expr[1]) and expr[1] == "not" and expr[2] == "in":
        return ("not", ("cmp", "in", expr[0], expr[3]))
    if len(expr) == 3 and _is_op(expr[1]) and expr[1] in _COMPARE:
        return ("cmp", str(expr[1]), expr[0], expr[2])
    if len(expr) == 1:
        # a lone rvalue, or a parenthesised condition of one expression
        return _expression(expr[0]) if isinstance(expr[0], list) else ("truthy", expr[0])
    return _condition(expr)


def walk(items: list) -> Iterable[Plugin]:
    for item in items:
        if isinstance(item, Plugin):
            yield item
        else:
            for _cond, body in item.arms:
                yield from walk(body)


# --- events ------------------------------------------------------------------------------


def field_path(reference: str) -> list[str]:
    """``[a][b]`` -> ['a', 'b']; a dot inside brackets is part of the key; ``a.b`` is one key."""
    reference = str(reference).strip()
    if reference.startswith("["):
        parts = re.findall(r"\[([^\[\]]+)\]", reference)
        if "".join(f"[{p}]" for p in parts) != reference:
            raise ConfigError(f"Invalid FieldReference: `{reference}`")
        return parts
    return [reference]


def get_field(event: dict, reference: str) -> Any:
    node: Any = event
    for part in field_path(reference):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and re.fullmatch(r"-?\d+", part) and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def set_field(event: dict, reference: str, value: Any) -> None:
    parts = field_path(reference)
    node = event
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def remove_field(event: dict, reference: str) -> None:
    parts = field_path(reference)
    node: Any = event
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_event(data: dict) -> dict:
    """An event as Logstash makes one: @timestamp (now unless given) and @version "1"."""
    event = dict(data)
    stamp = event.get("@timestamp")
    if not isinstance(stamp, str) or _parse_time(stamp) is None:
        if stamp is not None:
            LOG.warning("Unrecognized @timestamp value, setting current time to @timestamp %r", stamp)
        event["@timestamp"] = now_stamp()
    event.setdefault("@version", "1")
    return event


def _parse_time(stamp: str) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


_JODA = [("yyyy", "%Y"), ("YYYY", "%Y"), ("xxxx", "%G"), ("ww", "%V"), ("MM", "%m"), ("dd", "%d"),
         ("HH", "%H"), ("mm", "%M"), ("ss", "%S")]  # fmt: skip


def sprintf(event: dict, template: Any) -> str:
    """Logstash's sprintf: ``%{[a][b]}`` the field, ``%{+YYYY.MM.dd}`` @timestamp; a field that
    does not exist stays as written."""
    text = str(template)
    if "%{" not in text:
        return text

    def one(match: re.Match) -> str:
        name = match.group(1)
        if name.startswith("+"):
            stamp = _parse_time(str(event.get("@timestamp", ""))) or datetime.now(UTC)
            fmt = name[1:]
            for joda, strf in _JODA:
                fmt = fmt.replace(joda, strf)
            return stamp.astimezone(UTC).strftime(fmt)
        try:
            value = get_field(event, name)
        except ConfigError:
            return match.group(0)
        if value is MISSING or value is None:
            return match.group(0)
        if isinstance(value, dict | list):
            return json.dumps(value, separators=(",", ":"))
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return re.sub(r"%\{([^}]+)\}", one, text)


def add_tag(event: dict, tag: str) -> None:
    tags = event.get("tags")
    if tags is None:
        tags = event["tags"] = []
    elif not isinstance(tags, list):
        tags = event["tags"] = [tags]
    if tag not in tags:
        tags.append(tag)


def _rvalue(event: dict, value: Any) -> Any:
    if isinstance(value, Selector):
        found = get_field(event, value)
        return None if found is MISSING else found
    if isinstance(value, list):
        return [_rvalue(event, v) for v in value]
    return value


def evaluate(event: dict, cond: Any) -> bool:
    kind = cond[0]
    if kind == "truthy":
        value = _rvalue(event, cond[1])
        return value is not None and value is not False
    if kind == "not":
        return not evaluate(event, cond[1])
    if kind == "bool":
        a, b = evaluate(event, cond[2]), evaluate(event, cond[3])
        return {"and": a and b, "or": a or b, "xor": a != b, "nand": not (a and b)}[cond[1]]
    op, left, right = cond[1], _rvalue(event, cond[2]), _rvalue(event, cond[3])
    if op in ("=~", "!~"):
        found = isinstance(left, str) and re.search(str(cond[3]), left) is not None
        return found if op == "=~" else not found
    if op == "in":
        if isinstance(right, list):
            return left in right
        if isinstance(right, str) and isinstance(left, str):
            return left in right
        if isinstance(right, dict):
            return left in right
        return False
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    try:
        return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]
    except TypeError:
        return False


# --- settings ------------------------------------------------------------------------------

_ENV = re.compile(r"\$\{([^}:]+)(?::([^}]*))?\}")


def substitute(value: Any, where: str) -> Any:
    """``${VAR}`` / ``${VAR:default}`` from the environment; undefined without a default is a
    configuration error, as in Logstash."""
    if isinstance(value, list):
        return [substitute(v, where) for v in value]
    if isinstance(value, Hash):
        return Hash([(substitute(k, where), substitute(v, where)) for k, v in value.pairs])
    if isinstance(value, dict):
        return {k: substitute(v, where) for k, v in value.items()}
    if not isinstance(value, str) or "${" not in value:
        return value

    def one(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: Cannot evaluate `{match.group(0)}`. Replacement variable `{name}` is not defined in a "
            "Logstash secret store or as an Environment entry and there is no default value given."
        )

    out = _ENV.sub(one, value)
    return type(value)(out) if isinstance(value, Quoted | Selector) else out


def load_settings(path_settings: Path | None, overrides: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if path_settings is not None:
        file = path_settings / "logstash.yml"
        if not file.is_file():
            raise ConfigError(f"Logstash settings file not found: {file}")
        loaded = yaml.safe_load(file.read_text()) or {}
        for key, value in ref.flatten(loaded).items():
            values[key] = ref.check_setting(key, substitute(value, str(file)))
    for key, value in overrides.items():
        values[key] = ref.check_setting(key, value)
    return values


def setting(values: dict[str, Any], key: str) -> Any:
    if key in values and values[key] is not None:
        return values[key]
    defaults = {
        "node.name": socket.gethostname(),
        "path.data": str(HERE / "data"),
        "pipeline.workers": os.cpu_count() or 1,
        "queue.max_bytes": ref.bytesize("1024mb"),
        "dead_letter_queue.max_bytes": ref.bytesize("1024mb"),
        "pipeline.batch.delay": 50,
    }
    if key in defaults:
        return defaults[key]
    if key == "path.queue":
        return str(Path(setting(values, "path.data")) / "queue")
    if key == "path.dead_letter_queue":
        return str(Path(setting(values, "path.data")) / "dead_letter_queue")
    return ref.SETTINGS[key].default


def pipeline_definitions(args: argparse.Namespace, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Each pipeline's settings (global settings overridden per pipeline), as Logstash reads them."""
    if args.f or args.e:
        if args.path_settings and (Path(args.path_settings) / "pipelines.yml").exists():
            LOG.warning("Ignoring the 'pipelines.yml' file because modules or command line options are specified")
        one = {"pipeline.id": "main"}
        one["path.config" if args.f else "config.string"] = args.f or args.e
        return [{**settings, **one}]
    if not args.path_settings:
        raise ConfigError("no configuration: give -f FILE or --path.settings DIR with a pipelines.yml")
    file = Path(args.path_settings) / "pipelines.yml"
    if not file.is_file():
        raise ConfigError(f"Pipelines YAML file not found: {file}")
    entries = yaml.safe_load(file.read_text())
    if not entries:
        raise ConfigError(f"Pipelines YAML file is empty. Location: {file}")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"Pipelines YAML file must be a list of maps: {file}")
    out, seen = [], set()
    for entry in entries:
        entry = ref.flatten(entry)
        checked = {k: ref.check_setting(k, substitute(v, str(file)), per_pipeline=True) for k, v in entry.items()}
        pid = checked.get("pipeline.id")
        if not pid:
            raise ConfigError(f"{file}: a pipeline without pipeline.id")
        if pid in seen:
            raise ConfigError(f"Pipelines YAML file contains duplicate pipeline ids: {pid}. Location: {file}")
        seen.add(pid)
        if not checked.get("path.config") and not checked.get("config.string"):
            raise ConfigError(f"{file}: pipeline {pid} has neither path.config nor config.string")
        out.append({**settings, **checked})
    return out


def config_text(definition: dict[str, Any]) -> list[tuple[str, str]]:
    """(source name, text) of a pipeline: its path.config glob (sorted) or config.string."""
    if definition.get("config.string"):
        return [("config string", definition["config.string"])]
    pattern = str(definition["path.config"])
    files = sorted(p for p in glob.glob(pattern) if Path(p).is_file())
    if Path(pattern).is_dir():
        files = sorted(str(p) for p in Path(pattern).iterdir() if p.is_file())
    if not files:
        raise ConfigError(f"No config files found in path {pattern}")
    return [(f, Path(f).read_text()) for f in files]


def compile_pipeline(definition: dict[str, Any]) -> dict[str, list]:
    """Parse and check a pipeline as Logstash's ``-t`` does: grammar, plugin names, option
    names, required options, value types, duplicate ids. Options get their plugin values."""
    pid = definition["pipeline.id"]
    sections: dict[str, list] = {"input": [], "filter": [], "output": []}
    for source, text in config_text(definition):
        parsed = parse_config(text, source)
        for key in sections:
            for plugin in walk(parsed[key]):
                plugin.source = source
            sections[key] += parsed[key]
    ids: dict[str, Plugin] = {}
    for key in sections:
        for plugin in walk(sections[key]):
            check_plugin(plugin, definition)
            if plugin.id in ids:
                raise ConfigError(f"Two plugins have the id '{plugin.id}', please fix this conflict ({pid})")
            ids[plugin.id] = plugin
    if not sections["input"]:
        raise ConfigError(f"{pid}: a pipeline needs at least one input")
    return sections


# Plugins Logstash does not bundle: an installation knows them once `bin/logstash-plugin
# install` has added their gem to LOGSTASH_HOME/Gemfile.
UNBUNDLED = {("output", "opensearch"): "logstash-output-opensearch"}


def installed_gems() -> set[str] | None:
    """The gems of LOGSTASH_HOME/Gemfile (set by an installation's bin/logstash, as Logstash's
    own bin/logstash.lib.sh sets it); None without LOGSTASH_HOME: every plugin of the table."""
    home = os.environ.get("LOGSTASH_HOME")
    if not home:
        return None
    gemfile = Path(home) / "Gemfile"
    text = gemfile.read_text() if gemfile.is_file() else ""
    return set(re.findall(r"""^\s*gem\s+["']([^"']+)["']""", text, re.MULTILINE))


def check_plugin(plugin: Plugin, definition: dict[str, Any]) -> None:
    table = ref.options(plugin.section, plugin.name)
    where = f"{getattr(plugin, 'source', '?')}: {plugin.section} {plugin.name}"
    gem = UNBUNDLED.get((plugin.section, plugin.name))
    if gem is not None and table is not None:
        gems = installed_gems()
        if gems is not None and gem not in gems:
            table = None
    if table is None:
        raise ConfigError(
            f"{where}: Couldn't find any {plugin.section} plugin named '{plugin.name}'. Are you sure this is "
            "correct? (The plugin is not installed.)"
        )
    seen = set()
    for name, raw in plugin.raw:
        if name not in table:
            raise ConfigError(f"{where}: Unknown setting '{name}' for {plugin.name}")
        if name in seen:
            raise ConfigError(f"{where}: option '{name}' given twice")
        seen.add(name)
        value = substitute(raw.to_dict() if isinstance(raw, Hash) else raw, where)
        if isinstance(value, dict) and table[name].kind != "hash":
            raise ConfigError(f"{where}: invalid value for '{name}': a hash (expected {table[name].kind})")
        plugin.options[name] = ref.check_value(where, name, table[name], value)
        if table[name].deprecated:
            LOG.warning("%s: the option '%s' is deprecated (%s)", where, name, table[name].deprecated)
    for name, option in table.items():
        if option.required and name not in plugin.options:
            raise ConfigError(
                f"{where}: Missing a required setting for the {plugin.name} {plugin.section} plugin:\n\n"
                f"  {plugin.section} {{\n    {plugin.name} {{\n      {name} => # SETTING MISSING"
            )
    plugin.id = str(plugin.options.get("id") or f"{plugin.name}-{definition['pipeline.id']}-{plugin.index}")
    if plugin.name == "beats":
        _check_beats(where, plugin.options)
    if plugin.name == "memcached" and plugin.options.get("ttl", 0) < 0:
        raise ConfigError(f"{where}: 'ttl' option cannot be negative")
    if plugin.name == "elasticsearch" and str(plugin.options.get("data_stream")) == "true":
        for clash in ("index", "manage_template", "document_id"):
            if clash in plugin.options:
                raise ConfigError(f"{where}: Invalid data stream configuration, the following parameters are "
                                  f"not supported: {clash}")  # fmt: skip


def _check_beats(where: str, opts: dict[str, Any]) -> None:
    # LogStash::Inputs::Beats#validate_ssl_config! (6.9.x)
    if not opts.get("ssl_enabled"):
        ignored = [k for k in opts if k.startswith("ssl_") and k != "ssl_enabled"]
        if ignored:
            LOG.warning("%s: Configured SSL settings are not used when `ssl_enabled` is set to `false`: %s",
                        where, ignored)  # fmt: skip
        return
    for name in ("ssl_key", "ssl_certificate"):
        if not opts.get(name):
            raise ConfigError(f"{where}: {name} => is a required setting when ssl_enabled => true is configured")
    auth = opts.get("ssl_client_authentication", "none")
    cas = opts.get("ssl_certificate_authorities") or []
    if auth in ("optional", "required") and not cas:
        raise ConfigError(
            f"{where}: ssl_certificate_authorities => is a required setting when ssl_client_authentication "
            f"=> '{auth}' is configured"
        )
    if "ssl_client_authentication" in opts and cas and auth == "none":
        raise ConfigError(
            f"{where}: Configuring ssl_certificate_authorities requires ssl_client_authentication => to be "
            "configured with 'optional' or 'required'"
        )


# --- metrics -------------------------------------------------------------------------------


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, Any] = {}

    def add(self, path: str, n: int | float = 1) -> None:
        with self.lock:
            node = self.values
            *parents, last = path.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = node.get(last, 0) + n

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.values)


# --- queues ---------------------------------------------------------------------------------


class Stopping(Exception):
    """The pipeline is stopping: leave the batch unacknowledged (it is on disk)."""


class MemoryQueue:
    """Logstash's memory queue: a bounded in-process buffer (batch size x workers)."""

    kind = "memory"

    def __init__(self, capacity: int):
        self.capacity = max(capacity, 1)
        self.items: deque = deque()
        self.cond = threading.Condition()
        self.inflight = 0
        self.closed = False

    def push(self, events: list[dict]) -> None:
        with self.cond:
            for event in events:
                while len(self.items) >= self.capacity and not self.closed:
                    self.cond.wait(0.2)
                self.items.append(event)
                self.cond.notify_all()

    def read_batch(self, size: int, delay: float) -> tuple[Any, list[dict]] | None:
        deadline = None
        with self.cond:
            while True:
                if len(self.items) >= size or (self.items and deadline is not None and time.monotonic() >= deadline):
                    break
                if self.items and deadline is None:
                    deadline = time.monotonic() + delay
                if not self.items and self.closed:
                    return None
                self.cond.wait(0.05)
            batch = [self.items.popleft() for _n in range(min(size, len(self.items)))]
            self.inflight += len(batch)
            self.cond.notify_all()
            return len(batch), batch

    def ack(self, token: Any) -> None:
        with self.cond:
            self.inflight -= token
            self.cond.notify_all()

    def nack(self, token: Any, batch: list[dict]) -> None:
        self.ack(token)  # a memory queue cannot keep what it handed out

    def count(self) -> int:
        return len(self.items) + self.inflight

    def size_bytes(self) -> int:
        return 0

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class PersistedQueue(MemoryQueue):
    """queue.type persisted: every pushed event is appended to events.jsonl (fsynced) before
    push returns; checkpoint.json keeps the highest contiguous acknowledged sequence, so a
    restart hands out again everything not acknowledged. Not Logstash's page format."""

    kind = "persisted"

    def __init__(self, directory: Path, max_bytes: int):
        super().__init__(capacity=1 << 62)
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.data = self.dir / "events.jsonl"
        self.checkpoint = self.dir / "checkpoint.json"
        self.acked = json.loads(self.checkpoint.read_text())["acked"] if self.checkpoint.exists() else 0
        self.next_seq = self.acked + 1
        self.done: set[int] = set()
        if self.data.exists():
            for line in self.data.read_text().splitlines():
                if not line.strip():
                    continue
                entry = json.loads(line)
                self.next_seq = max(self.next_seq, entry["seq"] + 1)
                if entry["seq"] > self.acked:
                    self.items.append((entry["seq"], entry["event"]))
        self.file = self.data.open("a")

    def push(self, events: list[dict]) -> None:
        with self.cond:
            while self.data.stat().st_size >= self.max_bytes and self.count() and not self.closed:
                self.cond.wait(0.2)  # full: back-pressure to the inputs
            lines = []
            for event in events:
                lines.append(json.dumps({"seq": self.next_seq, "event": event}, separators=(",", ":")))
                self.items.append((self.next_seq, event))
                self.next_seq += 1
            self.file.write("\n".join(lines) + "\n")
            self.file.flush()
            os.fsync(self.file.fileno())
            self.cond.notify_all()

    def read_batch(self, size: int, delay: float) -> tuple[Any, list[dict]] | None:
        if self.closed:
            return None  # on shutdown what is queued stays on disk (queue.drain false)
        got = super().read_batch(size, delay)
        if got is None:
            return None
        _n, entries = got
        return [seq for seq, _e in entries], [copy.deepcopy(e) for _s, e in entries]

    def ack(self, token: Any) -> None:
        with self.cond:
            self.inflight -= len(token)
            self.done.update(token)
            while self.acked + 1 in self.done:
                self.acked += 1
                self.done.discard(self.acked)
            tmp = self.checkpoint.with_suffix(".tmp")
            tmp.write_text(json.dumps({"acked": self.acked}))
            os.replace(tmp, self.checkpoint)
            if not self.items and not self.inflight and not self.done:
                self.file.truncate(0)  # everything acknowledged: start the file again
                self.file.seek(0)
            self.cond.notify_all()

    def nack(self, token: Any, batch: list[dict]) -> None:
        with self.cond:
            self.inflight -= len(token)  # stays on disk, unacknowledged: handed out after a restart

    def size_bytes(self) -> int:
        return self.data.stat().st_size if self.data.exists() else 0


class DeadLetterQueue:
    """path.dead_letter_queue/<pipeline id>/dlq.jsonl: JSON lines, not Logstash's segments."""

    def __init__(self, directory: Path, max_bytes: int, policy: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "dlq.jsonl"
        self.max_bytes, self.policy = max_bytes, policy
        self.lock = threading.Lock()
        self.dropped = 0

    def write(self, event: dict, plugin: Plugin, reason: str) -> None:
        entry = {"@timestamp": now_stamp(), "plugin_type": plugin.name, "plugin_id": plugin.id, "reason": reason,
                 "event": event}  # fmt: skip
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self.lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size + len(line) > self.max_bytes:
                self.dropped += 1  # drop_newer; drop_older is not modelled
                LOG.error("cannot write event to DLQ (max_bytes reached): dropping it")
                return
            with self.path.open("a") as out:
                out.write(line)
                out.flush()
                os.fsync(out.fileno())

    def size_bytes(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0


# --- plugins ------------------------------------------------------------------------------

ADDRESSES: dict[str, Pipeline] = {}
ADDRESS_LOCK = threading.Lock()


class Runtime:
    """What a running plugin uses: its definition, its pipeline, counters."""

    def __init__(self, plugin: Plugin, pipeline: Pipeline):
        self.plugin, self.pipeline, self.o = plugin, pipeline, plugin.options
        self.stats = Counters()
        self.log = logging.getLogger(f"logstash.{plugin.section}s.{plugin.name}")

    def register(self) -> None:
        pass

    def close(self) -> None:
        pass

    def plugin_stats(self) -> dict[str, Any]:
        return {"id": self.plugin.id, "name": self.plugin.name, **self.stats.snapshot()}


class FilterRuntime(Runtime):
    def filter_matched(self, event: dict) -> None:
        """The common options, applied on success as LogStash::Filters::Base#filter_matched."""
        for name, value in (self.o.get("add_field") or {}).items():
            field = sprintf(event, name)
            values = value if isinstance(value, list) else [value]
            for v in values:
                v = sprintf(event, v)
                existing = get_field(event, field)
                if existing is MISSING:
                    set_field(event, field, v)
                elif isinstance(existing, list):
                    existing.append(v)
                else:
                    set_field(event, field, [existing, v])
        for tag in self.o.get("add_tag") or []:
            add_tag(event, sprintf(event, tag))
        for name in self.o.get("remove_field") or []:
            remove_field(event, sprintf(event, name))
        for tag in self.o.get("remove_tag") or []:
            tags = event.get("tags")
            if isinstance(tags, list) and sprintf(event, tag) in tags:
                tags.remove(sprintf(event, tag))

    def run(self, event: dict) -> None:
        raise NotImplementedError


class JsonFilter(FilterRuntime):
    def run(self, event: dict) -> None:
        source = get_field(event, self.o["source"])
        if source is MISSING or source is None:
            return
        try:
            parsed = json.loads(source)
        except (TypeError, ValueError) as exc:
            if self.o.get("skip_on_invalid_json"):
                return
            self.log.warning("Error parsing json {:source=>%r, :exception=>%s}", self.o["source"], exc)
            for tag in self.o.get("tag_on_failure", ["_jsonparsefailure"]):
                add_tag(event, tag)
            return
        target = self.o.get("target")
        if target:
            set_field(event, target, parsed)
        elif isinstance(parsed, dict):
            event.update(parsed)
        else:
            self.log.warning("Parsed JSON object/hash requires a target configuration option")
            for tag in self.o.get("tag_on_failure", ["_jsonparsefailure"]):
                add_tag(event, tag)
            return
        self.filter_matched(event)


class MemcachedFilter(FilterRuntime):
    """logstash-filter-memcached 1.2.0: connect at register (the pipeline does not start when
    no server answers); on a network error tag tag_on_failure, close, reconnect on the next
    event; a key not found sets nothing."""

    def register(self) -> None:
        from pymemcache.client.hash import HashClient

        servers = []
        for host in self.o.get("hosts", ["localhost"]):
            host = str(host)
            if host.startswith("["):
                addr, _sep, port = host[1:].partition("]:")
            elif host.count(":") == 1:
                addr, port = host.split(":")
            else:
                addr, port = host, "11211"
            servers.append((addr, int(port or 11211)))
        self.servers = servers
        self.namespace = self.o.get("namespace") or ""
        self.tag = self.o.get("tag_on_failure", "_memcached_failure")
        self.lock = threading.Lock()
        self.client_cls = HashClient
        self.client = None
        if not self._connect():
            raise RuntimeError("failed to connect to memcached")

    def _connect(self) -> bool:
        from pymemcache.client.base import Client

        alive = 0
        for server in self.servers:  # Dalli's alive!: at least one server answers
            probe = Client(server, connect_timeout=1, timeout=1)
            try:
                probe.version()
                alive += 1
            except Exception as exc:
                self.log.error("failed to connect to memcached {:hosts=>%s, :message=>%s}", self.servers, exc)
            finally:
                probe.close()
        if not alive:
            return False
        if len(self.servers) == 1:
            self.client = Client(self.servers[0], connect_timeout=1, timeout=1)
        else:
            self.client = self.client_cls(self.servers, connect_timeout=1, timeout=1, ignore_exc=False)
        return True

    def _key(self, key: str) -> str:
        return f"{self.namespace}:{key}" if self.namespace else key

    def run(self, event: dict) -> None:
        with self.lock:
            if self.client is None and not self._connect():
                add_tag(event, self.tag)
                return
            try:
                hits = self._get(event) + self._set(event)
            except Exception as exc:
                add_tag(event, self.tag)
                self.log.error("memcached communication error {:hosts=>%s, :message=>%s}", self.servers, exc)
                with contextlib.suppress(Exception):
                    self.client.close()
                self.client = None
                return
        if hits:
            self.filter_matched(event)

    def _get(self, event: dict) -> int:
        wanted = {sprintf(event, k): field for k, field in (self.o.get("get") or {}).items()}
        if not wanted:
            return 0
        found = self.client.get_many([self._key(k) for k in wanted])
        hits = 0
        for key, field in wanted.items():
            value = found.get(self._key(key))
            if value is not None:
                set_field(event, field, value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
                hits += 1
        return hits

    def _set(self, event: dict) -> int:
        values = {}
        for field, key in (self.o.get("set") or {}).items():
            value = get_field(event, field)
            if value is not MISSING and value is not None:
                values[self._key(sprintf(event, key))] = value if isinstance(value, str) else json.dumps(value)
        if values:
            self.client.set_many(values, expire=int(self.o.get("ttl", 0)))
        return 1 if values else 0

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()


class MutateFilter(FilterRuntime):
    def run(self, event: dict) -> None:
        # mutate's processing order: rename ... copy; then the common options.
        for source, target in (self.o.get("rename") or {}).items():
            value = get_field(event, source)
            if value is not MISSING:
                remove_field(event, source)
                set_field(event, sprintf(event, target), value)
        for source, target in (self.o.get("copy") or {}).items():
            value = get_field(event, source)
            if value is not MISSING:
                set_field(event, sprintf(event, target), copy.deepcopy(value))
        self.filter_matched(event)


class PipelineOutput(Runtime):
    def send(self, events: list[dict]) -> None:
        for address in self.o["send_to"]:
            while True:
                with ADDRESS_LOCK:
                    target = ADDRESSES.get(address)
                if target is not None and target.accepting:
                    target.push([copy.deepcopy(e) for e in events], from_address=address)
                    break
                if not self.o.get("ensure_delivery", True):
                    self.log.warning("Attempted to send event to '%s' but that address was unavailable", address)
                    break
                if self.pipeline.stopping.is_set() and self.pipeline.queue.kind == "persisted":
                    raise Stopping
                self.log.warning("Attempted to send event to '%s' but that address was unavailable. Maybe the "
                                 "destination pipeline is down or stopping? Will Retry.", address)  # fmt: skip
                time.sleep(1)


class BulkOutput(Runtime):
    """The elasticsearch and opensearch outputs: _bulk with retries and the DLQ codes."""

    def register(self) -> None:
        o = self.o
        opensearch = self.plugin.name == "opensearch"
        self.product = "OpenSearch" if opensearch else "Elasticsearch"
        tls = bool(o.get("ssl") if opensearch else o.get("ssl_enabled"))
        hosts = []
        for host in o.get("hosts", ["//127.0.0.1"]):
            host = str(host)
            if host.startswith("//"):
                host = host[2:]
            if "://" not in host:
                host = ("https://" if tls else "http://") + host
            scheme, rest = host.split("://", 1)
            netloc, _sep, path = rest.partition("/")
            if ":" not in netloc.rsplit("]", 1)[-1]:
                netloc += ":9200"
            hosts.append(f"{scheme}://{netloc}/{path}".rstrip("/"))
        self.hosts = itertools.cycle(hosts)
        if any(h.startswith("https") for h in hosts):
            cafiles = o.get("cacert") if opensearch else o.get("ssl_certificate_authorities")
            verify = o.get("ssl_certificate_verification", True) if opensearch else (
                o.get("ssl_verification_mode", "full") == "full")  # fmt: skip
            context = ssl.create_default_context()
            for cafile in [cafiles] if isinstance(cafiles, str) else cafiles or []:
                context.load_verify_locations(cafile)
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self.context: ssl.SSLContext | None = context
        else:
            self.context = None
        self.headers = {"Content-Type": "application/x-ndjson"}
        if o.get("user"):
            token = base64.b64encode(f"{o['user']}:{o.get('password', '')}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        elif o.get("api_key"):
            self.headers["Authorization"] = f"ApiKey {base64.b64encode(str(o['api_key']).encode()).decode()}"
        self.dlq_codes = {400, 404} | set(o.get("dlq_custom_codes") or [])
        self.initial = float(o.get("retry_initial_interval", 2))
        self.maximum = float(o.get("retry_max_interval", 64))
        default_action = "index"
        if not opensearch and str(o.get("data_stream", "auto")) == "true":
            default_action = "create"
        self.action, self.index = o.get("action", default_action), o.get("index")
        if self.index is None:
            ecs = self.pipeline.ecs != "disabled"
            self.index = ("ecs-logstash-%{+yyyy.MM.dd}" if ecs else "logstash-%{+yyyy.MM.dd}") if opensearch else (
                "logs-generic-default" if ecs else "logstash-%{+yyyy.MM.dd}")  # fmt: skip

    def _request(self, body: bytes) -> dict:
        url = next(self.hosts) + "/_bulk"
        request = urllib.request.Request(url, data=body, headers=self.headers, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=float(self.o.get("timeout", 60)), context=self.context) as answer:  # noqa: S310
            status = answer.status
            payload = answer.read()
        self.stats.add(f"bulk_requests.responses.{status}")
        if status != 200:
            raise urllib.error.HTTPError(url, status, "bulk", {}, None)  # type: ignore[arg-type]
        return json.loads(payload)

    def send(self, events: list[dict]) -> None:
        pending = []
        for event in events:
            action = sprintf(event, self.action)
            index = sprintf(event, self.index)
            if action not in ("index", "create", "update", "delete"):
                self._dead(event, f"Could not index event to {self.product}. Invalid action: {action}")
                continue
            if "%{" in index and self.plugin.name == "elasticsearch" and self.o.get(
                    "dlq_on_failed_indexname_interpolation", True):  # fmt: skip
                self._dead(event, f"Badly formatted index, after interpolation still contains placeholder: [{index}]")
                continue
            meta: dict[str, Any] = {"_index": index}
            if self.o.get("pipeline"):
                pipeline = sprintf(event, self.o["pipeline"])
                if "%{" not in pipeline and pipeline:
                    meta["pipeline"] = pipeline
            if self.o.get("document_id"):
                meta["_id"] = sprintf(event, self.o["document_id"])
            source = {k: v for k, v in event.items() if k != "@metadata"}
            pending.append((event, action, meta, source))
        delay = self.initial
        while pending:
            body = "".join(
                json.dumps({a: m}, separators=(",", ":")) + "\n" + json.dumps(s, separators=(",", ":")) + "\n"
                for _e, a, m, s in pending
            ).encode()
            try:
                answer = self._request(body)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                self.stats.add("bulk_requests.failures")
                self.log.warning("Attempted to send a bulk request but there are no living connections in the "
                                 "pool (perhaps %s is unreachable or down?) {:message=>%s, :will_retry_in_seconds=>%s}",
                                 self.product, exc, delay)  # fmt: skip
                self._sleep(delay)
                delay = min(delay * 2, self.maximum)
                continue
            retry = []
            self.stats.add("bulk_requests.with_errors" if answer.get("errors") else "bulk_requests.successes")
            for item, entry in zip(answer.get("items", []), pending, strict=False):
                status = next(iter(item.values())).get("status", 500)
                error = next(iter(item.values())).get("error")
                if status in (200, 201):
                    self.stats.add("documents.successes")
                elif status == 409:
                    self.stats.add("documents.non_retryable_failures")
                    self.log.warning("Failed action {:status=>409, :response=>%s}", error)
                elif status in self.dlq_codes:
                    self.stats.add("documents.dlq_routed" if self.plugin.name == "elasticsearch"
                                   else "documents.non_retryable_failures")  # fmt: skip
                    self._dead(entry[0], f"Could not index event to {self.product}. status: {status}, "
                                         f"action: {[entry[1], entry[2]]}, response: {json.dumps(item)}")  # fmt: skip
                else:
                    self.stats.add("documents.retryable_failures")
                    self.log.info("Retrying failed action {:status=>%s, :error=>%s}", status, error)
                    retry.append(entry)
            pending = retry
            if pending:
                self._sleep(delay)
                delay = min(delay * 2, self.maximum)

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.pipeline.stopping.is_set() and self.pipeline.queue.kind == "persisted":
                raise Stopping
            time.sleep(min(0.1, seconds))

    def _dead(self, event: dict, reason: str) -> None:
        if self.pipeline.dlq is not None:
            self.pipeline.dlq.write(event, self.plugin, reason)
        else:
            self.log.warning("%s (the dead letter queue is not enabled: the event is dropped)", reason)


class PipelineInput(Runtime):
    def register(self) -> None:
        with ADDRESS_LOCK:
            if self.o["address"] in ADDRESSES:
                raise RuntimeError(f"address {self.o['address']} is already in use by another pipeline input")
            ADDRESSES[self.o["address"]] = self.pipeline

    def close(self) -> None:
        with ADDRESS_LOCK:
            if ADDRESSES.get(self.o["address"]) is self.pipeline:
                del ADDRESSES[self.o["address"]]

    def start(self) -> None:
        pass


def kafka_tls(o: dict[str, Any], where: str) -> ssl.SSLContext | None:
    """The SSL context of a Kafka client of logstash-integration-kafka (security_protocol
    SSL): PEM stores only (KIP-651): the truststore a file of CA certificates, the keystore
    one file with the PKCS#8 key and the certificate chain; ssl_key_password decrypts the key;
    a store password is refused with PEM stores, as Kafka's client refuses it."""
    protocol = o.get("security_protocol", "PLAINTEXT")
    if protocol == "PLAINTEXT":
        return None
    if protocol != "SSL":
        raise ConfigError(f"{where}: security_protocol {protocol} is accepted but not run by the stand-in")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if o.get("ssl_truststore_location"):
        if str(o.get("ssl_truststore_type") or "JKS").upper() != "PEM":
            raise ConfigError(f"{where}: ssl_truststore_type {o.get('ssl_truststore_type') or 'JKS'} is not run by "
                              "the stand-in (PEM only)")  # fmt: skip
        if o.get("ssl_truststore_password"):  # Kafka's DefaultSslEngineFactory refuses it for PEM
            raise ConfigError(f"{where}: SSL trust store password cannot be specified for PEM format.")
        context.load_verify_locations(o["ssl_truststore_location"])
    else:
        context.load_default_certs()
    if o.get("ssl_keystore_location"):
        if str(o.get("ssl_keystore_type") or "JKS").upper() != "PEM":
            raise ConfigError(f"{where}: ssl_keystore_type {o.get('ssl_keystore_type') or 'JKS'} is not run by "
                              "the stand-in (PEM only)")  # fmt: skip
        if o.get("ssl_keystore_password"):
            raise ConfigError(f"{where}: SSL key store password cannot be specified with PEM format, only key "
                              "password may be specified")  # fmt: skip
        store = Path(o["ssl_keystore_location"]).read_text()
        if "-----BEGIN PRIVATE KEY-----" not in store and "-----BEGIN ENCRYPTED PRIVATE KEY-----" not in store:
            raise ConfigError(f"{where}: the PEM keystore {o['ssl_keystore_location']} has no PKCS#8 private key")
        password = o.get("ssl_key_password") or None
        context.load_cert_chain(o["ssl_keystore_location"], o["ssl_keystore_location"], password=password)
    # ssl.endpoint.identification.algorithm: "https" checks the broker's name, "" does not.
    context.check_hostname = str(o.get("ssl_endpoint_identification_algorithm", "https")).lower() == "https"
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class KafkaInput(Runtime):
    """The kafka input of logstash-integration-kafka 11.8.x: consumer_threads consumers of
    one group (kafka-python's KafkaConsumer), each polling, decoding every record with the
    codec, pushing the records of a poll to the queue and only then committing their offsets
    (at least once: Logstash commits in the background with enable_auto_commit, and only
    records already handed to the queue; the stand-in commits synchronously after the push,
    so a record is never committed before it is queued, with or without enable_auto_commit)."""

    def register(self) -> None:
        o = self.o
        where = f"input kafka ({self.plugin.id})"
        if o.get("topics_pattern"):
            raise ConfigError(f"{where}: topics_pattern is accepted but not run by the stand-in")
        try:
            import kafka  # noqa: F401
        except ImportError as exc:
            raise ConfigError(f"{where}: the kafka client (kafka-python) is missing: {exc}") from exc
        self.context = kafka_tls(o, where)
        logging.getLogger("kafka").setLevel(max(logging.WARNING, LOG.getEffectiveLevel()))
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.codec = o.get("codec", "plain")
        decorate_events = str(o.get("decorate_events", "none"))
        self.decorate_events = {"true": "basic", "false": "none"}.get(decorate_events, decorate_events)
        self.event_original = self.pipeline.ecs != "disabled"

    def _consumer(self) -> Any:
        from kafka import KafkaConsumer

        o = self.o
        settings: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in str(o.get("bootstrap_servers", "localhost:9092")).split(",")],
            "group_id": o.get("group_id", "logstash"),
            "client_id": o.get("client_id", "logstash"),
            "enable_auto_commit": False,
            "max_poll_records": int(o.get("max_poll_records", 500)),
            "security_protocol": "SSL" if self.context is not None else "PLAINTEXT",
        }
        if o.get("auto_offset_reset"):
            settings["auto_offset_reset"] = o["auto_offset_reset"]
        if self.context is not None:
            settings["ssl_context"] = self.context
        return KafkaConsumer(*o.get("topics", ["logstash"]), **settings)

    def start(self) -> None:
        for n in range(int(self.o.get("consumer_threads", 1))):
            thread = threading.Thread(target=self._run, args=(n,), name=f"kafka-input-worker-{n}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def _run(self, n: int) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            try:
                consumer = self._consumer()
            except Exception as exc:  # no broker yet, refused handshake: retried as the Java client does
                self.log.warning("Unable to create Kafka consumer from given configuration {:kafka_error_message=>%s}",
                                 exc)  # fmt: skip
                self.stopping.wait(delay)
                delay = min(delay * 2, 30)
                continue
            try:
                self._consume(consumer)
            except Exception:
                self.log.exception("Unable to poll Kafka consumer (thread %d)", n)
                self.stopping.wait(1)
            finally:
                with contextlib.suppress(Exception):
                    consumer.close(autocommit=False)

    def _consume(self, consumer: Any) -> None:
        timeout = int(self.o.get("poll_timeout_ms", 100))
        while not self.stopping.is_set():
            polled = consumer.poll(timeout_ms=timeout)
            records = [r for part in polled.values() for r in part]
            if not records:
                continue
            events = [self._event(r) for r in records]
            self.pipeline.push(events)
            self.stats.add("events.out", len(events))
            consumer.commit()  # offsets of the records just queued

    def _event(self, record: Any) -> dict:
        raw = record.value if record.value is not None else b""
        text = raw.decode("utf-8", errors="replace")
        if self.codec == "json":
            try:
                data = json.loads(text)
            except ValueError as exc:
                self.log.error("JSON parse error, original data now in message field {:message=>%s}", exc)
                event = new_event({"message": text, "tags": ["_jsonparsefailure"]})
            else:
                if isinstance(data, dict):
                    event = new_event(data)
                else:
                    event = new_event({"message": text, "tags": ["_jsonparsefailure"]})
        else:  # plain
            event = new_event({"message": text})
            if self.event_original:
                set_field(event, "[event][original]", text)
        if self.decorate_events in ("basic", "extended"):
            kafka_meta = {
                "topic": record.topic,
                "consumer_group": self.o.get("group_id", "logstash"),
                "partition": record.partition,
                "offset": record.offset,
                "key": record.key.decode("utf-8", errors="replace") if record.key is not None else None,
                "timestamp": record.timestamp,
            }
            if self.decorate_events == "extended":
                for key, value in record.headers or []:
                    kafka_meta.setdefault("headers", {})[key] = value.decode("utf-8", errors="replace")
            set_field(event, "[@metadata][kafka]", kafka_meta)
        return decorate(event, self.o)

    def close(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)


class _BeatsServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class BeatsInput(Runtime):
    """The Beats (lumberjack v2) server of logstash-input-beats 6.9.x."""

    def register(self) -> None:
        o = self.o
        self.context: ssl.SSLContext | None = None
        if o.get("ssl_enabled"):
            key = Path(o["ssl_key"]).read_text()
            if "-----BEGIN PRIVATE KEY-----" not in key and "-----BEGIN ENCRYPTED PRIVATE KEY-----" not in key:
                # Netty reads PKCS#8 only; the plugin then raises at register.
                raise ConfigError(f"SSL configuration invalid: File does not contain valid private key: {o['ssl_key']}")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(o["ssl_certificate"], o["ssl_key"], password=o.get("ssl_key_passphrase"))
            versions = {"TLSv1.1": ssl.TLSVersion.TLSv1_1, "TLSv1.2": ssl.TLSVersion.TLSv1_2,
                        "TLSv1.3": ssl.TLSVersion.TLSv1_3}  # fmt: skip
            wanted = [versions[p] for p in o.get("ssl_supported_protocols", ["TLSv1.2", "TLSv1.3"])]
            context.minimum_version, context.maximum_version = min(wanted), max(wanted)
            auth = o.get("ssl_client_authentication", "none")
            if auth != "none":
                for ca in o.get("ssl_certificate_authorities", []):
                    context.load_verify_locations(ca)
                context.verify_mode = ssl.CERT_REQUIRED if auth == "required" else ssl.CERT_OPTIONAL
            self.context = context
        enrich = o.get("enrich", ["codec_metadata", "source_metadata"])
        if "all" in enrich:
            enrich = ["codec_metadata", "source_metadata", "ssl_peer_metadata"]
        if "none" in enrich:
            enrich = []
        self.enrich = set(enrich)
        ecs = o.get("ecs_compatibility", self.pipeline.ecs)
        self.field_ip = "[@metadata][ip_address]" if ecs == "disabled" else "[@metadata][input][beats][host][ip]"
        codec_ecs = self.pipeline.ecs if ("codec_metadata" in self.enrich or "codec" in o) else "disabled"
        self.event_original = codec_ecs != "disabled"

        def handle(request_handler: socketserver.BaseRequestHandler) -> None:
            self._connection(request_handler)

        handler = type("Handler", (socketserver.BaseRequestHandler,), {"handle": handle})
        self.server = _BeatsServer((o.get("host", "0.0.0.0"), int(o["port"])), handler)  # noqa: S104
        self.log.info('Starting input listener {:address=>"%s:%s"}', o.get("host", "0.0.0.0"), o["port"])  # noqa: S104

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _connection(self, handler: socketserver.BaseRequestHandler) -> None:
        sock: socket.socket = handler.request
        peer = handler.client_address[0]
        sock.settimeout(float(self.o.get("client_inactivity_timeout", 60)))
        if self.context is not None:
            try:
                sock = self.context.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                self.log.info("Exception caught in channel initializer: %s", exc)
                return
        self.stats.add("connections", 1)
        try:
            self._serve(sock, peer)
        except (OSError, ValueError, EOFError, zlib.error) as exc:
            self.log.debug("Handling exception: %s", exc)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def _serve(self, sock: socket.socket, peer: str) -> None:
        reader = sock.makefile("rb")
        state: dict[str, Any] = {"window": 0, "batch": []}

        def exact(stream: Any) -> Callable[[int], bytes]:
            def read(n: int) -> bytes:
                data = stream.read(n)
                if len(data) != n:
                    raise EOFError("connection closed in a frame")
                return data

            return read

        def frames(stream: Any, read: Callable[[int], bytes]) -> bool:
            """Handle the frames of a stream; False at its end."""
            head = stream.read(2)
            if len(head) < 2:
                return False
            version, kind = chr(head[0]), chr(head[1])
            if version not in "12":
                raise ValueError(f"Invalid version of beats protocol: {version!r}")
            if kind == "W":
                state["window"], state["batch"] = struct.unpack(">I", read(4))[0], []
            elif kind == "C":
                inner = io.BytesIO(zlib.decompress(read(struct.unpack(">I", read(4))[0])))
                while frames(inner, exact(inner)):
                    pass
            elif kind == "J":
                seq, length = struct.unpack(">II", read(8))
                state["batch"].append((seq, json.loads(read(length))))
            elif kind == "D":
                seq, pairs = struct.unpack(">II", read(8))
                data = {}
                for _n in range(pairs):
                    key = read(struct.unpack(">I", read(4))[0]).decode()
                    data[key] = read(struct.unpack(">I", read(4))[0]).decode()
                state["batch"].append((seq, data))
            else:
                raise ValueError(f"Unknown frame type {kind!r}")
            if state["window"] and len(state["batch"]) >= state["window"]:
                self._deliver(sock, peer, state["batch"])
                state["window"], state["batch"] = 0, []
            return True

        while frames(reader, exact(reader)):
            pass

    def _deliver(self, sock: socket.socket, peer: str, batch: list[tuple[int, dict]]) -> None:
        events = [self._event(data, peer) for _seq, data in batch]
        done = threading.Event()
        failure: list[BaseException] = []

        def push() -> None:
            try:
                self.pipeline.push(events)
                self.stats.add("events.out", len(events))
            except BaseException as exc:  # reported below
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=push, daemon=True).start()
        while not done.wait(5):
            sock.sendall(b"2A" + struct.pack(">I", 0))  # keep-alive while the queue blocks
        if failure:
            raise OSError(f"events not queued: {failure[0]}")
        sock.sendall(b"2A" + struct.pack(">I", batch[-1][0]))  # ACK: the window is in the queue

    def _event(self, data: Any, peer: str) -> dict:
        if not isinstance(data, dict):
            data = {"message": str(data)}
        data = copy.deepcopy(data)
        if "source_metadata" in self.enrich:
            set_field(data, self.field_ip, peer)
        line = data.pop("message", None)
        if line is not None:
            event = new_event({"message": str(line)})  # the plain codec
            if self.event_original:
                set_field(event, "[event][original]", str(line))
            stamp = data.pop("@timestamp", None)
            if isinstance(stamp, str) and _parse_time(stamp) is not None:
                event["@timestamp"] = stamp
            for key, value in data.items():
                existing = event.get(key)
                event[key] = {**existing, **value} if isinstance(existing, dict) and isinstance(value, dict) else value
            if "codec_metadata" in self.enrich:
                add_tag(event, "beats_input_codec_plain_applied")
        else:
            event = new_event(data)
            if "codec_metadata" in self.enrich:
                add_tag(event, "beats_input_raw_event")
        return decorate(event, self.o)


def decorate(event: dict, o: dict[str, Any]) -> dict:
    """The input common options: type (when not set), tags, add_field."""
    if o.get("type") and "type" not in event:
        event["type"] = o["type"]
    for tag in o.get("tags") or []:
        add_tag(event, tag)
    for name, value in (o.get("add_field") or {}).items():
        set_field(event, sprintf(event, name), sprintf(event, value))
    return event


RUNTIMES: dict[tuple[str, str], Callable[[Plugin, Pipeline], Runtime]] = {
    ("input", "beats"): BeatsInput,
    ("input", "pipeline"): PipelineInput,
    ("input", "kafka"): KafkaInput,
    ("filter", "json"): JsonFilter,
    ("filter", "memcached"): MemcachedFilter,
    ("filter", "mutate"): MutateFilter,
    ("output", "pipeline"): PipelineOutput,
    ("output", "elasticsearch"): BulkOutput,
    ("output", "opensearch"): BulkOutput,
}


# --- pipelines ------------------------------------------------------------------------------


class Pipeline:
    def __init__(self, definition: dict[str, Any], sections: dict[str, list]):
        self.definition = definition
        self.id = str(definition["pipeline.id"])
        self.sections = sections
        self.stopping = threading.Event()
        self.accepting = False
        self.ecs = str(setting(definition, "pipeline.ecs_compatibility"))
        self.workers = int(setting(definition, "pipeline.workers"))
        self.batch_size = int(setting(definition, "pipeline.batch.size"))
        self.batch_delay = float(setting(definition, "pipeline.batch.delay")) / 1000
        self.counters = Counters()
        self.runtimes: dict[str, Runtime] = {}
        self.threads: list[threading.Thread] = []
        self.log = logging.getLogger("logstash.javapipeline")
        if setting(definition, "queue.type") == "persisted":
            path = Path(setting(definition, "path.queue")) / self.id
            self.queue: MemoryQueue = PersistedQueue(path, int(setting(definition, "queue.max_bytes")))
        else:
            self.queue = MemoryQueue(self.batch_size * self.workers)
        self.dlq = None
        if setting(definition, "dead_letter_queue.enable"):
            self.dlq = DeadLetterQueue(
                Path(setting(definition, "path.dead_letter_queue")) / self.id,
                int(setting(definition, "dead_letter_queue.max_bytes")),
                str(setting(definition, "dead_letter_queue.storage_policy")),
            )

    def start(self) -> None:
        for section in ("filter", "output", "input"):
            for plugin in walk(self.sections[section]):
                runtime = RUNTIMES[(plugin.section, plugin.name)](plugin, self)
                runtime.register()
                self.runtimes[plugin.id] = runtime
        self.accepting = True
        for _n in range(self.workers):
            thread = threading.Thread(target=self._worker, name=f"[{self.id}]>worker", daemon=True)
            thread.start()
            self.threads.append(thread)
        for plugin in walk(self.sections["input"]):
            self.runtimes[plugin.id].start()  # type: ignore[attr-defined]
        self.log.info('Pipeline started {"pipeline.id"=>"%s"}', self.id)

    def push(self, events: list[dict], from_address: str | None = None) -> None:
        if from_address is not None:
            plugin = next(p for p in walk(self.sections["input"]) if p.options.get("address") == from_address)
            events = [decorate(new_event(e), plugin.options) for e in events]
            self.runtimes[plugin.id].stats.add("events.out", len(events))
        started = time.monotonic()
        self.queue.push(events)
        self.counters.add("events.in", len(events))
        self.counters.add("events.queue_push_duration_in_millis", int((time.monotonic() - started) * 1000))

    def _worker(self) -> None:
        while True:
            got = self.queue.read_batch(self.batch_size, self.batch_delay)
            if got is None:
                return
            token, batch = got
            started = time.monotonic()
            try:
                survivors = []
                for event in batch:
                    self._filter(self.sections["filter"], event)
                    survivors.append(event)
                self.counters.add("events.filtered", len(survivors))
                routed: dict[str, list[dict]] = {}
                order: list[str] = []
                for event in survivors:
                    for plugin in self._outputs(self.sections["output"], event):
                        if plugin.id not in routed:
                            order.append(plugin.id)
                        routed.setdefault(plugin.id, []).append(event)
                for pid in order:
                    runtime = self.runtimes[pid]
                    out_started = time.monotonic()
                    runtime.stats.add("events.in", len(routed[pid]))
                    runtime.send(routed[pid])  # type: ignore[attr-defined]
                    runtime.stats.add("events.out", len(routed[pid]))
                    runtime.stats.add("events.duration_in_millis", int((time.monotonic() - out_started) * 1000))
            except Stopping:
                self.queue.nack(token, batch)
                return
            except Exception:
                self.log.exception("Pipeline worker error, the batch stays unacknowledged (%s)", self.id)
                self.queue.nack(token, batch)
                return
            self.counters.add("events.out", len(batch))
            self.counters.add("events.duration_in_millis", int((time.monotonic() - started) * 1000))
            self.queue.ack(token)

    def _filter(self, items: list, event: dict) -> None:
        for item in items:
            if isinstance(item, Plugin):
                runtime = self.runtimes[item.id]
                started = time.monotonic()
                runtime.stats.add("events.in")
                runtime.run(event)  # type: ignore[attr-defined]
                runtime.stats.add("events.out")
                runtime.stats.add("events.duration_in_millis", int((time.monotonic() - started) * 1000))
            else:
                for cond, body in item.arms:
                    if cond is None or evaluate(event, cond):
                        self._filter(body, event)
                        break

    def _outputs(self, items: list, event: dict) -> list[Plugin]:
        out: list[Plugin] = []
        for item in items:
            if isinstance(item, Plugin):
                out.append(item)
            else:
                for cond, body in item.arms:
                    if cond is None or evaluate(event, cond):
                        out += self._outputs(body, event)
                        break
        return out

    def stop(self) -> None:
        """Stop the inputs, then let the workers drain the queue (a persisted queue keeps on
        disk what the outputs could not take), then close the plugins."""
        self.accepting = False
        for plugin in walk(self.sections["input"]):
            runtime = self.runtimes.get(plugin.id)
            if runtime is not None:
                runtime.close()
        self.stopping.set()
        self.queue.close()
        for thread in self.threads:
            thread.join()
        for runtime in self.runtimes.values():
            if runtime.plugin.section != "input":
                runtime.close()
        self.log.info('Pipeline terminated {"pipeline.id"=>"%s"}', self.id)

    def info(self) -> dict[str, Any]:
        """The pipeline in the node info API (``GET /_node/pipelines``)."""
        return {
            "workers": self.workers,
            "batch_size": self.batch_size,
            "batch_delay": int(self.batch_delay * 1000),
            "config_reload_automatic": bool(setting(self.definition, "config.reload.automatic")),
            "config_reload_interval": int(time_value(str(setting(self.definition, "config.reload.interval"))) * 1e9),
            "dead_letter_queue_enabled": self.dlq is not None,
            **({"dead_letter_queue_path": str(self.dlq.path.parent)} if self.dlq is not None else {}),
        }

    def stats(self) -> dict[str, Any]:
        plugins: dict[str, list] = {"inputs": [], "codecs": [], "filters": [], "outputs": []}
        for section in ("input", "filter", "output"):
            for plugin in walk(self.sections[section]):
                runtime = self.runtimes.get(plugin.id)
                entry = runtime.plugin_stats() if runtime else {"id": plugin.id, "name": plugin.name}
                entry.setdefault("events", {})
                keys = (
                    ("out", "queue_push_duration_in_millis")
                    if section == "input"
                    else ("in", "out", "duration_in_millis")
                )
                for key in keys:
                    entry["events"].setdefault(key, 0)
                plugins[section + "s"].append(entry)
        events = self.counters.snapshot().get("events", {})
        for key in ("in", "filtered", "out", "duration_in_millis", "queue_push_duration_in_millis"):
            events.setdefault(key, 0)
        queue = {"type": self.queue.kind, "events_count": self.queue.count()}
        if self.queue.kind == "persisted":
            queue.update(queue_size_in_bytes=self.queue.size_bytes(),
                         max_queue_size_in_bytes=int(setting(self.definition, "queue.max_bytes")))  # fmt: skip
        out = {"events": events, "plugins": plugins, "reloads": {"successes": 0, "failures": 0}, "queue": queue}
        if self.dlq is not None:
            out["dead_letter_queue"] = {
                "queue_size_in_bytes": self.dlq.size_bytes(),
                "dropped_events": self.dlq.dropped,
                "storage_policy": self.dlq.policy,
                "max_queue_size_in_bytes": self.dlq.max_bytes,
            }
        return out


# --- the API ------------------------------------------------------------------------------


class Api:
    def __init__(self, settings: dict[str, Any], pipelines: dict[str, Pipeline]):
        self.settings, self.pipelines = settings, pipelines
        self.ephemeral_id = str(uuid.uuid4())
        data = Path(setting(settings, "path.data"))
        data.mkdir(parents=True, exist_ok=True)
        uuid_file = data / "uuid"
        if not uuid_file.exists():
            uuid_file.write_text(str(uuid.uuid4()))
        self.node_id = uuid_file.read_text().strip()
        host = str(setting(settings, "api.http.host"))
        ports = str(setting(settings, "api.http.port"))
        first, _sep, last = ports.partition("-")
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, body = api.answer(self.path.split("?", 1)[0])
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        for port in range(int(first), int(last or first) + 1):  # the first free port of the range
            try:
                self.server = ThreadingHTTPServer((host, port), Handler)
                break
            except OSError:
                continue
        else:
            raise ConfigError(f"could not bind the API to {host}:{ports}")
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        LOG.info("Successfully started Logstash API endpoint {:port=>%s, :ssl_enabled=>false}", self.port)

    def _base(self) -> dict[str, Any]:
        return {
            "host": socket.gethostname(),
            "version": VERSION,
            "http_address": f"{setting(self.settings, 'api.http.host')}:{self.port}",
            "id": self.node_id,
            "name": setting(self.settings, "node.name"),
            "ephemeral_id": self.ephemeral_id,
            "status": "green",
            "snapshot": False,
        }

    def answer(self, path: str) -> tuple[int, Any]:
        path = path.rstrip("/") or "/"
        if path == "/":
            pipeline = {
                "workers": int(setting(self.settings, "pipeline.workers")),
                "batch_size": int(setting(self.settings, "pipeline.batch.size")),
                "batch_delay": int(setting(self.settings, "pipeline.batch.delay")),
            }
            return 200, {**self._base(), "pipeline": pipeline, "build_flavor": "default"}
        if path == "/_node/pipelines":  # the node info API: the running pipelines and their settings
            return 200, {**self._base(), "pipelines": {pid: p.info() for pid, p in self.pipelines.items()}}
        match = re.fullmatch(r"/_node/pipelines/([^/]+)", path)
        if match and match.group(1) in self.pipelines:
            return 200, {**self._base(), "pipelines": {match.group(1): self.pipelines[match.group(1)].info()}}
        if path == "/_node/stats/pipelines":
            return 200, {**self._base(), "pipelines": {pid: p.stats() for pid, p in self.pipelines.items()}}
        match = re.fullmatch(r"/_node/stats/pipelines/([^/]+)", path)
        if match and match.group(1) in self.pipelines:
            return 200, {**self._base(), "pipelines": {match.group(1): self.pipelines[match.group(1)].stats()}}
        return 404, {"path": path, "status": 404, "error": {"message": "Not Found"}}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- main -----------------------------------------------------------------------------------


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%Y-%m-%dT%H:%M:%S,") + f"{int(record.msecs):03d}"
        level = {"WARNING": "WARN", "CRITICAL": "FATAL"}.get(record.levelname, record.levelname)
        text = f"[{stamp}][{level:<5}][{record.name:<25}] {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="logstash", description="Logstash stand-in")
    parser.add_argument("--path.settings", dest="path_settings")
    parser.add_argument("-f", "--path.config", dest="f")
    parser.add_argument("-e", "--config.string", dest="e")
    parser.add_argument("-t", "--config.test_and_exit", dest="test", action="store_true")
    parser.add_argument("--path.data", dest="path_data")
    parser.add_argument("--path.logs", dest="path_logs")
    parser.add_argument("--log.level", dest="log_level")
    parser.add_argument("--api.http.port", dest="api_port")
    return parser.parse_args([a.strip('"') for a in argv])


def main(argv: list[str] | None = None) -> int:
    args = arguments(sys.argv[1:] if argv is None else argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    given = {"path.data": args.path_data, "path.logs": args.path_logs, "log.level": args.log_level}
    overrides = {k: v for k, v in {**given, "api.http.port": args.api_port}.items() if v}
    try:
        settings = load_settings(Path(args.path_settings) if args.path_settings else None, overrides)
        level = str(setting(settings, "log.level"))
        logging.getLogger().setLevel({"fatal": logging.CRITICAL, "warn": logging.WARNING,
                                      "trace": logging.DEBUG}.get(level, level.upper()))  # fmt: skip
        definitions = pipeline_definitions(args, settings)
        compiled = [(d, compile_pipeline(d)) for d in definitions]
    except (ConfigError, yaml.YAMLError) as exc:
        LOG.critical("Logstash could not be started because there is a configuration error: %s", exc)
        print(f"Configuration error: {exc}", file=sys.stderr)
        return 1
    if args.test:
        print("Configuration OK")
        LOG.info("Using config.test_and_exit mode. Config Validation Result: OK. Exiting Logstash")
        return 0
    return run(settings, compiled)


def time_value(text: str) -> float:
    """Seconds of a Logstash time value setting (``3s``, ``500ms``, ``1m``, ...)."""
    match = re.fullmatch(r"(\d+)\s*(nanos|micros|ms|s|m|h|d)", text.strip())
    if not match:
        raise ConfigError(f"invalid time value: {text!r}")
    unit = {"nanos": 1e-9, "micros": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return int(match.group(1)) * unit


def converge(
    wanted: list[tuple[dict[str, Any], dict[str, list]]], pipelines: dict[str, Pipeline]
) -> list[tuple[dict[str, Any], dict[str, list]]]:
    """Create and start each wanted pipeline into ``pipelines``; those that failed, to try again."""
    failed = []
    for definition, sections in wanted:
        pipeline = Pipeline(definition, sections)
        try:
            pipeline.start()
        except Exception as exc:
            logging.getLogger("logstash.agent").error(
                "Failed to execute action {:id=>:%s, :action_type=>LogStash::ConvergeResult::FailedAction, "
                ":message=>\"%s\"}", pipeline.id, exc)  # fmt: skip
            pipeline.accepting = False
            for runtime in pipeline.runtimes.values():
                with contextlib.suppress(Exception):
                    runtime.close()
            failed.append((definition, sections))
            continue
        pipelines[pipeline.id] = pipeline
    logging.getLogger("logstash.agent").info(
        "Pipelines running {:count=>%d, :running_pipelines=>%s, :non_running_pipelines=>%s}",
        len(pipelines), sorted(pipelines), sorted(d["pipeline.id"] for d, _s in failed))  # fmt: skip
    return failed


def run(settings: dict[str, Any], compiled: list[tuple[dict[str, Any], dict[str, list]]]) -> int:
    LOG.info('Starting Logstash {"logstash.version"=>"%s"} (stand-in)', VERSION)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_a: stop.set())
    signal.signal(signal.SIGINT, lambda *_a: stop.set())
    pipelines: dict[str, Pipeline] = {}
    # Downstream pipelines first, so that upstream pipeline outputs find their addresses.
    ordered = sorted(compiled, key=lambda c: 0 if any(p.name == "pipeline" for p in walk(c[1]["input"])) else 1)
    failed = converge(ordered, pipelines)
    api = Api(settings, pipelines) if setting(settings, "api.enabled") else None
    if not pipelines:
        return 1
    # With config.reload.automatic, Logstash's agent converges again at every
    # config.reload.interval: a pipeline that failed to start (e.g. a filter whose register
    # could not reach its server) is created again, until it runs.
    interval = time_value(str(setting(settings, "config.reload.interval")))
    while failed and setting(settings, "config.reload.automatic") and not stop.wait(interval):
        failed = converge(failed, pipelines)
    stop.wait()
    LOG.info("SIGTERM received. Shutting down.")
    # Upstream first: their outputs may still hand events to the downstream pipelines.
    for pipeline in sorted(pipelines.values(), key=lambda p: 0 if any(
            pl.name != "pipeline" for pl in walk(p.sections["input"])) else 1):  # fmt: skip
        pipeline.stop()
    if api is not None:
        api.stop()
    LOG.info("Logstash shut down.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
