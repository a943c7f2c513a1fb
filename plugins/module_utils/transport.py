# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP transport under the collection's API clients (search_client, kibana).

Standard library only and importable without Ansible. One ``Transport`` holds one
service's base URLs and credentials and sends requests with one set of rules:

* TLS verified by default, against the system trust store or ``ca_path`` (which must be
  a readable file); an optional client certificate;
* basic authentication, an API key (``Authorization: ApiKey``) or a bearer token; the
  secrets, in every form they are sent in, are replaced by ``********`` in every message;
* retries: a connection failure and HTTP 429, 502, 503 and 504 move on to the next base
  URL, and after a whole round the transport pauses (``backoff`` seconds, doubling, or
  what ``Retry-After`` asks, at most ``BACKOFF_CAP``) and starts another round, ``retries``
  times at most. A request that may have reached the server is repeated only when
  repeating it is harmless: GET, HEAD, PUT, DELETE, OPTIONS, or a request the caller marks
  ``idempotent``. Other requests (POST) are repeated only when the connection failed
  before they were sent, or when the server answered 429 or 503, that is it said that it
  did not handle them;
* ``timeout`` bounds each exchange as a whole (connecting, sending, every redirect and the
  whole answer), not only each wait on the socket: a server that trickles or stalls is
  cut off at the deadline;
* redirects are followed (GET and HEAD on 301, 302, 303; any method on 307 and 308), at
  most ``MAX_REDIRECTS`` times, and only within the origins (scheme, host and port) of the
  configured URLs, so that the credentials (the ``Authorization`` header and the client
  certificate) go nowhere else: a redirect to another origin is refused, naming both URLs
  (for an admin API it means a wrong URL);
* answers are read up to ``max_body`` bytes; server text quoted in a message is cut to
  ``MESSAGE_LIMIT`` characters; ``Response.json_object`` refuses an answer that is not the
  JSON object an API call expects (an HTML page of a proxy, say), with the URL, the status
  and an excerpt.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.client
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import quote, urlencode, urljoin, urlsplit, urlunsplit

RETRY_STATUSES = (429, 502, 503, 504)
# OpenSSL's verification results for a certificate valid for other names than the host.
NAME_MISMATCH_CODES = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
# Answers in which the server says it did not handle the request: any method may be repeated.
REFUSED_STATUSES = (429, 503)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
BACKOFF_CAP = 30.0
MAX_REDIRECTS = 5
MAX_BODY = 64 * 1024 * 1024
MESSAGE_LIMIT = 1000
EXCERPT_LIMIT = 200
USER_AGENT = "wlcg.soc"
REDACTED = "********"


class TransportError(Exception):
    """A request could not be made or answered; the message says why, without secrets."""


class Unavailable(TransportError):
    """No usable answer after the allowed attempts.

    ``problems`` lists ``(base URL, Response or text)`` of every attempt, ``response`` is
    the last answer when the last attempt got one, ``attempts`` counts the exchanges and
    ``rounds`` the rounds over the base URLs.
    """

    def __init__(self, message: str, problems: list, attempts: int, rounds: int, response: Response | None):
        super().__init__(message)
        self.problems = problems
        self.attempts = attempts
        self.rounds = rounds
        self.response = response


def http_argument_spec() -> dict:
    """Connection options every API module has (documented in the wlcg.soc.http_client doc fragment)."""
    return dict(
        username=dict(type="str"),
        password=dict(type="str", no_log=True),
        api_key=dict(type="str", no_log=True),
        ca_path=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
        timeout=dict(type="float", default=30),
        retries=dict(type="int", default=3),
    )


def shorten(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def display_url(url: str) -> str:
    """The URL without any user:password@ part, query or trailing slash."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def base_url(url: str, option: str, default_scheme: str | None = None) -> str:
    """A checked base URL: http(s), a host, no credentials in it; ``default_scheme`` for one without."""
    url = (url or "").strip()
    if default_scheme and "://" not in url:
        url = f"{default_scheme}://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TransportError(f"{option}: {display_url(url)!r} is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise TransportError(
            f"{option}: {display_url(url)} carries credentials in the URL; use username/password or api_key"
        )
    return url.rstrip("/")


def _origin(url: str) -> tuple:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def retry_after(value: str | None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (a number or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class Response:
    """One HTTP answer: ``status``, ``headers`` (case-insensitive), ``body`` (bytes), the
    ``base`` URL that served it, the ``url`` it finally came from and the ``method`` that
    asked for it."""

    def __init__(
        self, status: int, headers: Any, body: bytes, base: str, url: str, attempts: int = 1, method: str = "GET"
    ):
        self.status = status
        self.headers = headers
        self.body = body
        self.base = base
        self.url = url
        self.attempts = attempts
        self.method = method

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The parsed JSON body (None when empty); ValueError when it is not JSON."""
        if not self.body.strip():
            return None
        return json.loads(self.text)

    def data(self) -> Any:
        """The parsed JSON body, or its text when it is not JSON (None when empty)."""
        try:
            return self.json()
        except ValueError:
            return self.text

    def json_object(self) -> dict:
        """The body as the JSON object API calls answer with; TransportError naming the URL,
        the status and an excerpt of the body when it is anything else."""
        try:
            data = self.json()
        except ValueError:
            kind = self.headers.get("Content-Type") if self.headers else None
            found = f"a body that is not JSON ({kind or 'no Content-Type'})"
        else:
            if isinstance(data, dict):
                return data
            kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
            found = "an empty body" if data is None else f"JSON that is not an object ({kinds[type(data)]})"
        excerpt = shorten(" ".join(self.text.split()), EXCERPT_LIMIT)
        raise TransportError(
            f"{display_url(self.url)}: {self.method} answered HTTP {self.status} with {found} where a JSON "
            f"object was expected{': ' + excerpt if excerpt else ''}; is the URL the service's API?"
        )


class _Failure(Exception):
    """One attempt got no answer; ``sent`` tells whether the request may have reached the server."""

    def __init__(self, text: str, sent: bool):
        super().__init__(text)
        self.sent = sent


class Transport:
    """HTTP(S) to one service, reached at one or more base URLs (tried in order)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        username: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        token: str | None = None,
        ca_path: str | None = None,
        validate_certs: bool = True,
        client_cert: str | None = None,
        client_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        headers: Mapping[str, str] | None = None,
        max_body: int = MAX_BODY,
    ):
        if not urls:
            raise TransportError("at least one URL is required")
        if retries is None or retries < 0:
            raise TransportError(f"retries must be 0 or more, got {retries}")
        if timeout is None or timeout <= 0:
            raise TransportError(f"timeout must be a positive number of seconds, got {timeout}")
        if password is not None and not username:
            raise TransportError("password needs username")
        if sum(bool(x) for x in (username, api_key, token)) > 1:
            raise TransportError("give only one of username/password, api_key and token")
        if ca_path is not None:
            if not os.path.isfile(ca_path):
                raise TransportError(f"ca_path: {ca_path} is not a file (the CA bundle to verify the server with)")
            if not os.access(ca_path, os.R_OK):
                raise TransportError(f"ca_path: {ca_path} is not readable by this user")
        self.urls = list(urls)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = backoff
        self.sleep = sleep
        self.max_body = max_body
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        self._origins = {_origin(u) for u in self.urls}
        self._tls_options = (ca_path, validate_certs, client_cert, client_key)
        self._ssl_context: ssl.SSLContext | None = None
        self._secrets: list[str] = [s for s in (password, api_key, token) if s]
        self.auth: str | None = None
        self.identity: str | None = None  # who the credentials are, for messages; None: anonymous
        if username:
            encoded = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self.auth, self.identity = f"Basic {encoded}", f"user {username!r}"
            self._secrets.append(encoded)
        elif api_key:
            encoded = api_key
            if ":" in api_key:  # "id:key" as Elasticsearch's create API returns them apart
                encoded = base64.b64encode(api_key.encode()).decode()
            self.auth = f"ApiKey {encoded}"
            self._secrets.append(encoded)
            try:
                key_id = base64.b64decode(encoded, validate=True).decode().split(":", 1)[0]
                self.identity = f"the API key with id {key_id!r}"
            except (ValueError, UnicodeDecodeError):
                self.identity = "the API key"
        elif token:
            self.auth, self.identity = f"Bearer {token}", "the service account token"
        if client_cert:
            self._context()  # a certificate that does not load fails now, not at the first request
        # Echoed secrets may come back JSON-escaped or URL-encoded.
        variants = set()
        for secret in self._secrets:
            variants |= {secret, json.dumps(secret)[1:-1], quote(secret, safe="")}
        self._secrets = sorted(variants, key=len, reverse=True)

    # -- secrets ------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``********``."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def redact_value(self, value: Any) -> Any:
        """A parsed JSON value with every secret in its strings replaced."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact(str(k)): self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact_value(v) for v in value]
        return value

    # -- TLS ----------------------------------------------------------------------

    def _context(self) -> ssl.SSLContext:
        """The TLS context (requests go to the configured origins only, see ``_exchange``)."""
        if self._ssl_context is None:
            ca_path, validate_certs, client_cert, client_key = self._tls_options
            if validate_certs:
                try:
                    ctx = ssl.create_default_context(cafile=ca_path)
                except (OSError, ssl.SSLError) as exc:
                    raise TransportError(f"ca_path: {ca_path} holds no usable CA certificate ({exc})") from None
            else:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if client_cert:
                try:
                    ctx.load_cert_chain(client_cert, client_key)
                except (OSError, ssl.SSLError) as exc:
                    raise TransportError(f"client_cert/client_key: cannot load {client_cert}: {exc}") from None
            self._ssl_context = ctx
        return self._ssl_context

    # -- requests -----------------------------------------------------------------

    def delay(self, round_: int, asked: float | None = None) -> float:
        """The pause before round ``round_`` (1 for the first repeat): doubling from
        ``backoff``, at least what the server asked for, at most ``BACKOFF_CAP``."""
        wait = self.backoff * 2 ** (round_ - 1)
        if asked is not None:
            wait = max(wait, asked)
        return min(BACKOFF_CAP, wait)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> Response:
        """The first answer not worth repeating the request for (any status), following
        the retry policy; ``Unavailable`` when the attempts ran out, ``TransportError``
        for what no repeat can mend (TLS verification, size, redirects)."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        target = "/" + path.lstrip("/")
        if query:
            pairs = {k: ("true" if v is True else "false" if v is False else v) for k, v in query.items()}
            target += "?" + urlencode({k: v for k, v in pairs.items() if v is not None}, doseq=True)
        problems: list = []
        attempts = 0
        asked: float | None = None
        for round_ in range(self.retries + 1):
            if round_:
                self.sleep(self.delay(round_, asked))
            asked = None
            for base in self.urls:
                attempts += 1
                try:
                    response = self._exchange(method, base, base + target, body, headers or {})
                except _Failure as failure:
                    problems.append((base, self.redact(str(failure))))
                    if failure.sent and not idempotent:
                        problems[-1] = (base, f"{problems[-1][1]}; not repeated, as the {method} may have been handled")
                        return self._give_up(method, target, problems, attempts, round_ + 1)
                    continue
                response.attempts = attempts
                if response.status not in RETRY_STATUSES:
                    return response
                if not idempotent and response.status not in REFUSED_STATUSES:
                    return response
                problems.append((base, response))
                wait = retry_after(response.headers.get("Retry-After"))
                asked = wait if asked is None or wait is None else max(asked, wait)
        return self._give_up(method, target, problems, attempts, self.retries + 1)

    def _give_up(self, method: str, target: str, problems: list, attempts: int, rounds: int):
        last = problems[-1][1]
        if isinstance(last, Response):
            raise Unavailable(
                f"{method} {target.split('?')[0]}: HTTP {last.status} from {display_url(problems[-1][0])} "
                f"after {attempts} attempt{'s' if attempts != 1 else ''}",
                problems,
                attempts,
                rounds,
                last,
            )
        texts = "; ".join(f"{display_url(b)}: {p}" for b, p in problems[-len(self.urls) :] if isinstance(p, str))
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        raise Unavailable(
            f"{method} {target.split('?')[0]}: no answer after {tries}: {texts}",
            problems,
            attempts,
            rounds,
            None,
        )

    def _exchange(self, method: str, base: str, url: str, body: bytes | None, extra: Mapping[str, str]) -> Response:
        """One request and its redirects, within ``timeout`` as a whole."""
        deadline = time.monotonic() + self.timeout
        headers = dict(self.headers, **extra)
        if self.auth:
            headers["Authorization"] = self.auth
        for _hop in range(MAX_REDIRECTS + 1):
            status, rheaders, data = self._once(method, url, body, headers, deadline)
            location = rheaders.get("Location")
            if status not in (301, 302, 303, 307, 308) or not location:
                return Response(status, rheaders, data, base, url, method=method)
            if status in (301, 302, 303) and method not in ("GET", "HEAD"):
                raise TransportError(
                    f"{display_url(url)} redirects the {method} elsewhere (HTTP {status}, to "
                    f"{display_url(urljoin(url, location))}); set the URL to where the service answers"
                )
            new = urljoin(url, location)
            if urlsplit(new).scheme not in ("http", "https"):
                raise TransportError(f"{display_url(url)} redirects to {display_url(new)!r}, which is not http(s)")
            if _origin(new) not in self._origins:
                raise TransportError(
                    f"{display_url(url)} redirects (HTTP {status}) to {display_url(new)}, which differs in scheme, "
                    "host or port from the configured URLs; not followed, so that the credentials go nowhere "
                    "else: set the URL to where the service answers"
                )
            url = new
        raise TransportError(f"{display_url(url)}: more than {MAX_REDIRECTS} redirects")

    def _once(
        self, method: str, url: str, body: bytes | None, headers: dict, deadline: float
    ) -> tuple[int, Any, bytes]:
        """One HTTP exchange, cut off at ``deadline``. Raises _Failure when there is no answer."""
        parts = urlsplit(url)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Failure(f"no complete answer within {self.timeout:g}s", sent=True)
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=remaining, context=self._context()
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=remaining)
        expired = threading.Event()
        opened: list = []  # the socket, which the connection lets go of when the answer is read to its end

        def cut_off() -> None:
            # Ends a read or write that is still waiting: the socket timeout alone
            # restarts with every byte that trickles in.
            expired.set()
            sock = opened[0] if opened else conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

        watchdog = threading.Timer(remaining, cut_off)
        watchdog.daemon = True
        watchdog.start()
        sent = False
        try:
            conn.connect()
            opened.append(conn.sock)
            sent = True
            target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            length = resp.getheader("Content-Length")
            if length and length.isdigit() and int(length) > self.max_body:
                raise TransportError(
                    f"{display_url(url)}: the answer to {method} {parts.path} is {int(length)} bytes, "
                    f"more than the {self.max_body} this client reads"
                )
            chunks, size = [], 0
            while True:
                chunk = resp.read(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_body:
                    raise TransportError(
                        f"{display_url(url)}: the answer to {method} {parts.path} is longer than the "
                        f"{self.max_body} bytes this client reads"
                    )
                chunks.append(chunk)
            if expired.is_set():  # an answer without a length looks complete when cut off
                raise _Failure(f"no complete answer within {self.timeout:g}s", sent=True)
            return resp.status, resp.headers, b"".join(chunks)
        except ssl.SSLCertVerificationError as exc:
            if exc.verify_code in NAME_MISMATCH_CODES:
                raise TransportError(
                    f"{display_url(url)}: the TLS certificate's names do not match the host {parts.hostname} "
                    f"({exc.verify_message}); use a host name the certificate was issued for, or a certificate "
                    "that lists this one among its subject alternative names"
                ) from None
            raise TransportError(
                f"{display_url(url)}: TLS certificate verification failed ({exc.verify_message or exc}); "
                "set ca_path to the CA bundle that signed its certificate"
            ) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if expired.is_set():
                raise _Failure(f"no complete answer within {self.timeout:g}s", sent=sent) from None
            if isinstance(exc, (socket.timeout, TimeoutError)):
                raise _Failure(f"no answer within {self.timeout:g}s ({exc or 'timed out'})", sent=sent) from None
            if isinstance(exc, socket.gaierror):
                raise _Failure(f"name resolution failed ({exc})", sent=sent) from None
            raise _Failure(str(exc) or type(exc).__name__, sent=sent) from None
        finally:
            watchdog.cancel()
            conn.close()
