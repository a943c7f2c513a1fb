"""A stand-in for the Kibana server, shipped in the test package that prepare.yml builds.

It starts as the vendor's unit starts Kibana (``bin/kibana`` as the ``kibana`` user, with
``KBN_PATH_CONF``), reads ``kibana.yml`` as the role writes it (one ``name: JSON value`` a
line), refuses what Kibana refuses (no TLS certificate or key it can read, encryption keys
under 32 characters, no service account token), writes its ``uuid`` into ``path.data`` and
its pid file, and serves the Kibana API double (tests/kibana_double, with
tests/doubles_common.py beside it) over TLS with the configured certificate, so that the
role's status wait and dashboards push run for real.
The API user and password are in /etc/kibana-standin/credentials.json.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import uuid
from pathlib import Path

sys.path.insert(0, "/usr/share/kibana/standin")

from doubles_common import serve_until_signalled
from kibana_double import KibanaDouble

KEYS = ("xpack.encryptedSavedObjects.encryptionKey", "xpack.security.encryptionKey", "xpack.reporting.encryptionKey")


def settings(path: Path) -> dict:
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition(": ")
        if not sep:
            raise SystemExit(f"FATAL {path} line {number}: not a 'name: value' line")
        out[name.strip()] = json.loads(value)
    return out


def option(name: str) -> str | None:
    for arg in sys.argv[1:]:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1].strip('"')
    return None


def main() -> None:
    conf = Path(os.environ.get("KBN_PATH_CONF", "/etc/kibana")) / "kibana.yml"
    s = settings(conf)
    for key in KEYS:
        if len(str(s.get(key, ""))) < 32:
            raise SystemExit(f"FATAL [config validation of [{key}]]: value has length below 32")
    if not s.get("elasticsearch.serviceAccountToken"):
        raise SystemExit("FATAL elasticsearch.serviceAccountToken is not set")
    if s.get("server.ssl.enabled") is not True:
        raise SystemExit("FATAL the stand-in serves TLS only: server.ssl.enabled must be true")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(s["server.ssl.certificate"], s["server.ssl.key"])

    data = Path(s.get("path.data", "/var/lib/kibana"))
    if not (data / "uuid").exists():
        (data / "uuid").write_text(str(uuid.uuid4()))
    pid_file = option("pid.file")
    if pid_file:
        Path(pid_file).write_text(str(os.getpid()))

    credentials = json.loads(Path("/etc/kibana-standin/credentials.json").read_text())
    double = KibanaDouble(
        "elasticsearch",
        username=credentials["username"],
        password=credentials["password"],
        host=s.get("server.host", "localhost"),
        port=int(s.get("server.port", 5601)),
        tls=context,
    )
    serve_until_signalled(
        double, f"Kibana stand-in {double.version} serving https on port {s.get('server.port', 5601)}"
    )


if __name__ == "__main__":
    main()
