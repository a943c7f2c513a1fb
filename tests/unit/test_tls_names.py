"""TLS verification failures of the HTTP clients (the transport under the search and
Kibana clients, and the MISP client) say what is wrong: a certificate from a trusted CA
issued for other names than the host, or a certificate from an unknown CA."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

pytestmark = pytest.mark.usefixtures("collections_path")


def issue(subject: str, names: list[x509.GeneralName] | None, issuer=None):
    """A certificate and its key: a CA when ``issuer`` is None, else signed by ``issuer``
    (a (certificate, key) pair) for the subject alternative ``names``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def write(tmp_path, stem: str, cert, key=None) -> tuple[str, str]:
    cert_path, key_path = tmp_path / f"{stem}.pem", tmp_path / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return str(cert_path), str(key_path)


@pytest.fixture
def pki(tmp_path):
    """The trusted test CA's bundle, and server certificates: one from that CA for another
    name only, one from that CA for 127.0.0.1 and localhost, one from an unknown CA."""
    ca = issue("wlcg.soc test CA", None)
    unknown = issue("unknown CA", None)
    here = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    return {
        "ca": write(tmp_path, "ca", ca[0])[0],
        "elsewhere": write(tmp_path, "elsewhere", *issue("es.example.org", [x509.DNSName("es.example.org")], ca)),
        "here": write(tmp_path, "here", *issue("localhost", here, ca)),
        "unknown": write(tmp_path, "unknown", *issue("localhost", here, unknown)),
    }


@pytest.fixture
def https(pki):
    """Start an HTTPS server on 127.0.0.1 with one of the ``pki`` certificates; its port."""
    servers = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            data = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def start(which: str) -> int:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(*pki[which])
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def transport_error(url: str, ca: str) -> str:
    from ansible_collections.wlcg.soc.plugins.module_utils.transport import Transport, TransportError

    with pytest.raises(TransportError) as caught:
        Transport([url], ca_path=ca, retries=0, timeout=5).request("GET", "/")
    return str(caught.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["by-ip", "by-name"])
def test_transport_says_the_names_do_not_match(pki, https, host):
    from ansible_collections.wlcg.soc.plugins.module_utils.transport import Transport

    port = https("elsewhere")
    message = transport_error(f"https://{host}:{port}", pki["ca"])
    assert message.startswith(f"https://{host}:{port}: the TLS certificate's names do not match the host {host} (")
    assert "ca_path" not in message
    # The same CA, a certificate for this host: verified.
    port = https("here")
    assert Transport([f"https://{host}:{port}"], ca_path=pki["ca"], retries=0).request("GET", "/").status == 200


def test_transport_unknown_ca_keeps_the_ca_path_advice(pki, https):
    port = https("unknown")
    message = transport_error(f"https://127.0.0.1:{port}", pki["ca"])
    assert "TLS certificate verification failed" in message and "set ca_path to the CA bundle" in message
    assert "do not match" not in message


def misp_error(url: str, ca: str) -> str:
    from ansible_collections.wlcg.soc.plugins.module_utils import misp

    with pytest.raises(misp.MispError) as caught:
        misp.connect(url, "k" * 40, ca_path=ca, timeout=5)
    return str(caught.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["by-ip", "by-name"])
def test_misp_says_the_names_do_not_match(pki, https, host):
    url = f"https://{host}:{https('elsewhere')}"
    message = misp_error(url, pki["ca"])
    assert message.startswith(f"MISP at {url}: the TLS certificate's names do not match the host {host} (")
    assert "ca_path" not in message and "k" * 40 not in message


def test_misp_unknown_ca_keeps_the_ca_path_advice(pki, https):
    url = f"https://127.0.0.1:{https('unknown')}"
    message = misp_error(url, pki["ca"])
    assert "TLS certificate verification failed" in message and "set ca_path to the CA bundle" in message
    assert "do not match" not in message


def test_misp_trusts_the_system_store_by_default(pki, https, monkeypatch):
    """Without ca_path the MISP client verifies with OpenSSL's default CA file (the system
    trust store, where the common role puts the site CA), not with certifi's bundle."""
    from ansible_collections.wlcg.soc.plugins.module_utils import misp

    url = f"https://localhost:{https('here')}"
    # OpenSSL reads its default CA file from SSL_CERT_FILE: the test CA stands for the system store.
    monkeypatch.setenv("SSL_CERT_FILE", pki["ca"])
    assert misp.system_trust_store() == pki["ca"]
    with pytest.raises(misp.MispError) as caught:
        misp.connect(url, "k" * 40, timeout=5)
    # Past TLS: the server's answer is not MISP's.
    assert "TLS" not in str(caught.value), caught.value
    monkeypatch.setenv("SSL_CERT_FILE", pki["here"][0])
    assert "TLS certificate verification failed" in misp_error(url, None)
