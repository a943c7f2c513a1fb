"""The native realm's security APIs in front of a real Elasticsearch 8 node that cannot store them.

Elasticsearch's test distribution lacks the analysis-common module that the ``.security``
index's mapping needs: every write to the native realm (users, roles, role mappings, API
keys) fails with HTTP 400 ``Unknown filter type [pattern_capture] for [email]``. This proxy
keeps those documents itself and passes every other request to the real node, unchanged.

As documented for Elasticsearch 8 (the reference's ``security-api-*`` pages):

- Users (put-user, get-user, delete-user, change-password, enable-user, disable-user): PUT
  answers ``{"created": bool}``; creating takes a password (6 characters at least), an update
  without one keeps it; ``roles`` is required, ``enabled`` defaults to true. GET answers
  ``{name: {username, roles, full_name, email, metadata, enabled}}`` (null names and emails
  when unset), 404 ``{}`` if nothing matches. Built-in users have ``metadata._reserved``;
  only their password and enabled flag change. DELETE answers ``{"found": bool}`` (404 when
  false); ``_password``, ``_enable`` and ``_disable`` answer ``{}``.
- Authenticate: basic credentials of a user whose password was set here are checked here
  (realm ``default_native``, ``reserved`` for built-in users), and so are API keys made here
  (realm ``_es_api_key``, ``roles: []``, ``api_key: {id, name}``). A wrong password, a
  disabled user, an unknown, invalidated or expired key is 401 ``security_exception`` with
  the node's ``WWW-Authenticate`` challenges. Other credentials (the node's file realm) go to
  the node.
- Roles (put-role, get-role, delete-role): PUT answers ``{"role": {"created": bool}}``; GET
  shows a role as stored, with what the get-role example shows filled in:
  ``allow_restricted_indices: false`` on each index entry, ``applications: []``, ``run_as:
  []``, ``metadata: {}``, ``transient_metadata: {"enabled": true}``, and a ``query`` given as
  an object comes back as its JSON text. Built-in roles are the node's: it answers GET for a
  name not kept here, and PUT or DELETE of a name it knows, showing them with
  ``metadata._reserved`` and refusing to change them.
- Role mappings (put-role-mapping, get-role-mapping, delete-role-mapping): ``enabled``,
  ``rules`` and exactly one of ``roles`` and ``role_templates`` are required. PUT answers
  ``{"role_mapping": {"created": bool}}``; GET ``{name: {enabled, roles | role_templates,
  rules, metadata}}``, ``metadata: {}`` unless given, each template as ``{"template": "<its
  JSON>", "format": "string" | "json"}``.
- API keys (create-api-key, get-api-key, update-api-key, invalidate-api-key): create answers
  ``{id, name, expiration?, api_key, encoded}``, ``encoded`` being base64 of ``id:api_key``.
  GET (``id``, ``name`` with wildcards, ``owner``, ``username``, ``realm_name``,
  ``active_only``) answers ``{"api_keys": [{id, name, type: "rest", creation, expiration?,
  invalidated, invalidation?, username, realm, realm_type, metadata, role_descriptors}]}``
  (role descriptors filled in as roles are; ``type`` as Elasticsearch's ApiKey class writes
  it), 404 when an ``id`` matches nothing. Update answers ``{"updated": bool}``, false when
  nothing changes; 404 for a key the caller does not own, 400 for an invalidated or expired
  one. Invalidate answers ``{invalidated_api_keys, previously_invalidated_api_keys,
  error_count}``. A key belongs to its caller: the basic-auth user, or the owner of the API
  key it calls with.

Error types and reasons are Elasticsearch's: read off the 8.19 node where it validates a
request before failing to store it, else from its source (NativeUsersStore, ApiKeyService).
Parse errors leave out the ``[line:col]`` prefix.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import http.client
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

RESERVED_USERS = {
    "elastic": ["superuser"],
    "kibana": ["kibana_system"],
    "kibana_system": ["kibana_system"],
    "logstash_system": ["logstash_system"],
    "beats_system": ["beats_system"],
    "apm_system": ["apm_system"],
    "remote_monitoring_user": ["remote_monitoring_collector", "remote_monitoring_agent"],
}
USER_FIELDS = {"password", "roles", "full_name", "email", "metadata", "enabled"}
ROLE_FIELDS = {"cluster", "indices", "applications", "run_as", "metadata", "description"}
ROLE_ALIASES = {"index", "application", "transient_metadata"}  # the last one taken and dropped, as Elasticsearch does
INDEX_FIELDS = {"names", "privileges", "field_security", "query", "allow_restricted_indices"}
MAPPING_FIELDS = {"enabled", "roles", "role_templates", "rules", "metadata"}
API_KEY_FIELDS = {  # method -> (Elasticsearch's parser, its fields)
    "POST": ("api_key_request", {"name", "role_descriptors", "metadata", "expiration"}),
    "PUT": ("update_api_key_request_payload", {"role_descriptors", "metadata", "expiration"}),
    "DELETE": ("invalidate_api_key", {"id", "ids", "name", "username", "realm_name", "owner"}),
}
TIME_UNITS = {"nanos": 1e-6, "micros": 1e-3, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
CHALLENGES = ['Basic realm="security", charset="UTF-8"', "ApiKey"]
NO_ANONYMOUS = "unable to authenticate with provided credentials and anonymous access is not allowed for this request"
NO_SELECTION = "One of [api key id(s), api key name, username, realm name] must be specified if [owner] flag is false"
FORWARD = object()  # an answer that passes the request to the node as it came
OWN = re.compile(
    r"^/_security/(?:(user|role|role_mapping)(?:/([^/_][^/]*))?(?:/(_password|_enable|_disable))?"
    r"|(_authenticate)|(api_key)(?:/([^/_][^/]*))?)/?$"
)


def _error(kind: str, reason: str, status: int = 400, **extra) -> tuple[int, dict]:
    cause = {"type": kind, "reason": reason, **extra}
    return status, {"error": {"root_cause": [cause], **cause}, "status": status}


def _invalid(kind: str, reason: str) -> tuple[int, dict]:
    return _error(kind, f"Validation Failed: 1: {reason};")


def _unauthenticated(reason: str, **extra) -> tuple[int, dict]:
    return _error("security_exception", reason, 401, **extra, header={"WWW-Authenticate": CHALLENGES})


def _found(store: dict, names: str | None) -> tuple[int, dict]:
    found = {n: copy.deepcopy(store[n]) for n in (names.split(",") if names else store) if n in store}
    return (404 if names and not found else 200), found


def _removed(store: dict, name: str) -> tuple[int, dict]:
    found = store.pop(name, None) is not None
    return (200 if found else 404), {"found": found}


def _json_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _true(value) -> bool:
    return value is True or str(value).lower() == "true"


def _reserved_user(name: str, roles: list[str]) -> dict:
    metadata = {"_reserved": True}
    if name == "kibana":  # kept for older Kibanas
        metadata.update(_deprecated=True, _deprecated_reason="Please use the [kibana_system] user instead.")
    return {"username": name, "roles": roles, "full_name": None, "email": None, "metadata": metadata, "enabled": True}


def _role(name: str, body) -> tuple[int, dict]:
    """(0, the role as Elasticsearch stores it) or an error answer."""
    if not isinstance(body, dict):
        return _error("parse_exception", f"failed to parse role [{name}]. expected an object")
    for key in body:
        if key not in ROLE_FIELDS | ROLE_ALIASES:
            return _error("parse_exception", f"failed to parse role [{name}]. unexpected field [{key}]")
    indices, bad = [], f"failed to parse indices privileges for role [{name}]."
    for entry in body.get("indices", body.get("index")) or []:
        if not isinstance(entry, dict):
            return _error("parse_exception", f"{bad} expected an array of objects")
        for key in entry:
            if key not in INDEX_FIELDS:
                return _error("parse_exception", f"{bad} unexpected field [{key}]")
        for key in ("names", "privileges"):
            if entry.get(key) is None:
                return _error("parse_exception", f"{bad} missing required [{key}] field")
        if entry["names"] == []:
            return _error("parse_exception", f"{bad} [names] cannot be an empty array")
        if not entry["privileges"]:
            return _error("illegal_argument_exception", "indices privileges must define at least one privilege")
        names = [entry["names"]] if isinstance(entry["names"], str) else entry["names"]
        stored = {"names": names, "privileges": entry["privileges"]}
        if "field_security" in entry:
            stored["field_security"] = entry["field_security"]
        if entry.get("query"):
            stored["query"] = _json_text(entry["query"])
        indices.append({**stored, "allow_restricted_indices": entry.get("allow_restricted_indices", False)})
    role = {
        "cluster": body.get("cluster") or [],
        "indices": indices,
        "applications": body.get("applications", body.get("application")) or [],
        "run_as": body.get("run_as") or [],
        "metadata": body.get("metadata") or {},
        "transient_metadata": {"enabled": True},  # not set by requests: Elasticsearch's own note
    }
    return 0, {**role, "description": body["description"]} if body.get("description") else role


def _role_descriptors(value) -> tuple[int, dict]:
    descriptors = {}
    for name, body in (value or {}).items():
        status, descriptors[name] = _role(name, body)
        if status:
            return status, descriptors[name]
    return 0, descriptors


def _expiration(text, now: int) -> tuple[int, int | None]:
    match = re.fullmatch(r"(\d+)(nanos|micros|ms|s|m|h|d)", str(text).strip())
    if text is not None and not match:
        return _error("illegal_argument_exception", f"failed to parse [{text}]")
    return 0, match and now + int(int(match.group(1)) * TIME_UNITS[match.group(2)])


def _credentials(headers) -> tuple[str, str, str] | None:
    """(scheme, user or key id, password or key) of an ``Authorization`` header."""
    scheme, _space, value = (headers.get("Authorization") or "").partition(" ")
    try:
        who, sep, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except ValueError:
        return None
    return (scheme.lower(), who, secret) if sep else None


class SecurityDouble:
    """``with SecurityDouble(upstream_url) as double: double.url``"""

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.users: dict[str, dict] = {name: _reserved_user(name, roles) for name, roles in RESERVED_USERS.items()}
        self.passwords: dict[str, str] = {}  # of the users whose password was set here
        self.roles: dict[str, dict] = {}
        self.role_mappings: dict[str, dict] = {}
        self.api_keys: dict[str, dict] = {}  # id -> what GET shows, and "api_key" and "owner"
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SecurityDouble:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- users and authentication ----------------------------------------------------

    def user_api(self, method: str, name: str | None, action: str | None, body) -> tuple[int, dict]:
        if method == "GET":
            return _found(self.users, name)
        if method == "DELETE":
            if name in RESERVED_USERS:
                return _error("illegal_argument_exception", f"user [{name}] is reserved and cannot be deleted")
            self.passwords.pop(name, None)
            return _removed(self.users, name)
        if action in ("_enable", "_disable"):
            if name not in self.users:
                return _invalid("validation_exception", f"only existing users can be {action[1:]}d")
            self.users[name]["enabled"] = action == "_enable"
            return 200, {}
        body = body or {}
        for key in body:
            if key not in ({"password"} if action else USER_FIELDS):
                what = "change password request" if action else "add user request"
                return _error("parse_exception", f"failed to parse {what}. unexpected field [{key}]")
        password = body.get("password")
        if password is not None and len(password) < 6:
            return _invalid("validation_exception", "passwords must be at least [6] characters long")
        if action:  # _password: the one change built-in users take
            if password is None:
                return _invalid("action_request_validation_exception", "password is missing")
            if name not in self.users:
                return _invalid("validation_exception", "user must exist in order to change password")
            self.passwords[name] = password
            return 200, {}
        if name in RESERVED_USERS:
            reason = f"user [{name}] is reserved and only the password can be changed"
            return _invalid("action_request_validation_exception", reason)
        if not isinstance(body.get("roles"), list):
            return _invalid("action_request_validation_exception", "roles are missing")
        if password is None and name not in self.users:
            reason = "password must be specified unless you are updating an existing user"
            return _invalid("validation_exception", reason)
        created = name not in self.users
        fields = {k: body.get(k) for k in ("roles", "full_name", "email")}
        metadata, enabled = body.get("metadata") or {}, body.get("enabled", True)
        self.users[name] = {"username": name, **fields, "metadata": metadata, "enabled": enabled}
        self.passwords[name] = self.passwords[name] if password is None else password
        return 200, {"created": created}

    def _api_key_problem(self, key_id: str, secret: str) -> str | None:
        key, now = self.api_keys.get(key_id), time.time() * 1000
        if key is None:
            return f"unable to find apikey with id {key_id}"
        if key["invalidated"]:
            return f"api key [{key_id}] has been invalidated"
        if key.get("expiration", now) < now:
            return "api key is expired"
        return None if secret == key["api_key"] else f"invalid credentials for API key [{key_id}]"

    def principal(self, headers) -> dict | None:
        """Who calls (username, realm, realm_type, full_name, email, metadata), None if nobody."""
        scheme, who, secret = _credentials(headers) or (None, None, None)
        if scheme == "apikey":
            return None if self._api_key_problem(who, secret) else copy.deepcopy(self.api_keys[who]["owner"])
        if scheme != "basic":
            return None
        if who in self.passwords and secret != self.passwords[who]:
            return None
        # Other users are the node's (its file realm): their password is taken on trust.
        user = self.users.get(who, {"full_name": None, "email": None, "metadata": {}})
        if who in RESERVED_USERS:
            realm = ("reserved", "reserved")
        else:  # the node's own users are in its file realm
            realm = ("default_native", "native") if who in self.users else ("default_file", "file")
        info = {k: copy.deepcopy(user[k]) for k in ("full_name", "email", "metadata")}
        return {"username": who, "realm": realm[0], "realm_type": realm[1], **info}

    def authenticate(self, headers, path: str):
        scheme, who, secret = _credentials(headers) or (None, None, None)
        if scheme == "apikey":
            problem = self._api_key_problem(who, secret)
            if problem:
                return _unauthenticated(NO_ANONYMOUS, additional_unsuccessful_credentials=f"API key: {problem}")
            key, realm = self.api_keys[who], {"name": "_es_api_key", "type": "_es_api_key"}
            owner = {k: key["owner"][k] for k in ("username", "full_name", "email", "metadata")}
            return 200, {
                **owner,
                "roles": [],
                "enabled": True,
                "authentication_realm": realm,
                "lookup_realm": realm,
                "authentication_type": "api_key",
                "api_key": {"id": key["id"], "name": key["name"]},
            }
        if scheme != "basic" or who not in self.passwords:
            return FORWARD
        if not self.users[who]["enabled"] or secret != self.passwords[who]:
            return _unauthenticated(f"unable to authenticate user [{who}] for REST request [{path}]")
        me = self.principal(headers)
        realm = {"name": me["realm"], "type": me["realm_type"]}
        return 200, {
            **copy.deepcopy(self.users[who]),
            "authentication_realm": realm,
            "lookup_realm": realm,
            "authentication_type": "realm",
        }

    # -- roles and role mappings -------------------------------------------------------

    def role_api(self, method: str, name: str | None, body, headers):
        if method == "GET":
            status, found = _found(self.roles, name)
            missing = [n for n in name.split(",") if n not in self.roles] if name else []
            if missing or not name:  # the built-in roles, from the node
                status, theirs = self._upstream_json("/_security/role/" + ",".join(missing), headers)
                if status not in (200, 404):
                    return FORWARD
                found = {**(theirs if status == 200 else {}), **found}
            return (404 if name and not found else 200), found
        if name not in self.roles and self._upstream_json(f"/_security/role/{name}", headers)[0] == 200:
            return FORWARD  # a built-in role: the node refuses to change it, in its own words
        if method == "DELETE":
            return _removed(self.roles, name)
        status, role = _role(name, {} if body is None else body)
        if status:
            return status, role
        created, self.roles[name] = name not in self.roles, role
        return 200, {"role": {"created": created}}

    def role_mapping_api(self, method: str, name: str | None, body) -> tuple[int, dict]:
        if method == "GET":
            return _found(self.role_mappings, name)
        if method == "DELETE":
            return _removed(self.role_mappings, name)
        body = body or {}
        for key in body:
            if key not in MAPPING_FIELDS:
                return _error("parsing_exception", f"[role-mapping] unknown field [{key}]")
        roles, templates = body.get("roles"), body.get("role_templates")
        for key in ("roles", "enabled", "rules"):
            if body.get(key) is None and (key != "roles" or templates is None):
                return _error("parsing_exception", f"failed to parse role-mapping [{name}]. missing field [{key}]")
        if roles is not None and templates is not None:
            reason = "role-mapping cannot have both roles and role-templates"
            return _invalid("action_request_validation_exception", reason)
        mapping = {"enabled": body["enabled"]}
        if roles:
            mapping["roles"] = roles
        if templates:
            mapping["role_templates"] = [
                {"template": _json_text(t["template"]), "format": t.get("format", "string")} for t in templates
            ]
        mapping.update(rules=body["rules"], metadata=body.get("metadata") or {})
        created, self.role_mappings[name] = name not in self.role_mappings, mapping
        return 200, {"role_mapping": {"created": created}}

    # -- API keys ----------------------------------------------------------------------

    def api_key_api(self, method: str, key_id: str | None, body, query: dict, headers, path: str):
        now, me, body = int(time.time() * 1000), self.principal(headers), body or {}
        where = query if method == "GET" else body
        owned = _true(where.get("owner"))
        if me is None and (owned or method in ("PUT", "POST")):
            return _unauthenticated(f"missing authentication credentials for REST request [{path}]")
        if method == "GET" and query.get("id") and query.get("name"):
            return _invalid(
                "action_request_validation_exception", "only one of [api key id, api key name] can be specified"
            )
        ids = [where["id"]] if where.get("id") else where.get("ids")
        if method == "GET":
            keys = self._select(ids, query, me if owned else None)
            if _true(query.get("active_only")):
                keys = [k for k in keys if not k["invalidated"] and k.get("expiration", now) >= now]
            shown = [{k: copy.deepcopy(v) for k, v in key.items() if k not in ("api_key", "owner")} for key in keys]
            return (404 if ids and not shown else 200), {"api_keys": shown}
        parser, fields = API_KEY_FIELDS["POST" if method == "PUT" and not key_id else method]
        for key in body:
            if key not in fields:
                return _error("x_content_parse_exception", f"[{parser}] unknown field [{key}]")
        if method == "DELETE":
            if not (ids or body.get("name") or body.get("username") or body.get("realm_name") or owned):
                return _invalid("action_request_validation_exception", NO_SELECTION)
            keys = self._select(ids, body, me if owned else None)
            before = [k["id"] for k in keys if k["invalidated"]]
            for key in keys:
                key.update(invalidated=True, invalidation=key.get("invalidation", now))
            done = [k["id"] for k in keys if k["id"] not in before]
            return 200, {"invalidated_api_keys": done, "previously_invalidated_api_keys": before, "error_count": 0}
        status, descriptors = _role_descriptors(body.get("role_descriptors"))
        if status:
            return status, descriptors
        status, expiration = _expiration(body.get("expiration"), now)
        if status:
            return status, expiration
        expires = {"expiration": expiration} if expiration else {}
        if key_id:
            return self._update(key_id, body, me, {"role_descriptors": descriptors, **expires}, now)
        if not body.get("name"):
            return _error("illegal_argument_exception", "Required [name]")
        key_id, secret = secrets.token_urlsafe(15), secrets.token_urlsafe(16)
        self.api_keys[key_id] = {
            "id": key_id,
            "name": body["name"],
            "type": "rest",
            "creation": now,
            **expires,
            "invalidated": False,
            **{k: me[k] for k in ("username", "realm", "realm_type")},
            "metadata": body.get("metadata") or {},
            "role_descriptors": descriptors,
            "api_key": secret,
            "owner": me,
        }
        encoded = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
        return 200, {"id": key_id, "name": body["name"], **expires, "api_key": secret, "encoded": encoded}

    def _update(self, key_id: str, body: dict, me: dict, parsed: dict, now: int) -> tuple[int, dict]:
        key = self.api_keys.get(key_id)
        if key is None or (key["username"], key["realm"]) != (me["username"], me["realm"]):
            reason = f"no API key owned by requesting user found for ID [{key_id}]"
            return _error("resource_not_found_exception", reason, 404)
        if key["invalidated"] or key.get("expiration", now) < now:
            state = "invalidated" if key["invalidated"] else "expired"
            return _error("illegal_argument_exception", f"cannot update {state} API key [{key_id}]")
        changed = copy.deepcopy(key)
        changed.update({k: v for k, v in parsed.items() if k in body})
        if "metadata" in body:  # replaces what was there
            changed["metadata"] = body["metadata"] or {}
        updated, self.api_keys[key_id] = changed != key, changed
        return 200, {"updated": updated}

    def _select(self, ids, where: dict, owner: dict | None) -> list[dict]:
        def wanted(key: dict) -> bool:
            return (
                (not ids or key["id"] in ids)
                and fnmatch.fnmatchcase(key["name"], where.get("name") or "*")
                and key["username"] == where.get("username", key["username"])
                and key["realm"] == where.get("realm_name", key["realm"])
                and (owner is None or (key["username"], key["realm"]) == (owner["username"], owner["realm"]))
            )

        return [key for key in self.api_keys.values() if wanted(key)]

    # -- HTTP --------------------------------------------------------------------------

    def _upstream(self, method: str, path: str, headers, body: bytes | None = None):
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _upstream_json(self, path: str, headers) -> tuple[int, dict]:
        auth = {"Authorization": headers["Authorization"]} if headers.get("Authorization") else {}
        status, _headers, data = self._upstream("GET", path.rstrip("/"), auth)
        return status, json.loads(data) if data.strip() else {}

    def _handler(self):
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                match = OWN.match(parts.path)
                with double.lock:
                    double.requests.append((self.command, self.path))
                answer = self._own(match, raw, parts) if match else FORWARD
                if answer is FORWARD:
                    return self._forward(raw)
                status, body = answer
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-elastic-product", "Elasticsearch")
                for challenge in CHALLENGES if status == 401 else ():
                    self.send_header("WWW-Authenticate", challenge)
                self.end_headers()
                self.wfile.write(data)

            def _own(self, match, raw: bytes, parts):
                api, name, action, auth, keys, key_id = match.groups()
                method = self.command
                if (
                    (auth and method != "GET")
                    or (key_id and method != "PUT")
                    or (action and (api != "user" or method not in ("PUT", "POST")))
                    or (api and not name and method != "GET")
                ):
                    return FORWARD  # not one of the APIs above: the node answers as it does
                try:
                    body = json.loads(raw) if raw.strip() else None
                except ValueError as exc:
                    return _error("x_content_parse_exception", f"not JSON: {exc}")
                if body is not None and not isinstance(body, dict):
                    return _error("x_content_parse_exception", "expected an object as the request body")
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                with double.lock:
                    if auth:
                        return double.authenticate(self.headers, parts.path)
                    if keys:
                        return double.api_key_api(method, key_id, body, query, self.headers, parts.path)
                    if api == "user":
                        return double.user_api(method, name, action, body)
                    if api == "role":
                        return double.role_api(method, name, body, self.headers)
                    return double.role_mapping_api(method, name, body)

            def _forward(self, raw: bytes):
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                status, answer_headers, data = double._upstream(self.command, self.path, headers, raw or None)
                self.send_response(status)
                for key, value in answer_headers:
                    if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = _handle

        return Handler
