"""The HTTP transport under the search and Kibana clients (module_utils/transport.py):
its retry policy, deadline, redirects, size bound, message length, CA check and
redaction, against small HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from search.engine import closed_port_url

pytestmark = pytest.mark.usefixtures("collections_path")


@pytest.fixture
def tr():
    from ansible_collections.wlcg.soc.plugins.module_utils import transport

    return transport


class Server:
    """A local HTTP server; each request is answered by the next step of ``steps`` (a
    callable taking the handler), then by 200 ``{"ok": true}``. ``seen`` records
    (method, path, Authorization header) of every request."""

    def __init__(self, steps=()):
        self.steps = list(steps)
        self.seen = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one_request(self):
                try:
                    super().handle_one_request()
                except OSError:  # the client gave up first
                    self.close_connection = True

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.seen.append((self.command, self.path, self.headers.get("Authorization")))
                step = outer.steps.pop(0) if outer.steps else answer(200, {"ok": True})
                step(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # a stalling handler may still sleep
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def answer(status, body, headers=None):
    def step(handler):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return step


def hang_up(handler):
    """Read the request, then close the connection without an answer."""
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


def trickle(seconds, headers_too=False):
    """Answer one byte every 0.1 s for ``seconds`` (in the headers, or in a body without a length)."""

    def step(handler):
        handler.close_connection = True
        try:
            if not headers_too:
                handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
            else:
                handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            handler.wfile.flush()
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    return step


def stall(seconds):
    def step(handler):
        handler.close_connection = True
        time.sleep(seconds)

    return step


def redirect(status, location):
    return answer(status, {}, {"Location": location})


@pytest.fixture
def serve():
    servers = []

    def make(steps=()):
        server = Server(steps)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def transport(tr, urls, pauses=None, **options):
    options.setdefault("retries", 3)
    options.setdefault("timeout", 5)
    sleep = (pauses if pauses is not None else []).append
    return tr.Transport(urls if isinstance(urls, list) else [urls], sleep=sleep, **options)


# -- retry policy ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retried_statuses(tr, serve, status):
    server = serve([answer(status, {"error": "busy"})] * 2)
    pauses = []
    response = transport(tr, server.url, pauses).request("GET", "/x")
    assert response.status == 200 and response.json() == {"ok": True}
    assert len(server.seen) == 3 and pauses == [1.0, 2.0]


@pytest.mark.parametrize("status", [400, 401, 404, 409, 500])
def test_other_statuses_are_answers(tr, serve, status):
    server = serve([answer(status, {"error": "no"})])
    assert transport(tr, server.url).request("PUT", "/x", body=b"{}").status == status
    assert len(server.seen) == 1


def test_backoff_doubles_up_to_the_cap_then_gives_up_with_the_last_answer(tr, serve):
    server = serve([answer(503, {"error": "still starting"})] * 9)
    pauses = []
    with pytest.raises(tr.Unavailable) as caught:
        transport(tr, server.url, pauses, retries=8).request("GET", "/x")
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert caught.value.attempts == 9 and caught.value.response.status == 503
    assert caught.value.response.json() == {"error": "still starting"}


def test_retry_after_is_honoured_up_to_the_cap(tr, serve):
    in_5s = formatdate(time.time() + 5, usegmt=True)
    server = serve(
        [
            answer(429, {}, {"Retry-After": "3"}),
            answer(503, {}, {"Retry-After": "600"}),
            answer(503, {}, {"Retry-After": in_5s}),
            answer(503, {}, {"Retry-After": "0"}),
        ]
    )
    pauses = []
    assert transport(tr, server.url, pauses, retries=4).request("GET", "/x").status == 200
    assert pauses[0] == 3.0 and pauses[1] == tr.BACKOFF_CAP == 30.0
    assert 4.0 <= pauses[2] <= 5.0  # an HTTP date
    assert pauses[3] == 8.0  # never shorter than the back-off


@pytest.mark.parametrize(("method", "repeated"), [("GET", True), ("PUT", True), ("DELETE", True), ("POST", False)])
def test_only_idempotent_requests_are_repeated_once_sent(tr, serve, method, repeated):
    server = serve([hang_up])
    client = transport(tr, server.url)
    if repeated:
        assert client.request(method, "/x", body=b"{}").status == 200
        assert len(server.seen) == 2
    else:
        with pytest.raises(tr.Unavailable, match="not repeated, as the POST may have been handled"):
            client.request(method, "/x", body=b"{}")
        assert len(server.seen) == 1


def test_a_post_marked_idempotent_is_repeated(tr, serve):
    server = serve([hang_up])
    assert transport(tr, server.url).request("POST", "/_bulk_get", body=b"[]", idempotent=True).status == 200
    assert len(server.seen) == 2


def test_a_post_is_repeated_only_on_answers_that_say_it_was_not_handled(tr, serve):
    server = serve([answer(503, {}), answer(429, {}), answer(502, {"error": "bad gateway"})])
    pauses = []
    response = transport(tr, server.url, pauses).request("POST", "/_import", body=b"x")
    assert response.status == 502 and len(server.seen) == 3 and pauses == [1.0, 2.0]


def test_a_post_is_repeated_when_the_connection_was_refused(tr):
    dead = closed_port_url()
    pauses = []
    with pytest.raises(tr.Unavailable) as caught:
        transport(tr, dead, pauses, retries=2).request("POST", "/x", body=b"{}")
    assert caught.value.attempts == 3 and pauses == [1.0, 2.0]
    assert "Connection refused" in str(caught.value) and caught.value.response is None


def test_next_url_first_then_a_pause(tr, serve):
    server = serve()
    pauses = []
    response = transport(tr, [closed_port_url(), server.url], pauses).request("POST", "/x", body=b"{}")
    assert response.status == 200 and response.base == server.url and pauses == []


# -- deadline -------------------------------------------------------------------------


@pytest.mark.parametrize("step", [trickle(8), trickle(8, headers_too=True), stall(8)], ids=["body", "headers", "stall"])
def test_a_slow_server_is_cut_off_at_the_deadline(tr, serve, step):
    server = serve([step])
    started = time.monotonic()
    with pytest.raises(tr.Unavailable, match=r"no (complete )?answer within 1s"):
        transport(tr, server.url, retries=0, timeout=1).request("GET", "/x")
    assert 0.9 <= time.monotonic() - started < 2.5


def test_the_deadline_holds_for_every_attempt(tr, serve):
    server = serve([trickle(8), trickle(8)])
    started = time.monotonic()
    with pytest.raises(tr.Unavailable) as caught:
        transport(tr, server.url, retries=1, timeout=1).request("GET", "/x")
    assert caught.value.attempts == 2 and 1.8 <= time.monotonic() - started < 4


# -- redirects ------------------------------------------------------------------------


def test_a_redirect_is_followed_on_the_same_origin_only(tr, serve):
    other = serve()
    home = serve(
        [
            redirect(302, "/moved"),  # same origin: followed, with the credentials
            answer(200, {"ok": True}),
            redirect(307, f"{other.url}/elsewhere"),  # another port
            redirect(308, f"http://localhost:{other.port}/by-name"),  # another host name
            redirect(301, f"https://127.0.0.1:{other.port}/tls"),  # another scheme
        ]
    )
    client = transport(tr, home.url, username="soc", password="s3cret-pass")  # noqa: S106 - made up
    assert client.request("GET", "/x").status == 200
    assert home.seen == [("GET", "/x", client.auth), ("GET", "/moved", client.auth)]
    for target in (
        f"{other.url}/elsewhere",
        f"http://localhost:{other.port}/by-name",
        f"https://127.0.0.1:{other.port}/tls",
    ):
        with pytest.raises(tr.TransportError) as caught:
            client.request("GET", "/x")
        assert str(caught.value).startswith(f"{home.url}/x redirects (HTTP 30")
        assert f"to {target}, which differs in scheme, host or port from the configured URLs" in str(caught.value)
    assert other.seen == []


@pytest.mark.parametrize(
    "credentials",
    [{"username": "soc", "password": "s3cret-pass"}, {"api_key": "a2V5LWlkOmtleS1zZWNyZXQ="}],
    ids=["basic", "api_key"],
)
def test_the_clients_send_no_credentials_to_another_origin(serve, credentials):
    """Each client at a server that redirects to another port of 127.0.0.1, which records
    what reaches it."""
    from ansible_collections.wlcg.soc.plugins.module_utils.kibana import KibanaClient, KibanaError
    from ansible_collections.wlcg.soc.plugins.module_utils.search_client import SearchClient, SearchError

    other = serve()
    search = serve([redirect(302, f"{other.url}/")])
    kibana = serve([redirect(302, f"{other.url}/api/status")])
    with pytest.raises(SearchError) as caught:
        SearchClient(hosts=[search.url], retries=0, **credentials).detect()
    assert f"{search.url} redirects (HTTP 302) to {other.url}, which differs" in str(caught.value)
    with pytest.raises(KibanaError) as caught:
        KibanaClient(kibana.url, retries=0, **credentials).request("GET", "/api/status")
    assert f"{kibana.url}/api/status redirects (HTTP 302) to {other.url}/api/status, which" in str(caught.value)
    assert other.seen == []  # neither the request nor its Authorization header got there


# -- answers that are not JSON objects ------------------------------------------------------


def page(body, content_type):
    def step(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return step


@pytest.mark.parametrize(
    ("body", "content_type", "found"),
    [
        (b"<html>\n<body>Welcome to nginx!</body>\n</html>", "text/html", "a body that is not JSON (text/html)"),
        (b'["not", "an", "object"]', "application/json", "JSON that is not an object (an array)"),
        (b"", "application/json", "an empty body"),
    ],
    ids=["html", "array", "empty"],
)
def test_a_200_that_is_not_a_json_object_fails_with_url_status_and_excerpt(serve, body, content_type, found):
    from ansible_collections.wlcg.soc.plugins.module_utils.kibana import KibanaClient, KibanaError
    from ansible_collections.wlcg.soc.plugins.module_utils.search_client import SearchClient, SearchError

    server = serve([page(body, content_type)] * 2)
    excerpt = body.decode().replace("\n", " ")
    expected = f"{server.url}/api/x: GET answered HTTP 200 with {found} where a JSON object was expected"
    with pytest.raises(SearchError) as caught:
        SearchClient(hosts=[server.url], retries=0).request("GET", "api/x", missing_ok=True)
    assert str(caught.value).startswith(expected) and excerpt in str(caught.value)
    assert caught.value.status == 200
    with pytest.raises(KibanaError) as caught:
        KibanaClient(server.url, retries=0).json("GET", "/api/x")
    assert str(caught.value).startswith(f"Kibana at {expected}") and excerpt in str(caught.value)


# -- size, message length, CA, secrets ------------------------------------------------------


def test_answers_larger_than_the_bound_are_refused(tr, serve):
    def unsized(handler):  # no Content-Length: read until the connection closes
        handler.close_connection = True
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 5000)

    server = serve([answer(200, b"x" * 5000), unsized, answer(200, b"x" * 900)])
    client = transport(tr, server.url, max_body=1000)
    with pytest.raises(tr.TransportError, match="is 5000 bytes, more than the 1000 this client reads"):
        client.request("GET", "/x")
    with pytest.raises(tr.TransportError, match="is longer than the 1000 bytes this client reads"):
        client.request("GET", "/x")
    assert len(client.request("GET", "/x").body) == 900
    assert len(server.seen) == 3  # not retried


def test_long_error_bodies_are_cut_in_messages(tr, serve):
    from ansible_collections.wlcg.soc.plugins.module_utils.kibana import KibanaClient, KibanaError
    from ansible_collections.wlcg.soc.plugins.module_utils.search_client import SearchClient, SearchError

    long_reason = "x" * 50_000
    text = tr.shorten(long_reason)
    assert len(text) < 1100 and text.endswith("... (49000 more characters)")
    assert tr.shorten("short") == "short"
    server = serve(
        [
            answer(400, {"error": {"type": "illegal_argument_exception", "reason": long_reason}}),
            answer(400, {"statusCode": 400, "error": "Bad Request", "message": long_reason}),
            answer(400, long_reason.encode()),
        ]
    )
    with pytest.raises(SearchError) as caught:
        SearchClient(hosts=[server.url], retries=0).request("PUT", "x", body={})
    assert "illegal_argument_exception: xxx" in str(caught.value) and len(str(caught.value)) < 1300
    client = KibanaClient(server.url, retries=0)
    for _kind in range(2):
        with pytest.raises(KibanaError) as caught:
            client.request("GET", "/api/x")
        assert "answered HTTP 400: xxx" in str(caught.value) and len(str(caught.value)) < 1300


def test_ca_path_must_be_a_readable_file(tr, tmp_path):
    with pytest.raises(tr.TransportError, match=f"ca_path: {tmp_path}/none.pem is not a file"):
        tr.Transport(["https://127.0.0.1:1"], ca_path=str(tmp_path / "none.pem"))
    with pytest.raises(tr.TransportError, match="is not a file"):
        tr.Transport(["https://127.0.0.1:1"], ca_path=str(tmp_path))
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    client = tr.Transport(["https://127.0.0.1:1"], ca_path=str(empty), retries=0)
    with pytest.raises(tr.TransportError, match=r"ca_path: .*empty\.pem holds no usable CA certificate"):
        client.request("GET", "/")
    if os.geteuid() != 0:  # root reads any file
        empty.chmod(0)
        with pytest.raises(tr.TransportError, match="is not readable"):
            tr.Transport(["https://127.0.0.1:1"], ca_path=str(empty))


def test_verification_is_on_by_default(tr):
    client = tr.Transport(["https://127.0.0.1:1"])
    assert client._context().verify_mode == ssl.CERT_REQUIRED and client._context().check_hostname


def test_secrets_are_redacted_in_every_form(tr, serve):
    password = 'pa"ss/w0rd secret'  # noqa: S105 - a made-up secret
    client = tr.Transport(["http://127.0.0.1:1"], username="soc", password=password)
    token = client.auth.split(" ", 1)[1]
    echoed = json.dumps({"reason": f"bad {password}", "header": client.auth, "url": "p=pa%22ss%2Fw0rd%20secret"})
    text = client.redact(echoed)
    assert "w0rd" not in text and token not in text and text.count(tr.REDACTED) == 3
    assert client.redact_value({"a": [f"x {password}"]}) == {"a": [f"x {tr.REDACTED}"]}
    keyed = tr.Transport(["http://127.0.0.1:1"], api_key="key-id:key-secret")
    assert keyed.identity == "the API key with id 'key-id'"
    assert keyed.redact(f"got {keyed.auth} and key-id:key-secret") == f"got ApiKey {tr.REDACTED} and {tr.REDACTED}"
    bearer = tr.Transport(["http://127.0.0.1:1"], token="t0ken-value")  # noqa: S106 - made up
    assert bearer.auth == "Bearer t0ken-value" and bearer.redact("t0ken-value") == tr.REDACTED

    def echo(handler):
        answer(502, {"error": handler.headers.get("Authorization")})(handler)

    server = serve([echo])
    client = transport(tr, server.url, retries=0, username="soc", password=password)
    with pytest.raises(tr.Unavailable) as caught:
        client.request("GET", "/x")
    assert token not in str(caught.value)


def test_urls_with_credentials_or_other_schemes_are_refused_without_showing_them(tr):
    with pytest.raises(tr.TransportError) as caught:
        tr.base_url("https://admin:s3cret@es.example.org:9200/", "hosts")
    assert "s3cret" not in str(caught.value) and "https://es.example.org:9200" in str(caught.value)
    with pytest.raises(tr.TransportError, match="is not an http:// or https:// URL"):
        tr.base_url("ftp://es.example.org", "url")
    assert tr.base_url("es.example.org:9200/", "hosts", default_scheme="https") == "https://es.example.org:9200"
