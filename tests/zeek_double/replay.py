"""The Zeek double's log writer: what the logger node of a zeekctl cluster does with the
logs the workers send it, for hosts where Zeek cannot run (the lab).

Writes the records of real Zeek JSON logs (a corpus directory of ``<log>.log`` files, e.g.
the ones tests/zeek_logs.py takes from PyPI sdists) into ``<log>.log`` files of the
logger's directory, as Zeek's JSON writer does: one JSON object per line, appended,
flushed line by line. Each record keeps its fields except ``ts``, the time it is written
now (in the corpus record's own format: epoch seconds or ISO 8601), so that the logs read
as live traffic. The records of each log are spread evenly, in their order, over
``--seconds``; then the writer waits to be stopped (SIGTERM), as a logger waits for more.
Python's standard library only: it runs with the sensor's python3.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
import time
from pathlib import Path


def stamp(original: object, now: float) -> object:
    """``now`` in the format of the corpus record's ``ts``."""
    if isinstance(original, str):
        moment = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return round(now, 6)


def schedule(corpus: Path, seconds: float) -> list[tuple[float, str, str]]:
    """(offset, log, line) of every record, each log's records spread over ``seconds``."""
    entries: list[tuple[float, str, str]] = []
    for path in sorted(corpus.glob("*.log")):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("{")]
        entries.extend((seconds * i / len(lines), path.stem, line) for i, line in enumerate(lines))
    return sorted(entries)


def replay(corpus: Path, out: Path, seconds: float) -> int:
    start = time.time()
    handles = {}
    written = 0
    try:
        for offset, log, line in schedule(corpus, seconds):
            delay = start + offset - time.time()
            if delay > 0:
                time.sleep(delay)
            record = json.loads(line)
            record["ts"] = stamp(record.get("ts"), time.time())
            if log not in handles:
                # Zeek's writer: files of the zeek user's umask (0644 under zeekctl).
                handles[log] = open(out / f"{log}.log", "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            handles[log].write(json.dumps(record, separators=(",", ":")) + "\n")
            written += 1
    finally:
        for handle in handles.values():
            handle.close()
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("corpus", type=Path, help="directory of <log>.log files of Zeek JSON records")
    parser.add_argument("out", type=Path, help="the logger's log directory")
    parser.add_argument("--seconds", type=float, default=60.0, help="spread each log over this many seconds")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    args.out.mkdir(parents=True, exist_ok=True)
    count = replay(args.corpus, args.out, args.seconds)
    print(f"replay: wrote {count} records into {args.out}", file=sys.stderr, flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main(sys.argv[1:]))
