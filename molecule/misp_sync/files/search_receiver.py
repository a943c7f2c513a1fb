"""The search tier as the MISP sync's heartbeat meets it, for the misp_sync scenario: the
document API (``PUT /<data stream>/_create/<id>``) over TLS with basic auth, answering as
Elasticsearch does, on one port per ``--listen PORT:CERT:KEY``.

Every request is appended to ``--log`` as a JSON line (port, method, path, Authorization
header, the document), and so is every TLS handshake a client broke off (port, the
error), so that a test sees what arrived where and which certificate a client refused.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOCK = threading.Lock()


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, context: ssl.SSLContext, log: str, authorization: str):
        super().__init__(("0.0.0.0", port), Handler)  # noqa: S104 - the scenario's network
        self.context, self.log, self.authorization = context, log, authorization

    def record(self, entry: dict[str, Any]) -> None:
        with LOCK, open(self.log, "a", encoding="utf-8") as out:
            out.write(json.dumps({"port": self.server_address[1], **entry}) + "\n")

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError as exc:  # ssl.SSLError among them
            self.record({"tls_error": str(exc)})
            return
        with tls:
            super().finish_request(tls, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        authorization = self.headers.get("Authorization", "")
        self.server.record(
            {"method": "PUT", "path": self.path, "authorization": authorization, "doc": json.loads(body or b"null")}
        )
        if authorization != self.server.authorization:
            self.answer(HTTPStatus.UNAUTHORIZED, {"error": {"type": "security_exception"}, "status": 401})
            return
        stream, doc_id = self.path.lstrip("/").split("/_create/", 1)
        self.answer(HTTPStatus.CREATED, {"_index": f".ds-{stream}-000001", "_id": doc_id, "result": "created"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", action="append", required=True, help="PORT:CERT:KEY")
    parser.add_argument("--log", required=True)
    parser.add_argument("--authorization-file", required=True, help="the expected Authorization header")
    args = parser.parse_args()
    with open(args.authorization_file, encoding="utf-8") as handle:
        authorization = handle.read().strip()
    servers = []
    for listen in args.listen:
        port, cert, key = listen.split(":")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        servers.append(Receiver(int(port), context, args.log, authorization))
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
