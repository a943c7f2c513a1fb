# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The MISP client shared by the modules and the sync service (PyMISP underneath).

Importable without Ansible. Every failure surfaces as ``MispError`` with a message a
site admin can act on; the API key never appears in one.
"""

from __future__ import annotations

import logging
from typing import Any

try:
    import requests
    from pymisp import PyMISP
    from pymisp.exceptions import PyMISPError
except ImportError as exc:  # reported by the callers (missing_required_lib)
    PYMISP_IMPORT_ERROR: ImportError | None = exc
else:
    PYMISP_IMPORT_ERROR = None

# PyMISP logs failed requests itself at ERROR/CRITICAL; we report them as MispError.
logging.getLogger("pymisp").setLevel(logging.CRITICAL + 1)


class MispError(Exception):
    """A MISP request failed; the message says why (never includes the key)."""


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
    ssl: bool | str = (ca_path or True) if validate_certs else False
    try:
        return PyMISP(url, key, ssl=ssl, timeout=timeout, tool=tool)
    except PyMISPError as exc:
        raise MispError(_describe(url, exc, key)) from None
    except requests.RequestException as exc:
        raise MispError(_describe(url, exc, key)) from None


def _describe(url: str, exc: BaseException, key: str) -> str:
    text = _redact(str(exc), key)
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


def call(misp: PyMISP, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one PyMISP call; raise MispError on any failure, including the ``errors``
    dicts PyMISP returns instead of raising for 4xx answers."""
    url = misp.root_url
    try:
        result = func(*args, **kwargs)
    except (PyMISPError, requests.RequestException, ValueError) as exc:
        raise MispError(f"{what}: {_describe(url, exc, misp.key)}") from None
    if isinstance(result, dict) and "errors" in result:
        errors = result["errors"]
        status, detail = errors if isinstance(errors, (list, tuple)) and len(errors) == 2 else (None, errors)
        message = _redact(str(detail), misp.key)
        if status in (401, 403):
            raise MispError(f"{what}: MISP at {url} refused the API key (HTTP {status}): {message}")
        raise MispError(f"{what}: MISP at {url} answered HTTP {status or '?'}: {message}")
    return result
