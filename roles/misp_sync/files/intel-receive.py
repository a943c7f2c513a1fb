# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Receive a Zeek intel file on stdin and replace TARGET with it atomically.

Installed on Zeek sensors by wlcg.soc's misp_sync role, run only as the SSH forced
command of the sync host's key: ``intel-receive TARGET``. Zeek re-reads the file when
its inode changes, so it is replaced by rename, and left alone when unchanged. A file
that is not a well-formed intel file (header, then rows of the header's width with a
known indicator type) is refused and the live one kept.
"""

import os
import re
import sys
import tempfile

LIMIT = 1 << 30  # a larger file is refused rather than filling the disk
REQUIRED = ("indicator", "indicator_type", "meta.source")
# Zeek's intel types (as module_utils/zeek_intel.INTEL_TYPES; this file runs on its own).
TYPES = frozenset(
    (
        "Intel::ADDR",
        "Intel::SUBNET",
        "Intel::URL",
        "Intel::SOFTWARE",
        "Intel::EMAIL",
        "Intel::DOMAIN",
        "Intel::USER_NAME",
        "Intel::CERT_HASH",
        "Intel::PUBKEY_HASH",
        "Intel::FILE_HASH",
        "Intel::FILE_NAME",
    )
)
FIELD_NAME = re.compile(r"[a-z][a-z0-9_.]*")


def problem(data):
    """Why ``data`` is not an intel file the sync writes, or None. Names lines, never their text."""
    if not data.startswith(b"#fields\t"):
        return "not a Zeek intel file (no #fields header)"
    if not data.endswith(b"\n"):
        return "the file does not end with a newline (cut short?)"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 at byte {exc.start}"
    lines = text.split("\n")[:-1]
    fields = lines[0].split("\t")[1:]
    bad = [name for name in fields if not FIELD_NAME.fullmatch(name)]
    if bad or len(set(fields)) != len(fields):
        return "the #fields header has invalid or repeated names"
    missing = [name for name in REQUIRED if name not in fields]
    if missing:
        return "the #fields header lacks " + ", ".join(missing)
    width, type_at = len(fields), fields.index("indicator_type")
    for number, line in enumerate(lines[1:], start=2):
        if line.startswith("#"):
            return f"line {number}: a second header or comment"
        cells = line.split("\t")
        if len(cells) != width:
            return f"line {number}: {len(cells)} fields where the header names {width}"
        if cells[type_at] not in TYPES:
            return f"line {number}: unknown indicator type"
        if "" in cells or cells[0] == "-":
            return f"line {number}: an empty field"
    return None


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: intel-receive TARGET < intel-file", file=sys.stderr)
        return 2
    target = sys.argv[1]
    data = sys.stdin.buffer.read(LIMIT + 1)
    if len(data) > LIMIT:
        print(f"refused: larger than {LIMIT} bytes", file=sys.stderr)
        return 1
    why = problem(data)
    if why:
        print(f"refused: {why}; the live file is kept", file=sys.stderr)
        return 1
    try:
        with open(target, "rb") as handle:
            if handle.read() == data:
                print("unchanged")
                return 0
    except FileNotFoundError:
        pass
    directory = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    print("updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
