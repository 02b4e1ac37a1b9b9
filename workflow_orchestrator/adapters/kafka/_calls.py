"""Kafka for ``call: asyncapi``: clients for a server a workflow names (not the service's own
brokers), the brokers a client learned from metadata, and a reader from the end of a topic.

``call_options`` builds the aiokafka keyword arguments for one server: the bootstrap address
the caller's outbound policy allowed, TLS for ``kafka-secure``, SASL PLAIN for a user and
password or OAUTHBEARER for a token, and the size caps (a record larger than ``max_bytes``
is not produced, a fetch asks for at most ``max_bytes`` per partition).

``open_kafka_tail`` reads a topic from its end at the time of the call, without a consumer
group (nothing is committed; every tail is independent): it assigns every partition of the
topic, resolves their end offsets before it returns (so a record produced after the block
began is read) and hands out records in offset order per partition. ``learned_brokers`` lets
the caller check the brokers metadata advertised before any of them is contacted for data.
Only the values of ``_values`` leave.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiokafka
import aiokafka.errors
import attrs
import trio
import trio_asyncio
from aiokafka.abc import AbstractTokenProvider
from aiokafka.structs import TopicPartition as AioTopicPartition

from workflow_orchestrator.adapters.kafka._consumer import _stop, _to_record
from workflow_orchestrator.adapters.kafka._logs import install_kafka_log_rules, kafka_operation
from workflow_orchestrator.adapters.kafka._values import KafkaRecord
from workflow_orchestrator.errors import OrchestratorError

__all__ = [
    "KafkaTail",
    "MissingTopic",
    "call_options",
    "learned_brokers",
    "open_kafka_tail",
]

logger = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 5.0
# What a produce request carries beyond the record itself (headers, batch framing).
_REQUEST_OVERHEAD = 64 * 1024

BrokerCheck = Callable[[Sequence[tuple[str, int]]], Awaitable[None]]


class MissingTopic(OrchestratorError, LookupError):
    """The topic a tail reads does not exist."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} does not exist")
        self.topic = topic


class _Token(AbstractTokenProvider):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token


def call_options(
    bootstrap: str,
    *,
    tls: bool,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    max_bytes: int,
    request_timeout: float,
) -> dict[str, Any]:
    """The aiokafka keyword arguments of a client for one server (see the module doc);
    ``bootstrap`` is ``host:port``."""
    options: dict[str, Any] = {
        "bootstrap_servers": [bootstrap],
        "request_timeout_ms": int(request_timeout * 1000),
        "client_id": "workflow-orchestrator-asyncapi",
    }
    sasl = token is not None or user is not None
    options["security_protocol"] = ("SASL_" if sasl else "") + ("SSL" if tls else "PLAINTEXT")
    if tls:
        options["ssl_context"] = ssl.create_default_context()
    if token is not None:
        options["sasl_mechanism"] = "OAUTHBEARER"
        options["sasl_oauth_token_provider"] = _Token(token)
    elif user is not None:
        options["sasl_mechanism"] = "PLAIN"
        options["sasl_plain_username"] = user
        options["sasl_plain_password"] = password or ""
    options["_max_bytes"] = max_bytes
    return options


def learned_brokers(client: Any) -> tuple[tuple[str, int], ...]:
    """The (host, port) of every broker in a started client's metadata (a `KafkaProducer`,
    or an aiokafka consumer or producer)."""
    inner = getattr(client, "_producer", client)
    found = getattr(inner, "client", None) or getattr(inner, "_client", None)
    if found is None:
        return ()
    return tuple(sorted({(b.host, b.port) for b in found.cluster.brokers()}))


def producer_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``call_options`` for ``open_kafka_producer``."""
    out = dict(options)
    out["max_request_size"] = int(out.pop("_max_bytes")) + _REQUEST_OVERHEAD
    return out


@attrs.define(eq=False)
class KafkaTail:
    """A started tail; made by ``open_kafka_tail`` only."""

    topic: str
    brokers: str
    _consumer: aiokafka.AIOKafkaConsumer
    _poll_timeout: float
    _operation_timeout: float

    async def next_batch(self, max_records: int) -> tuple[KafkaRecord, ...]:
        """The records that arrived (at most ``max_records``), waiting up to the poll timeout
        for one; empty when none came. One crossing; ``BrokerUnavailable`` when fetching
        fails."""
        what = f"reading topic '{self.topic}'"
        with kafka_operation(self._operation_timeout + self._poll_timeout, what, self.brokers):
            fetched = await trio_asyncio.aio_as_trio(self._consumer.getmany)(
                timeout_ms=int(self._poll_timeout * 1000), max_records=max_records
            )
        return tuple(_to_record(m, 0) for messages in fetched.values() for m in messages)


async def _start(consumer: aiokafka.AIOKafkaConsumer) -> None:
    try:
        await consumer.start()
    except BaseException:
        await _stop(consumer)
        raise


async def _assign_end(consumer: aiokafka.AIOKafkaConsumer, topic: str) -> int:
    """Assign every partition of ``topic`` at its end offset; how many partitions."""
    found = consumer.partitions_for_topic(topic)
    if not found:
        await consumer.topics()  # refreshes the metadata of every topic
        found = consumer.partitions_for_topic(topic)
    if not found:
        raise MissingTopic(topic)
    partitions = [AioTopicPartition(topic, p) for p in sorted(found)]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)  # resolves the end offset now
    return len(partitions)


@asynccontextmanager
async def open_kafka_tail(
    options: Mapping[str, Any],
    *,
    brokers: str,
    topic: str,
    check_brokers: BrokerCheck,
    connect_timeout: float = 30.0,
    poll_timeout: float = 0.5,
) -> AsyncIterator[KafkaTail]:
    """Read ``topic`` from its current end for the block (see the module doc).

    Must run inside ``open_asyncio_bridge()``. ``check_brokers`` is awaited with the brokers
    metadata advertised, before any of them is asked for data (it raises to refuse them).
    Raises ``MissingTopic`` and ``BrokerUnavailable`` (not reached within
    ``connect_timeout``). The consumer is stopped at the end (shielded, bounded).
    """
    install_kafka_log_rules()
    settings = dict(options)
    max_bytes = int(settings.pop("_max_bytes"))
    consumer = aiokafka.AIOKafkaConsumer(
        **settings,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        max_partition_fetch_bytes=max_bytes,
        fetch_max_bytes=max(max_bytes, 1024 * 1024),
    )
    try:
        with kafka_operation(connect_timeout, f"reading topic '{topic}'", brokers):
            await trio_asyncio.aio_as_trio(_start)(consumer)
        await check_brokers(learned_brokers(consumer))
        with kafka_operation(connect_timeout, f"finding the end of topic '{topic}'", brokers):
            await trio_asyncio.aio_as_trio(_assign_end)(consumer, topic)
        yield KafkaTail(
            topic=topic,
            brokers=brokers,
            consumer=consumer,
            poll_timeout=poll_timeout,
            operation_timeout=connect_timeout,
        )
    finally:
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True) as scope:
            await trio_asyncio.aio_as_trio(_stop)(consumer)
        if scope.cancelled_caught:
            logger.warning(
                "the Kafka tail of '%s' did not stop within %.0fs", topic, _CLOSE_TIMEOUT
            )
