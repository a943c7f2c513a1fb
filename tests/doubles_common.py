"""What the API doubles (tests/misp_double, tests/kibana_double) share: serving over
HTTP(S) on a thread of the test process, and running as a process until SIGTERM.

A double subclasses ``HttpDouble`` and answers ``handle(method, raw_path, headers, body)``
with ``(status, payload, extra headers)``. Where a double runs as a service (the MISP
double of the lab and of Molecule, the Kibana stand-in), this file is installed beside
its package.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietServer(ThreadingHTTPServer):
    """Clients that give up (timeouts, outages) are expected: no tracebacks on stderr."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""
    double: HttpDouble

    def setup(self) -> None:
        super().setup()
        with self.double._conn_lock:
            self.double._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.double._conn_lock:
                self.double._connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        if method not in self.double.methods:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({method!r})")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload, headers = self.double.handle(method, self.path, self.headers, body)
        self.send_response(status)
        if "Content-Type" not in headers:
            self.send_header("Content-Type", self.double.content_type)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if method != "HEAD":
            self.double.send_body(self.wfile, payload, self.path)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_HEAD(self) -> None:
        self._serve("HEAD")


class HttpDouble:
    """An API double served on a thread (random port by default); a context manager.

    ``tls`` is a ``(certfile, keyfile)`` pair or an ``ssl.SSLContext``; the handshake
    happens in each connection's thread, so a stalled client cannot block the others.
    ``url`` names ``public_name`` (default: the host). ``stop()`` simulates an outage:
    the server shuts down and open keep-alive connections are dropped; ``start()``
    serves again, on the same port when it is still free.
    """

    server_version = "Python"
    content_type = "application/json; charset=utf-8"
    methods: frozenset[str] = frozenset({"GET", "POST", "PUT", "DELETE"})

    def _init_http(
        self,
        host: str,
        port: int,
        tls: tuple[str, str] | ssl.SSLContext | None = None,
        public_name: str | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._tls = tls
        self._public_name = public_name or host
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self.url = ""

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, bytes, dict]:
        raise NotImplementedError

    def send_body(self, wfile: Any, payload: bytes, raw_path: str) -> None:
        """Write the answer's body (a double may send it differently, e.g. slowly)."""
        wfile.write(payload)

    def start(self) -> None:
        """Serve (again, after ``stop()``)."""
        if self._server is not None:
            return
        handler = type("Handler", (_Handler,), {"double": self, "server_version": self.server_version})
        try:
            server = QuietServer((self._host, self._port), handler)
        except OSError:
            server = QuietServer((self._host, 0), handler)
        scheme = "http"
        if self._tls is not None:
            context = self._tls
            if not isinstance(context, ssl.SSLContext):
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(*self._tls)
            server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
            scheme = "https"
        self._server = server
        self._port = server.server_address[1]
        self.url = f"{scheme}://{self._public_name}:{self._port}"
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        """Shut the server down and drop open connections: an outage."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._conn_lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._connections.clear()
        self._server = None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_until_signalled(double: HttpDouble, banner: str) -> None:
    """Print ``banner``, serve until SIGTERM or SIGINT, then stop the double."""
    print(banner, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_args: stop.set())
    signal.signal(signal.SIGINT, lambda *_args: stop.set())
    stop.wait()
    double.stop()
