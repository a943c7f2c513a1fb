"""The MISP double as a server: ``MispDouble`` checks the API key, logs requests, injects
faults and hands the request to the endpoints (``endpoints.MispApi``); serving over
HTTP(S) is ``doubles_common.HttpDouble``'s."""

from __future__ import annotations

import copy
import json
import secrets
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from doubles_common import HttpDouble

from .endpoints import MISP_VERSION, MispApi, _dumps
from .php import MispError, php_int, status_name
from .store import MispStore
from .warninglist import Warninglist, Warninglists


class MispDouble(MispApi, HttpDouble):
    """A MISP server double on 127.0.0.1 (random port), usable as a context manager.

    ``MispDouble(tls=(certfile, keyfile))`` serves https. Attributes: ``url``, ``key``
    (40 characters), ``requests`` (list of ``(method, path, parsed JSON body or
    None)``). Fault injection, settable at any time: ``fail_status`` (path -> HTTP
    status), ``fail_on_page`` (restSearch page number answered with 500),
    ``fail_body`` (body of those error answers instead of MISP's short error JSON),
    ``invalid_json_on`` (paths answered 200 with a truncated JSON body), ``delay``
    (seconds to wait before answering), ``trickle`` (path -> seconds between the body's
    bytes: the answer arrives byte by byte), and for attribute restSearch
    ``repeat_page`` (pages after this number are answered as this page: the same page
    forever), ``ignore_limit`` (every page holds all matches) and ``result_count``
    (the X-Result-Count announced instead of MISP's); ``stop()`` simulates an outage.

    ``warninglists`` (``load_warninglist``) are what ``enforceWarninglist`` applies.
    """

    server_version = "Apache"
    content_type = "application/json; charset=UTF-8"
    methods = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD"})

    def __init__(
        self,
        tls: tuple[str, str] | None = None,
        *,
        key: str | None = None,
        org_name: str = "ORGNAME",
        version: str = MISP_VERSION,
        describe_types: str | Path | dict | None = None,
        cache_ttl: float = 60.0,
        host: str = "127.0.0.1",
        port: int = 0,
        public_name: str | None = None,
    ):
        self.key = key or secrets.token_hex(20)
        if len(self.key) != 40:
            raise ValueError("a MISP auth key has 40 characters")
        if isinstance(describe_types, str | Path):
            describe_types = json.loads(Path(describe_types).read_text())["result"]
        self.version = version
        self.cache_ttl = cache_ttl
        self.store = MispStore(org_name, describe_types)
        self.requests: list[tuple[str, str, Any]] = []
        self.errors: list[str] = []
        self.fail_status: dict[str, int] = {}
        self.fail_on_page: int | None = None
        self.invalid_json_on: set[str] = set()
        self.delay: float = 0.0
        self.fail_body: bytes | None = None
        self.trickle: dict[str, float] = {}
        self.repeat_page: int | None = None
        self.ignore_limit = False
        self.result_count: int | None = None
        self.warninglists = Warninglists()
        # Clients use public_name in URLs (the TLS certificate carries it).
        self._init_http(host, port, tls, public_name)
        self.start()

    # ----------------------------------------------------------- data
    def add_event(self, event: dict, *, now: int | None = None) -> int:
        """Store an event as MISP exports it; returns its numeric id (assigned if missing)."""
        with self.store.lock:
            return int(self.store.store_event(event, keep_ids=True, now=now)["id"])

    def add_events(self, events: Iterable[dict]) -> list[int]:
        """Store many events, then build the search index (see ``warm``)."""
        ids = [self.add_event(e) for e in events]
        self.warm()
        return ids

    def load_warninglist(self, source: str | Path | dict, enabled: bool = True) -> Warninglist:
        """Add (or replace, by name) a warninglist in misp-warninglists' list.json format."""
        # Applied to each page after the (cached) search, so no cache to drop.
        with self.store.lock:
            return self.warninglists.load(source, enabled)

    def warm(self) -> None:
        """Build the restSearch index now instead of on the first search."""
        with self.store.lock:
            self.store.index()

    def get_event(self, event_id: int | str) -> dict:
        """A copy of a stored event as ``{"Event": {...}}``."""
        with self.store.lock:
            return {"Event": copy.deepcopy(self._event(event_id, "/events/view"))}

    @property
    def event_ids(self) -> list[int]:
        with self.store.lock:
            return sorted(self.store.events)

    # ----------------------------------------------------------- request handling
    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, bytes, dict]:
        parsed_body = None
        if body:
            try:
                parsed_body = json.loads(body)
            except ValueError:
                parsed_body = None
        path = urlsplit(raw_path).path
        with self.store.lock:
            self.requests.append((method, raw_path, parsed_body))
        if self.delay:
            time.sleep(self.delay)
        route_path = unquote(path)
        try:
            status = self.fail_status.get(raw_path) or self.fail_status.get(path)
            if status:
                raise MispError(status, status_name(status), path)
            if (
                self.fail_on_page is not None
                and route_path.rstrip("/").endswith("/restSearch")
                and isinstance(parsed_body, dict)
                and php_int(parsed_body.get("page", 1) or 1) == self.fail_on_page
            ):
                raise MispError(500, status_name(500), path)
            if headers.get("Authorization", "").strip() != self.key:
                raise MispError(
                    403,
                    "Authentication failed. Please make sure you pass the API key of an API "
                    "enabled user along in the Authorization header.",
                    path,
                )
            if body and parsed_body is None:
                raise MispError(
                    405,
                    "Invalid JSON input. Make sure that the JSON input is a correctly formatted "
                    "JSON string. This request has been blocked to avoid an unfiltered request.",
                    path,
                )
            status, payload, extra_headers = self._route(method, route_path, parsed_body, body)
        except MispError as err:
            status, payload, extra_headers = err.status, _dumps(err.body()), {}
            if self.fail_body is not None and err.status >= 500:
                payload = self.fail_body
        except Exception:  # answer like MISP's error500, keep the traceback for tests
            self.errors.append(traceback.format_exc())
            status, payload, extra_headers = (
                500,
                _dumps(MispError(500, status_name(500), path).body()),
                {},
            )
        if status == 200 and (raw_path in self.invalid_json_on or path in self.invalid_json_on):
            payload = payload[: max(1, len(payload) // 2)]
            if payload.strip().endswith((b"}", b"]")):
                payload += b'{"'
        return status, payload, extra_headers

    def send_body(self, wfile: Any, payload: bytes, raw_path: str) -> None:
        delay = self.trickle.get(raw_path) or self.trickle.get(urlsplit(raw_path).path)
        if not delay:
            wfile.write(payload)
            return
        for i in range(len(payload)):
            wfile.write(payload[i : i + 1])
            wfile.flush()
            time.sleep(delay)
