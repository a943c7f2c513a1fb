# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Elasticsearch / OpenSearch client of the search modules (on the shared HTTP
transport, module_utils/transport.py), and the normalisation that lets them compare what
they want with what the server stores.

Standard library only, on purpose: the official clients are tied to one engine
(elasticsearch-py 8/9 refuses any server whose replies lack ``X-Elastic-Product:
Elasticsearch``, so it cannot talk to OpenSearch; opensearch-py is for OpenSearch), the
modules need a handful of JSON calls that are the same on both, and the managed host
then needs no extra Python package. Importable without Ansible.

Every failure surfaces as ``SearchError`` with the server's own reason; passwords and
API keys never appear in a message (a refused login names the user, or the API key's id).
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable
from urllib.parse import quote

from ansible_collections.wlcg.soc.plugins.module_utils.transport import (
    Response,
    Transport,
    TransportError,
    Unavailable,
    base_url,
    display_url,
    http_argument_spec,
    shorten,
)

ENGINES = ("auto", "elasticsearch", "opensearch")
HEALTH_ORDER = {"red": 0, "yellow": 1, "green": 2}


def search_argument_spec() -> dict:
    """Connection options of every module (doc fragments wlcg.soc.http_client and wlcg.soc.elasticsearch)."""
    return dict(
        **http_argument_spec(),
        hosts=dict(type="list", elements="str", default=["https://localhost:9200"]),
        client_cert=dict(type="path"),
        client_key=dict(type="path"),
        engine=dict(type="str", default="auto", choices=list(ENGINES)),
    )


# Keyword arguments for AnsibleModule that go with search_argument_spec().
SEARCH_MODULE_KWARGS = dict(
    mutually_exclusive=[("api_key", "username")],
    required_together=[("username", "password")],
    required_by={"client_key": ("client_cert",)},
)


class SearchError(Exception):
    """A request failed; the message says why (never with a password or API key)."""

    def __init__(self, message: str, status: int | None = None, error: Any = None):
        super().__init__(message)
        self.status = status
        self.error = error


def client_from_params(params: dict, **kwargs: Any) -> SearchClient:
    """A client from the module's connection options."""
    return SearchClient(
        hosts=params["hosts"],
        username=params.get("username"),
        password=params.get("password"),
        api_key=params.get("api_key"),
        ca_path=params.get("ca_path"),
        validate_certs=params.get("validate_certs", True),
        client_cert=params.get("client_cert"),
        client_key=params.get("client_key"),
        timeout=30.0 if params.get("timeout") is None else params["timeout"],
        retries=3 if params.get("retries") is None else params["retries"],
        engine=params.get("engine") or "auto",
        **kwargs,
    )


def error_reason(data: Any) -> str:
    """The server's reason from an error body: type and reason, the root causes and the
    innermost ``caused_by`` (where the real cause usually is), cut to a readable length."""
    if not isinstance(data, dict):
        return shorten(data) if data not in (None, "") else ""
    err = data.get("error", data)
    if isinstance(err, str):
        return shorten(err)
    if not isinstance(err, dict):
        return shorten(json.dumps(data))

    def one(item: dict) -> str:
        kind, reason = item.get("type"), item.get("reason")
        return f"{kind}: {reason}" if kind and reason else str(reason or kind or item)

    parts = [one(err)]
    for cause in err.get("root_cause") or []:
        if isinstance(cause, dict) and one(cause) not in parts:
            parts.append(one(cause))
    inner = err
    while isinstance(inner.get("caused_by"), dict):
        inner = inner["caused_by"]
    if inner is not err and one(inner) not in parts:
        parts.append(f"caused by {one(inner)}")
    failures = err.get("failures") or data.get("failures")
    if isinstance(failures, list):
        parts += [shorten(f, 300) for f in failures[:3]]
    return shorten("; ".join(parts))


class SearchClient:
    """A small JSON-over-HTTP client for Elasticsearch and OpenSearch.

    ``hosts`` are tried in order and in rounds, with pauses between the rounds, by the
    shared transport's retry policy; the cluster health check is repeated ``retries``
    times at most, with the same pauses.
    """

    def __init__(
        self,
        hosts: list[str] | str,
        username: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        ca_path: str | None = None,
        validate_certs: bool = True,
        client_cert: str | None = None,
        client_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        engine: str = "auto",
        backoff: float = 1.0,
        sleep: Callable[[float], None] | None = None,
    ):
        if isinstance(hosts, str):
            hosts = [hosts]
        if not hosts:
            raise SearchError("hosts: at least one URL is required")
        if engine not in ENGINES:
            raise SearchError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        try:
            self.hosts = [base_url(host, "hosts", default_scheme="https") for host in hosts]
            self.transport = Transport(
                self.hosts,
                username=username,
                password=password,
                api_key=api_key,
                ca_path=ca_path,
                validate_certs=validate_certs,
                client_cert=client_cert,
                client_key=client_key,
                timeout=timeout,
                retries=retries,
                backoff=backoff,
                **({"sleep": sleep} if sleep else {}),
            )
        except TransportError as exc:
            raise SearchError(str(exc)) from None
        self.last_host = self.hosts[0]
        self.timeout = self.transport.timeout
        self.retries = self.transport.retries
        self.engine = None if engine == "auto" else engine
        self.version: str | None = None
        self.cluster_name: str | None = None

    # -- plumbing ---------------------------------------------------------------

    def redact(self, text: str) -> str:
        return self.transport.redact(text)

    def _who(self) -> str:
        return self.transport.identity or "anonymous access (no username or api_key given)"

    def send(self, method: str, path: str, body: Any = None, params: dict | None = None) -> Response:
        """The first answer that is not worth retrying."""
        data, headers = None, {}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            response = self.transport.request(method, path, query=params, body=data, headers=headers)
        except Unavailable as exc:
            rounds = exc.rounds
            last = [
                f"{display_url(host)}: "
                + (f"HTTP {p.status} {error_reason(p.data())}".rstrip() if not isinstance(p, str) else p)
                for host, p in exc.problems[-len(self.hosts) :]
            ]
            raise SearchError(
                self.redact(
                    f"{method} /{path.lstrip('/')}: no usable answer from "
                    f"{', '.join(display_url(h) for h in self.hosts)} after {rounds} "
                    f"round{'s' if rounds > 1 else ''} of tries: " + "; ".join(last)
                )
            ) from None
        except TransportError as exc:
            raise SearchError(self.redact(str(exc))) from None
        self.last_host = response.base
        return response

    def raw(self, method: str, path: str, body: Any = None, params: dict | None = None) -> tuple[int, Any, Any]:
        """The first answer that is not worth retrying: (status, body, headers)."""
        response = self.send(method, path, body, params)
        return response.status, response.data(), response.headers

    def json_object(self, response: Response) -> dict:
        """The JSON object of a successful answer; SearchError when the body is anything else
        (a proxy's HTML page, say), never a text to compare or to report as a change."""
        try:
            return response.json_object()
        except TransportError as exc:
            raise SearchError(self.redact(str(exc)), response.status) from None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict | None = None,
        missing_ok: bool = False,
    ) -> dict | None:
        """The JSON object of a successful answer; None for a 404 when ``missing_ok``;
        SearchError otherwise, with the server's reason."""
        response = self.send(method, path, body, params)
        if 200 <= response.status < 300:
            return self.json_object(response)
        if response.status == 404 and missing_ok:
            return None
        self.fail(method, path, response.status, response.data())

    def fail(self, method: str, path: str, status: int, data: Any):
        """Raise the SearchError for an unsuccessful answer, with the server's reason."""
        where = display_url(self.last_host)
        what = f"{method} /{path.lstrip('/')}"
        reason = error_reason(data)
        data = self.transport.redact_value(data)  # the error body goes with the exception
        if status == 401:
            raise SearchError(
                self.redact(f"{where} refused {self._who()} (HTTP 401, authentication failed) on {what}: {reason}"),
                status,
                data,
            )
        if status == 403:
            raise SearchError(
                self.redact(f"{where}: {self._who()} may not {what} (HTTP 403): {reason}"),
                status,
                data,
            )
        raise SearchError(self.redact(f"{where}: {what} failed (HTTP {status}): {reason}"), status, data)

    # -- engine and cluster -------------------------------------------------------

    def detect(self) -> dict:
        """Which engine and version answer (``GET /``); the ``engine`` option wins."""
        response = self.send("GET", "/")
        status, data, headers = response.status, response.data(), response.headers
        if status == 401:
            self.fail("GET", "/", status, data)  # names the user
        product = (headers.get("X-Elastic-Product") if headers else None) or ""
        if status == 200:
            self.json_object(response)  # an HTML page, say: a wrong URL, which setting engine would not mend
        if status == 200 and isinstance(data, dict) and isinstance(data.get("version"), dict):
            version = data["version"]
            detected = "opensearch" if version.get("distribution") == "opensearch" else "elasticsearch"
            self.version = version.get("number")
            self.cluster_name = data.get("cluster_name")
        elif product == "Elasticsearch":
            # Elasticsearch marks every answer; GET / itself may be missing (a minimal
            # distribution) or forbidden (a user without the monitor privilege).
            detected = "elasticsearch"
            code, nodes, _headers = self.raw("GET", "_nodes/_local", params={"filter_path": "nodes.*.version"})
            if code == 200 and isinstance(nodes, dict):
                versions = [n.get("version") for n in (nodes.get("nodes") or {}).values()]
                self.version = versions[0] if versions else None
        elif self.engine is not None:
            detected = self.engine
        else:
            raise SearchError(
                self.redact(
                    f"{display_url(self.last_host)}: cannot tell Elasticsearch from OpenSearch "
                    f"(GET / answered HTTP {status}: {error_reason(data)}); set engine"
                )
            )
        if self.engine and self.engine != detected:
            raise SearchError(f"engine is {self.engine} but the server at {display_url(self.last_host)} is {detected}")
        self.engine = detected
        return {"engine": self.engine, "version": self.version, "cluster_name": self.cluster_name}

    def wait_for_health(self, status: str = "yellow") -> dict | None:
        """Wait until the cluster is at least ``status``; fail after the bounded retries.
        None when the user may not read the cluster's health (HTTP 403)."""
        # The server waits at most half the request timeout (and 30 s) for the status.
        wait = max(100, int(min(self.timeout / 2, 30) * 1000))
        last: dict = {}
        for attempt in range(self.retries + 1):
            if attempt:
                self.transport.sleep(self.transport.delay(attempt))
            response = self.send("GET", "_cluster/health", params={"wait_for_status": status, "timeout": f"{wait}ms"})
            if response.status == 403:
                return None
            if response.status not in (200, 408):
                self.fail("GET", "_cluster/health", response.status, response.data())
            data = last = self.json_object(response)
            self.cluster_name = data.get("cluster_name", self.cluster_name)
            if HEALTH_ORDER.get(data.get("status"), -1) >= HEALTH_ORDER[status]:
                return data
        tries = self.retries + 1
        detail = ", ".join(
            f"{k}={last.get(k)}" for k in ("unassigned_shards", "initializing_shards", "number_of_nodes") if k in last
        )
        raise SearchError(
            f"cluster {last.get('cluster_name', '?')!r} at {display_url(self.last_host)} "
            f"is {last.get('status', 'unknown')} (wanted {status} or better) after {tries} "
            f"check{'s' if tries > 1 else ''} of up to {wait / 1000:g}s each ({detail})"
        )

    def connect(self, health: str | None = "yellow") -> dict:
        """Detect the engine (unless given) and wait for the cluster's health."""
        info = self.detect()
        if health:
            self.wait_for_health(health)
            info["cluster_name"] = self.cluster_name
        return info


def name_problem(option: str, what: str, value: str, allow_leading_underscore: bool = True) -> str | None:
    """Why ``value`` of ``option`` does not name one ``what`` (a wildcard or a comma would
    make the API act on several), or None."""
    not_one = not value.strip() or "*" in value or "," in value
    if not not_one and (allow_leading_underscore or not value.startswith("_")):
        return None
    rule = "no wildcard, no comma" if allow_leading_underscore else "no wildcard, comma or leading _"
    return f"{option} must name one {what} ({rule}), got {value!r}"


def path_part(name: str) -> str:
    """One URL path segment (a template or pipeline name)."""
    return quote(name, safe="")


# -- normalisation --------------------------------------------------------------

_MISSING = object()


class Default:
    """A value the server fills in when the request leaves the key out."""

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return f"Default({self.value!r})"


def _scalar_str(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return [_scalar_str(v) for v in value]
    return value


def flatten_settings(settings: Any, prefix: str = "", scope: str = "index.") -> dict:
    """Settings as the server stores them, flat, with scalars as strings: index settings
    ``{"index": {"number_of_shards": 1}}`` and ``{"number_of_shards": "1"}`` both become
    ``{"index.number_of_shards": "1"}``; ``scope=""`` adds no prefix (repository settings)."""
    flat: dict = {}
    if not isinstance(settings, dict):
        return flat
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_settings(value, f"{full}.", scope))
            continue
        if scope and not full.startswith(scope):
            full = f"{scope}{full}"
        flat[full] = _scalar_str(value)
    return flat


def prune_defaults(actual: Any, desired: Any, defaults: Any) -> Any:
    """``actual`` without the values the server filled in: keys that ``desired`` lacks
    and whose value equals the ``Default`` at that place in ``defaults``.

    ``defaults`` mirrors the body: dicts by key (``"*"`` matches any key), a one-item
    list applies to every item of a list, ``Default(v)`` marks a filled-in value.
    """
    if isinstance(defaults, dict) and isinstance(actual, dict):
        out = {}
        for key, value in actual.items():
            spec = defaults.get(key, defaults.get("*", _MISSING))
            want = desired.get(key, _MISSING) if isinstance(desired, dict) else _MISSING
            if isinstance(spec, Default):
                if want is _MISSING and value == spec.value:
                    continue
                out[key] = value
            elif spec is _MISSING:
                out[key] = value
            else:
                out[key] = prune_defaults(value, None if want is _MISSING else want, spec)
        return out
    if isinstance(defaults, list) and defaults and isinstance(actual, list):
        wanted = desired if isinstance(desired, list) else []
        return [
            prune_defaults(item, wanted[i] if i < len(wanted) else None, defaults[0]) for i, item in enumerate(actual)
        ]
    return actual


def drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value]
    return value


def _without(body: dict, keys: tuple) -> dict:
    return {k: v for k, v in body.items() if k not in keys}


# Read-only bookkeeping some versions add to stored objects (Elasticsearch 9.x dates).
DATE_FIELDS = ("created_date", "created_date_millis", "modified_date", "modified_date_millis")

TEMPLATE_DEFAULTS = {
    "composed_of": Default([]),
    "ignore_missing_component_templates": Default([]),
    "deprecated": Default(False),
    # Elasticsearch fills in hidden/allow_custom_routing, OpenSearch the timestamp field.
    "data_stream": {
        "hidden": Default(False),
        "allow_custom_routing": Default(False),
        "failure_store": Default(False),
        "timestamp_field": Default({"name": "@timestamp"}),
    },
}


def _normalize_template_part(template: Any) -> Any:
    if not isinstance(template, dict):
        return template
    out = dict(template)
    if "settings" in out:
        out["settings"] = flatten_settings(out["settings"])
        if not out["settings"]:
            del out["settings"]
    return out


def normalize_template(body: Any) -> dict:
    """An index or component template body, in the form the server returns it."""
    body = drop_none(copy.deepcopy(body or {}))
    body = _without(body, DATE_FIELDS)
    if isinstance(body.get("index_patterns"), str):
        body["index_patterns"] = [body["index_patterns"]]
    if "template" in body:
        body["template"] = _normalize_template_part(body["template"])
    return body


def compare_template(desired: Any, stored: Any) -> tuple[dict, dict]:
    """(before, after): the stored and the desired template, normalised alike."""
    after = normalize_template(desired)
    before = prune_defaults(normalize_template(stored), after, TEMPLATE_DEFAULTS)
    return before, after


def normalize_pipeline(body: Any) -> dict:
    return _without(drop_none(copy.deepcopy(body or {})), DATE_FIELDS)


def compare_pipeline(desired: Any, stored: Any) -> tuple[dict, dict]:
    after = normalize_pipeline(desired)
    before = prune_defaults(normalize_pipeline(stored), after, {"on_failure": Default([])})
    return before, after


# ILM (Elasticsearch): GET _ilm/policy/<name> answers {name: {version, modified_date,
# policy, in_use_by}}; each phase gets min_age "0ms", the delete action
# delete_searchable_snapshot true.
ILM_DEFAULTS = {
    "phases": {
        "*": {
            "min_age": Default("0ms"),
            "actions": {"delete": {"delete_searchable_snapshot": Default(True)}},
        }
    },
}

# ISM (OpenSearch): GET _plugins/_ism/policies/<id> answers {_id, _version, _seq_no,
# _primary_term, policy}; the policy carries read-only policy_id, last_updated_time,
# schema_version (and user with the security plugin), error_notification null, and each
# action the retry settings it runs with.
ISM_READ_ONLY = ("policy_id", "last_updated_time", "schema_version", "user")
ISM_DEFAULTS = {
    "error_notification": Default(None),
    "ism_template": Default(None),
    "states": [
        {
            "actions": [{"retry": {"count": Default(3), "backoff": Default("exponential"), "delay": Default("1m")}}],
            "transitions": Default([]),
        }
    ],
}


def unwrap_policy(body: Any) -> dict:
    """A lifecycle policy given as ``{"policy": {...}}`` or as its content."""
    body = body or {}
    if isinstance(body, dict) and set(body) == {"policy"} and isinstance(body["policy"], dict):
        return body["policy"]
    return body


def normalize_ilm(policy: Any) -> dict:
    return _without(drop_none(copy.deepcopy(unwrap_policy(policy))), DATE_FIELDS)


def compare_ilm(desired: Any, stored: Any) -> tuple[dict, dict]:
    after = normalize_ilm(desired)
    return prune_defaults(normalize_ilm(stored), after, ILM_DEFAULTS), after


def normalize_ism(policy: Any) -> dict:
    policy = copy.deepcopy(unwrap_policy(policy))
    policy = _without(policy, ISM_READ_ONLY)
    templates = policy.get("ism_template")
    if isinstance(templates, dict):
        templates = [templates]
    if isinstance(templates, list):
        policy["ism_template"] = [_without(t, ("last_updated_time",)) if isinstance(t, dict) else t for t in templates]
    return policy


def _collapse_empty_retry(policy: Any) -> Any:
    """An action whose retry block held only defaults keeps no empty ``retry: {}``."""
    if isinstance(policy, dict):
        return {k: _collapse_empty_retry(v) for k, v in policy.items() if not (k == "retry" and v == {})}
    if isinstance(policy, list):
        return [_collapse_empty_retry(v) for v in policy]
    return policy


def compare_ism(desired: Any, stored: Any) -> tuple[dict, dict]:
    after = drop_none(normalize_ism(desired))
    before = prune_defaults(normalize_ism(stored), after, ISM_DEFAULTS)
    before = _collapse_empty_retry(drop_none(before))
    return before, after


def normalize_repository(body: Any) -> dict:
    """A snapshot repository as ``GET _snapshot/<name>`` shows it: its type and flat settings as strings."""
    body = drop_none(copy.deepcopy(body or {}))
    return {"type": body.get("type"), "settings": flatten_settings(body.get("settings") or {}, scope="")}


def compare_repository(desired: Any, stored: Any) -> tuple[dict, dict]:
    return normalize_repository(stored), normalize_repository(desired)
