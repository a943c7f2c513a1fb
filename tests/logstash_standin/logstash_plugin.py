"""A stand-in for Logstash's ``bin/logstash-plugin``, shipped in the test package that
molecule/logstash/prepare.yml builds.

Like the real tool it keeps the installed plugins in ``LOGSTASH_HOME/Gemfile`` (one ``gem
"<name>"`` line each, with the version where this tool installed it), which the Logstash
stand-in reads: a plugin that Logstash does not bundle (the OpenSearch output) is unknown
to it until installed here.

    logstash-plugin list [--verbose] [<name>]
    logstash-plugin install [--version <version>] <name> | file://<pack>.zip

``install <name>`` stands in for a download from RubyGems: it knows the versions in
``CATALOG`` (the newest last). An offline pack (``bin/logstash-plugin
prepare-offline-pack``) is a zip holding ``logstash/<name>-<version>.gem`` files; each is
installed. No match for ``list <name>`` is an error (exit 1), as with Logstash.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import zipfile
from pathlib import Path

HOME = Path(os.environ.get("LOGSTASH_HOME", Path(__file__).resolve().parents[3]))
GEMFILE = HOME / "Gemfile"
# What RubyGems offers, as far as this stand-in knows (the newest last).
CATALOG = {"logstash-output-opensearch": ["2.0.2", "2.0.3"]}
LINE = re.compile(r"""^\s*gem\s+["']([^"']+)["'](?:\s*,\s*["']([^"']+)["'])?""")


def installed() -> dict[str, str]:
    gems = {}
    for line in GEMFILE.read_text().splitlines() if GEMFILE.is_file() else []:
        match = LINE.match(line)
        if match:
            gems[match.group(1)] = match.group(2) or ""
    return gems


def record(name: str, version: str) -> None:
    lines = [line for line in GEMFILE.read_text().splitlines() if (LINE.match(line) or [None, None])[1] != name]
    lines.append(f'gem "{name}", "{version}"')
    tmp = GEMFILE.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o644)
    os.replace(tmp, GEMFILE)
    print(f"Installing {name}\nInstallation successful")


def list_plugins(args: argparse.Namespace) -> int:
    found = {n: v for n, v in sorted(installed().items()) if not args.name or args.name in n}
    if not found:
        print("ERROR: No plugins found", file=sys.stderr)
        return 1
    for name, version in found.items():
        print(f"{name} ({version})" if args.verbose and version else name)
    return 0


def install(args: argparse.Namespace) -> int:
    if args.name.startswith("file://"):
        pack = Path(args.name[len("file://") :])
        try:
            with zipfile.ZipFile(pack) as archive:
                gems = [Path(n).name for n in archive.namelist() if n.endswith(".gem")]
        except (OSError, zipfile.BadZipFile) as exc:
            print(f"ERROR: Something went wrong when installing {pack}, message: {exc}", file=sys.stderr)
            return 1
        if not gems:
            print(f"ERROR: {pack} is not a plugin pack (no gems)", file=sys.stderr)
            return 1
        for gem in gems:
            name, _sep, version = gem[: -len(".gem")].rpartition("-")
            record(name, version)
        return 0
    versions = CATALOG.get(args.name)
    if not versions or (args.version and args.version not in versions):
        wanted = f"{args.name} ({args.version})" if args.version else args.name
        print(f"ERROR: Installation aborted, verification failed for {wanted}", file=sys.stderr)
        return 1
    print("Validating " + args.name)
    record(args.name, args.version or versions[-1])
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="logstash-plugin")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list")
    listing.add_argument("--verbose", action="store_true")
    listing.add_argument("name", nargs="?", default="")
    installing = commands.add_parser("install")
    installing.add_argument("--version", default="")
    installing.add_argument("name")
    args = parser.parse_args(argv)
    return list_plugins(args) if args.command == "list" else install(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
