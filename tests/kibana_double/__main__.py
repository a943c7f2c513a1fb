"""Serve the Kibana API double as a process (for trying the modules by hand):

    python3 -m kibana_double --port 5601 --engine elasticsearch --password-file pw.txt [--space security]

Runs until SIGTERM. The user is ``elastic`` unless ``--username`` says otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from doubles_common import serve_until_signalled

from .server import KibanaDouble


def main() -> None:
    parser = argparse.ArgumentParser(prog="kibana_double")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5601)
    parser.add_argument("--engine", choices=("elasticsearch", "opensearch"), default="elasticsearch")
    parser.add_argument("--username", default="elastic")
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--space", action="append", default=[], help="extra space to create (repeatable)")
    args = parser.parse_args()
    double = KibanaDouble(
        args.engine,
        username=args.username,
        password=Path(args.password_file).read_text().strip(),
        host=args.host,
        port=args.port,
    )
    for space in args.space:
        double.add_space(space)
    serve_until_signalled(double, f"Kibana API double ({args.engine}) serving at {double.url}")


if __name__ == "__main__":
    main()
