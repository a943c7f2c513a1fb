"""The engine-neutral forms of module_utils/search_security.py: what each engine's stored
object reads as, and that the body written reads back as the form it came from."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("collections_path")


class Client:
    def __init__(self, engine: str):
        self.engine = engine


@pytest.fixture
def security():
    from ansible_collections.wlcg.soc.plugins.module_utils import search_security

    return search_security


def api(security, engine: str):
    return security.SecurityApi(Client(engine))


# As the security plugin stores a role (GET _plugins/_security/api/roles/<name>, 2.19.4).
OPENSEARCH_ROLE = {
    "reserved": False,
    "hidden": False,
    "cluster_permissions": ["cluster_monitor"],
    "index_permissions": [
        {
            "index_patterns": ["zeek-*"],
            "dls": '{"term": {"site": "cern"}}',
            "fls": ["~smtp.body"],
            "masked_fields": [],
            "allowed_actions": ["read"],
        }
    ],
    "tenant_permissions": [],
    "static": False,
}
# As Elasticsearch documents a stored role (GET _security/role/<name>).
ELASTICSEARCH_ROLE = {
    "cluster": ["monitor"],
    "indices": [
        {
            "names": ["zeek-*"],
            "privileges": ["read"],
            "field_security": {"grant": ["*"], "except": ["smtp.body"]},
            "query": '{"term": {"site": "cern"}}',
            "allow_restricted_indices": False,
        }
    ],
    "applications": [],
    "run_as": [],
    "metadata": {},
    "transient_metadata": {"enabled": True},
}
OPTIONS = {
    "cluster": None,
    "indices": [
        {
            "names": ["zeek-*"],
            "privileges": ["read"],
            "except_fields": ["smtp.body"],
            "query": {"term": {"site": "cern"}},
        }
    ],
}


@pytest.mark.parametrize(
    ("engine", "stored", "cluster"),
    [("opensearch", OPENSEARCH_ROLE, "cluster_monitor"), ("elasticsearch", ELASTICSEARCH_ROLE, "monitor")],
)
def test_a_stored_role_reads_as_the_options_that_made_it(security, engine, stored, cluster):
    sec = api(security, engine)
    desired = sec.role_desired(dict(OPTIONS, cluster=[cluster]))
    assert sec.role_neutral(stored) == desired
    # What the module writes reads back as the same form.
    assert sec.role_neutral(sec.role_body(desired)) == desired


def test_field_security_in_each_engine(security):
    opensearch, elastic = api(security, "opensearch"), api(security, "elasticsearch")
    granted = {"indices": [{"names": ["a"], "privileges": ["read"], "fields": ["src", "dst"]}]}
    assert opensearch.role_body(opensearch.role_desired(granted))["index_permissions"][0]["fls"] == ["src", "dst"]
    body = elastic.role_body(elastic.role_desired(granted))
    assert body["indices"][0]["field_security"] == {"grant": ["src", "dst"], "except": []}
    # All fields granted is no field security at all.
    everything = {"indices": [{"names": ["a"], "privileges": ["read"], "fields": ["*"]}]}
    assert "field_security" not in elastic.role_desired(everything)["indices"][0]
    both = {"indices": [{"names": ["a"], "privileges": ["read"], "fields": ["x"], "except_fields": ["y"]}]}
    with pytest.raises(security.SearchError, match="either grants fields or excludes them"):
        opensearch.role_desired(both)
    assert elastic.role_desired(both)["indices"][0]["field_security"] == {"grant": ["x"], "except": ["y"]}


def test_users_and_built_in_objects(security):
    elastic, opensearch = api(security, "elasticsearch"), api(security, "opensearch")
    kibana_system = {
        "username": "kibana_system",
        "roles": ["kibana_system"],
        "full_name": None,
        "email": None,
        "metadata": {"_reserved": True},
        "enabled": True,
    }
    assert elastic.reserved(kibana_system)
    assert elastic.user_neutral(kibana_system) == {
        "roles": ["kibana_system"],
        "full_name": None,
        "email": None,
        "metadata": {},  # the engine's own keys are not the user's metadata
        "enabled": True,
    }
    stored = {"hash": "", "reserved": False, "hidden": False, "backend_roles": ["soc"], "attributes": {"site": "x"}}
    assert not opensearch.reserved(stored)
    neutral = opensearch.user_neutral(stored)
    assert neutral == {"roles": [], "backend_roles": ["soc"], "full_name": None, "metadata": {"site": "x"}}
    body = opensearch.user_body(dict(neutral, full_name="Pipelines"), "pw-not-shown")
    assert body == {
        "opendistro_security_roles": [],
        "backend_roles": ["soc"],
        "attributes": {"site": "x"},
        "description": "Pipelines",
        "password": "pw-not-shown",
    }
    assert "password" not in opensearch.user_body(neutral, None)
    assert opensearch.reserved({"static": True}) and opensearch.reserved({"hidden": True})
    # Reserved objects yield to the admin certificate: the server decides.
    assert not opensearch.reserved({"reserved": True, "static": False, "hidden": False})


def test_role_mappings_from_users_and_groups(security):
    elastic, opensearch = api(security, "elasticsearch"), api(security, "opensearch")
    one = elastic.mapping_desired({"role": "r", "users": ["alice"], "backend_roles": []})
    assert one["rules"] == {"field": {"username": ["alice"]}}
    with pytest.raises(security.SearchError, match="maps nobody"):
        elastic.mapping_desired({"role": "r", "users": [], "backend_roles": []})
    assert opensearch.mapping_desired({"role": "r", "users": ["alice"], "mapped_hosts": ["h"]}) == {
        "users": ["alice"],
        "backend_roles": [],
        "hosts": ["h"],
    }
    with pytest.raises(security.SearchError, match="mapped_hosts: opensearch only"):
        security.engine_options_check("role_mapping", "elasticsearch", {"mapped_hosts": ["h"]})
    security.engine_options_check("role_mapping", "elasticsearch", {"mapped_hosts": []})
