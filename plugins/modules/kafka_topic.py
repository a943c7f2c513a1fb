#!/usr/bin/python
# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kafka_topic
short_description: Create a Kafka topic, add partitions and keep its settings, with the broker's admin tools
version_added: 0.1.0
description:
  - Reads the topic with Kafka's own C(TopicCommand) (C(kafka-topics.sh) without the script), run
    with O(java) from the class path of the distribution in O(kafka_home), and connects with the
    client settings of O(command_config) (TLS, the node's certificate).
  - Creates a missing topic with O(partitions), O(replication_factor) and O(config). On an existing
    topic, adds partitions up to O(partitions) and sets the O(config) settings whose values differ
    (C(ConfigCommand)); settings not in O(config) are left as they are.
  - Partitions can only grow - fewer than the topic has is refused. A different replication
    factor is reported as a warning and left alone (changing it is a partition reassignment).
  - Runs the tools on the target host, which must have Java and the Kafka distribution (a node of
    the cluster, as the C(wlcg.soc.kafka) role runs it).
author:
  - WLCG SOC collection maintainers (@wlcg-soc-wg)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  name:
    description: The topic.
    type: str
    required: true
  partitions:
    description: The topic's partitions; at least as many as it has.
    type: int
    required: true
  replication_factor:
    description: Replicas of each partition, when the topic is created.
    type: int
    required: true
  config:
    description:
      - Topic settings by Kafka's names (e.g. C(retention.ms), C(retention.bytes),
        C(min.insync.replicas)); values are compared as strings.
    type: dict
    default: {}
  bootstrap_server:
    description: A broker, as C(host:port).
    type: str
    required: true
  command_config:
    description: The admin client's settings file (C(security.protocol), TLS stores) on the target host.
    type: path
    required: true
  kafka_home:
    description: The Kafka distribution on the target host (with C(libs/)).
    type: path
    required: true
  java:
    description: The Java to run the tools with (17 or later).
    type: path
    default: java
notes:
  - Each run of an admin tool starts a JVM (a second or two).
seealso:
  - name: Kafka topic-level configuration
    description: The settings a topic takes.
    link: https://kafka.apache.org/documentation/#topicconfigs
"""

EXAMPLES = r"""
- name: The Zeek topic, three days or 10 GiB per partition
  wlcg.soc.kafka_topic:
    name: wlcg-soc.zeek
    partitions: 6
    replication_factor: 3
    config:
      retention.ms: "259200000"
      retention.bytes: "10737418240"
      min.insync.replicas: "2"
    bootstrap_server: kafka01.example.org:9092
    command_config: /etc/kafka/admin.properties
    kafka_home: /opt/wlcg-soc/kafka
    java: /usr/bin/java
  run_once: true
"""

RETURN = r"""
topic:
  description: The topic as it is after the run (in check mode, as it would be).
  returned: success
  type: dict
  contains:
    name:
      description: The topic.
      type: str
    partitions:
      description: Its partitions.
      type: int
    replication_factor:
      description: Replicas of each partition.
      type: int
    config:
      description: Its settings that are not Kafka's defaults.
      type: dict
  sample:
    name: wlcg-soc.zeek
    partitions: 6
    replication_factor: 3
    config: {min.insync.replicas: "2", retention.bytes: "10737418240", retention.ms: "259200000"}
created:
  description: Whether the topic was created.
  returned: success
  type: bool
changed_config:
  description: The settings set, with their new values.
  returned: success
  type: dict
  sample: {retention.ms: "259200000"}
"""

from dataclasses import asdict
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wlcg.soc.plugins.module_utils.kafka_admin import (
    KafkaAdminError,
    Topic,
    config_command,
    create_command,
    describe_command,
    parse_describe,
    partitions_command,
    plan,
)


def _run(module: AnsibleModule, cmd: list[str], what: str) -> str:
    rc, out, err = module.run_command(cmd)
    if rc != 0:
        module.fail_json(msg=f"{what} failed (exit {rc}): {(err or out).strip()[-2000:]}", cmd=cmd)
    return out


def _state(topic: Topic | None) -> dict[str, Any]:
    return asdict(topic) if topic is not None else {}


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            partitions=dict(type="int", required=True),
            replication_factor=dict(type="int", required=True),
            config=dict(type="dict", default={}),
            bootstrap_server=dict(type="str", required=True),
            command_config=dict(type="path", required=True),
            kafka_home=dict(type="path", required=True),
            java=dict(type="path", default="java"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    conn = (p["java"], p["kafka_home"], p["bootstrap_server"], p["command_config"])
    name = p["name"]
    wanted = {str(k): str(v) for k, v in p["config"].items()}

    out = _run(module, describe_command(*conn, name), f"describing topic {name}")
    try:
        current = parse_describe(out, name)
        todo = plan(current, p["partitions"], p["replication_factor"], wanted)
    except KafkaAdminError as err:
        module.fail_json(msg=str(err))
    for warning in todo.warnings:
        module.warn(warning)

    if current is None:
        after = Topic(name, p["partitions"], p["replication_factor"], dict(sorted(wanted.items())))
    else:
        config = dict(current.config, **todo.config)
        after = Topic(
            name, todo.partitions or current.partitions, current.replication_factor, dict(sorted(config.items()))
        )

    if todo.changed and not module.check_mode:
        if todo.create:
            _run(module, create_command(*conn, name, p["partitions"], p["replication_factor"], wanted), "creating")
        else:
            if todo.partitions is not None:
                _run(module, partitions_command(*conn, name, todo.partitions), f"adding partitions to {name}")
            if todo.config:
                _run(module, config_command(*conn, name, todo.config), f"setting the config of {name}")

    result: dict[str, Any] = dict(
        changed=todo.changed,
        topic=_state(after),
        created=todo.create,
        changed_config=todo.config if not todo.create else {},
    )
    if module._diff:
        result["diff"] = dict(before=_state(current), after=_state(after))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
