"""Serve the MISP API double as a process, e.g. as the "central MISP" of the lab and of
Molecule scenarios:

    python3 -m misp_double --host 0.0.0.0 --port 8443 --name misp.lab \\
        --tls cert.pem key.pem --key-file key.txt --events events.json

``events.json`` is a JSON list of MISP events (``{"Event": {...}}``). Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from doubles_common import serve_until_signalled

from .server import MispDouble


def main() -> None:
    parser = argparse.ArgumentParser(prog="misp_double")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--name", help="host name clients use (default: --host)")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--key-file", required=True, help="file holding the 40-character API key")
    parser.add_argument("--events", help="JSON list of MISP events to serve")
    parser.add_argument("--describe-types", help="describeTypes.json (PyMISP's data file)")
    parser.add_argument(
        "--warninglist", action="append", default=[], help="a warninglist (list.json format), enabled; repeatable"
    )
    args = parser.parse_args()
    double = MispDouble(
        tuple(args.tls) if args.tls else None,
        key=Path(args.key_file).read_text().strip(),
        describe_types=args.describe_types,
        host=args.host,
        port=args.port,
        public_name=args.name,
    )
    for path in args.warninglist:
        double.load_warninglist(path)
    if args.events:
        double.add_events(json.loads(Path(args.events).read_text()))
    serve_until_signalled(double, f"MISP double serving {len(double.event_ids)} events at {double.url}")


if __name__ == "__main__":
    main()
