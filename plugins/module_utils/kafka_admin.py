# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Kafka topic through the broker's own admin tools (``TopicCommand``, ``ConfigCommand``).

Importable without Ansible. ``parse_describe`` reads ``TopicCommand --describe``'s output;
``plan`` is pure and decides what brings a topic to the wanted partitions and settings;
``*_command`` build the tools' argument vectors (run without a shell: the class path's
``libs/*`` is expanded by Java itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
CONFIG_COMMAND = "org.apache.kafka.tools.ConfigCommand"
# The admin tools are short-lived clients: a small heap.
TOOL_JVM_OPTIONS = ("-Xmx256m", "-Djava.awt.headless=true")


class KafkaAdminError(ValueError):
    """A wanted state the tools cannot reach, or output they did not explain."""


@dataclass(frozen=True)
class Topic:
    """A topic as ``TopicCommand --describe`` shows it: its settings are those that are not
    the defaults (set on the topic, or on the brokers)."""

    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """What to do: create the topic, add partitions (to ``partitions``), set ``config``;
    ``warnings`` for what the module leaves alone."""

    create: bool = False
    partitions: int | None = None
    config: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.create or self.partitions is not None or bool(self.config)


def parse_describe(text: str, name: str) -> Topic | None:
    """The topic ``name`` in ``TopicCommand --describe --if-exists`` output; None when absent.

    The summary line reads ``Topic: NAME<TAB>TopicId: ...<TAB>PartitionCount: N<TAB>
    ReplicationFactor: N<TAB>Configs: k=v,k=v``; the partitions' lines are indented."""
    for line in text.splitlines():
        if line[:1].isspace() or not line.startswith("Topic:"):
            continue
        fields: dict[str, str] = {}
        for part in line.split("\t"):
            key, sep, value = part.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if fields.get("Topic") != name:
            continue
        try:
            partitions = int(fields["PartitionCount"])
            replication = int(fields["ReplicationFactor"])
        except (KeyError, ValueError) as err:
            raise KafkaAdminError(f"cannot read the description of topic {name}: {line!r}") from err
        return Topic(name, partitions, replication, parse_configs(fields.get("Configs", "")))
    return None


def parse_configs(text: str) -> dict[str, str]:
    """``k=v,k=v`` as TopicCommand prints settings. A value with a comma (a list setting)
    continues until the next ``,key=``."""
    out: dict[str, str] = {}
    key = None
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if sep and name and all(c.isalnum() or c in "._-" for c in name):
            key = name.strip()
            out[key] = value
        elif key is not None:
            out[key] += "," + part
    return out


def plan(current: Topic | None, partitions: int, replication_factor: int, config: Mapping[str, str]) -> Plan:
    """What brings ``current`` (None: absent) to the wanted state. Refuses fewer partitions
    than the topic has (Kafka cannot remove partitions); a different replication factor is
    only reported (changing it is a partition reassignment, left to the operator)."""
    wanted = {str(k): str(v) for k, v in config.items()}
    if partitions < 1 or replication_factor < 1:
        raise KafkaAdminError("partitions and replication_factor must be at least 1")
    if current is None:
        return Plan(create=True, partitions=partitions, config=wanted)
    if partitions < current.partitions:
        raise KafkaAdminError(
            f"topic {current.name} has {current.partitions} partitions, and Kafka cannot remove partitions:"
            f" partitions ({partitions}) must be at least {current.partitions}"
        )
    warnings: tuple[str, ...] = ()
    if replication_factor != current.replication_factor:
        warnings = (
            f"topic {current.name} has replication factor {current.replication_factor}, not {replication_factor}:"
            " changing it takes a partition reassignment (kafka-reassign-partitions.sh), which this module does not do",
        )
    changes = {k: v for k, v in wanted.items() if current.config.get(k) != v}
    return Plan(partitions=partitions if partitions > current.partitions else None, config=changes, warnings=warnings)


def _java(java: str, kafka_home: str, main: str) -> list[str]:
    return [java, *TOOL_JVM_OPTIONS, "-cp", f"{kafka_home.rstrip('/')}/libs/*", main]


def _connection(bootstrap_server: str, command_config: str) -> list[str]:
    return ["--bootstrap-server", bootstrap_server, "--command-config", command_config]


def config_value(value: str) -> str:
    """A value as ConfigCommand's ``--add-config`` takes it: lists in brackets."""
    return f"[{value}]" if "," in value else value


def describe_command(java: str, kafka_home: str, bootstrap_server: str, command_config: str, name: str) -> list[str]:
    return [
        *_java(java, kafka_home, TOPIC_COMMAND),
        *_connection(bootstrap_server, command_config),
        "--describe",
        "--if-exists",
        "--topic",
        name,
    ]


def create_command(
    java: str,
    kafka_home: str,
    bootstrap_server: str,
    command_config: str,
    name: str,
    partitions: int,
    replication_factor: int,
    config: Mapping[str, str],
) -> list[str]:
    cmd = [
        *_java(java, kafka_home, TOPIC_COMMAND),
        *_connection(bootstrap_server, command_config),
        "--create",
        "--topic",
        name,
        "--partitions",
        str(partitions),
        "--replication-factor",
        str(replication_factor),
    ]
    for key, value in sorted(config.items()):
        cmd += ["--config", f"{key}={value}"]
    return cmd


def partitions_command(
    java: str, kafka_home: str, bootstrap_server: str, command_config: str, name: str, partitions: int
) -> list[str]:
    return [
        *_java(java, kafka_home, TOPIC_COMMAND),
        *_connection(bootstrap_server, command_config),
        "--alter",
        "--topic",
        name,
        "--partitions",
        str(partitions),
    ]


def config_command(
    java: str, kafka_home: str, bootstrap_server: str, command_config: str, name: str, config: Mapping[str, str]
) -> list[str]:
    pairs: Sequence[str] = [f"{k}={config_value(v)}" for k, v in sorted(config.items())]
    return [
        *_java(java, kafka_home, CONFIG_COMMAND),
        *_connection(bootstrap_server, command_config),
        "--alter",
        "--entity-type",
        "topics",
        "--entity-name",
        name,
        "--add-config",
        ",".join(pairs),
    ]
