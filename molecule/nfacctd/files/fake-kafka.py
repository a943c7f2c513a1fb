"""A stand-in for a Kafka broker: fake-kafka PORT LOG.

Accepts TCP connections on PORT and appends to LOG, as a JSON line per connection, the
peer's address and the API key and client id of its first request (a Kafka request
starts with int32 size, int16 api_key, int16 api_version, int32 correlation_id, int16
client_id length, client_id). It never answers: the client retries, which is all the
tests need.
"""

import json
import socketserver
import struct
import sys

HEADER = struct.Struct(">ihhih")


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(5)
        data = b""
        try:
            while len(data) < 512:
                chunk = self.request.recv(4096)
                if not chunk:
                    break
                data += chunk
                if len(data) >= HEADER.size and len(data) >= HEADER.size + HEADER.unpack_from(data)[4]:
                    break
        except OSError:
            pass
        entry: dict = {"peer": self.client_address[0]}
        if len(data) >= HEADER.size:
            _size, api_key, _version, _correlation, length = HEADER.unpack_from(data)
            entry["api_key"] = api_key
            entry["client_id"] = data[HEADER.size : HEADER.size + length].decode(errors="replace")
        with open(self.server.log, "a") as f:  # type: ignore[attr-defined]
            f.write(json.dumps(entry) + "\n")


def main() -> int:
    port, log = int(sys.argv[1]), sys.argv[2]
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer(("0.0.0.0", port), Handler) as server:  # noqa: S104
        server.log = log  # type: ignore[attr-defined]
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
