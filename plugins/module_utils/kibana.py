# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client for the Kibana and OpenSearch Dashboards HTTP APIs, on the shared HTTP
transport (module_utils/transport.py: TLS, credentials, redaction, retries, deadline,
redirects). Standard library only, importable without Ansible. Used by the ``kibana_*``
modules:

* one base URL; basic authentication, an API key (``Authorization: ApiKey``) or a
  service account token (``Authorization: Bearer``);
* every request carries both ``kbn-xsrf`` and ``osd-xsrf`` (each product ignores the
  other's header), so a request that changes state is never refused for want of one;
* spaces: paths are prefixed with ``/s/<space>`` except for the default space;
* every failure is a ``KibanaError`` whose message says what to do and never contains
  the password, the API key or the token (HTTP 401 names the user).
"""

from __future__ import annotations

import http.client
import json
import re
import time
import uuid
from typing import Any, Callable
from urllib.parse import quote

from ansible_collections.wlcg.soc.plugins.module_utils.transport import (
    RETRY_STATUSES,
    Response,
    Transport,
    TransportError,
    Unavailable,
    base_url,
    http_argument_spec,
    shorten,
)

# The engine of the stack: Kibana goes with Elasticsearch, OpenSearch Dashboards with OpenSearch.
ENGINES = ("elasticsearch", "opensearch")
PRODUCT = {"elasticsearch": "Kibana", "opensearch": "OpenSearch Dashboards"}
DEFAULT_SPACE = "default"
# Kibana's space identifiers (x-pack/plugins/spaces: lower-case letters, digits, _ and -).
SPACE_ID_RE = re.compile(r"^[a-z0-9_\-]+$")
XSRF_HEADERS = {"kbn-xsrf": "true", "osd-xsrf": "true"}


class KibanaError(Exception):
    """A request failed; the message says why (never includes a secret)."""

    def __init__(self, message: str, status: int | None = None, body: object = None):
        super().__init__(message)
        self.status = status
        self.body = body


def kibana_argument_spec() -> dict:
    """The connection options of every Kibana module (doc fragments wlcg.soc.http_client and wlcg.soc.kibana)."""
    return dict(
        **http_argument_spec(),
        url=dict(type="str", required=True),
        token=dict(type="str", no_log=True),
        engine=dict(type="str", choices=list(ENGINES), default="elasticsearch"),
    )


# For AnsibleModule(mutually_exclusive=..., required_together=...).
KIBANA_MUTUALLY_EXCLUSIVE = [("password", "api_key", "token"), ("username", "api_key", "token")]
KIBANA_REQUIRED_TOGETHER = [("username", "password")]


def client_from_params(params: dict) -> KibanaClient:
    """A client built from a module's parameters (see ``kibana_argument_spec``)."""
    return KibanaClient(
        params["url"],
        username=params.get("username"),
        password=params.get("password"),
        api_key=params.get("api_key"),
        token=params.get("token"),
        ca_path=params.get("ca_path"),
        validate_certs=params.get("validate_certs", True),
        timeout=params.get("timeout") or 30,
        retries=params.get("retries", 3),
        engine=params.get("engine") or "elasticsearch",
    )


def check_space_id(space: str | None) -> None:
    if space and not SPACE_ID_RE.match(space):
        raise KibanaError(
            f"space must be a Kibana space identifier (lower-case letters, digits, '_' and '-'), got {space!r}"
        )


def encode_multipart(field: str, filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field; returns (body, Content-Type)."""
    boundary = "----wlcgsoc" + uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + content + tail, f"multipart/form-data; boundary={boundary}"


class KibanaClient:
    """One Kibana (or OpenSearch Dashboards) endpoint."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        token: str | None = None,
        ca_path: str | None = None,
        validate_certs: bool = True,
        timeout: float = 30.0,
        retries: int = 3,
        engine: str = "elasticsearch",
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if engine not in ENGINES:
            raise KibanaError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        try:
            self.url = base_url(url, "url")
            self.transport = Transport(
                [self.url],
                username=username,
                password=password,
                api_key=api_key,
                token=token,
                ca_path=ca_path,
                validate_certs=validate_certs,
                timeout=timeout,
                retries=retries,
                backoff=backoff,
                sleep=sleep,
                headers=XSRF_HEADERS,
            )
        except TransportError as exc:
            raise KibanaError(str(exc)) from None
        self.engine = engine
        self.product = PRODUCT[engine]
        self.identity = self.transport.identity or "anonymous access (no credentials given)"

    def redact(self, text: str) -> str:
        return self.transport.redact(text)

    @staticmethod
    def space_path(space: str | None, path: str) -> str:
        """``path`` in ``space`` (the default space has no prefix)."""
        check_space_id(space)
        if not space or space == DEFAULT_SPACE:
            return path
        return f"/s/{space}{path}"

    # ----------------------------------------------------------------- requests
    def request(
        self,
        method: str,
        path: str,
        *,
        space: str | None = None,
        query: dict | None = None,
        json_body: object = None,
        body: bytes | None = None,
        content_type: str | None = None,
        ok: tuple = (200,),
        idempotent: bool | None = None,
        what: str | None = None,
    ) -> Response:
        """Send one request (repeated as the transport's retry policy allows); raise
        KibanaError unless the status is in ``ok``. ``idempotent`` marks a POST that may
        be repeated (one that only reads, or sets the same values again)."""
        full = self.space_path(space, path)
        what = what or f"{method} {full}"
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            content_type = "application/json"
        headers = {"Content-Type": content_type} if content_type else None
        try:
            response = self.transport.request(
                method, full, query=query, body=body, headers=headers, idempotent=idempotent
            )
        except Unavailable as exc:
            if exc.response is not None:
                raise self._http_error(what, exc.response) from None
            last = exc.problems[-1][1]
            raise KibanaError(
                f"{self.product} at {self.url} is unreachable ({what}): {last}; "
                f"gave up after {exc.attempts} attempt{'s' if exc.attempts != 1 else ''}"
            ) from None
        except TransportError as exc:
            raise KibanaError(f"{self.product} at {self.redact(str(exc))}") from None
        if response.status in ok:
            return response
        raise self._http_error(what, response)

    def _http_error(self, what: str, response: Response) -> KibanaError:
        message = self.redact(_error_message(response))
        status = response.status
        try:
            payload = self.transport.redact_value(response.json())
        except ValueError:
            payload = None
        if status == 401:
            text = f"{self.product} at {self.url} refused the credentials of {self.identity} (HTTP 401): {message}"
        elif status == 403:
            text = f"{self.product} at {self.url}: {self.identity} may not do this ({what}, HTTP 403): {message}"
        elif status in RETRY_STATUSES:
            attempts = response.attempts
            text = (
                f"{self.product} at {self.url} is not available ({what}, HTTP {status}) after "
                f"{attempts} attempt{'s' if attempts != 1 else ''}: {message}"
            )
        else:
            text = f"{self.product} at {self.url}: {what} answered HTTP {status}: {message}"
        return KibanaError(text, status=status, body=payload)

    def json(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> dict | None:
        """The JSON object of the answer (None for a 404 when ``missing_ok``); KibanaError
        when the body is anything else (a proxy's HTML page, say)."""
        response = self.request(method, path, ok=(200, 404) if missing_ok else (200,), **kwargs)
        if response.status == 404:
            return None
        try:
            return response.json_object()
        except TransportError as exc:
            raise KibanaError(f"{self.product} at {self.redact(str(exc))}", status=response.status) from None

    # ----------------------------------------------------------------- APIs
    def check_space(self, space: str | None) -> None:
        """Fail unless the space exists (Kibana's saved object APIs write into any space id,
        even one that does not exist, where the objects stay invisible)."""
        check_space_id(space)
        if not space or space == DEFAULT_SPACE:
            return
        if self.engine == "opensearch":
            raise KibanaError(
                "OpenSearch Dashboards has no spaces (it has tenants): leave space unset with engine=opensearch"
            )
        response = self.request("GET", f"/api/spaces/space/{quote(space, safe='')}", ok=(200, 404))
        if response.status == 404:
            raise KibanaError(f"Kibana at {self.url} has no space '{space}': create it first")

    def bulk_get(self, objects: list, space: str | None = None) -> list:
        """``POST /api/saved_objects/_bulk_get``: one entry per requested object, in order
        (an entry with ``error`` for objects that cannot be read)."""
        if not objects:
            return []
        body = [{"type": o["type"], "id": o["id"]} for o in objects]
        data = self.json("POST", "/api/saved_objects/_bulk_get", space=space, json_body=body, idempotent=True)
        found = data.get("saved_objects")
        if not isinstance(found, list) or len(found) != len(body):
            raise KibanaError(f"{self.product} at {self.url}: unexpected _bulk_get answer: {shorten(data, 200)}")
        return found

    def import_objects(self, ndjson: bytes, space: str | None = None, overwrite: bool = True) -> dict:
        """``POST /api/saved_objects/_import``: the import result (HTTP 200 even when objects failed)."""
        body, content_type = encode_multipart("file", "wlcg-soc.ndjson", ndjson, "application/ndjson")
        query = {"overwrite": "true"} if overwrite else None
        data = self.json(
            "POST", "/api/saved_objects/_import", space=space, query=query, body=body, content_type=content_type
        )
        if "success" not in data:
            raise KibanaError(f"{self.product} at {self.url}: unexpected _import answer: {shorten(data, 200)}")
        return data


def _error_message(response: Response) -> str:
    """Kibana's error text: ``message`` of its ``{statusCode, error, message}`` body, or the raw body."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        message = payload.get("message") or payload.get("error") or ""
        if isinstance(message, (dict, list)):
            message = json.dumps(message)
        extra = payload.get("attributes")
        if extra:
            message = f"{message} ({shorten(json.dumps(extra), 300)})"
        if message:
            return shorten(message)
    text = shorten(response.text.strip(), 300)
    return text or http.client.responses.get(response.status, "no message")


# --------------------------------------------------------------------------- saved objects

# Fields Kibana adds or rewrites when it stores or exports an object: not part of what a
# user manages, so left out of comparisons.
METADATA_FIELDS = frozenset(
    {
        "version",
        "updated_at",
        "updated_by",
        "created_at",
        "created_by",
        "namespaces",
        "namespace",
        "coreMigrationVersion",
        "typeMigrationVersion",
        "migrationVersion",
        "managed",
        "originId",
        "score",
        "sort",
        "error",
    }
)
# Import errors after which Kibana writes none of the objects (create_saved_objects.ts).
RESOLVABLE_ERRORS = frozenset({"conflict", "ambiguous_conflict", "missing_references"})
# Reference types whose existence Kibana checks on import (validate_references.ts).
VALIDATED_REFERENCE_TYPES = ("index-pattern", "search")


def object_key(obj: dict) -> str:
    return f"{obj.get('type')}:{obj.get('id')}"


def parse_ndjson(text: str, source: str) -> list:
    """Saved objects from an export file: one JSON object a line; blank lines and the
    export details line (``exportedCount``) are skipped."""
    objects = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise KibanaError(f"{source} line {number} is not JSON: {exc}") from None
        if isinstance(obj, dict) and "exportedCount" in obj and "type" not in obj:
            continue
        objects.append(check_object(obj, f"{source} line {number}"))
    return objects


def check_object(obj: object, where: str) -> dict:
    if not isinstance(obj, dict):
        raise KibanaError(f"{where}: a saved object must be a JSON object, got {type(obj).__name__}")
    for field in ("type", "id"):
        if not isinstance(obj.get(field), str) or not obj.get(field):
            raise KibanaError(f"{where}: the saved object has no {field} (both type and id are needed)")
    if not isinstance(obj.get("attributes"), dict):
        raise KibanaError(f"{where}: saved object {object_key(obj)} has no attributes object")
    references = obj.get("references", [])
    if not isinstance(references, list) or not all(
        isinstance(r, dict) and {"type", "id", "name"} <= set(r) for r in references
    ):
        raise KibanaError(f"{where}: references of {object_key(obj)} must be a list of {{name, type, id}} objects")
    return obj


def decode_embedded(value: object) -> object:
    """Kibana keeps parts of objects as JSON text (``panelsJSON``, ``visState``,
    ``searchSourceJSON``, ``fields``...): compare and show them decoded, so that layout
    differences in that text do not count as changes."""
    if isinstance(value, dict):
        return {k: decode_embedded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_embedded(v) for v in value]
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return decode_embedded(json.loads(value))
        except ValueError:
            return value
    return value


def comparable(obj: dict) -> dict:
    """What the module manages of a saved object: its attributes and references (sorted),
    embedded JSON decoded; metadata left out."""
    references = sorted(
        ({"name": r.get("name"), "type": r.get("type"), "id": r.get("id")} for r in obj.get("references") or []),
        key=lambda r: (str(r["type"]), str(r["id"]), str(r["name"])),
    )
    return {"attributes": decode_embedded(obj.get("attributes") or {}), "references": references}


def for_import(obj: dict) -> dict:
    """The object as it goes into an import file: as given, without ``version`` (Kibana drops it)
    and other per-instance fields; migration versions stay so that Kibana migrates only what is older."""
    return {k: v for k, v in obj.items() if k not in ("version", "namespaces", "namespace", "score", "sort", "error")}


def error_title(error: dict) -> str:
    title = error.get("title") or (error.get("meta") or {}).get("title")
    return f" ({title})" if title else ""


def describe_import_error(error: dict) -> str:
    """One line for one entry of an import's ``errors``."""
    detail = error.get("error") or {}
    kind = detail.get("type", "unknown")
    text = f"{error.get('type')}:{error.get('id')}{error_title(error)}: {kind}"
    if kind == "missing_references":
        refs = ", ".join(f"{r.get('type')}:{r.get('id')}" for r in detail.get("references") or [])
        text += f" ({refs})"
    elif kind in ("conflict", "ambiguous_conflict"):
        dest = detail.get("destinationId") or ", ".join(d.get("id", "?") for d in detail.get("destinations") or [])
        text += f" with existing object {dest}" if dest else " with an existing object"
    elif detail.get("message"):
        text += f": {detail['message']}"
    return text
