# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client for the Kibana and OpenSearch Dashboards HTTP APIs (standard library only).

Importable without Ansible. Used by the ``kibana_*`` modules:

* one base URL; basic authentication, an API key (``Authorization: ApiKey``) or a
  service account token (``Authorization: Bearer``); TLS verified by default, against the
  system trust store or ``ca_path``;
* every request carries both ``kbn-xsrf`` and ``osd-xsrf`` (each product ignores the
  other's header), so a request that changes state is never refused for want of one;
* spaces: paths are prefixed with ``/s/<space>`` except for the default space;
* bounded retries with exponential backoff for connection failures and for HTTP 502, 503
  (Kibana answers 503 while it starts) and 504; requests that change state are retried
  after a connection failure only when the request cannot have reached the server;
* every failure is a ``KibanaError`` whose message says what to do and never contains
  the password, the API key or the token (HTTP 401 names the user).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import socket
import ssl
import time
import uuid
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import HTTPSHandler, Request, build_opener

FLAVORS = ("kibana", "dashboards")
PRODUCT = {"kibana": "Kibana", "dashboards": "OpenSearch Dashboards"}
DEFAULT_SPACE = "default"
# Kibana's space identifiers (x-pack/plugins/spaces: lower-case letters, digits, _ and -).
SPACE_ID_RE = re.compile(r"^[a-z0-9_\-]+$")
RETRY_STATUSES = (502, 503, 504)
USER_AGENT = "wlcg.soc-kibana"


class KibanaError(Exception):
    """A request failed; the message says why (never includes a secret)."""

    def __init__(self, message: str, status: int | None = None, body: object = None):
        super().__init__(message)
        self.status = status
        self.body = body


def kibana_argument_spec() -> dict:
    """The connection options of every Kibana module (documented in the wlcg.soc.kibana doc fragment)."""
    return dict(
        url=dict(type="str", required=True),
        username=dict(type="str"),
        password=dict(type="str", no_log=True),
        api_key=dict(type="str", no_log=True),
        token=dict(type="str", no_log=True),
        ca_path=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
        timeout=dict(type="float", default=30),
        retries=dict(type="int", default=3),
        flavor=dict(type="str", choices=list(FLAVORS), default="kibana"),
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
        flavor=params.get("flavor") or "kibana",
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


class Response:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> object:
        if not self.body:
            return None
        return json.loads(self.body.decode("utf-8"))


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
        flavor: str = "kibana",
        backoff: float = 1.0,
        sleep=time.sleep,
    ):
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise KibanaError(f"url must be an http:// or https:// URL, got {url!r}")
        if flavor not in FLAVORS:
            raise KibanaError(f"flavor must be one of {', '.join(FLAVORS)}, got {flavor!r}")
        if password is not None and not username:
            raise KibanaError("password needs username")
        if sum(bool(x) for x in (password, api_key, token)) > 1:
            raise KibanaError("give only one of username/password, api_key and token")
        if retries < 0:
            raise KibanaError(f"retries must be 0 or more, got {retries}")
        if timeout <= 0:
            raise KibanaError(f"timeout must be a positive number of seconds, got {timeout}")
        if ca_path and not os.path.isfile(ca_path):
            raise KibanaError(f"ca_path {ca_path} is not a file")
        self.url = url.rstrip("/")
        self.flavor = flavor
        self.product = PRODUCT[flavor]
        self.username = username
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = backoff
        self._sleep = sleep
        self._secrets = [s for s in (password, api_key, token) if s]
        if username and password is not None:
            creds = base64.b64encode(f"{username}:{password}".encode()).decode()
            self._auth = f"Basic {creds}"
            self._secrets.append(creds)
            self.identity = f"user '{username}'"
        elif api_key:
            self._auth = f"ApiKey {api_key}"
            self.identity = "the API key"
        elif token:
            self._auth = f"Bearer {token}"
            self.identity = "the service account token"
        else:
            self._auth = None
            self.identity = "anonymous access (no credentials given)"
        context = None
        if parts.scheme == "https":
            if validate_certs:
                context = ssl.create_default_context(cafile=ca_path or None)
            else:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        self._opener = build_opener(HTTPSHandler(context=context)) if context else build_opener()

    # ----------------------------------------------------------------- helpers
    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return text

    @staticmethod
    def space_path(space: str | None, path: str) -> str:
        """``path`` in ``space`` (the default space has no prefix)."""
        check_space_id(space)
        if not space or space == DEFAULT_SPACE:
            return path
        return f"/s/{space}{path}"

    def _headers(self, content_type: str | None) -> dict:
        headers = {
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            # Kibana wants kbn-xsrf, OpenSearch Dashboards osd-xsrf; each ignores the other.
            "kbn-xsrf": "true",
            "osd-xsrf": "true",
        }
        if content_type:
            headers["Content-Type"] = content_type
        if self._auth:
            headers["Authorization"] = self._auth
        return headers

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
        safe: bool | None = None,
        what: str | None = None,
    ) -> Response:
        """Send one request; retry what may be retried; raise KibanaError unless the status is in ``ok``.

        ``safe`` says whether the request may be repeated after a connection failure
        that happened once it was sent (default: for GET and HEAD only).
        """
        full = self.space_path(space, path)
        if query:
            full += "?" + urlencode({k: _query_value(v) for k, v in query.items() if v is not None}, doseq=True)
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            content_type = "application/json"
        if safe is None:
            safe = method in ("GET", "HEAD")
        what = what or f"{method} {full}"
        attempts = self.retries + 1
        last_problem = ""
        for attempt in range(1, attempts + 1):
            # The scheme was checked in __init__: http or https only.
            req = Request(self.url + full, data=body, method=method, headers=self._headers(content_type))  # noqa: S310
            try:
                with self._opener.open(req, timeout=self.timeout) as handle:
                    response = Response(handle.status, dict(handle.headers.items()), handle.read())
            except HTTPError as err:
                response = Response(err.code, dict(err.headers.items()) if err.headers else {}, _read(err))
            except (URLError, OSError, http.client.HTTPException) as err:
                reason = getattr(err, "reason", err)
                if _is_tls_failure(reason):
                    raise KibanaError(
                        f"{self.product} at {self.url}: TLS certificate verification failed ({reason}); "
                        "set ca_path to the CA bundle that signed its certificate"
                    ) from None
                last_problem = self.redact(_describe_network(reason))
                if not (safe or _not_sent(reason)) or attempt == attempts:
                    break
                self._sleep(self._delay(attempt))
                continue
            if response.status in RETRY_STATUSES and attempt < attempts:
                last_problem = f"HTTP {response.status}"
                self._sleep(self._delay(attempt))
                continue
            if response.status in ok:
                return response
            raise self._http_error(what, response)
        raise KibanaError(
            f"{self.product} at {self.url} is unreachable ({what}): {last_problem}; "
            f"gave up after {attempt} attempt{'s' if attempt != 1 else ''}"
        )

    def _delay(self, attempt: int) -> float:
        return min(self.backoff * (2 ** (attempt - 1)), 10.0)

    def _http_error(self, what: str, response: Response) -> KibanaError:
        message = self.redact(_error_message(response))
        status = response.status
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if status == 401:
            text = f"{self.product} at {self.url} refused the credentials of {self.identity} (HTTP 401): {message}"
        elif status == 403:
            text = f"{self.product} at {self.url}: {self.identity} may not do this ({what}, HTTP 403): {message}"
        elif status in RETRY_STATUSES:
            text = (
                f"{self.product} at {self.url} is not available ({what}, HTTP {status}) after "
                f"{self.retries + 1} attempts: {message}"
            )
        else:
            text = f"{self.product} at {self.url}: {what} answered HTTP {status}: {message}"
        return KibanaError(text, status=status, body=payload)

    def json(self, method: str, path: str, **kwargs) -> object:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise KibanaError(
                f"{self.product} at {self.url}: {method} {path} answered something that is not JSON: "
                f"{self.redact(response.body[:200].decode('utf-8', 'replace'))}"
            ) from None

    # ----------------------------------------------------------------- APIs
    def check_space(self, space: str | None) -> None:
        """Fail unless the space exists (Kibana's saved object APIs write into any space id,
        even one that does not exist, where the objects stay invisible)."""
        check_space_id(space)
        if not space or space == DEFAULT_SPACE:
            return
        if self.flavor == "dashboards":
            raise KibanaError(
                "OpenSearch Dashboards has no spaces (it has tenants): leave space unset with flavor=dashboards"
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
        data = self.json("POST", "/api/saved_objects/_bulk_get", space=space, json_body=body, safe=True)
        found = data.get("saved_objects") if isinstance(data, dict) else None
        if not isinstance(found, list) or len(found) != len(body):
            raise KibanaError(f"{self.product} at {self.url}: unexpected _bulk_get answer: {str(data)[:200]}")
        return found

    def import_objects(self, ndjson: bytes, space: str | None = None, overwrite: bool = True) -> dict:
        """``POST /api/saved_objects/_import``: the import result (HTTP 200 even when objects failed)."""
        body, content_type = encode_multipart("file", "wlcg-soc.ndjson", ndjson, "application/ndjson")
        query = {"overwrite": "true"} if overwrite else None
        data = self.json(
            "POST", "/api/saved_objects/_import", space=space, query=query, body=body, content_type=content_type
        )
        if not isinstance(data, dict) or "success" not in data:
            raise KibanaError(f"{self.product} at {self.url}: unexpected _import answer: {str(data)[:200]}")
        return data


def _query_value(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _read(err: HTTPError) -> bytes:
    try:
        return err.read() or b""
    except (OSError, http.client.HTTPException):
        return b""


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
            message = f"{message} ({json.dumps(extra)[:300]})"
        if message:
            return str(message)
    text = response.body[:300].decode("utf-8", "replace").strip()
    return text or http.client.responses.get(response.status, "no message")


def _is_tls_failure(reason: object) -> bool:
    return isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(reason)


def _not_sent(reason: object) -> bool:
    """Whether a connection failure happened before the request reached the server."""
    return isinstance(reason, (ConnectionRefusedError, socket.gaierror)) or (
        isinstance(reason, OSError) and "Connection refused" in str(reason)
    )


def _describe_network(reason: object) -> str:
    if isinstance(reason, socket.timeout) or "timed out" in str(reason).lower():
        return f"no answer in time ({reason})"
    if isinstance(reason, socket.gaierror):
        return f"name resolution failed ({reason})"
    return str(reason) or reason.__class__.__name__


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
