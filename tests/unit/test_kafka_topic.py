"""The kafka_topic module: its decisions (module_utils.kafka_admin, pure) and the module
through ansible-playbook against a stand-in for Kafka's admin tools (check mode, diff,
idempotence, the refusal to remove partitions). The real tools and broker are the Molecule
logstash scenario's (molecule/logstash)."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from ansible_collections.wlcg.soc.plugins.module_utils.kafka_admin import (
    KafkaAdminError,
    Topic,
    config_command,
    create_command,
    describe_command,
    parse_configs,
    parse_describe,
    plan,
)
from module_runner import run_task

DESCRIBE = (
    "Topic: wlcg-soc.zeek\tTopicId: UYnT5XM2ST6Z8x_NaTEUrQ\tPartitionCount: 3\tReplicationFactor: 1\t"
    "Configs: min.insync.replicas=1,retention.ms=3600000,retention.bytes=1000000\n"
    "\tTopic: wlcg-soc.zeek\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: \tLastKnownElr: \n"
    "\tTopic: wlcg-soc.zeek\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: \tLastKnownElr: \n"
)
CONFIG = {"retention.ms": "3600000", "retention.bytes": "1000000", "min.insync.replicas": "1"}


def test_parse_describe():
    topic = parse_describe(DESCRIBE, "wlcg-soc.zeek")
    assert topic == Topic("wlcg-soc.zeek", 3, 1, CONFIG)


def test_parse_describe_absent_and_other_topics():
    assert parse_describe("", "wlcg-soc.zeek") is None
    assert parse_describe(DESCRIBE, "wlcg-soc.zeek2") is None


def test_parse_describe_without_configs():
    text = "Topic: t\tTopicId: x\tPartitionCount: 2\tReplicationFactor: 3\tConfigs: \n"
    assert parse_describe(text, "t") == Topic("t", 2, 3, {})


def test_parse_describe_unreadable():
    with pytest.raises(KafkaAdminError, match="cannot read the description of topic t"):
        parse_describe("Topic: t\tPartitionCount: many\n", "t")


def test_parse_configs_keeps_list_values():
    assert parse_configs("cleanup.policy=compact,delete,retention.ms=1") == {
        "cleanup.policy": "compact,delete",
        "retention.ms": "1",
    }


def test_plan_creates_a_missing_topic():
    todo = plan(None, 6, 3, {"retention.ms": 1})
    assert todo.create and todo.changed
    assert todo.partitions == 6 and todo.config == {"retention.ms": "1"}


def test_plan_leaves_a_topic_as_wanted_alone():
    todo = plan(Topic("t", 3, 1, CONFIG), 3, 1, CONFIG)
    assert not todo.changed and todo.warnings == ()


def test_plan_settings_only_those_that_differ():
    current = Topic("t", 3, 1, dict(CONFIG, **{"cleanup.policy": "delete"}))
    todo = plan(current, 3, 1, dict(CONFIG, **{"retention.ms": "7200000", "compression.type": "lz4"}))
    assert todo.changed and not todo.create and todo.partitions is None
    assert todo.config == {"retention.ms": "7200000", "compression.type": "lz4"}


def test_plan_adds_partitions():
    todo = plan(Topic("t", 3, 1, CONFIG), 6, 1, CONFIG)
    assert todo.partitions == 6 and todo.config == {}


def test_plan_refuses_fewer_partitions():
    with pytest.raises(KafkaAdminError, match=r"topic t has 3 partitions.*partitions \(2\) must be at least 3"):
        plan(Topic("t", 3, 1, CONFIG), 2, 1, CONFIG)


def test_plan_reports_another_replication_factor():
    todo = plan(Topic("t", 3, 1, CONFIG), 3, 3, CONFIG)
    assert not todo.changed
    assert "replication factor 1, not 3" in todo.warnings[0]


def test_commands():
    conn = ("/usr/bin/java", "/opt/k/", "k1:9092", "/etc/kafka/admin.properties")
    describe = describe_command(*conn, "t")
    assert describe[describe.index("-cp") + 1] == "/opt/k/libs/*"
    assert describe[-4:] == ["--describe", "--if-exists", "--topic", "t"]
    assert "org.apache.kafka.tools.TopicCommand" in describe
    create = create_command(*conn, "t", 6, 3, {"retention.ms": "1", "compression.type": "lz4"})
    assert create[-8:] == [
        "--partitions",
        "6",
        "--replication-factor",
        "3",
        "--config",
        "compression.type=lz4",
        "--config",
        "retention.ms=1",
    ]
    alter = config_command(*conn, "t", {"cleanup.policy": "compact,delete", "retention.ms": "5"})
    assert "org.apache.kafka.tools.ConfigCommand" in alter
    assert alter[-1] == "cleanup.policy=[compact,delete],retention.ms=5"


# A stand-in for `java -cp ... TopicCommand|ConfigCommand`: the topics in state.json beside
# it, each call logged in calls.json.
FAKE_JAVA = r"""#!PYTHON
import json, sys
from pathlib import Path
from types import SimpleNamespace
here = Path(__file__).parent
state = json.loads((here / "state.json").read_text())
calls = json.loads((here / "calls.json").read_text()) if (here / "calls.json").exists() else []
args = sys.argv[1:]
main = next(a for a in args if a.startswith("org.apache.kafka.tools."))
rest = args[args.index(main) + 1:]
def opt(name):
    return rest[rest.index(name) + 1]
assert opt("--bootstrap-server") == "k1:9092" and opt("--command-config") == "/etc/kafka/admin.properties"
calls.append(rest[4:])
(here / "calls.json").write_text(json.dumps(calls))
if main.endswith("TopicCommand") and "--describe" in rest:
    t = state.get(opt("--topic"))
    if t:
        configs = ",".join(f"{k}={v}" for k, v in t["config"].items())
        print(f"Topic: {opt('--topic')}\tTopicId: x\tPartitionCount: {t['partitions']}\t"
              f"ReplicationFactor: {t['rf']}\tConfigs: {configs}")
elif main.endswith("TopicCommand") and "--create" in rest:
    config = dict(rest[i + 1].split("=", 1) for i, a in enumerate(rest) if a == "--config")
    state[opt("--topic")] = {"partitions": int(opt("--partitions")), "rf": int(opt("--replication-factor")),
                             "config": config}
elif main.endswith("TopicCommand") and "--alter" in rest:
    state[opt("--topic")]["partitions"] = int(opt("--partitions"))
elif main.endswith("ConfigCommand"):
    for pair in opt("--add-config").split(","):
        k, v = pair.split("=", 1)
        state[opt("--entity-name")]["config"][k] = v
else:
    sys.exit(f"unexpected: {args}")
(here / "state.json").write_text(json.dumps(state))
"""


@pytest.fixture
def kafka(tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    java = tools / "java"
    java.write_text(FAKE_JAVA.replace("PYTHON", sys.executable))
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    (tools / "state.json").write_text("{}")

    def task(**over):
        args = {
            "name": "wlcg-soc.zeek",
            "partitions": 3,
            "replication_factor": 1,
            "config": {"retention.ms": 3600000, "retention.bytes": "1000000"},
            "bootstrap_server": "k1:9092",
            "command_config": "/etc/kafka/admin.properties",
            "kafka_home": "/opt/wlcg-soc/kafka",
            "java": str(java),
        }
        args.update(over)
        return args

    def state() -> dict:
        return json.loads((tools / "state.json").read_text())

    def calls() -> list:
        path = tools / "calls.json"
        return json.loads(path.read_text()) if path.exists() else []

    return SimpleNamespace(task=task, state=state, calls=calls)


def test_module_creates_then_is_idempotent(tmp_path, kafka):
    res, out = run_task(tmp_path, "kafka_topic", kafka.task(), check=True, diff=True)
    assert res["changed"] and res["created"], out
    assert kafka.state() == {}, "check mode changed the topic"
    assert res["diff"]["before"] == {}
    assert res["diff"]["after"]["partitions"] == 3
    res, out = run_task(tmp_path, "kafka_topic", kafka.task())
    assert res["changed"] and res["created"], out
    assert kafka.state()["wlcg-soc.zeek"] == {
        "partitions": 3,
        "rf": 1,
        "config": {"retention.bytes": "1000000", "retention.ms": "3600000"},
    }
    res, out = run_task(tmp_path, "kafka_topic", kafka.task(), diff=True)
    assert not res["changed"], out
    assert res["topic"]["config"] == {"retention.bytes": "1000000", "retention.ms": "3600000"}
    assert [c[0] for c in kafka.calls()] == ["--describe", "--describe", "--create", "--describe"]


def test_module_updates_settings_and_partitions(tmp_path, kafka):
    run_task(tmp_path, "kafka_topic", kafka.task())
    wanted = kafka.task(partitions=6, config={"retention.ms": 7200000, "retention.bytes": "1000000"})
    res, out = run_task(tmp_path, "kafka_topic", wanted, check=True, diff=True)
    assert res["changed"] and res["changed_config"] == {"retention.ms": "7200000"}, out
    assert res["diff"]["before"]["partitions"] == 3 and res["diff"]["after"]["partitions"] == 6
    assert kafka.state()["wlcg-soc.zeek"]["partitions"] == 3
    res, out = run_task(tmp_path, "kafka_topic", wanted)
    assert res["changed"], out
    assert kafka.state()["wlcg-soc.zeek"]["partitions"] == 6
    assert kafka.state()["wlcg-soc.zeek"]["config"]["retention.ms"] == "7200000"
    res, out = run_task(tmp_path, "kafka_topic", wanted)
    assert not res["changed"], out


def test_module_refuses_fewer_partitions(tmp_path, kafka):
    run_task(tmp_path, "kafka_topic", kafka.task(partitions=4))
    res, out = run_task(tmp_path, "kafka_topic", kafka.task(partitions=2))
    assert res.get("failed"), out
    assert "Kafka cannot remove partitions: partitions (2) must be at least 4" in res["msg"]
    assert kafka.state()["wlcg-soc.zeek"]["partitions"] == 4


def test_module_warns_of_another_replication_factor(tmp_path, kafka):
    run_task(tmp_path, "kafka_topic", kafka.task())
    res, out = run_task(tmp_path, "kafka_topic", kafka.task(replication_factor=3))
    assert not res["changed"], out
    assert any("replication factor 1, not 3" in w for w in res.get("warnings", [])), out


def test_module_reports_a_failing_tool(tmp_path, kafka):
    res, out = run_task(tmp_path, "kafka_topic", kafka.task(bootstrap_server="other:9092"))
    assert res.get("failed"), out
    assert res["msg"].startswith("describing topic wlcg-soc.zeek failed (exit 1)"), res["msg"]


def test_documentation_renders(collections_path):
    import subprocess

    done = subprocess.run(
        ["ansible-doc", "wlcg.soc.kafka_topic"],
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ, "ANSIBLE_COLLECTIONS_PATH": collections_path},
    )
    assert done.returncode == 0, done.stderr
    assert "Partitions can only grow" in done.stdout
    assert Path(collections_path, "ansible_collections/wlcg/soc/plugins/modules/kafka_topic.py").is_file()
