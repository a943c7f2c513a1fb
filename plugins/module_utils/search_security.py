# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Users, roles and role mappings on both engines, in one engine-neutral form.

Elasticsearch keeps them in its native realm (``_security/user|role|role_mapping``),
OpenSearch in its security plugin (``_plugins/_security/api/internalusers|roles|
rolesmapping``). The modules describe a principal once; ``SecurityApi`` reads the stored
object into the same neutral form (so that the two compare), and writes the neutral form
in the engine's own shape. Privilege names are the engine's own (``create_doc`` on
Elasticsearch, action groups or ``indices:data/write/index`` on OpenSearch).

Passwords never appear in a stored object, a result or a diff: whether a password
differs is learnt by authenticating as the user with it (``_security/_authenticate``,
``_plugins/_security/authinfo``), which needs no privilege. Importable without Ansible.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

from ansible_collections.wlcg.soc.plugins.module_utils.reconcile import reconcile
from ansible_collections.wlcg.soc.plugins.module_utils.search_client import (
    SearchClient,
    SearchError,
    client_from_params,
    path_part,
)

# What one engine keeps and the other has not: a module option of this kind given for
# the other engine fails early, naming the option.
ENGINE_ONLY = {
    "user": {"elasticsearch": ("email", "enabled"), "opensearch": ("backend_roles",)},
    "role": {"elasticsearch": ("run_as", "metadata"), "opensearch": ("tenants",)},
    "role_mapping": {"elasticsearch": ("rules", "metadata", "enabled"), "opensearch": ("mapped_hosts",)},
}
MASK = "********"


def engine_options_check(kind: str, engine: str, params: dict) -> None:
    """SearchError naming the options given that the engine has no place for."""
    other = "opensearch" if engine == "elasticsearch" else "elasticsearch"
    given = [o for o in ENGINE_ONLY[kind][other] if params.get(o) not in (None, [], {})]
    if given:
        raise SearchError(f"{', '.join(given)}: {other} only; the cluster runs {engine}")


def check_metadata(metadata: Any) -> None:
    """SearchError for metadata keys that Elasticsearch keeps for itself."""
    reserved = [k for k in (metadata or {}) if str(k).startswith("_")]
    if reserved:
        raise SearchError(f"metadata: keys starting with _ are Elasticsearch's own: {', '.join(reserved)}")


def connect(module: Any, result: dict) -> SecurityApi:
    """The security API of the module's cluster; the engine and version go into ``result``."""
    client = client_from_params(module.params)
    info = client.connect()
    result.update(engine=info["engine"], engine_version=info["version"])
    return SecurityApi(client)


def reconcile_object(
    module: Any,
    result: dict,
    api: SecurityApi,
    kind: str,
    name: str,
    desired: dict | None,
    neutral: Callable[[dict], dict],
    body: Callable[[dict], dict],
) -> dict | None:
    """The present/absent flow of a role or a role mapping (``kind``), compared in the
    neutral form; a built-in one is refused before anything is planned. The object after."""
    stored = api.read(kind, name)
    if api.reserved(stored) and (module.params["state"] == "absent" or neutral(stored) != desired):
        raise SearchError("is built in and cannot be changed or deleted")
    label = kind.replace("_", " ")
    _before, after = reconcile(
        module,
        result,
        header=f"{label} {name}",
        warning=f"the server stores {label} {name} differently from the task, so the next run will report "
        "a change again (see the diff)",
        desired=desired,
        read=lambda: api.read(kind, name),
        stored=stored,
        compare=lambda want, stored: (neutral(stored), want),
        write=lambda _stored: api.write(kind, name, body(desired)),
        delete=lambda _stored: api.delete(kind, name),
    )
    return after


def _json_value(value: Any) -> Any:
    """A query given or stored as JSON text, as the object it is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _query_text(query: Any) -> str:
    """A document-level security query as both engines store it: JSON text."""
    return query if isinstance(query, str) else json.dumps(query)


def _public_metadata(metadata: Any) -> dict:
    """Metadata without the keys the engine reserves for itself (``_reserved``...)."""
    return {k: v for k, v in (metadata or {}).items() if not str(k).startswith("_")}


def login_works(params: dict, engine: str, name: str, password: str) -> bool:
    """Whether ``name`` can authenticate with ``password`` on the cluster of ``params``."""
    client = client_from_params(dict(params, username=name, password=password, api_key=None, engine=engine))
    path = "_security/_authenticate" if engine == "elasticsearch" else "_plugins/_security/authinfo"
    status, data, _headers = client.raw("GET", path)
    if status == 200:
        return True
    if status == 401:
        return False
    client.fail("GET", path, status, data)
    return False


class SecurityApi:
    """The security API of a connected client (``client.engine`` is known)."""

    def __init__(self, client: SearchClient):
        if client.engine not in ("elasticsearch", "opensearch"):
            raise SearchError("the engine must be known (connect first)")
        self.client = client
        self.engine = client.engine

    @property
    def es(self) -> bool:
        return self.engine == "elasticsearch"

    def _path(self, kind: str, name: str) -> str:
        es = {"user": "_security/user", "role": "_security/role", "role_mapping": "_security/role_mapping"}
        opensearch = {
            "user": "_plugins/_security/api/internalusers",
            "role": "_plugins/_security/api/roles",
            "role_mapping": "_plugins/_security/api/rolesmapping",
        }
        return f"{(es if self.es else opensearch)[kind]}/{path_part(name)}"

    def read(self, kind: str, name: str) -> dict | None:
        """The stored object as the engine returns it, or None."""
        data = self.client.request("GET", self._path(kind, name), missing_ok=True)
        if not data:  # Elasticsearch answers a missing object with 404 {} (or 200 {})
            return None
        return data.get(name)

    def write(self, kind: str, name: str, body: dict) -> None:
        self.client.request("PUT", self._path(kind, name), body=body)

    def delete(self, kind: str, name: str) -> None:
        self.client.request("DELETE", self._path(kind, name))

    # -- read-only objects ------------------------------------------------------------

    def reserved(self, stored: dict | None) -> bool:
        """Built in, and not to be changed through the API: Elasticsearch's ``_reserved``
        objects; OpenSearch's static (from the plugin itself) and hidden ones. OpenSearch's
        reserved objects take changes made with the admin certificate, so the server decides."""
        if not stored:
            return False
        if self.es:
            return bool((stored.get("metadata") or {}).get("_reserved"))
        return bool(stored.get("static") or stored.get("hidden"))

    # -- users ------------------------------------------------------------------------

    def user_neutral(self, stored: dict) -> dict:
        if self.es:
            return {
                "roles": list(stored.get("roles") or []),
                "full_name": stored.get("full_name"),
                "email": stored.get("email"),
                "metadata": _public_metadata(stored.get("metadata")),
                "enabled": stored.get("enabled", True),
            }
        return {
            "roles": list(stored.get("opendistro_security_roles") or []),
            "backend_roles": list(stored.get("backend_roles") or []),
            "full_name": stored.get("description"),
            "metadata": dict(stored.get("attributes") or {}),
        }

    def user_body(self, neutral: dict, password: str | None) -> dict:
        if self.es:
            body = {k: neutral[k] for k in ("roles", "full_name", "email", "metadata", "enabled")}
        else:
            body = {
                "opendistro_security_roles": neutral["roles"],
                "backend_roles": neutral["backend_roles"],
                "attributes": neutral["metadata"],
            }
            if neutral.get("full_name") is not None:
                body["description"] = neutral["full_name"]
        if password is not None:
            body["password"] = password
        return {k: v for k, v in body.items() if v is not None}

    def set_password(self, name: str, password: str) -> None:
        """Elasticsearch's own call for a password alone (the only change a reserved user takes)."""
        self.client.request("PUT", f"{self._path('user', name)}/_password", body={"password": password})

    def set_enabled(self, name: str, enabled: bool) -> None:
        self.client.request("PUT", f"{self._path('user', name)}/{'_enable' if enabled else '_disable'}")

    # -- roles ------------------------------------------------------------------------

    def role_neutral(self, stored: dict) -> dict:
        if self.es:
            indices = []
            for entry in stored.get("indices") or []:
                item = {"names": list(entry.get("names") or []), "privileges": list(entry.get("privileges") or [])}
                grant, exclude = _field_security(entry.get("field_security"))
                if (grant, exclude) != (["*"], []):
                    item["field_security"] = {"grant": grant, "except": exclude}
                if entry.get("query") not in (None, ""):
                    item["query"] = _json_value(entry["query"])
                if entry.get("allow_restricted_indices"):
                    item["allow_restricted_indices"] = True
                indices.append(item)
            return {
                "cluster": list(stored.get("cluster") or []),
                "indices": indices,
                "run_as": list(stored.get("run_as") or []),
                "description": stored.get("description") or None,
                "metadata": _public_metadata(stored.get("metadata")),
            }
        indices = []
        for entry in stored.get("index_permissions") or []:
            item = {
                "names": list(entry.get("index_patterns") or []),
                "privileges": list(entry.get("allowed_actions") or []),
            }
            fls = list(entry.get("fls") or [])
            if fls:
                excluded = [f[1:] for f in fls if f.startswith("~")]
                item["field_security"] = (
                    {"grant": ["*"], "except": excluded} if excluded else {"grant": fls, "except": []}
                )
            if entry.get("dls") not in (None, ""):
                item["query"] = _json_value(entry["dls"])
            if entry.get("masked_fields"):
                item["masked_fields"] = list(entry["masked_fields"])
            indices.append(item)
        tenants = [
            {"patterns": list(t.get("tenant_patterns") or []), "privileges": list(t.get("allowed_actions") or [])}
            for t in stored.get("tenant_permissions") or []
        ]
        return {
            "cluster": list(stored.get("cluster_permissions") or []),
            "indices": indices,
            "tenants": tenants,
            "description": stored.get("description") or None,
        }

    def role_body(self, neutral: dict) -> dict:
        if self.es:
            indices = []
            for item in neutral["indices"]:
                entry = {"names": item["names"], "privileges": item["privileges"]}
                if "field_security" in item:
                    entry["field_security"] = item["field_security"]
                if "query" in item:
                    entry["query"] = _query_text(item["query"])
                if item.get("allow_restricted_indices"):
                    entry["allow_restricted_indices"] = True
                indices.append(entry)
            body = {
                "cluster": neutral["cluster"],
                "indices": indices,
                "run_as": neutral["run_as"],
                "metadata": neutral["metadata"],
            }
        else:
            permissions = []
            for item in neutral["indices"]:
                entry = {"index_patterns": item["names"], "allowed_actions": item["privileges"]}
                fields = item.get("field_security")
                if fields:
                    entry["fls"] = [f"~{f}" for f in fields["except"]] if fields["except"] else fields["grant"]
                if "query" in item:
                    entry["dls"] = _query_text(item["query"])
                if item.get("masked_fields"):
                    entry["masked_fields"] = item["masked_fields"]
                permissions.append(entry)
            body = {
                "cluster_permissions": neutral["cluster"],
                "index_permissions": permissions,
                "tenant_permissions": [
                    {"tenant_patterns": t["patterns"], "allowed_actions": t["privileges"]} for t in neutral["tenants"]
                ],
            }
        if neutral.get("description"):
            body["description"] = neutral["description"]
        return body

    def role_desired(self, params: dict) -> dict:
        """The neutral role from the module's options; SearchError for what the engine cannot hold."""
        indices = []
        for number, entry in enumerate(params.get("indices") or [], 1):
            item = {"names": list(entry["names"]), "privileges": list(entry["privileges"])}
            grant = entry.get("fields")
            exclude = entry.get("except_fields") or []
            if grant is not None or exclude:
                grant = list(grant) if grant is not None else ["*"]
                if not self.es and exclude and grant != ["*"]:
                    raise SearchError(
                        f"indices[{number}]: OpenSearch's field-level security either grants fields or "
                        "excludes them; give fields or except_fields, not both"
                    )
                if (grant, exclude) != (["*"], []):
                    item["field_security"] = {"grant": grant, "except": list(exclude)}
            if entry.get("query") not in (None, ""):
                item["query"] = _json_value(entry["query"])
            if entry.get("allow_restricted_indices"):
                if not self.es:
                    raise SearchError(f"indices[{number}].allow_restricted_indices: elasticsearch only")
                item["allow_restricted_indices"] = True
            if entry.get("masked_fields"):
                if self.es:
                    raise SearchError(f"indices[{number}].masked_fields: opensearch only")
                item["masked_fields"] = list(entry["masked_fields"])
            indices.append(item)
        neutral = {
            "cluster": list(params.get("cluster") or []),
            "indices": indices,
            "description": params.get("description") or None,
        }
        if self.es:
            neutral.update(run_as=list(params.get("run_as") or []), metadata=dict(params.get("metadata") or {}))
        else:
            neutral["tenants"] = [
                {"patterns": list(t["patterns"]), "privileges": list(t["privileges"])}
                for t in params.get("tenants") or []
            ]
        return neutral

    # -- role mappings ----------------------------------------------------------------

    def mapping_neutral(self, stored: dict) -> dict:
        if self.es:
            return {
                "roles": list(stored.get("roles") or []),
                "rules": copy.deepcopy(stored.get("rules") or {}),
                "enabled": stored.get("enabled", True),
                "metadata": _public_metadata(stored.get("metadata")),
            }
        return {
            "users": list(stored.get("users") or []),
            "backend_roles": list(stored.get("backend_roles") or []),
            "hosts": list(stored.get("hosts") or []),
        }

    def mapping_desired(self, params: dict) -> dict:
        users, groups = list(params.get("users") or []), list(params.get("backend_roles") or [])
        if not self.es:
            return {"users": users, "backend_roles": groups, "hosts": list(params.get("mapped_hosts") or [])}
        rules = params.get("rules")
        if rules is None:
            # Users by name, groups (LDAP, PKI, SAML) by the realm's group names.
            fields = [{"field": {"username": users}}] if users else []
            fields += [{"field": {"groups": groups}}] if groups else []
            if not fields:
                raise SearchError("give users, backend_roles or rules: a mapping without a rule maps nobody")
            rules = fields[0] if len(fields) == 1 else {"any": fields}
        elif users or groups:
            raise SearchError("rules replaces users and backend_roles on Elasticsearch; give one or the other")
        return {
            "roles": [params["role"]],
            "rules": copy.deepcopy(rules),
            "enabled": params.get("enabled", True) is not False,
            "metadata": dict(params.get("metadata") or {}),
        }


def _field_security(value: Any) -> tuple[list, list]:
    """(grant, except) of an Elasticsearch ``field_security``; all fields when none."""
    if not isinstance(value, dict):
        return ["*"], []
    return list(value.get("grant") or ["*"]), list(value.get("except") or [])
