"""A real Elasticsearch or OpenSearch node for the tests, from the test distributions
that Elastic and the OpenSearch project publish on Maven Central:

- ``org.elasticsearch.distribution.integ-test-zip:elasticsearch:<version>@zip``
  (default 8.19.21): a minimal Elasticsearch without a bundled JDK. Its modules are
  ``transport-netty4``, ``x-pack-core``, ``x-pack-security`` and ``apm``: index and
  component templates, ingest pipelines (the only processor is security's
  ``set_security_user``; ``ingest-common`` is missing) and real authentication, but no
  ILM (``x-pack-ilm``) and no root endpoint (``GET /`` answers 405).
- ``org.opensearch.distribution.integ-test-zip:opensearch:<version>@zip`` (default
  2.19.4): a minimal OpenSearch (``transport-netty4`` only; no security, no ISM), to
  which the engine adds the modules ``lang-painless``, ``lang-mustache``, ``ingest-common``,
  ``analysis-common``, ``ingest-geoip`` and ``ingest-user-agent`` (``org.opensearch.plugin``
  artifacts of the same version; lang-mustache's is ``lang-mustache-client``): ingest
  pipelines with their usual processors and ``{{ }}`` templates (e.g.
  ``_ingest.on_failure_message``), painless scripts and the common analyzers.
  Each module directory holds the plugin's jar, its own dependencies that are not in the
  distribution's ``lib/``, a ``plugin-descriptor.properties`` and, where upstream has
  one, its ``plugin-security.policy``. ``ingest-geoip`` gets the GeoLite2 City, Country
  and ASN databases of ``org.elasticsearch:geolite2-databases:20191119`` (by MaxMind,
  licensed CC BY-SA 4.0).
  ``SearchNode("opensearch", security=True)`` adds the security plugin of the same
  version, set up as a site sets it up (tests/search/opensearch_security.py): ``https``
  ``url`` verified against the node's own CA (``ca_path``), ``username``/``password``
  (``admin``, ``all_access``) and ``reader``/``reader_password`` (``readall``); no demo
  certificates or users.

The zip is fetched once with ``mvn dependency:get`` (strict checksums) into
``~/.cache/wlcg-soc/maven`` (a Maven local repository; ``WLCG_SOC_SEARCH_CACHE``
overrides it), and checked again here against the ``.sha1`` file Maven Central serves
beside it. The OpenSearch modules come into the same repository with ``mvn
dependency:copy-dependencies`` (strict checksums) and are assembled once per version into
``opensearch-modules/<version>`` beside it (again when the list of modules changes). Each
node unpacks the zip into a temporary directory (OpenSearch: plus a copy of the modules), listens on free loopback ports
(``discovery.type: single-node``, 512 MiB heap) and is stopped, with its whole process
group, by ``stop()``. ``path.repo`` is the node's ``repo_path``, for file system snapshot
repositories. Elasticsearch and OpenSearch refuse to run as root: under root the
node runs as ``nobody``. ``SharedNodes`` lets the pytest-xdist workers of one run share
one set of nodes.

Versions: ``WLCG_SOC_TEST_ELASTICSEARCH`` / ``WLCG_SOC_TEST_OPENSEARCH``. Java: the
newest JDK that the version needs (17 for Elasticsearch 8 and OpenSearch 2, 21 for
Elasticsearch 9) among ``WLCG_SOC_TEST_JAVA_HOME``, the ``java`` on PATH and
``/usr/lib/jvm/*``.

    python3 -m search.engine elasticsearch   # from tests/: start one, print its URL, wait
    python3 -m search.engine elasticsearch --fetch   # only fetch: {"path": ..., "sha1": ...}
    python3 -m search.engine opensearch --security   # with the security plugin (https, ca_path)
    python3 -m search.engine opensearch --archive    # a site-like tarball with modules and security
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

COORDINATES = {
    "elasticsearch": ("org.elasticsearch.distribution.integ-test-zip", "elasticsearch"),
    "opensearch": ("org.opensearch.distribution.integ-test-zip", "opensearch"),
}
DEFAULT_VERSIONS = {"elasticsearch": "8.19.21", "opensearch": "2.19.4"}
# The OpenSearch modules added to the test distribution (group org.opensearch.plugin, the
# core's version; the artifact is the module's name unless given): plugin class (read from
# the jars), the jars of its own besides those already in the distribution's lib/, the
# plugins it extends, its security policy grants.
# The grants are those of upstream OpenSearch 2.19, github.com/opensearch-project/OpenSearch
# modules/<name>/src/main/plugin-metadata/plugin-security.policy; the others have none.
OPENSEARCH_MODULES: dict[str, dict] = {
    "lang-painless": {
        "classname": "org.opensearch.painless.PainlessPlugin",
        "jars": (
            "antlr4-runtime",
            "asm",
            "asm-analysis",
            "asm-commons",
            "asm-tree",
            "asm-util",
            "opensearch-scripting-painless-spi",
        ),
        "extends": "",
        "grants": ('java.lang.RuntimePermission "createClassLoader"', 'java.lang.RuntimePermission "getClassLoader"'),
    },
    # Templates in ingest processors ({{ _ingest.on_failure_message }}) and search templates.
    "lang-mustache": {
        "artifact": "lang-mustache-client",
        "classname": "org.opensearch.script.mustache.MustachePlugin",
        "jars": ("compiler",),
        "extends": "",
        "grants": ('java.lang.RuntimePermission "accessDeclaredMembers"',),
    },
    "ingest-common": {
        "classname": "org.opensearch.ingest.common.IngestCommonPlugin",
        "jars": ("opensearch-grok", "opensearch-dissect", "joni", "jcodings"),
        "extends": "lang-painless",
        "grants": (),
    },
    "analysis-common": {
        "classname": "org.opensearch.analysis.common.CommonAnalysisPlugin",
        "jars": (),
        "extends": "lang-painless",
        "grants": (),
    },
    "ingest-geoip": {
        "classname": "org.opensearch.ingest.geoip.IngestGeoIpPlugin",
        "jars": ("geoip2", "maxmind-db", "jackson-databind", "jackson-annotations"),
        "extends": "",
        # jackson-databind reflects over the classes it maps
        "grants": (
            'java.lang.RuntimePermission "accessDeclaredMembers"',
            'java.lang.reflect.ReflectPermission "suppressAccessChecks"',
        ),
    },
    "ingest-user-agent": {
        "classname": "org.opensearch.ingest.useragent.IngestUserAgentPlugin",
        "jars": (),
        "extends": "",
        "grants": (),
    },
}
# GeoLite2 City, Country and ASN (2019-11-19), CC BY-SA 4.0 by MaxMind; ingest-geoip
# requires them in its module directory.
GEOIP_DATABASES = ("org.elasticsearch", "geolite2-databases", "20191119")
HEAP = "512m"
START_TIMEOUT = 180.0


class EngineError(RuntimeError):
    pass


def cache_dir() -> Path:
    env = os.environ.get("WLCG_SOC_SEARCH_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "wlcg-soc" / "maven"


def wanted_version(flavour: str) -> str:
    return os.environ.get(f"WLCG_SOC_TEST_{flavour.upper()}") or DEFAULT_VERSIONS[flavour]


def sha1_of(path: Path) -> str:
    digest = hashlib.sha1()  # noqa: S324 - Maven Central's published checksum is SHA-1
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(flavour: str, version: str) -> Path:
    """The distribution zip, fetched once and checked against Maven Central's .sha1."""
    return fetch_artifact(*COORDINATES[flavour], version)


def fetch_artifact(group: str, artifact: str, version: str) -> Path:
    """A zip from Maven Central, fetched once and checked against its .sha1."""
    repo = cache_dir()
    where = repo.joinpath(*group.split("."), artifact, version)
    zip_path = where / f"{artifact}-{version}.zip"
    sha_path = where / f"{artifact}-{version}.zip.sha1"
    repo.mkdir(parents=True, exist_ok=True)
    with (repo / ".wlcg-soc.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers share the cache
        if not (zip_path.is_file() and sha_path.is_file()):
            mvn = shutil.which("mvn")
            if not mvn:
                raise EngineError(f"mvn (Debian package maven) is needed to fetch {artifact} {version}")
            cmd = [
                mvn,
                "-B",
                "-q",
                "--strict-checksums",
                f"-Dmaven.repo.local={repo}",
                "dependency:get",
                f"-Dartifact={group}:{artifact}:{version}:zip",
                "-Dtransitive=false",
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
            if done.returncode != 0 or not zip_path.is_file():
                hint = ""
                if "no checksums available" in done.stdout + done.stderr:
                    hint = " (Maven Central has no checksum file for it, so it cannot be checked: pick another version)"
                raise EngineError(
                    f"mvn could not fetch {group}:{artifact}:{version}@zip{hint}:\n{done.stdout}{done.stderr}"
                )
        if not sha_path.is_file():
            raise EngineError(f"Maven fetched {zip_path.name} without its .sha1 file")
        expected = sha_path.read_text().split()[0].strip().lower()
        actual = sha1_of(zip_path)
        if actual != expected:
            zip_path.unlink()
            sha_path.unlink()
            raise EngineError(f"{zip_path}: SHA-1 {actual} is not Maven Central's {expected}; removed, try again")
    return zip_path


def _artifact(module: str) -> str:
    return OPENSEARCH_MODULES[module].get("artifact", module)


# What an assembled module directory or archive holds: reused only while it is the same.
MODULES_STAMP = " ".join(sorted(OPENSEARCH_MODULES)) + "\n"


def _module_pom(version: str) -> str:
    deps = [("org.opensearch.plugin", _artifact(name), version) for name in OPENSEARCH_MODULES] + [GEOIP_DATABASES]
    listed = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>wlcg-soc.test</groupId><artifactId>opensearch-modules</artifactId><version>1</version>"
        f"<packaging>pom</packaging><dependencies>{listed}</dependencies></project>\n"
    )


def _descriptor(name: str, version: str, module: dict) -> str:
    fields = {
        "description": f"{name} (module of the OpenSearch distribution)",
        "version": version,
        "name": name,
        "classname": module["classname"],
        "java.version": "11",  # as in the distribution's own transport-netty4 descriptor
        "opensearch.version": version,
        "extended.plugins": module["extends"],
        "has.native.controller": "false",
    }
    return "".join(f"{k}={v}\n" for k, v in fields.items())


def opensearch_modules(zip_path: Path, version: str) -> Path:
    """The directory of OpenSearch's modules (``OPENSEARCH_MODULES``) for ``version``,
    assembled once from Maven Central (strict checksums) and kept beside the Maven cache."""
    repo = cache_dir()
    done = repo.parent / "opensearch-modules" / version
    if _stamped(done / ".complete"):
        return done
    repo.mkdir(parents=True, exist_ok=True)
    with (repo / ".wlcg-soc.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers share the cache
        if _stamped(done / ".complete"):
            return done
        mvn = shutil.which("mvn")
        if not mvn:
            raise EngineError("mvn (Debian package maven) is needed to fetch the OpenSearch modules")
        with zipfile.ZipFile(zip_path) as archive:
            in_lib = {Path(n).name for n in archive.namelist() if Path(n).parent.name == "lib" and n.endswith(".jar")}
        with tempfile.TemporaryDirectory(dir=done.parent.parent) as scratch:
            work = Path(scratch)
            (work / "pom.xml").write_text(_module_pom(version))
            cmd = [mvn, "-B", "-q", "--strict-checksums", f"-Dmaven.repo.local={repo}", "-f", str(work / "pom.xml")]
            cmd += ["dependency:copy-dependencies", f"-DoutputDirectory={work / 'jars'}"]
            ran = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
            if ran.returncode != 0:
                raise EngineError(f"mvn could not fetch the OpenSearch {version} modules:\n{ran.stdout}{ran.stderr}")
            jars = {p.name: p for p in (work / "jars").glob("*.jar")}
            geoip = jars.pop(f"{GEOIP_DATABASES[1]}-{GEOIP_DATABASES[2]}.jar")
            extra = {n: p for n, p in jars.items() if n not in in_lib}
            staged = work / "modules"
            for name, module in OPENSEARCH_MODULES.items():
                target = staged / name
                target.mkdir(parents=True)
                for artifact in (_artifact(name), *module["jars"]):
                    matches = [n for n in extra if re.fullmatch(rf"{re.escape(artifact)}-\d[^-]*(-[^-]+)?\.jar", n)]
                    if len(matches) != 1:
                        raise EngineError(f"{name}: expected one {artifact} jar among {sorted(extra)}")
                    shutil.copy2(extra.pop(matches[0]), target)
                (target / "plugin-descriptor.properties").write_text(_descriptor(name, version, module))
                if module["grants"]:  # upstream's plugin-metadata/plugin-security.policy, see OPENSEARCH_MODULES
                    grants = "".join(f"  permission {g};\n" for g in module["grants"])
                    (target / "plugin-security.policy").write_text(f"grant {{\n{grants}}};\n")
            if extra:  # a dependency no module claims: the table above is out of date
                raise EngineError(f"OpenSearch {version} modules need jars not placed: {sorted(extra)}")
            with zipfile.ZipFile(geoip) as archive:
                for member in archive.namelist():
                    if member.endswith(".mmdb"):
                        with archive.open(member) as src, (staged / "ingest-geoip" / member).open("wb") as dst:
                            shutil.copyfileobj(src, dst)
            (staged / ".complete").write_text(MODULES_STAMP)
            shutil.rmtree(done, ignore_errors=True)
            done.parent.mkdir(parents=True, exist_ok=True)
            staged.rename(done)
    return done


def opensearch_archive(version: str | None = None) -> Path:
    """A site's OpenSearch tarball, as far as Maven Central has it:
    ``opensearch-<version>-linux-x64.tar.gz`` with the top directory ``opensearch-<version>``
    holding the test distribution, its modules (``opensearch_modules``) and the security
    plugin, installed with ``opensearch-plugin`` as in the vendor's tarball (which adds its own
    configuration, with the demo users, under ``config/opensearch-security``). Unlike the
    vendor's it bundles no JDK. Assembled once per version beside the Maven cache."""
    version = version or wanted_version("opensearch")
    done = cache_dir().parent / "opensearch-archive" / version / f"opensearch-{version}-linux-x64.tar.gz"
    stamp = done.with_name(done.name + ".modules")
    if done.is_file() and _stamped(stamp):
        return done
    from search import opensearch_security

    zip_path = fetch("opensearch", version)
    modules = opensearch_modules(zip_path, version)
    plugin = opensearch_security.plugin_zip(version)
    done.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=done.parent) as scratch:
        home = unpack(zip_path, Path(scratch))
        for module in modules.iterdir():
            if module.is_dir():
                shutil.copytree(module, home / "modules" / module.name)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENSEARCH_", "JAVA_"))}
        env.update(OPENSEARCH_JAVA_HOME=str(java_home(17)), OPENSEARCH_PATH_CONF=str(home / "config"))
        ran = subprocess.run(
            [str(home / "bin" / "opensearch-plugin"), "install", "--batch", plugin.as_uri()],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if ran.returncode != 0:
            raise EngineError(f"opensearch-plugin install failed:\n{ran.stdout}{ran.stderr}")
        staged = Path(scratch) / done.name
        with tarfile.open(staged, "w:gz") as tar:
            tar.add(home, arcname=home.name)
        staged.rename(done)
        stamp.write_text(MODULES_STAMP)
    return done


def _stamped(path: Path) -> bool:
    return path.is_file() and path.read_text() == MODULES_STAMP


def unpack(zip_path: Path, dest: Path) -> Path:
    """Unpack keeping the executable bits; the distribution's top directory."""
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            target = dest / info.filename
            if not target.resolve().is_relative_to(dest.resolve()):
                raise EngineError(f"{zip_path}: {info.filename} points outside the archive")
            archive.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                target.chmod(mode)
    tops = [p for p in dest.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise EngineError(f"{zip_path}: expected one top directory, found {[p.name for p in tops]}")
    return tops[0]


def java_major(home: Path) -> int:
    release = home / "release"
    if release.is_file():
        found = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.M)
        if found:
            return int(found.group(1))
    return 0


def java_home(minimum: int) -> Path:
    candidates = []
    if os.environ.get("WLCG_SOC_TEST_JAVA_HOME"):
        candidates.append(Path(os.environ["WLCG_SOC_TEST_JAVA_HOME"]))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parents[1])
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted(p for p in jvm.iterdir() if p.is_dir() and not p.is_symlink())
    for home in candidates:
        if (home / "bin" / "java").is_file() and java_major(home) >= minimum:
            return home
    raise EngineError(f"no Java {minimum}+ found (tried {', '.join(map(str, candidates)) or 'nothing'})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}"


class SearchNode:
    """One single-node cluster. ``url``; ``username``/``password`` (Elasticsearch, with
    security on: a superuser, plus ``reader`` with the built-in ``viewer`` role; OpenSearch
    with ``security``: ``admin`` and ``reader``, over https verified against ``ca_path``)."""

    def __init__(self, flavour: str, version: str | None = None, heap: str = HEAP, security: bool = False):
        if flavour not in COORDINATES:
            raise EngineError(f"unknown engine {flavour!r}")
        if security and flavour != "opensearch":
            raise EngineError("security=True is the OpenSearch security plugin; Elasticsearch has it always")
        self.flavour = flavour
        self.version = version or wanted_version(flavour)
        self.heap = heap
        self.security = security
        self.port = free_port()
        self.url = f"{'https' if security else 'http'}://127.0.0.1:{self.port}"
        self.username: str | None = None
        self.password: str | None = None
        self.reader_password: str | None = None
        self.ca_path: str | None = None
        self.repo_path: str | None = None
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.started_at = 0.0
        self.ready_after: float | None = None
        self._ready = False

    # -- layout ------------------------------------------------------------------

    def _run_as(self) -> dict:
        if os.geteuid() != 0:
            return {}
        nobody = pwd.getpwnam("nobody")
        return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}

    def _chown(self, *paths: Path) -> None:
        ids = self._run_as()
        if not ids:
            return
        for top in paths:
            for path in [top, *top.rglob("*")]:
                os.chown(path, ids["user"], ids["group"], follow_symlinks=False)

    def _env(self, home: Path, conf: Path, tmp: Path) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ES_", "OPENSEARCH_", "JAVA_"))}
        major = int(self.version.split(".")[0])
        jdk = str(java_home(21 if self.flavour == "elasticsearch" and major >= 9 else 17))
        opts = f"-Xms{self.heap} -Xmx{self.heap}"
        if self.flavour == "elasticsearch":
            env.update(ES_JAVA_HOME=jdk, ES_PATH_CONF=str(conf), ES_TMPDIR=str(tmp), ES_JAVA_OPTS=opts)
        else:
            env.update(OPENSEARCH_JAVA_HOME=jdk, OPENSEARCH_PATH_CONF=str(conf), OPENSEARCH_TMPDIR=str(tmp))
            env["OPENSEARCH_JAVA_OPTS"] = opts
        env["HOME"] = str(tmp)
        return env

    def _configure(self, home: Path) -> dict:
        assert self.workdir is not None
        conf, data, logs, tmp = (self.workdir / d for d in ("conf", "data", "logs", "tmp"))
        repo = self.workdir / "snapshots"
        shutil.copytree(home / "config", conf)
        for d in (data, logs, tmp, repo):
            d.mkdir()
        self.repo_path = str(repo)
        settings = {
            "cluster.name": f"wlcg-soc-test-{self.flavour}",
            "node.name": "node-1",
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": self.port,
            "transport.port": free_port(),
            "path.data": str(data),
            "path.logs": str(logs),
            "path.repo": str(repo),  # file system snapshot repositories below it
            # A nearly full disk must not turn the test cluster read-only or red.
            "cluster.routing.allocation.disk.threshold_enabled": False,
        }
        if self.flavour == "elasticsearch":
            settings.update(
                {
                    "xpack.security.enabled": True,
                    "xpack.security.http.ssl.enabled": False,
                    "xpack.security.transport.ssl.enabled": False,
                }
            )
        name = "elasticsearch.yml" if self.flavour == "elasticsearch" else "opensearch.yml"
        (conf / name).write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items()))
        # The distribution's JVM options, less heap size and file logging (relative paths).
        options = [
            line
            for line in (home / "config" / "jvm.options").read_text().splitlines()
            if not re.search(r"-Xm[sx]|Xlog|HeapDumpPath|ErrorFile|PrintGC|GCLog|loggc", line)
        ]
        (conf / "jvm.options").write_text("\n".join(options) + "\n")
        for d in (conf, data, logs, tmp, repo):
            d.chmod(0o750)
        self._chown(conf, data, logs, tmp, repo)
        return self._env(home, conf, tmp)

    def _add_users(self, home: Path, env: dict) -> None:
        """File-realm users with the distribution's own tool (it hashes the passwords)."""
        self.username, self.password = "admin", secrets.token_urlsafe(18)
        self.reader_password = secrets.token_urlsafe(18)
        tool = home / "bin" / "elasticsearch-users"
        for user, password, role in (("admin", self.password, "superuser"), ("reader", self.reader_password, "viewer")):
            env_tool = dict(env, ES_JAVA_OPTS="-Xms64m -Xmx64m")
            done = subprocess.run(
                [str(tool), "useradd", user, "-p", password, "-r", role],
                env=env_tool,
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
                **self._run_as(),
            )
            if done.returncode != 0:
                raise EngineError(f"elasticsearch-users useradd {user} failed:\n{done.stdout}{done.stderr}")

    # -- life cycle --------------------------------------------------------------

    def start(self) -> SearchNode:
        """Unpack, configure and launch; returns at once (``wait()`` for readiness)."""
        zip_path = fetch(self.flavour, self.version)
        self.started_at = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"wlcg-soc-{self.flavour}-"))
        self.workdir.chmod(0o755)  # the node's user must reach the distribution
        home = unpack(zip_path, self.workdir / "dist")
        if self.flavour == "opensearch":
            for module in opensearch_modules(zip_path, self.version).iterdir():
                if module.is_dir():
                    shutil.copytree(module, home / "modules" / module.name)
                    self._chown(home / "modules" / module.name)
        env = self._configure(home)
        if self.flavour == "elasticsearch":
            self._add_users(home, env)
        if self.security:
            from search import opensearch_security

            opensearch_security.secure(self, home, env)
        launcher = home / "bin" / self.flavour
        self.log = self.workdir / "console.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(launcher)],
                cwd=str(self.workdir / "tmp"),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends the launcher and the node
                **self._run_as(),
            )
        return self

    def auth_header(self, user: str | None = None, password: str | None = None) -> dict:
        user = user or self.username
        if not user:
            return {}
        token = base64.b64encode(f"{user}:{password or self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def call(self, method: str, path: str, body=None, user: str | None = None, password: str | None = None):
        """(status, parsed JSON or else text) of one request as the superuser (or ``user``)."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", **self.auth_header(user, password)}
        req = urllib.request.Request(f"{self.url}/{path.lstrip('/')}", data=data, method=method, headers=headers)  # noqa: S310
        # https only to a node with its own CA: verified against that CA alone.
        context = ssl.create_default_context(cafile=self.ca_path) if self.ca_path else None
        try:
            with urllib.request.urlopen(req, timeout=30, context=context) as resp:  # noqa: S310 - loopback
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        if not raw.strip():
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:  # some refusals (the security plugin's 401) are plain text
            return status, raw.decode(errors="replace")

    def wait(self, timeout: float = START_TIMEOUT) -> SearchNode:
        if self._ready:
            return self
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineError(f"{self.flavour} exited with {self.proc.returncode}:\n{self._tail()}")
            try:
                status, health = self.call("GET", "_cluster/health?wait_for_status=green&timeout=1s")
            except (OSError, ValueError):
                time.sleep(0.3)
                continue
            if status == 200 and health.get("status") == "green":
                self._ready = True
                self.ready_after = time.monotonic() - self.started_at
                return self
            time.sleep(0.3)
        raise EngineError(f"{self.flavour} not ready after {timeout:.0f}s:\n{self._tail()}")

    def _tail(self, lines: int = 40) -> str:
        texts = []
        assert self.workdir is not None
        for path in [self.log, *sorted((self.workdir / "logs").glob("*.log"))]:
            with contextlib.suppress(OSError):
                texts.append(f"== {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(texts)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        # The server JVM is in the same process group; make sure nothing of it is left.
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, onerror=_force_remove)
            self.workdir = None

    def __enter__(self) -> SearchNode:
        return self.start().wait()

    def __exit__(self, *exc) -> None:
        self.stop()


class RemoteNode:
    """A node another process started (see ``SharedNodes``): same attributes, ``call()``."""

    call = SearchNode.call
    auth_header = SearchNode.auth_header

    def __init__(self, state: dict):
        self.__dict__.update(state)

    def wait(self, timeout: float = START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                status, health = self.call("GET", "_cluster/health?wait_for_status=green&timeout=1s")
                if status == 200 and health.get("status") == "green":
                    return self
            time.sleep(0.3)
        raise EngineError(f"{self.flavour} at {self.url} not ready after {timeout:.0f}s")


SHARED_KEYS = ("flavour", "version", "url", "port", "username", "password", "reader_password", "ca_path", "repo_path")


class SharedNodes:
    """One set of nodes for every process of a test run (pytest-xdist workers share the
    run id ``PYTEST_XDIST_TESTRUNUID``): the first process that asks starts them and
    records them in a state file; the others use them; the starter stops them once no
    process uses them any more (it waits for the others at its own end)."""

    def __init__(self, flavours: tuple[str, ...], run_id: str | None):
        self.flavours = flavours
        self.me = f"{os.getpid()}"
        self.dir = None
        if run_id:
            self.dir = Path(tempfile.gettempdir()) / f"wlcg-soc-search-{run_id}"
            self.dir.mkdir(exist_ok=True)
        self.own: dict[str, SearchNode] = {}
        self.nodes: dict = {}
        self.error: Exception | None = None  # a failed start is not tried again by each test
        self._starting: threading.Thread | None = None

    @contextlib.contextmanager
    def _locked(self):
        assert self.dir is not None
        self.dir.mkdir(exist_ok=True)
        with (self.dir / "lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state_path = self.dir / "state.json"
            state = json.loads(state_path.read_text()) if state_path.is_file() else {}
            yield state
            if state:
                state_path.write_text(json.dumps(state))
            elif state_path.exists():
                state_path.unlink()

    def _start(self) -> None:
        own = {name: SearchNode(name) for name in self.flavours}
        try:
            # OpenSearch first: it launches at once, Elasticsearch adds its users before.
            for name in sorted(own, key=lambda n: n != "opensearch"):
                own[name].start()
        except BaseException:
            for node in own.values():  # nothing of a failed start stays behind
                node.stop()
            raise
        self.own = own
        self.nodes = dict(own)
        atexit.register(self._stop_own)  # a last resort if the session ends abnormally

    def _stop_own(self) -> None:
        for node in self.own.values():
            node.stop()

    def prestart(self) -> None:
        """Launch the nodes (or join those another process launched) in the background, so
        that they boot while other tests run; ``get()`` waits for them."""
        if self._starting is None and not self.nodes and self.error is None:
            self._starting = threading.Thread(target=self._prestart, name="search-nodes", daemon=True)
            self._starting.start()

    def _prestart(self) -> None:
        try:
            self._attach()
        except Exception as exc:
            self.error = exc

    def get(self, flavour: str):
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        if self.error is not None:
            raise EngineError(f"the test nodes could not start: {self.error}")
        try:
            return self._get(flavour)
        except EngineError as exc:
            self.error = exc
            raise

    def _get(self, flavour: str):
        self._attach()
        return self.nodes[flavour].wait()

    def _attach(self) -> None:
        if not self.nodes:
            if self.dir is None:
                self._start()
            else:
                with self._locked() as state:
                    if state.get("nodes"):
                        self.nodes = {n["flavour"]: RemoteNode(n) for n in state["nodes"]}
                    else:
                        self._start()
                        state["owner"] = self.me
                        state["nodes"] = [{k: getattr(n, k) for k in SHARED_KEYS} for n in self.own.values()]
                    state["users"] = sorted(set(state.get("users", [])) | {self.me})

    def release(self, patience: float = 3600.0) -> None:
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        if not self.nodes and not self.own:
            return
        if self.dir is not None:
            deadline = time.monotonic() + patience
            while True:
                with self._locked() as state:
                    state["users"] = [u for u in state.get("users", []) if u != self.me]
                    if not self.own or not state["users"] or time.monotonic() > deadline:
                        if self.own:
                            state.clear()  # the nodes go away: later users start new ones
                        break
                time.sleep(1)
        self._stop_own()
        if self.own and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.nodes, self.own = {}, {}


def _force_remove(func, path, _exc_info):
    with contextlib.suppress(OSError):
        os.chmod(path, stat.S_IRWXU)
        func(path)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="search.engine", description="Run a test node until interrupted.")
    parser.add_argument("flavour", choices=sorted(COORDINATES))
    parser.add_argument("--version")
    parser.add_argument("--security", action="store_true", help="OpenSearch with its security plugin (TLS, own users)")
    parser.add_argument(
        "--archive", action="store_true", help="only assemble a site-like OpenSearch tarball; print its path and SHA-1"
    )
    parser.add_argument("--fetch", action="store_true", help="only fetch and check the zip; print its path and SHA-1")
    args = parser.parse_args()
    if args.archive:
        if args.flavour != "opensearch":
            parser.error("--archive is for opensearch")
        path = opensearch_archive(args.version)
        print(json.dumps({"path": str(path), "sha1": sha1_of(path)}))
        return
    if args.fetch:
        zip_path = fetch(args.flavour, args.version or wanted_version(args.flavour))
        print(json.dumps({"path": str(zip_path), "sha1": sha1_of(zip_path)}))
        return
    node = SearchNode(args.flavour, args.version, security=args.security)
    with node:
        print(json.dumps({k: getattr(node, k) for k in SHARED_KEYS}), flush=True)
        print(f"ready after {node.ready_after:.1f}s; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
