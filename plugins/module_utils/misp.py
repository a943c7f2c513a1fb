# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The MISP client shared by the modules and the sync service (PyMISP underneath).

Importable without Ansible. Every failure surfaces as ``MispError`` with a message a
site admin can act on: short, by status, URL path and reason. Neither the API key nor
anything of a response body (which can hold indicators, megabytes of them) appears in one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import ssl
import threading
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

try:
    import requests
    from pymisp import PyMISP
    from pymisp.exceptions import MISPServerError, PyMISPError, PyMISPUnexpectedResponse
    from requests.auth import AuthBase
except ImportError as exc:  # reported by the callers (missing_required_lib)
    PYMISP_IMPORT_ERROR: ImportError | None = exc
    AuthBase = object
else:
    PYMISP_IMPORT_ERROR = None

# Longest message of a MispError, and of the low-level reason quoted in one.
MESSAGE_MAX = 400
REASON_MAX = 160
# urllib3 prefixes its errors with the pool or connection ("HTTPSConnectionPool(host=...,
# port=...): "), which repeats the URL the message already names.
_POOL_PREFIX = re.compile(r"^(?:\w*Connection(?:Pool)?\(host=[^)]*\)|<[^>]*>): ")

# PyMISP logs failed requests itself at ERROR/CRITICAL; we report them as MispError.
logging.getLogger("pymisp").setLevel(logging.CRITICAL + 1)


def _bounded(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class MispError(Exception):
    """A MISP request failed; the message says why (never the key, at most MESSAGE_MAX characters)."""

    def __init__(self, message: str):
        super().__init__(_bounded(message, MESSAGE_MAX))


class ResponseWatch(AuthBase):
    """Sees each response of a PyMISP client before its body is read, for ``fetch_pages``.

    PyMISP's ``search(pythonify=False)`` returns only the JSON, and PyMISP offers no way
    to interrupt a request. Its public ``auth`` argument is applied to every request it
    makes; as requests' own auth handlers do, this one only registers a response hook
    (it adds no credentials: PyMISP sends the key). The hook keeps the response, so its
    headers (``X-Result-Count``) can be read and a body still arriving can be cut from
    another thread (urllib3's ``HTTPResponse.shutdown``), without touching PyMISP's
    private session.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.response: requests.Response | None = None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.register_hook("response", self._seen)
        return request

    def _seen(self, response: requests.Response, **_kwargs: Any) -> None:
        with self._lock:
            self.response = response

    def header(self, name: str) -> str | None:
        with self._lock:
            return None if self.response is None else self.response.headers.get(name)

    def where(self) -> tuple[int | None, str]:
        """(HTTP status, URL path) of the last response, for messages."""
        with self._lock:
            if self.response is None:
                return None, ""
            return self.response.status_code, urlsplit(self.response.url or "").path

    def abort(self) -> None:
        """Cut the response being read, if any: its reader fails at once."""
        with self._lock:
            raw = None if self.response is None else self.response.raw
        shutdown = getattr(raw, "shutdown", None)  # urllib3 >= 2.3
        if shutdown is not None:
            # Fails when the response is already complete or released: nothing to cut.
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                shutdown()


def misp_argument_spec() -> dict:
    """The connection options of every MISP module (documented in the wlcg.soc.misp doc fragment)."""
    return dict(
        misp_url=dict(type="str", required=True),
        misp_key=dict(type="str", required=True, no_log=True),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        timeout=dict(type="float", default=60),
    )


def _redact(text: str, key: str) -> str:
    return text.replace(key, "********") if key else text


def system_trust_store() -> str | bool:
    """OpenSSL's default CA file, else its CA directory: the system trust store, with the
    site CA the common role adds. requests would otherwise verify with certifi's bundle."""
    paths = ssl.get_default_verify_paths()
    if paths.cafile and os.path.isfile(paths.cafile):
        return paths.cafile
    if paths.capath and os.path.isdir(paths.capath):
        return paths.capath
    return True


def connect(
    url: str,
    key: str,
    validate_certs: bool = True,
    ca_path: str | None = None,
    timeout: float = 60.0,
    tool: str = "wlcg.soc",
) -> PyMISP:
    """A PyMISP client; PyMISP checks the URL and the key on construction."""
    if PYMISP_IMPORT_ERROR is not None:
        raise MispError(f"the pymisp library is required: {PYMISP_IMPORT_ERROR}")
    verify: bool | str = (ca_path or system_trust_store()) if validate_certs else False
    watch = ResponseWatch()
    try:
        return PyMISP(url, key, ssl=verify, timeout=timeout, tool=tool, auth=watch)
    except PyMISPError as exc:
        raise MispError(_describe(url, exc, key, watch)) from None
    except requests.RequestException as exc:
        raise MispError(_describe(url, exc, key, watch)) from None


def _cause(exc: BaseException) -> BaseException:
    """The requests error PyMISP wrapped into a PyMISPError while connecting, else ``exc``."""
    inner = exc.__context__
    return inner if isinstance(exc, PyMISPError) and isinstance(inner, requests.RequestException) else exc


def _reason(exc: BaseException, key: str, watch: ResponseWatch | None) -> str:
    """A short reason for ``exc`` that quotes no response body.

    PyMISP puts the whole body into its exceptions (a 500 page, a truncated restSearch
    answer: indicators); those are described by status and path instead.
    """
    status, path = watch.where() if watch is not None else (None, "")
    at = f" on {path}" if path else ""
    if isinstance(exc, MISPServerError) and status is not None and status >= 400:
        return f"HTTP {status} ({_phrase(status)}){at}"
    if isinstance(exc, PyMISPUnexpectedResponse) or (isinstance(exc, MISPServerError) and status is not None):
        return f"an answer that is not the JSON expected (HTTP {status}){at}"
    text = str(exc)
    if isinstance(exc, requests.RequestException):
        # The innermost cause names the failure (timeout, refused, TLS) without the pool.
        cause = exc.args[0] if exc.args else None
        text = str(getattr(cause, "reason", None) or cause or text)
    elif isinstance(exc, PyMISPError):
        # PyMISP's own wording, up to where it quotes the server's answer.
        text = re.split(r"[:\n{(]", text, maxsplit=1)[0] + (f" (HTTP {status}{at})" if status else "")
    return _bounded(_POOL_PREFIX.sub("", _redact(text, key)), REASON_MAX)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unknown status"


def _describe(url: str, exc: BaseException, key: str, watch: ResponseWatch | None = None) -> str:
    exc = _cause(exc)
    text = _reason(exc, key, watch)
    if isinstance(exc, requests.exceptions.SSLError) or "CERTIFICATE_VERIFY_FAILED" in text:
        # OpenSSL's "Hostname mismatch" / "IP address mismatch", or urllib3's own "doesn't match".
        if any(mark in text for mark in ("Hostname mismatch", "IP address mismatch", "doesn't match")):
            return (
                f"MISP at {url}: the TLS certificate's names do not match the host "
                f"{requests.compat.urlparse(url).hostname} ({text}); use a host name the certificate was "
                "issued for, or a certificate that lists this one among its subject alternative names"
            )
        return (
            f"MISP at {url}: TLS certificate verification failed ({text}); set ca_path to the CA bundle that signed it"
        )
    if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
        return f"MISP at {url} did not answer in time: {text}"
    if isinstance(exc, requests.ConnectionError) or "Max retries exceeded" in text:
        return f"MISP at {url} is unreachable: {text}"
    if "403" in text or "401" in text or "Authentication failed" in text:
        return f"MISP at {url} refused the API key (authentication failed): {text}"
    return f"MISP at {url}: {text}"


def watch_of(misp: Any) -> ResponseWatch | None:
    """The ResponseWatch of a client made by ``connect``."""
    auth = getattr(misp, "auth", None)
    return auth if isinstance(auth, ResponseWatch) else None


def search_json(misp: PyMISP, **kwargs: Any) -> Any:
    """``misp.search(pythonify=False, ...)``, parsed alike whichever JSON parser PyMISP uses.

    PyMISP parses with orjson when it is installed, and orjson refuses a whole answer for
    one lone surrogate (``"\\ud800"``) that the standard library accepts; neither accepts
    bytes that are not UTF-8. Any event author can publish such a value, and one must not
    fail the page. So a 200 answer PyMISP could not parse is parsed again here, as the
    standard library does, with undecodable bytes kept as lone surrogates: the mapper then
    skips and counts each such value ("undecodable text"), with either parser.
    """
    try:
        return misp.search(**kwargs)
    except PyMISPUnexpectedResponse:
        watch = watch_of(misp)
        response = watch.response if watch is not None else None
        if response is None or response.status_code != 200:
            raise
        try:
            result = json.loads(response.content.decode("utf-8", "surrogateescape"))
        except ValueError:
            raise PyMISPUnexpectedResponse(f"Unexpected response (size: {len(response.content)}) from server") from None
    # As PyMISP does with the answers it parses.
    if isinstance(result, dict) and result.get("response") is not None:
        result = result["response"]
    return result


def call(misp: PyMISP, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one PyMISP call; raise MispError on any failure, including the ``errors``
    dicts PyMISP returns instead of raising for 4xx answers."""
    url = misp.root_url
    watch = watch_of(misp)
    try:
        result = func(*args, **kwargs)
    except (PyMISPError, requests.RequestException, ValueError) as exc:
        raise MispError(f"{what}: {_describe(url, exc, misp.key, watch)}") from None
    if isinstance(result, dict) and "errors" in result:
        errors = result["errors"]
        status = errors[0] if isinstance(errors, (list, tuple)) and len(errors) == 2 else None
        # MISP's error JSON can echo what was sent or stored: only the status is quoted.
        path = watch.where()[1] if watch is not None else ""
        where = f" on {path}" if path else ""
        if status in (401, 403):
            raise MispError(f"{what}: MISP at {url} refused the API key (HTTP {status}){where}")
        if isinstance(status, int):
            raise MispError(f"{what}: MISP at {url} answered HTTP {status} ({_phrase(status)}){where}")
        raise MispError(f"{what}: MISP at {url} answered with an error{where}")
    return result
