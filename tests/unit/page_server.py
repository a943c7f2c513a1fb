"""Small local HTTP(S) servers for the clients' failure paths.

``LocalServer`` answers each request with what its ``respond`` gives. ``PageServer``
answers every request with 200 and an HTML page, as a web server or proxy does at a URL
that is not the API's; ``json_paths`` maps the paths that answer with JSON instead (a
proxy that routes only some of the API).
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HTML = b"<html><head><title>Welcome</title></head><body><h1>Welcome to nginx!</h1></body></html>"


class LocalServer:
    """A server on 127.0.0.1 (TLS with ``tls``); ``seen`` is for ``respond`` to fill."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.seen: list[tuple] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status, kind, data, headers = outer.respond(self)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def respond(self, handler: BaseHTTPRequestHandler) -> tuple[int, str, bytes, dict[str, str]]:
        """(status, content type, body, other headers) of the answer to ``handler``'s request."""
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PageServer(LocalServer):
    def __init__(self, json_paths: dict | None = None):
        self.json_paths = json_paths or {}
        super().__init__()

    def respond(self, handler):
        self.seen.append((handler.command, handler.path))
        path = handler.path.split("?")[0]
        if path in self.json_paths:
            return 200, "application/json", json.dumps(self.json_paths[path]).encode(), {}
        return 200, "text/html", HTML, {}
