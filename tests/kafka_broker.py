"""A real single-node Apache Kafka broker (KRaft) for the stand-ins' tests, TLS only.

The distribution comes from tests/kafka_dist.py (Apache's layout, assembled from Maven
Central), extracted once beside its tarball. The broker runs as the wlcg.soc.kafka role
configures it: one node that is broker and controller, an SSL listener for clients with
PEM stores (``ssl.keystore.type=PEM``: the PKCS#8 key and the certificate in one file, as
KIP-651 has it) and ``ssl.client.auth=required``, hostname verification, topics created by
the test only (``auto.create.topics.enable=false``). The controller listener is plaintext
on the loopback address: the tests are about the clients.

    with KafkaBroker(tmp_dir) as broker:
        broker.create_topic("wlcg-soc.zeek")
        broker.bootstrap  # "127.0.0.1:<port>"
        broker.pki        # {"ca", "server", "client", "client_crt", "client_key", "other_ca", ...}

Stopped with SIGTERM to its own process id (then SIGKILL), never by name; ``shared()``
gives the test modules of one process one broker.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

from search.engine import free_port

HERE = Path(__file__).resolve().parent


def make_pki(directory: Path) -> dict[str, Path]:
    """A CA; a broker certificate for 127.0.0.1/localhost; a client certificate; each key
    PKCS#8 in its own file and, as a Kafka PEM keystore, with its certificate in one file;
    a second CA (with a client certificate of its own) that the broker does not trust."""
    from certs import cert_pem, certificate, key_pem, subject
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    for prefix, ca_cn in (("", "wlcg-soc test CA"), ("other_", "another CA")):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = certificate(ca_cn, ca_key, subject(ca_cn), ca_key, True)
        files[f"{prefix}ca"] = cert_pem(ca)
        client_key = ec.generate_private_key(ec.SECP256R1())
        client = certificate("logstash1.example.org", client_key, subject(ca_cn), ca_key, False)
        files[f"{prefix}client_key"] = key_pem(client_key)
        files[f"{prefix}client_crt"] = cert_pem(client)
        files[f"{prefix}client"] = key_pem(client_key) + cert_pem(client) + cert_pem(ca)
        if not prefix:
            sans = (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
            server_key = ec.generate_private_key(ec.SECP256R1())
            server = certificate("localhost", server_key, subject(ca_cn), ca_key, False, sans)
            files["server"] = key_pem(server_key) + cert_pem(server) + cert_pem(ca)
            # A certificate for another name: hostname verification refuses it on 127.0.0.1.
            wrong = certificate(
                "kafka9.example.org", server_key, subject(ca_cn), ca_key, False, (x509.DNSName("kafka9"),)
            )
            files["server_wrong_name"] = key_pem(server_key) + cert_pem(wrong) + cert_pem(ca)
    out = {}
    for key, data in files.items():
        out[key] = directory / f"{key}.pem"
        out[key].write_bytes(data)
    return out


def distribution() -> Path:
    """The extracted distribution directory (``kafka_2.13-<version>``)."""
    res = subprocess.run(
        [sys.executable, str(HERE / "kafka_dist.py")], capture_output=True, text=True, check=True, timeout=1800
    )
    tarball = Path(json.loads(res.stdout)["path"])
    top = tarball.parent / tarball.name.removesuffix(".tgz")
    if not (top / "libs").is_dir():
        tmp = tarball.parent / f".extract-{os.getpid()}"
        with tarfile.open(tarball) as archive:
            archive.extractall(tmp, filter="data")
        extracted = next(tmp.iterdir())
        with contextlib.suppress(OSError):  # another worker extracted it first
            extracted.rename(top)
        shutil.rmtree(tmp, ignore_errors=True)
    return top


def _die_with_parent() -> None:
    """In the broker's process before exec: SIGTERM when the test process dies (Linux's
    PR_SET_PDEATHSIG), so that a killed test run leaves no broker behind."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


try:  # loaded here: nothing but the call itself runs between fork and exec
    _LIBC: Any = ctypes.CDLL(None).prctl and ctypes.CDLL(None)
except (OSError, AttributeError):
    _LIBC = None


_SHARED: KafkaBroker | None = None


def shared(directory: Path) -> KafkaBroker:
    """One broker for the test process (a pytest-xdist worker), started at the first call in
    ``directory`` and stopped when the process exits (or by the caller's ``stop()``): the
    test modules that use it each use topics of their own."""
    global _SHARED
    if _SHARED is None or _SHARED.proc is None or _SHARED.proc.poll() is not None:
        _SHARED = KafkaBroker(directory).start()
        atexit.register(_SHARED.stop)
    return _SHARED


class KafkaBroker:
    def __init__(self, directory: Path, server_cert: str = "server"):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pki = make_pki(directory / "pki")
        self.port, self.controller_port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.server_cert = server_cert
        self.proc: subprocess.Popen | None = None
        self.log = directory / "broker.log"

    def properties(self) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                "controller.listener.names=CONTROLLER",
                f"listeners=CLIENTS://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=CLIENTS://127.0.0.1:{self.port}",
                "listener.security.protocol.map=CLIENTS:SSL,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=CLIENTS",
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={self.pki[self.server_cert]}",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={self.pki['ca']}",
                "ssl.enabled.protocols=TLSv1.3,TLSv1.2",
                "ssl.endpoint.identification.algorithm=https",
                "ssl.client.auth=required",
                f"log.dirs={self.dir / 'data'}",
                "num.partitions=1",
                "default.replication.factor=1",
                "min.insync.replicas=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "",
            ]
        )

    def start(self) -> KafkaBroker:
        home = distribution()
        props = self.dir / "server.properties"
        props.write_text(self.properties())
        log4j = self.dir / "log4j2.properties"
        log4j.write_text(
            "appender.out.type=Console\nappender.out.name=OUT\nappender.out.layout.type=PatternLayout\n"
            "appender.out.layout.pattern=[%d] %p %m (%c)%n\nrootLogger.level=INFO\n"
            "rootLogger.appenderRef.out.ref=OUT\n"
        )
        java = ["java", "-Xms256m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
        java += [f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{home}/libs/*"]
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22]
        fmt = [*java, "kafka.tools.StorageTool", "format", "--cluster-id", cluster, "--config", str(props)]
        subprocess.run(fmt, capture_output=True, text=True, check=True, timeout=120)
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [*java, "kafka.Kafka", str(props)], stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the broker exited: {self.log.read_text()[-3000:]}")
            try:
                self.admin().close()
                break
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.5)
        return self

    def client_tls(self) -> dict[str, Any]:
        """kafka-python's settings for a client with the test CA's client certificate."""
        return {
            "bootstrap_servers": [self.bootstrap],
            "security_protocol": "SSL",
            "ssl_cafile": str(self.pki["ca"]),
            "ssl_certfile": str(self.pki["client"]),
            "ssl_keyfile": str(self.pki["client"]),
            "ssl_check_hostname": True,
        }

    def admin(self) -> Any:
        from kafka import KafkaAdminClient

        return KafkaAdminClient(**self.client_tls(), request_timeout_ms=15000)

    def retrying(self, call: Any, timeout: float = 60) -> Any:
        """``call(admin)``, again while the young broker answers with a retriable error (its
        group coordinator loading, its controller busy on a loaded CI machine)."""
        from kafka.errors import KafkaError

        deadline = time.monotonic() + timeout
        while True:
            try:
                admin = self.admin()
                try:
                    return call(admin)
                finally:
                    admin.close()
            except KafkaError as exc:
                if time.monotonic() > deadline or not getattr(exc, "retriable", True):
                    raise
                time.sleep(0.5)

    def create_topic(self, name: str, partitions: int = 1) -> None:
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        def create(admin: Any) -> None:
            with contextlib.suppress(TopicAlreadyExistsError):  # a retried request that had worked
                admin.create_topics([NewTopic(name, partitions, 1)])

        self.retrying(create)

    def committed(self, group: str) -> int:
        """The sum of a consumer group's committed offsets."""
        return self.retrying(lambda admin: sum(m.offset for m in admin.list_consumer_group_offsets(group).values()))

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
