"""Lifecycle APIs in front of a real node whose test distribution lacks them.

Elasticsearch's test distribution has no ILM module (``x-pack-ilm``), and OpenSearch's
ISM is a plugin (``opensearch-index-management``) that is not on Maven Central. This
proxy serves the one lifecycle API of its upstream's engine itself and passes every
other request (``GET /``, cluster health, authentication...) to the real node,
unchanged, so the modules still detect the engine, wait for health and authenticate
against the real thing.

ILM, as documented for Elasticsearch 8 (``PUT|GET|DELETE _ilm/policy/<name>``):

- PUT takes ``{"policy": {"phases": ..., "_meta": ...}}`` and answers
  ``{"acknowledged": true}``; an unknown top-level key, phase or action of a phase is
  rejected with HTTP 400 (``x_content_parse_exception`` / ``illegal_argument_exception``
  with Elasticsearch's wording).
- GET answers ``{"<name>": {"version": n, "modified_date": "...", "policy": {...},
  "in_use_by": {...}}}`` where each phase has ``min_age`` (``"0ms"`` when not given)
  and a ``delete`` action ``delete_searchable_snapshot`` (``true`` when not given);
  a missing policy is HTTP 404 ``resource_not_found_exception``.
- DELETE answers ``{"acknowledged": true}`` or the same 404.

ISM, as documented for OpenSearch 2 (``PUT|GET|DELETE _plugins/_ism/policies/<id>``):

- PUT takes ``{"policy": {...}}``. Creating answers 201; an existing policy can only be
  updated with ``?if_seq_no=&if_primary_term=`` of its current version, otherwise HTTP
  409 ``version_conflict_engine_exception``. ``default_state`` must name a state and
  every transition's ``state_name`` must exist (HTTP 400 ``illegal_argument_exception``).
  The answer is ``{"_id", "_version", "_primary_term", "_seq_no", "policy": {"policy":
  {...}}}``.
- GET answers ``{"_id", "_version", "_seq_no", "_primary_term", "policy": {...}}``; the
  stored policy has ``policy_id``, ``last_updated_time``, ``schema_version``,
  ``error_notification`` (null unless given), each action a ``retry`` block (``count``
  3, ``backoff`` ``exponential``, ``delay`` ``1m`` unless given: ISM's ActionRetry
  defaults), each ``ism_template`` a ``last_updated_time``, each state ``transitions``
  (empty when not given). A missing policy is HTTP 404 ``{"error": "Policy not found"}``
  as ISM answers it.
"""

from __future__ import annotations

import copy
import http.client
import json
import re
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ILM_PHASE_ACTIONS = {
    "hot": {
        "set_priority",
        "unfollow",
        "rollover",
        "readonly",
        "downsample",
        "shrink",
        "forcemerge",
        "searchable_snapshot",
    },
    "warm": {"set_priority", "unfollow", "readonly", "downsample", "allocate", "migrate", "shrink", "forcemerge"},
    "cold": {
        "set_priority",
        "unfollow",
        "readonly",
        "downsample",
        "searchable_snapshot",
        "allocate",
        "migrate",
        "freeze",
    },
    "frozen": {"unfollow", "searchable_snapshot"},
    "delete": {"wait_for_snapshot", "delete"},
}
ISM_RETRY = {"count": 3, "backoff": "exponential", "delay": "1m"}


def _error(kind: str, reason: str, status: int) -> tuple[int, dict]:
    cause = {"type": kind, "reason": reason}
    return status, {"error": {"root_cause": [cause], **cause}, "status": status}


class LifecycleDouble:
    """``with LifecycleDouble(upstream_url, "ilm"|"ism") as double: double.url``"""

    def __init__(self, upstream: str, api: str):
        if api not in ("ilm", "ism"):
            raise ValueError(api)
        self.api = api
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.policies: dict[str, dict] = {}
        self.seq_no = 0
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LifecycleDouble:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- ILM -----------------------------------------------------------------------

    def ilm(self, method: str, name: str, body: dict | None) -> tuple[int, dict]:
        if method == "GET":
            if name not in self.policies:
                return _error("resource_not_found_exception", f"Lifecycle policy not found: {name}", 404)
            return 200, {name: copy.deepcopy(self.policies[name])}
        if method == "DELETE":
            if self.policies.pop(name, None) is None:
                return _error("resource_not_found_exception", f"Lifecycle policy not found: {name}", 404)
            return 200, {"acknowledged": True}
        if method != "PUT":
            return 405, {"error": f"Incorrect HTTP method for uri [/_ilm/policy/{name}] and method [{method}]"}
        if not isinstance(body, dict) or not isinstance(body.get("policy"), dict):
            return _error("x_content_parse_exception", "[put_lifecycle_request] policy is required", 400)
        policy = copy.deepcopy(body["policy"])
        for key in policy:
            if key not in ("phases", "_meta", "deprecated"):
                return _error("x_content_parse_exception", f"[lifecycle_policy] unknown field [{key}]", 400)
        phases = policy.get("phases") or {}
        for phase, content in phases.items():
            if phase not in ILM_PHASE_ACTIONS:
                return _error(
                    "illegal_argument_exception",
                    f"Timeseries lifecycle does not support phase [{phase}]",
                    400,
                )
            for action in (content or {}).get("actions", {}):
                if action not in ILM_PHASE_ACTIONS[phase]:
                    return _error(
                        "illegal_argument_exception",
                        f"invalid action [{action}] defined in phase [{phase}]",
                        400,
                    )
            content.setdefault("min_age", "0ms")
            content.setdefault("actions", {})
            if "delete" in content["actions"]:
                content["actions"]["delete"] = content["actions"]["delete"] or {}
                content["actions"]["delete"].setdefault("delete_searchable_snapshot", True)
        policy["phases"] = phases
        old = self.policies.get(name)
        self.policies[name] = {
            "version": (old["version"] + 1) if old else 1,
            "modified_date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "policy": policy,
            "in_use_by": {"indices": [], "data_streams": [], "composable_templates": []},
        }
        return 200, {"acknowledged": True}

    # -- ISM -----------------------------------------------------------------------

    def ism(self, method: str, name: str, body: dict | None, query: dict) -> tuple[int, dict]:
        stored = self.policies.get(name)
        if method == "GET":
            if stored is None:
                return 404, {"error": "Policy not found"}
            return 200, copy.deepcopy(stored)
        if method == "DELETE":
            if self.policies.pop(name, None) is None:
                return 404, {"_index": ".opendistro-ism-config", "_id": name, "result": "not_found"}
            return 200, {"_index": ".opendistro-ism-config", "_id": name, "result": "deleted"}
        if method != "PUT":
            return 405, {
                "error": f"Incorrect HTTP method for uri [/_plugins/_ism/policies/{name}] and method [{method}]"
            }
        if not isinstance(body, dict) or not isinstance(body.get("policy"), dict):
            return _error("illegal_argument_exception", "Required [policy] is missing", 400)
        seq, term = query.get("if_seq_no"), query.get("if_primary_term")
        if stored is not None:
            if seq is None or term is None:
                return _error(
                    "version_conflict_engine_exception",
                    f"[{name}]: version conflict, document already exists (current version [{stored['_version']}])",
                    409,
                )
            if int(seq) != stored["_seq_no"] or int(term) != stored["_primary_term"]:
                return _error(
                    "version_conflict_engine_exception",
                    f"[{name}]: version conflict, required seqNo [{seq}], primary term [{term}]. current document "
                    f"has seqNo [{stored['_seq_no']}] and primary term [{stored['_primary_term']}]",
                    409,
                )
        policy = copy.deepcopy(body["policy"])
        states = policy.get("states")
        if not isinstance(states, list) or not states:
            return _error("illegal_argument_exception", "Policy must have at least one state", 400)
        names = [s.get("name") for s in states]
        if policy.get("default_state") not in names:
            return _error(
                "illegal_argument_exception",
                f"Policy default state [{policy.get('default_state')}] does not exist",
                400,
            )
        now = int(time.time() * 1000)
        for state in states:
            state.setdefault("actions", [])
            state.setdefault("transitions", [])
            for action in state["actions"]:
                action.setdefault("retry", dict(ISM_RETRY))
            for transition in state["transitions"]:
                if transition.get("state_name") not in names:
                    return _error(
                        "illegal_argument_exception",
                        f"Policy state [{state.get('name')}] transitions to state "
                        f"[{transition.get('state_name')}] which does not exist",
                        400,
                    )
        templates = policy.get("ism_template")
        if isinstance(templates, dict):
            templates = [templates]
        for template in templates or []:
            template["last_updated_time"] = now
        stored_policy = {
            "policy_id": name,
            "description": policy.get("description"),
            "last_updated_time": now,
            "schema_version": 21,
            "error_notification": policy.get("error_notification"),
            "default_state": policy["default_state"],
            "states": states,
            "ism_template": templates,
        }
        self.seq_no += 1
        version = stored["_version"] + 1 if stored else 1
        self.policies[name] = {
            "_id": name,
            "_version": version,
            "_seq_no": self.seq_no,
            "_primary_term": 1,
            "policy": stored_policy,
        }
        answer = {"_id": name, "_version": version, "_primary_term": 1, "_seq_no": self.seq_no}
        return (200 if stored else 201), {**answer, "policy": {"policy": copy.deepcopy(stored_policy)}}

    # -- HTTP ----------------------------------------------------------------------

    def _handler(self):
        double = self
        own = re.compile(r"^/_ilm/policy/([^/]+)$" if self.api == "ilm" else r"^/_plugins/_ism/policies/([^/]+)$")

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self):
                raw = self._body()
                parts = urlsplit(self.path)
                match = own.match(parts.path)
                with double.lock:
                    double.requests.append((self.command, self.path))
                if not match:
                    return self._forward(raw)
                try:
                    body = json.loads(raw) if raw.strip() else None
                except ValueError as exc:
                    status, answer = _error("x_content_parse_exception", f"not JSON: {exc}", 400)
                else:
                    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                    with double.lock:
                        if double.api == "ilm":
                            status, answer = double.ilm(self.command, match.group(1), body)
                        else:
                            status, answer = double.ism(self.command, match.group(1), body, query)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if double.api == "ilm":
                    self.send_header("X-elastic-product", "Elasticsearch")
                self.end_headers()
                self.wfile.write(data)

            def _forward(self, raw: bytes):
                conn = http.client.HTTPConnection(*double.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                try:
                    conn.request(self.command, self.path, body=raw or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = _handle

        return Handler
