"""A memcached text-protocol client for the tests, as the MISP sync host and Logstash use it.

memcache-client HOST PORT set KEY VALUE TTL   -> prints STORED
memcache-client HOST PORT get KEY             -> prints the value, or nothing on a miss
memcache-client HOST PORT stats GROUP         -> prints "NAME VALUE" lines (GROUP: settings, ...)
"""

import socket
import sys


def main() -> int:
    host, port, cmd, key, *rest = sys.argv[1:]
    with socket.create_connection((host, int(port)), timeout=5) as sock, sock.makefile("rwb") as f:
        if cmd == "set":
            value, ttl = rest[0].encode(), int(rest[1])
            f.write(b"set %s 0 %d %d\r\n%s\r\n" % (key.encode(), ttl, len(value), value))
            f.flush()
            print(f.readline().decode().strip())
            return 0
        if cmd == "stats":
            f.write(b"stats %s\r\n" % key.encode())
            f.flush()
            while (line := f.readline()) not in (b"END\r\n", b""):
                print(line.decode().removeprefix("STAT ").strip())
            return 0
        f.write(b"get %s\r\n" % key.encode())
        f.flush()
        line = f.readline()
        if line.startswith(b"VALUE "):
            size = int(line.split()[3])
            print(f.read(size + 2)[:size].decode())
            f.readline()  # END
        elif line != b"END\r\n":
            print(line.decode().strip(), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
