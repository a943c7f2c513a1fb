# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP client the Elasticsearch / OpenSearch modules share, and the normalisation
that lets them compare what they want with what the server stores.

Standard library only, on purpose: the official clients are tied to one engine
(elasticsearch-py 8/9 refuses any server whose replies lack ``X-Elastic-Product:
Elasticsearch``, so it cannot talk to OpenSearch; opensearch-py is for OpenSearch), the
modules need a handful of JSON calls that are the same on both, and the managed host
then needs no extra Python package. Importable without Ansible.

Every failure surfaces as ``SearchError`` with the server's own reason; passwords and
API keys never appear in a message (a refused login names the user, or the API key's id).
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import socket
import ssl
import time
from typing import Any, Callable
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urlsplit, urlunsplit
from urllib.request import HTTPSHandler, Request, build_opener

ENGINES = ("auto", "elasticsearch", "opensearch")
# Answers worth another try (on the next host, then after a pause).
RETRY_STATUSES = (429, 502, 503, 504)
HEALTH_ORDER = {"red": 0, "yellow": 1, "green": 2}
BACKOFF_CAP = 30.0


def search_argument_spec() -> dict:
    """Connection options of every module (documented in the wlcg.soc.elasticsearch doc fragment)."""
    return dict(
        hosts=dict(type="list", elements="str", default=["https://localhost:9200"]),
        username=dict(type="str"),
        password=dict(type="str", no_log=True),
        api_key=dict(type="str", no_log=True),
        ca_path=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
        client_cert=dict(type="path"),
        client_key=dict(type="path"),
        timeout=dict(type="float", default=30),
        retries=dict(type="int", default=3),
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


def _display_url(url: str) -> str:
    """The URL without any user:password@ part."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def error_reason(data: Any) -> str:
    """The server's reason from an error body: type and reason, the root causes and the
    innermost ``caused_by`` (where the real cause usually is)."""
    if not isinstance(data, dict):
        return str(data)[:2000] if data not in (None, "") else ""
    err = data.get("error", data)
    if isinstance(err, str):
        return err
    if not isinstance(err, dict):
        return json.dumps(data)[:2000]

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
        parts += [str(f)[:300] for f in failures[:3]]
    return "; ".join(parts)


class SearchClient:
    """A small JSON-over-HTTP client for Elasticsearch and OpenSearch.

    ``hosts`` are tried in order; a connection failure, 429 or 5xx-unavailable moves to
    the next one, and after a whole round the client pauses (``backoff`` seconds,
    doubling, at most 30) and tries again, ``retries`` times at most.
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
        sleep: Callable[[float], None] = time.sleep,
    ):
        if isinstance(hosts, str):
            hosts = [hosts]
        self.hosts: list[str] = []
        for host in hosts:
            host = host.strip()
            if "://" not in host:
                host = f"https://{host}"
            parts = urlsplit(host)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SearchError(f"hosts: {_display_url(host)!r} is not an http(s) URL")
            if parts.username or parts.password:
                raise SearchError(
                    f"hosts: {_display_url(host)} carries credentials in the URL; use username/password or api_key"
                )
            self.hosts.append(host.rstrip("/"))
        if not self.hosts:
            raise SearchError("hosts: at least one URL is required")
        if engine not in ENGINES:
            raise SearchError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if retries < 0:
            raise SearchError(f"retries must be 0 or more, got {retries}")
        if timeout <= 0:
            raise SearchError(f"timeout must be a positive number of seconds, got {timeout}")
        self.username = username
        self.last_host = self.hosts[0]
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = backoff
        self.sleep = sleep
        self.engine = None if engine == "auto" else engine
        self.version: str | None = None
        self.cluster_name: str | None = None
        self._secrets = [s for s in (password, api_key) if s]
        self._auth: str | None = None
        self._api_key_id: str | None = None
        if api_key:
            encoded = api_key
            if ":" in api_key:  # "id:key" as the create API returns them apart
                encoded = base64.b64encode(api_key.encode()).decode()
            self._auth = f"ApiKey {encoded}"
            self._secrets.append(encoded)
            try:
                self._api_key_id = base64.b64decode(encoded, validate=True).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                self._api_key_id = None
        elif username:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._auth = f"Basic {token}"
            self._secrets.append(token)
        self._opener = build_opener(
            HTTPSHandler(context=self._ssl_context(ca_path, validate_certs, client_cert, client_key))
        )

    @staticmethod
    def _ssl_context(ca_path, validate_certs, client_cert, client_key) -> ssl.SSLContext:
        if validate_certs:
            ctx = ssl.create_default_context(cafile=ca_path) if ca_path else ssl.create_default_context()
        else:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if client_cert:
            try:
                ctx.load_cert_chain(client_cert, client_key)
            except (OSError, ssl.SSLError) as exc:
                raise SearchError(f"client_cert/client_key: cannot load {client_cert}: {exc}") from None
        return ctx

    # -- plumbing ---------------------------------------------------------------

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return text

    def _who(self) -> str:
        if self._api_key_id:
            return f"the API key with id {self._api_key_id!r}"
        if self._auth and self._auth.startswith("ApiKey"):
            return "the API key"
        if self.username:
            return f"user {self.username!r}"
        return "anonymous access (no username or api_key given)"

    def _once(self, host: str, method: str, path: str, data: bytes | None, headers: dict):
        """One HTTP exchange: (status, parsed body, headers). Connection problems raise OSError."""
        # hosts are checked to be http(s) URLs in __init__
        req = Request(f"{host}/{path.lstrip('/')}", data=data, method=method, headers=headers)  # noqa: S310
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                status, raw, rheaders = resp.status, resp.read(), resp.headers
        except HTTPError as exc:
            status, raw, rheaders = exc.code, exc.read(), exc.headers
        except URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise SearchError(
                    f"{_display_url(host)}: TLS certificate verification failed ({reason.verify_message or reason}); "
                    "set ca_path to the CA bundle that signed it"
                ) from None
            raise OSError(str(reason)) from None
        except (socket.timeout, TimeoutError) as exc:
            raise OSError(f"no answer within {self.timeout:g}s ({exc or 'timed out'})") from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise OSError(f"{type(exc).__name__}: {exc}") from None
        text = raw.decode("utf-8", errors="replace") if raw else ""
        try:
            body: Any = json.loads(text) if text.strip() else None
        except ValueError:
            body = text
        return status, body, rheaders

    def raw(self, method: str, path: str, body: Any = None, params: dict | None = None) -> tuple[int, Any, Any]:
        """The first answer that is not worth retrying: (status, body, headers)."""
        if params:
            path = f"{path}?{urlencode(params)}"
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._auth:
            headers["Authorization"] = self._auth
        problems: list[str] = []
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(min(BACKOFF_CAP, self.backoff * 2 ** (attempt - 1)))
            for host in self.hosts:
                try:
                    status, parsed, rheaders = self._once(host, method, path, data, headers)
                except OSError as exc:
                    problems.append(f"{_display_url(host)}: {exc}")
                    continue
                if status in RETRY_STATUSES:
                    problems.append(f"{_display_url(host)}: HTTP {status} {error_reason(parsed)}".rstrip())
                    continue
                self.last_host = host
                return status, parsed, rheaders
        tries = self.retries + 1
        last = problems[-len(self.hosts) :]
        raise SearchError(
            self.redact(
                f"{method} /{path.lstrip('/').split('?')[0]}: no usable answer from "
                f"{', '.join(_display_url(h) for h in self.hosts)} after {tries} "
                f"round{'s' if tries > 1 else ''} of tries: " + "; ".join(last)
            )
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict | None = None,
        missing_ok: bool = False,
    ) -> Any:
        """The parsed JSON answer of a successful request; None for a 404 when
        ``missing_ok``; SearchError otherwise, with the server's reason."""
        status, data, _headers = self.raw(method, path, body, params)
        if 200 <= status < 300:
            return data
        if status == 404 and missing_ok:
            return None
        self.fail(method, path, status, data)

    def fail(self, method: str, path: str, status: int, data: Any):
        """Raise the SearchError for an unsuccessful answer, with the server's reason."""
        where = _display_url(self.last_host)
        what = f"{method} /{path.lstrip('/')}"
        reason = error_reason(data)
        if self._secrets:  # the error body goes with the exception: without any echoed secret
            data = json.loads(self.redact(json.dumps(data)))
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
        status, data, headers = self.raw("GET", "/")
        if status == 401:
            self.fail("GET", "/", status, data)  # names the user
        product = (headers.get("X-Elastic-Product") if headers else None) or ""
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
                    f"{_display_url(self.last_host)}: cannot tell Elasticsearch from OpenSearch "
                    f"(GET / answered HTTP {status}: {error_reason(data)}); set engine"
                )
            )
        if self.engine and self.engine != detected:
            raise SearchError(f"engine is {self.engine} but the server at {_display_url(self.last_host)} is {detected}")
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
                self.sleep(min(BACKOFF_CAP, self.backoff * 2 ** (attempt - 1)))
            code, data, _headers = self.raw(
                "GET", "_cluster/health", params={"wait_for_status": status, "timeout": f"{wait}ms"}
            )
            if code == 403:
                return None
            if code not in (200, 408) or not isinstance(data, dict):
                self.fail("GET", "_cluster/health", code, data)
            last = data
            self.cluster_name = data.get("cluster_name", self.cluster_name)
            if HEALTH_ORDER.get(data.get("status"), -1) >= HEALTH_ORDER[status]:
                return data
        tries = self.retries + 1
        detail = ", ".join(
            f"{k}={last.get(k)}" for k in ("unassigned_shards", "initializing_shards", "number_of_nodes") if k in last
        )
        raise SearchError(
            f"cluster {last.get('cluster_name', '?')!r} at {_display_url(self.last_host)} "
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


def flatten_settings(settings: Any, prefix: str = "") -> dict:
    """Index settings as the server stores them, flat: ``{"index": {"number_of_shards": 1}}``
    and ``{"number_of_shards": "1"}`` both become ``{"index.number_of_shards": "1"}``."""
    flat: dict = {}
    if not isinstance(settings, dict):
        return flat
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_settings(value, f"{full}."))
            continue
        if not full.startswith("index."):
            full = f"index.{full}"
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


# -- what the modules share -----------------------------------------------------


def as_json(value: Any) -> str:
    """Stable JSON for the diff (sorted keys, indented, newline at the end)."""
    if value is None:
        return ""
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def plan(state: str, exists: bool, before: Any, after: Any) -> str:
    """What to do: ``create``, ``update``, ``delete`` or ``none``."""
    if state == "absent":
        return "delete" if exists else "none"
    if not exists:
        return "create"
    return "none" if before == after else "update"


def diff_of(header: str, before: Any, after: Any) -> dict:
    return {"before": as_json(before), "after": as_json(after), "before_header": header, "after_header": header}


def reconcile(
    module: Any,
    result: dict,
    header: str,
    warning: str,
    desired: Any,
    read: Callable[[], Any],
    compare: Callable[[Any, Any], tuple],
    write: Callable[[bool], None],
    delete: Callable[[], None],
) -> Any:
    """The modules' common present/absent flow; fills ``result`` and returns the stored
    object (normalised) after the run, or None.

    ``read`` returns the stored body or None; ``compare(desired, stored)`` both
    normalised; ``write(exists)`` stores ``desired``; ``delete`` removes it. ``header``
    titles the diff; ``warning`` is given when what was written reads back differently.
    """
    state = module.params["state"]
    stored = read()
    before, after = compare(desired, stored or {})
    if stored is None:
        before = None
    action = plan(state, stored is not None, before, after)
    if state == "absent":
        after = None
    result.update(operation=action, changed=action != "none")
    if module._diff and action != "none":
        result["diff"] = diff_of(header, before, after)
    if action in ("create", "update") and not module.check_mode:
        write(stored is not None)
        stored_now, wanted = compare(desired, read())
        if stored_now != wanted:
            module.warn(warning)
        after = stored_now
    elif action == "delete" and not module.check_mode:
        delete()
    return after
