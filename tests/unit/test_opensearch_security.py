"""A real OpenSearch node with the security plugin as a site sets it up
(tests/search/opensearch_security.py): TLS with the node's own CA, only our users, and
none of the plugin's demo users or default passwords.
"""

from __future__ import annotations

import base64
import os
import pwd
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import SECURE_OPENSEARCH

# The secure node is shared with the security modules' tests: one xdist worker runs them all.
pytestmark = pytest.mark.xdist_group(SECURE_OPENSEARCH)

DEMO_LOGINS = [
    ("admin", "admin"),
    ("kibanaserver", "kibanaserver"),
    ("logstash", "logstash"),
    ("readall", "readall"),
    ("snapshotrestore", "snapshotrestore"),
]


@pytest.fixture
def node(secure_opensearch):
    return secure_opensearch


def status_of(url: str, context: ssl.SSLContext | None, headers: dict | None = None) -> int:
    req = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:  # noqa: S310
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_health_over_https_verified_against_the_node_ca(node):
    assert node.url.startswith("https://127.0.0.1:")
    status, health = node.call("GET", "_cluster/health")
    assert status == 200 and health["status"] in ("green", "yellow"), health
    # Without TLS, or trusting only the system CAs, there is no answer at all.
    with pytest.raises(OSError):
        status_of(node.url.replace("https://", "http://") + "/_cluster/health", None, node.auth_header())
    with pytest.raises(ssl.SSLCertVerificationError):
        try:
            status_of(f"{node.url}/_cluster/health", ssl.create_default_context(), node.auth_header())
        except urllib.error.URLError as exc:
            raise exc.reason from exc


def test_keys_readable_by_the_node_user_only(node):
    conf = Path(node.ca_path).parent
    owner = os.getuid() if os.geteuid() != 0 else pwd.getpwnam("nobody").pw_uid
    for name in ("ca.pem", "node.pem", "node-key.pem", "admin.pem", "admin-key.pem"):
        info = (conf / name).stat()
        assert info.st_mode & 0o777 == 0o600 and info.st_uid == owner, name
    assert (conf / "node-key.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8


def test_admin_has_all_access_and_the_security_api(node):
    status, info = node.call("GET", "_plugins/_security/authinfo")
    assert status == 200, info
    assert info["user_name"] == "admin" and "all_access" in info["roles"], info
    status, users = node.call("GET", "_plugins/_security/api/internalusers")
    assert status == 200, users
    # Only our own users: the security modules' tests add theirs to this node, never a demo user.
    assert {"admin", "reader"} <= set(users), users
    assert not set(users) & {user for user, _password in DEMO_LOGINS if user != "admin"}, users


def test_reader_reads_but_cannot_create_an_index(node):
    status, answer = node.call("PUT", "soc-security-test/_doc/1?refresh=true", {"event": "seen"})
    assert status == 201, answer
    status, found = node.call("GET", "soc-security-test/_search", user="reader", password=node.reader_password)
    assert status == 200 and found["hits"]["total"]["value"] == 1, found
    status, answer = node.call("PUT", "soc-security-test-2", user="reader", password=node.reader_password)
    assert status == 403, answer


@pytest.mark.parametrize(("user", "password"), DEMO_LOGINS)
def test_demo_users_cannot_log_in(node, user, password):
    status, answer = node.call("GET", "_plugins/_security/authinfo", user=user, password=password)
    assert status == 401, answer


def test_anonymous_is_refused(node):
    context = ssl.create_default_context(cafile=node.ca_path)
    assert status_of(f"{node.url}/_cluster/health", context) == 401
    # A user name with an empty password is no way in either.
    empty = {"Authorization": "Basic " + base64.b64encode(b"admin:").decode()}
    assert status_of(f"{node.url}/_cluster/health", context, empty) == 401


def test_the_secured_node_runs_ingest_pipelines(node):
    """The security plugin and the ingest modules together, as the search tier runs them."""
    doc = {"message": '192.0.2.7 - - [10/Oct/2000:13:55:36 -0700] "GET /index.html HTTP/1.0" 200 2326'}
    pipeline = {"processors": [{"grok": {"field": "message", "patterns": ["%{COMMONAPACHELOG}"]}}]}
    status, result = node.call("POST", "_ingest/pipeline/_simulate", {"pipeline": pipeline, "docs": [{"_source": doc}]})
    assert status == 200, result
    source = result["docs"][0]["doc"]["_source"]
    assert (source["clientip"], source["response"], source["request"]) == ("192.0.2.7", "200", "/index.html")
