"""The Kibana double as a server: ``KibanaDouble`` checks credentials and the xsrf header,
logs requests, injects faults and hands the request to the endpoints
(``endpoints.KibanaApi``); serving over HTTP(S) is ``doubles_common.HttpDouble``'s."""

from __future__ import annotations

import base64
import secrets
import ssl
import time
import traceback
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from doubles_common import HttpDouble

from .endpoints import KibanaApi, _dumps
from .store import ApiError, _status_name


class KibanaDouble(KibanaApi, HttpDouble):
    """A Kibana (or OpenSearch Dashboards) API double on 127.0.0.1 (random port); a context manager.

    Attributes: ``url``, ``username``/``password`` (basic auth), ``api_keys`` and
    ``tokens`` (accepted credentials), ``read_only_users``, ``engine``, ``version``,
    ``requests`` (list of ``(method, path, headers dict)``), ``imports`` (``(space,
    overwrite, ["type:id", ...])`` per import request). Fault injection, settable at
    any time: ``fail_status`` (path -> HTTP status answered instead), ``unavailable``
    (answer the next N requests with 503 "Kibana server is not ready yet", as Kibana does
    while it starts), ``delay`` (seconds before each answer), ``strict_spaces`` (404 for
    saved object requests into unknown spaces); ``stop()`` simulates an outage. ``tls`` (a
    ``(certfile, keyfile)`` pair or an ``ssl.SSLContext``) serves https.
    """

    server_version = "Kibana"
    methods = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH"})

    def __init__(
        self,
        engine: str = "elasticsearch",
        *,
        username: str = "elastic",
        password: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[str, str] | ssl.SSLContext | None = None,
    ):
        super().__init__(engine)
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.api_keys: set[str] = set()
        self.tokens: set[str] = set()
        self.read_only_users: dict[str, str] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.errors: list[str] = []
        self.fail_status: dict[str, int] = {}
        self.unavailable = 0
        self.delay = 0.0
        self.strict_spaces = False
        self._init_http(host, port, tls)
        self.start()

    @property
    def writes(self) -> list[tuple[str, str]]:
        """(method, path) of the requests that may change state."""
        return [
            (m, p)
            for m, p, _h in self.requests
            if m in ("POST", "PUT", "DELETE") and not p.split("?")[0].endswith(("/_bulk_get", "/_export"))
        ]

    # ----------------------------------------------------------- request handling
    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, bytes, dict]:
        header_dict = {k.lower(): v for k, v in headers.items()}
        with self.lock:
            self.requests.append((method, raw_path, header_dict))
        if self.delay:
            time.sleep(self.delay)
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            with self.lock:
                if self.unavailable > 0:
                    self.unavailable -= 1
                    return 503, b"Kibana server is not ready yet", {"Content-Type": "text/plain; charset=utf-8"}
            status = self.fail_status.get(raw_path) or self.fail_status.get(path)
            if status:
                raise ApiError(status, _status_name(status))
            user = self._authenticate(header_dict)
            if method in ("POST", "PUT", "DELETE", "PATCH"):
                self._check_xsrf(header_dict)
                if user in self.read_only_users:
                    raise ApiError(403, self._forbidden_message(path))
            with self.lock:
                status, payload, extra = self._route(method, path, query, header_dict, body)
        except ApiError as err:
            return err.status, _dumps(err.body()), {}
        except Exception:  # answered like Kibana's 500, traceback kept for the tests
            self.errors.append(traceback.format_exc())
            err = ApiError(500, "An internal server error occurred.")
            return 500, _dumps(err.body()), {}
        return status, payload, extra

    def _authenticate(self, headers: dict) -> str:
        auth = headers.get("authorization", "")
        scheme, _sep, value = auth.partition(" ")
        if not auth:
            raise ApiError(401, "Unauthorized")
        if scheme.lower() == "basic":
            try:
                user, _sep, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise ApiError(401, "Unauthorized") from None
            if user == self.username and password == self.password:
                return user
            if user in self.read_only_users and password == self.read_only_users[user]:
                return user
            if self.engine == "opensearch":
                raise ApiError(401, "Unauthorized")
            reason = f"unable to authenticate user [{user}] for REST request [/_security/_authenticate]"
            raise ApiError(401, f"[security_exception: [security_exception] Reason: {reason}]: {reason}")
        if self.engine == "elasticsearch" and scheme.lower() == "apikey" and value in self.api_keys:
            return "api_key"
        if self.engine == "elasticsearch" and scheme.lower() == "bearer" and value in self.tokens:
            return "token"
        if self.engine == "opensearch":
            raise ApiError(401, "Unauthorized")
        reason = "unable to authenticate with provided credentials and anonymous access is not allowed for this request"
        raise ApiError(401, f"[security_exception: [security_exception] Reason: {reason}]: {reason}")

    def _check_xsrf(self, headers: dict) -> None:
        prefix = "kbn" if self.engine == "elasticsearch" else "osd"
        if f"{prefix}-xsrf" not in headers and f"{prefix}-version" not in headers:
            raise ApiError(400, f"Request must contain a {prefix}-xsrf header.")

    @staticmethod
    def _forbidden_message(path: str) -> str:
        if path.endswith("/_import"):
            return "Unable to bulk_create"
        return "Forbidden"
