"""A local HTTP server that answers every request with 200 and an HTML page, as a web
server or proxy does at a URL that is not the API's; ``json_paths`` maps the paths that
answer with JSON instead (a proxy that routes only some of the API)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HTML = b"<html><head><title>Welcome</title></head><body><h1>Welcome to nginx!</h1></body></html>"


class PageServer:
    def __init__(self, json_paths: dict | None = None):
        self.seen: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.seen.append((self.command, self.path))
                path = self.path.split("?")[0]
                if path in (json_paths or {}):
                    data, kind = json.dumps(json_paths[path]).encode(), "application/json"
                else:
                    data, kind = HTML, "text/html"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> PageServer:
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
