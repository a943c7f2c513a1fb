"""The OpenSearch security plugin on a test node, set up as a site sets it up: no demo
certificates, no demo users.

- The plugin ``org.opensearch.plugin:opensearch-security:<version>.0@zip`` comes from
  Maven Central into the engine's cache (``engine.fetch_artifact``); its version is the
  core's with a fourth component, and the core refuses any other.
- A CA, a node certificate (``localhost``/``127.0.0.1``, server and client use) and an
  admin client certificate are made per node; PEM files in the node's conf directory,
  keys PKCS#8, readable by the node's user only.
- Transport and HTTP TLS; ``nodes_dn`` and ``authcz.admin_dn`` name those certificates.
  The plugin writes its security index from ``conf/opensearch-security/*.yml`` on the first
  start (``allow_default_init_securityindex``): a single node needs no ``securityadmin.sh``
  run, which would cost a second JVM start once the node is up.
- ``internal_users.yml`` holds only ``admin`` (``all_access``, which may use the security
  REST API) and ``reader`` (``readall``), each with a random password, hashed with the
  plugin's own ``tools/hash.sh`` (bcrypt).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from search.engine import EngineError, fetch_artifact

if TYPE_CHECKING:
    from search.engine import SearchNode

PLUGIN = ("org.opensearch.plugin", "opensearch-security")
ORGANISATION = "wlcg-soc test"
NODE_DN = f"CN=node-1,O={ORGANISATION}"
ADMIN_DN = f"CN=admin,O={ORGANISATION}"
READER = "reader"


def plugin_zip(version: str) -> Path:
    return fetch_artifact(*PLUGIN, f"{version}.0")


def _name(common_name: str) -> x509.Name:
    # Most specific first in RFC 4514: "CN=...,O=..." is what the plugin compares with.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _leaf_extensions(usages: list[x509.ObjectIdentifier]) -> list[tuple[x509.ExtensionType, bool]]:
    key_usage = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (key_usage, True),
        (x509.ExtendedKeyUsage(usages), False),
    ]


def write_certificates(conf: Path) -> dict[str, Path]:
    """CA, node and admin certificates with their keys, as PEM files in ``conf``."""
    ca_key, node_key, admin_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _key in range(3))
    ca_name = _name("wlcg-soc test CA")
    ca_usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    ca = _certificate(
        ca_name, ca_key, ca_name, ca_key, [(x509.BasicConstraints(ca=True, path_length=0), True), (ca_usage, True)]
    )
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    node_usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    node = _certificate(_name("node-1"), node_key, ca_name, ca_key, [*_leaf_extensions(node_usage), (san, False)])
    admin = _certificate(
        _name("admin"), admin_key, ca_name, ca_key, _leaf_extensions([ExtendedKeyUsageOID.CLIENT_AUTH])
    )
    pkcs8 = {
        "encoding": serialization.Encoding.PEM,
        "format": serialization.PrivateFormat.PKCS8,
        "encryption_algorithm": serialization.NoEncryption(),
    }
    files = {
        "ca.pem": ca.public_bytes(serialization.Encoding.PEM),
        "node.pem": node.public_bytes(serialization.Encoding.PEM),
        "node-key.pem": node_key.private_bytes(**pkcs8),
        "admin.pem": admin.public_bytes(serialization.Encoding.PEM),
        "admin-key.pem": admin_key.private_bytes(**pkcs8),
    }
    paths = {}
    for name, data in files.items():
        path = conf / name
        # Created 0600 so that no key is ever readable by others, not even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        paths[name] = path
    return paths


def settings() -> dict:
    pem = {"pemcert_filepath": "node.pem", "pemkey_filepath": "node-key.pem", "pemtrustedcas_filepath": "ca.pem"}
    found = {f"plugins.security.ssl.transport.{k}": v for k, v in pem.items()}
    found.update({f"plugins.security.ssl.http.{k}": v for k, v in pem.items()})
    found.update(
        {
            "plugins.security.ssl.http.enabled": True,
            # The node certificate names localhost and 127.0.0.1, where the node listens.
            "plugins.security.ssl.transport.enforce_hostname_verification": True,
            "plugins.security.nodes_dn": [NODE_DN],
            "plugins.security.authcz.admin_dn": [ADMIN_DN],
            "plugins.security.allow_default_init_securityindex": True,
            "plugins.security.restapi.roles_enabled": ["all_access"],
        }
    )
    return found


def _hash(home: Path, env: dict, password: str) -> str:
    tool = home / "plugins" / "opensearch-security" / "tools" / "hash.sh"
    # The password goes through the environment, not the command line others can read.
    done = subprocess.run(
        ["bash", str(tool), "-env", "WLCG_SOC_HASH_PASSWORD"],
        env=dict(env, WLCG_SOC_HASH_PASSWORD=password, JAVA_OPTS="-Xms32m -Xmx64m"),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    hashed = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not hashed.startswith("$2"):
        raise EngineError(f"hash.sh failed:\n{done.stdout}{done.stderr}")
    return hashed


def _yaml(kind: str, entries: dict) -> str:
    # JSON is YAML: no YAML writer needed for these small documents.
    return json.dumps({"_meta": {"type": kind, "config_version": 2}, **entries}, indent=2) + "\n"


def write_users(node: SearchNode, home: Path, env: dict, security_conf: Path) -> None:
    """Only our users, replacing the packaged demo users and their role mappings."""
    assert node.password is not None and node.reader_password is not None
    users = {
        node.username: {"hash": _hash(home, env, node.password), "description": "site administrator"},
        READER: {"hash": _hash(home, env, node.reader_password), "description": "read-only user"},
    }
    mapping = {"all_access": {"users": [node.username]}, "readall": {"users": [READER]}}
    (security_conf / "internal_users.yml").write_text(_yaml("internalusers", users))
    (security_conf / "roles_mapping.yml").write_text(_yaml("rolesmapping", mapping))
    # The packaged demo tenant is not ours either.
    (security_conf / "tenants.yml").write_text(_yaml("tenants", {}))


def secure(node: SearchNode, home: Path, env: dict) -> None:
    """Install and configure the plugin in a configured, not yet started node."""
    assert node.workdir is not None
    conf = node.workdir / "conf"
    zip_path = plugin_zip(node.version)
    done = subprocess.run(
        [str(home / "bin" / "opensearch-plugin"), "install", "--batch", zip_path.as_uri()],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        raise EngineError(f"opensearch-plugin install failed:\n{done.stdout}{done.stderr}")
    node.ca_path = str(write_certificates(conf)["ca.pem"])
    with (conf / "opensearch.yml").open("a") as fh:
        fh.writelines(f"{k}: {json.dumps(v)}\n" for k, v in settings().items())
    node.username, node.password = "admin", secrets.token_urlsafe(18)
    node.reader_password = secrets.token_urlsafe(18)
    write_users(node, home, env, conf / "opensearch-security")
    node._chown(conf, home / "plugins")
