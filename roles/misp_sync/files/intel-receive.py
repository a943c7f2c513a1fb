# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Receive a Zeek intel file on stdin and replace TARGET with it atomically.

Installed on Zeek sensors by wlcg.soc's misp_sync role, run only as the SSH forced
command of the sync host's key: ``intel-receive TARGET``. Zeek re-reads the file when
its inode changes, so it is replaced by rename, and left alone when unchanged.
"""

import os
import sys
import tempfile

LIMIT = 1 << 30  # a larger file is refused rather than filling the disk


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: intel-receive TARGET < intel-file", file=sys.stderr)
        return 2
    target = sys.argv[1]
    data = sys.stdin.buffer.read(LIMIT + 1)
    if len(data) > LIMIT:
        print(f"refused: larger than {LIMIT} bytes", file=sys.stderr)
        return 1
    if not data.startswith(b"#fields\t"):
        print("refused: not a Zeek intel file (no #fields header)", file=sys.stderr)
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
