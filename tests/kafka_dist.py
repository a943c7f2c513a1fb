"""A site's Apache Kafka tarball, as far as Maven Central has it.

Apache's binary distribution (``kafka_2.13-<version>.tgz``) is not reachable from the test
machines; Maven Central is. The broker, its tools and their dependencies come from there
with ``mvn dependency:copy-dependencies`` (strict checksums) into the Maven cache the search
tests use (``~/.cache/wlcg-soc/maven``, ``WLCG_SOC_SEARCH_CACHE``), with Log4j 2 as the
logging backend (as Apache's distribution ships it), and are packed with Apache's layout:
``kafka_2.13-<version>/libs/*.jar`` (the role writes its own logging settings, so the
distribution's ``config/`` is left out). The wlcg.soc.kafka role
installs it with its archive method and runs ``java -cp libs/* kafka.Kafka``, exactly as it
runs Apache's tarball. Assembled once per version, beside the Maven cache, with its SHA-512
in ``<tarball>.sha512`` (the format of Apache's own checksum files).

    python3 tests/kafka_dist.py [--version 4.4.0]   # prints {"path": ..., "sha512": ...}
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

DEFAULT_VERSION = "4.4.0"
SCALA = "2.13"
LOG4J = "2.24.3"
SLF4J = "2.0.17"
# Bumped when the assembly changes, so that a cached tarball of an older layout is rebuilt.
LAYOUT = "1\n"


class DistError(RuntimeError):
    """The distribution could not be assembled."""


def cache_dir() -> Path:
    env = os.environ.get("WLCG_SOC_SEARCH_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "wlcg-soc" / "maven"


def pom(version: str) -> str:
    deps = [
        ("org.apache.kafka", f"kafka_{SCALA}", version),
        ("org.apache.kafka", "kafka-tools", version),
        ("org.apache.logging.log4j", "log4j-core", LOG4J),
        ("org.apache.logging.log4j", "log4j-slf4j2-impl", LOG4J),
        ("org.slf4j", "slf4j-api", SLF4J),
    ]
    listed = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in deps
    )
    # slf4j-api 2.x wins over the 1.7 some dependencies ask for: the broker logs nothing with 1.7.
    managed = (
        "<dependencyManagement><dependencies><dependency><groupId>org.slf4j</groupId>"
        f"<artifactId>slf4j-api</artifactId><version>{SLF4J}</version></dependency></dependencies>"
        "</dependencyManagement>"
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>wlcg-soc.test</groupId><artifactId>kafka-dist</artifactId><version>1</version>"
        f"<packaging>pom</packaging>{managed}<dependencies>{listed}</dependencies></project>\n"
    )


def sha512_of(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamped(path: Path) -> bool:
    return path.is_file() and path.read_text() == LAYOUT


def kafka_archive(version: str = DEFAULT_VERSION) -> Path:
    """``kafka_2.13-<version>.tgz``, assembled once (see the module's description)."""
    name = f"kafka_{SCALA}-{version}"
    done = cache_dir().parent / "kafka-archive" / version / f"{name}.tgz"
    stamp = done.with_name(done.name + ".layout")
    if done.is_file() and _stamped(stamp):
        return done
    repo = cache_dir()
    repo.mkdir(parents=True, exist_ok=True)
    done.parent.mkdir(parents=True, exist_ok=True)
    with (repo / ".wlcg-soc.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel scenarios share the cache
        if done.is_file() and _stamped(stamp):
            return done
        mvn = shutil.which("mvn")
        if not mvn:
            raise DistError("mvn (Debian package maven) is needed to assemble the Kafka distribution")
        with tempfile.TemporaryDirectory(dir=done.parent) as scratch:
            work = Path(scratch)
            home = work / name
            (work / "pom.xml").write_text(pom(version))
            cmd = [mvn, "-B", "-q", "--strict-checksums", f"-Dmaven.repo.local={repo}", "-f", str(work / "pom.xml")]
            cmd += ["dependency:copy-dependencies", f"-DoutputDirectory={home / 'libs'}", "-DincludeScope=runtime"]
            ran = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1200)
            if ran.returncode != 0:
                raise DistError(f"mvn could not fetch Kafka {version}:\n{ran.stdout}{ran.stderr}")
            if not (home / "libs" / f"kafka_{SCALA}-{version}.jar").is_file():
                raise DistError(f"Maven fetched no kafka_{SCALA}-{version}.jar")
            staged = work / done.name
            with tarfile.open(staged, "w:gz") as tar:
                tar.add(home, arcname=name)
            staged.rename(done)
            done.with_name(done.name + ".sha512").write_text(f"{sha512_of(done)}  {done.name}\n")
            stamp.write_text(LAYOUT)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(prog="kafka_dist", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--version", default=os.environ.get("WLCG_SOC_TEST_KAFKA") or DEFAULT_VERSION)
    args = parser.parse_args()
    path = kafka_archive(args.version)
    print(json.dumps({"path": str(path), "sha512": sha512_of(path)}))


if __name__ == "__main__":
    main()
