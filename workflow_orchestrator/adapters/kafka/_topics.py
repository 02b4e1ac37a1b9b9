"""Creating the topics the service uses when they are missing (``createTopics``).

One admin client for the call: it lists the cluster's topics and creates the missing ones with
``partitions`` partitions and ``replication_factor`` replicas (``-1``: the broker's default,
Kafka 2.4+). A topic created meanwhile by another replica is fine; any other refusal (not
authorized, invalid replication factor) raises ``BrokerError`` naming the topic and the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiokafka.errors
import trio_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from workflow_orchestrator.adapters._broker_errors import BrokerError
from workflow_orchestrator.adapters.kafka._logs import (
    describe_kafka_error,
    install_kafka_log_rules,
    kafka_operation,
)

__all__ = ["ensure_topics", "missing_topics"]

_ALREADY_EXISTS = aiokafka.errors.TopicAlreadyExistsError.errno


def _new_topic(name: str, partitions: int, replication_factor: int) -> NewTopic:
    topic = NewTopic(name, partitions, max(replication_factor, 1))
    # -1 asks for the broker's default.replication.factor; NewTopic refuses it without an
    # assignment, the request does not (CreateTopics v4+, Kafka 2.4+).
    topic.replication_factor = replication_factor
    return topic


async def _create_missing(
    options: Mapping[str, Any], names: Sequence[str], partitions: int, replication_factor: int
) -> tuple[list[str], list[tuple[str, int, str]]]:
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in dict.fromkeys(names) if name not in existing]
        if not missing:
            return [], []
        response = await admin.create_topics(
            [_new_topic(name, partitions, replication_factor) for name in missing]
        )
        refused = []
        for error in response.topic_errors:
            name, code = error[0], error[1]
            message = error[2] if len(error) > 2 else None
            if code not in (0, _ALREADY_EXISTS):
                refused.append((name, code, message or ""))
        return missing, refused
    finally:
        await admin.close()


async def ensure_topics(
    options: Mapping[str, Any],
    names: Sequence[str],
    *,
    brokers: str,
    partitions: int,
    replication_factor: int = -1,
    deadline: float = 30.0,
) -> list[str]:
    """Create those of ``names`` that do not exist, within ``deadline`` seconds; the names
    created. Must run inside ``open_asyncio_bridge()``."""
    install_kafka_log_rules()
    with kafka_operation(deadline, f"creating topics {list(names)}", brokers):
        created, refused = await trio_asyncio.aio_as_trio(_create_missing)(
            options, names, partitions, replication_factor
        )
    if refused:
        described = "; ".join(
            f"'{name}': {describe_kafka_error(aiokafka.errors.for_code(code)(message))}"
            for name, code, message in refused
        )
        raise BrokerError(
            f"Kafka at {brokers} refused to create topics: {described} (create them yourself, "
            "or set eventProcessing.kafka.replicationFactor/topicPartitions to what the "
            "cluster allows)"
        )
    return list(created)


async def _list_missing(options: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    admin = AIOKafkaAdminClient(**options)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    return [name for name in dict.fromkeys(names) if name not in existing]


async def missing_topics(
    options: Mapping[str, Any], names: Sequence[str], *, brokers: str, deadline: float = 30.0
) -> list[str]:
    """Those of ``names`` the cluster does not have (one metadata request), within
    ``deadline`` seconds. Must run inside ``open_asyncio_bridge()``."""
    install_kafka_log_rules()
    with kafka_operation(deadline, f"listing the topics {list(names)}", brokers):
        missing: list[str] = await trio_asyncio.aio_as_trio(_list_missing)(options, names)
    return missing
