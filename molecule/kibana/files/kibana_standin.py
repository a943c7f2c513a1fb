"""A stand-in for the Kibana or OpenSearch Dashboards server, shipped in the test package
that tests/tasks/kibana-standin.yml builds.

It starts as the vendor's unit starts the server (``bin/kibana`` as the ``kibana`` user with
``KBN_PATH_CONF``; ``bin/opensearch-dashboards`` as ``opensearch-dashboards`` with
``OSD_PATH_CONF`` from /etc/default/opensearch-dashboards), reads the settings file as the
role writes it (one ``name: JSON value`` a line), refuses what the server refuses (no TLS
certificate or key it can read; on Kibana encryption keys under 32 characters or no service
account token; on Dashboards no ``opensearch.hosts``, no username and password for them, or
with the security plugin a cookie password under 32 characters), writes its ``uuid`` into
``path.data`` and its pid file, and serves the Kibana API double (tests/kibana_double, with
tests/doubles_common.py beside it) over TLS with the configured certificate, so that the
role's status wait and dashboards push run for real. The package's home is the directory
above this file's; its name tells the product.
The API user and password are in /etc/kibana-standin/credentials.json.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import uuid
from pathlib import Path

# Run as a script: its directory, with the double beside it, is on sys.path.
from doubles_common import serve_until_signalled
from kibana_double import KibanaDouble

HOME = Path(__file__).resolve().parents[1]
DASHBOARDS = HOME.name == "opensearch-dashboards"
KIBANA_KEYS = (
    "xpack.encryptedSavedObjects.encryptionKey",
    "xpack.security.encryptionKey",
    "xpack.reporting.encryptionKey",
)


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


def check_kibana(s: dict) -> None:
    for key in KIBANA_KEYS:
        if len(str(s.get(key, ""))) < 32:
            raise SystemExit(f"FATAL [config validation of [{key}]]: value has length below 32")
    if not s.get("elasticsearch.serviceAccountToken"):
        raise SystemExit("FATAL elasticsearch.serviceAccountToken is not set")


def check_dashboards(s: dict) -> None:
    if not s.get("opensearch.hosts"):
        raise SystemExit("FATAL opensearch.hosts is not set")
    if not (s.get("opensearch.username") and s.get("opensearch.password")):
        raise SystemExit("FATAL opensearch.username and opensearch.password are not set")
    if s.get("opensearch_security.auth.type") and len(str(s.get("opensearch_security.cookie.password", ""))) < 32:
        raise SystemExit(
            "FATAL [config validation of [opensearch_security].cookie.password]: value has length below 32"
        )


def main() -> None:
    if DASHBOARDS:
        conf = Path(os.environ.get("OSD_PATH_CONF", "/etc/opensearch-dashboards")) / "opensearch_dashboards.yml"
    else:
        conf = Path(os.environ.get("KBN_PATH_CONF", "/etc/kibana")) / "kibana.yml"
    s = settings(conf)
    if DASHBOARDS:
        check_dashboards(s)
    else:
        check_kibana(s)
    if s.get("server.ssl.enabled") is not True:
        raise SystemExit("FATAL the stand-in serves TLS only: server.ssl.enabled must be true")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(s["server.ssl.certificate"], s["server.ssl.key"])

    data = Path(s.get("path.data", f"/var/lib/{HOME.name}"))
    if not (data / "uuid").exists():
        (data / "uuid").write_text(str(uuid.uuid4()))
    pid_file = option("pid.file")
    if pid_file:
        Path(pid_file).write_text(str(os.getpid()))

    credentials = json.loads(Path("/etc/kibana-standin/credentials.json").read_text())
    double = KibanaDouble(
        "opensearch" if DASHBOARDS else "elasticsearch",
        username=credentials["username"],
        password=credentials["password"],
        host=s.get("server.host", "localhost"),
        port=int(s.get("server.port", 5601)),
        tls=context,
    )
    product = "OpenSearch Dashboards" if DASHBOARDS else "Kibana"
    serve_until_signalled(
        double, f"{product} stand-in {double.version} serving https on port {s.get('server.port', 5601)}"
    )


if __name__ == "__main__":
    main()
