"""Verify the kafka role on ls-kafka, and nfacctd on ls-sensor writing to it (Filebeat on
ls-sensor through the broker into Logstash: test_logstash.py)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import testinfra
from conftest import default_address

BROKER = "ls-kafka:9092"
CERTS = "/etc/kafka/certs"
HOME = "/opt/wlcg-soc/kafka"
NFACCTD_TLS = "/etc/wlcg-soc/nfacctd/tls"
# What molecule.yml's inventory asks for: partitions, retention.ms, retention.bytes.
TOPICS = {
    "wlcg-soc.zeek": (3, 24 * 3600000, 104857600),
    "wlcg-soc.netflow": (3, 24 * 3600000, 104857600),
    "wlcg-soc.sflow": (3, 24 * 3600000, 104857600),
    "flows.netflow": (2, 6 * 3600000, 52428800),
    "flows.sflow": (3, 24 * 3600000, 104857600),
}
HARDENING = {
    "User": "kafka",
    "Group": "kafka",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
    "LimitNOFILE": "100000",
    "ReadWritePaths": "/var/lib/kafka/data",
}


@pytest.fixture(scope="module")
def broker():
    return testinfra.get_host("podman://ls-kafka")


@pytest.fixture(scope="module")
def flows():
    return testinfra.get_host("podman://ls-sensor")


def kcat(cert: str, key: str, ca: str) -> str:
    """kcat over TLS with a client certificate."""
    return (
        f"kcat -b {BROKER} -X security.protocol=ssl -X ssl.ca.location={ca}"
        f" -X ssl.certificate.location={cert} -X ssl.key.location={key}"
    )


BROKER_KCAT = kcat(f"{CERTS}/kafka.crt", f"{CERTS}/kafka.key", f"{CERTS}/ca.crt")
FLOWS_KCAT = kcat(f"{NFACCTD_TLS}/nfacctd.crt", f"{NFACCTD_TLS}/nfacctd.key", f"{NFACCTD_TLS}/ca.crt")


def test_systemd_is_running(host):
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), state
    failed = host.run("systemctl --failed --no-legend --plain").stdout.strip()
    assert failed == "", failed


def test_broker_runs_from_the_archive(broker):
    svc = broker.service("kafka")
    assert svc.is_running and svc.is_enabled
    link = broker.file(HOME)
    assert link.is_symlink and link.linked_to == "/opt/wlcg-soc/kafka_2.13-4.4.0"
    cmd = broker.check_output("systemctl show kafka -p ExecStart --value")
    assert f"-cp {HOME}/libs/* kafka.Kafka /etc/kafka/server.properties" in cmd, cmd
    assert "-Xmx384m" in cmd, cmd


def test_service_user_unprivileged(broker):
    user = broker.user("kafka")
    assert user.exists and user.uid < 1000 and user.shell == "/usr/sbin/nologin"
    pid = broker.check_output("systemctl show -p MainPID --value kafka")
    lines = broker.file(f"/proc/{pid}/status").content_string.splitlines()
    status = {k: v.strip() for k, v in (line.split(":", 1) for line in lines)}
    assert status["Uid"].split() == [str(user.uid)] * 4, status["Uid"]
    assert status["CapEff"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1"


def test_hardening_configured(broker):
    out = broker.check_output(f"systemctl show kafka -p {','.join(HARDENING)}")
    got = dict(line.split("=", 1) for line in out.splitlines())
    assert got == HARDENING


def test_key_material_modes(broker):
    d = broker.file(CERTS)
    assert (d.user, d.group, d.mode) == ("root", "kafka", 0o750)
    for name in ("kafka.key", "kafka-keystore.pem"):
        f = broker.file(f"{CERTS}/{name}")
        assert (f.user, f.group, f.mode) == ("root", "kafka", 0o640), name
    store = broker.file(f"{CERTS}/kafka-keystore.pem").content_string
    assert "-----BEGIN PRIVATE KEY-----" in store and "-----BEGIN CERTIFICATE-----" in store
    for name in ("server.properties", "admin.properties", "log4j2.properties"):
        f = broker.file(f"/etc/kafka/{name}")
        assert (f.user, f.group, f.mode) == ("root", "kafka", 0o640), name
        assert "# Ansible managed" in f.content_string.splitlines()[:3], name


def test_settings(broker):
    conf = broker.file("/etc/kafka/server.properties").content_string.splitlines()
    for line in (
        "process.roles=broker,controller",
        "node.id=1",
        "controller.quorum.voters=1@ls-kafka:9093",
        "listeners=CLIENTS://:9092,CONTROLLER://:9093",
        "advertised.listeners=CLIENTS://ls-kafka:9092",
        "listener.security.protocol.map=CLIENTS:SSL,CONTROLLER:SSL",
        "ssl.client.auth=required",
        "auto.create.topics.enable=false",
    ):
        assert line in conf, line
    meta = broker.file("/var/lib/kafka/data/meta.properties")
    assert meta.user == "kafka"
    assert "node.id=1" in meta.content_string.splitlines()


def test_both_listeners_are_tls(broker):
    for port in (9092, 9093):
        out = broker.run(f"openssl s_client -connect 127.0.0.1:{port} -CAfile {CERTS}/ca.crt </dev/null 2>&1")
        assert "Verify return code: 0 (ok)" in out.stdout, out.stdout
        assert "CN = ls-kafka" in out.stdout or "CN=ls-kafka" in out.stdout, out.stdout


def test_topics_exist_with_their_partitions(flows):
    meta = json.loads(flows.check_output(f"{FLOWS_KCAT} -L -J -m 30"))
    found = {t["topic"]: len(t["partitions"]) for t in meta["topics"] if not t["topic"].startswith("__")}
    assert found == {name: parts for name, (parts, _ms, _bytes) in TOPICS.items()}


@pytest.mark.parametrize("topic", list(TOPICS))
def test_topic_settings(broker, topic):
    parts, ms, size = TOPICS[topic]
    out = broker.check_output(
        f"java -cp '{HOME}/libs/*' org.apache.kafka.tools.TopicCommand --bootstrap-server {BROKER}"
        f" --command-config /etc/kafka/admin.properties --describe --topic {topic}"
    )
    summary = out.splitlines()[0].split("\t")
    fields = dict(part.split(": ", 1) for part in summary if ": " in part)
    assert fields["PartitionCount"] == str(parts)
    assert fields["ReplicationFactor"] == "1"
    configs = dict(item.split("=", 1) for item in fields["Configs"].split(","))
    assert configs["retention.ms"] == str(ms)
    assert configs["retention.bytes"] == str(size)
    assert configs["min.insync.replicas"] == "1"
    if topic == "flows.netflow":
        assert configs["compression.type"] == "lz4"


def test_client_without_certificate_refused(flows):
    res = flows.run(f"kcat -b {BROKER} -X security.protocol=ssl -X ssl.ca.location={NFACCTD_TLS}/ca.crt -L -m 10")
    assert res.rc != 0, res.stdout
    assert "wlcg-soc.zeek" not in res.stdout


def test_client_with_another_ca_refused(flows):
    flows.check_output(
        "cd /tmp && openssl req -x509 -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.crt"
        " -subj /CN=rogue -days 1 2>/dev/null"
    )
    res = flows.run(
        f"kcat -b {BROKER} -X security.protocol=ssl -X ssl.ca.location={NFACCTD_TLS}/ca.crt"
        " -X ssl.certificate.location=/tmp/rogue.crt -X ssl.key.location=/tmp/rogue.key -L -m 10"
    )
    assert res.rc != 0, res.stdout


def test_message_round_trip(flows):
    message = f"wlcg-soc-test-{uuid.uuid4()}"
    flows.check_output(f"echo {message} | {FLOWS_KCAT} -P -t wlcg-soc.zeek -k molecule")
    out = flows.check_output(f"{FLOWS_KCAT} -C -t wlcg-soc.zeek -o beginning -e -q")
    assert message in out.splitlines()


def test_nfacctd_flows_reach_the_topic(broker, flows):
    """The NetFlow records of traffic the probe beside the broker exported, in nfacctd's topic
    as pmacct's JSON."""
    collector = default_address(flows)
    exporter = default_address(broker)
    broker.check_output(f"python3 /usr/local/lib/send-traffic.py {collector}")
    deadline = time.monotonic() + 120
    while True:
        out = broker.run(f"{BROKER_KCAT} -C -t flows.netflow -o beginning -e -q").stdout
        records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        mine = [
            r
            for r in records
            if r.get("ip_src") == exporter and r.get("ip_dst") == collector and r.get("port_dst") == 40009
        ]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert mine, records
    assert sum(r["packets"] for r in mine) == 20
    assert mine[0]["peer_ip_src"] == exporter
    assert mine[0]["export_proto_version"] == 9


def test_nfacctd_kafka_settings(flows):
    conf = flows.file("/etc/wlcg-soc/nfacctd/nfacctd.conf").content_string
    for line in (
        "plugins: kafka[netflow]",
        "kafka_topic[netflow]: flows.netflow",
        "kafka_broker_host[netflow]: ls-kafka",
        "kafka_broker_port[netflow]: 9092",
    ):
        assert f"\n{line}\n" in conf, line
    key = flows.file(f"{NFACCTD_TLS}/nfacctd.key")
    assert (key.user, key.group, key.mode) == ("root", "nfacctd", 0o640)


def test_flows_collector_listens_on_every_address(flows):
    assert flows.service("nfacctd").is_running
    udp = flows.check_output("ss -H -l -n -u").splitlines()
    assert [line.split()[3] for line in udp if line.split()[3].endswith(":2055")] == ["0.0.0.0:2055"], udp
    # sFlow is off: the package's sfacctd stays masked.
    assert flows.run("systemctl is-enabled sfacctd").stdout.strip() == "masked"
    assert not flows.file("/etc/wlcg-soc/nfacctd/sfacctd.conf").exists
    assert not flows.file("/etc/wlcg-soc/nfacctd/allowed-exporters.lst").exists


def test_flows_collector_firewall(flows):
    """No allowed exporters: the NetFlow port is open to every sender, sFlow's is not."""
    for scope in ("", "--permanent "):
        ports = flows.check_output(f"firewall-cmd {scope}--zone public --list-ports").split()
        assert ports == ["2055/udp"], scope
        assert flows.check_output(f"firewall-cmd {scope}--zone public --list-rich-rules") == ""


def test_flows_collector_rdkafka_settings(flows):
    rdkafka = flows.file("/etc/wlcg-soc/nfacctd/kafka.conf")
    assert (rdkafka.user, rdkafka.group, rdkafka.mode) == ("root", "nfacctd", 0o640)
    lines = [line for line in rdkafka.content_string.splitlines() if not line.startswith("!")]
    assert lines == [
        "global, client.id, wlcg-soc-flows",
        "global, security.protocol, ssl",
        f"global, ssl.ca.location, {NFACCTD_TLS}/ca.crt",
        f"global, ssl.certificate.location, {NFACCTD_TLS}/nfacctd.crt",
        f"global, ssl.key.location, {NFACCTD_TLS}/nfacctd.key",
    ]
    # No flow files to write: the sandbox keeps the whole file system read-only.
    assert flows.check_output("systemctl show nfacctd -p ReadWritePaths --value") == ""
