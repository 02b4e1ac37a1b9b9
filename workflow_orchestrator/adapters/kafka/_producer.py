"""Producing to Kafka: a batch of records in one crossing, returned once the broker acknowledged
every one (``acks=all``).

``open_kafka_producer`` starts an aiokafka producer on the one trio-asyncio loop; the service's
outbox relay, the dead-letter copies of the event source and, later, ``call: asyncapi`` produce
through ``KafkaProducer.publish``. Only the values of ``_values`` cross in.

Idempotence: with ``idempotent`` (the default) the producer asks the broker for a producer id and
the broker drops the duplicates that the producer's own retries would make (Kafka 0.11+; the
guide asks for 3.0+). A broker that refuses the producer id (some Kafka-compatible brokers do not
implement ``InitProducerId``) is reported once as a WARNING and the producer goes on without
idempotence: a retried batch can then be written twice, and the consumers' deduplication on
CloudEvents ``source`` + ``id`` drops the copy.

Order: aiokafka sends one batch per partition at a time, so records with the same key (the same
partition) are written in ``publish`` order, also across retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiokafka
import aiokafka.errors
import attrs
import trio
import trio_asyncio

from workflow_orchestrator.adapters._broker_errors import PublishFailed
from workflow_orchestrator.adapters.kafka._logs import (
    describe_kafka_error,
    install_kafka_log_rules,
    kafka_operation,
)
from workflow_orchestrator.adapters.kafka._values import OutgoingRecord

__all__ = ["KafkaProducer", "open_kafka_producer"]

logger = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 5.0
# What producing the same record again would meet again (the client's or the broker's size
# limit, an invalid topic name): ``PublishFailed.refused`` names those records.
_REFUSED_FOR_GOOD = (
    aiokafka.errors.MessageSizeTooLargeError,
    aiokafka.errors.RecordListTooLargeError,
    aiokafka.errors.InvalidTopicError,
    aiokafka.errors.CorruptRecordException,
)
# What a broker that does not do idempotent producing answers to InitProducerId.
_NO_IDEMPOTENCE = (
    aiokafka.errors.UnknownError,
    aiokafka.errors.UnsupportedVersionError,
    aiokafka.errors.ClusterAuthorizationFailedError,
)


@attrs.define(eq=False)
class KafkaProducer:
    """A started producer; made by ``open_kafka_producer`` only."""

    brokers: str
    idempotent: bool
    _producer: aiokafka.AIOKafkaProducer
    _operation_timeout: float
    _published: int = 0

    @property
    def published_total(self) -> int:
        return self._published

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        """Produce ``records`` in one crossing and return once every one was acknowledged.

        Raises ``PublishFailed`` naming the topic of a record the broker refused (too large,
        unknown topic, not authorized) and ``BrokerUnavailable`` when the acknowledgements do
        not arrive within the operation timeout. Either way some records may have been written:
        publish the batch again (consumers deduplicate).
        """
        if not records:
            return
        topics = sorted({r.topic for r in records})
        with kafka_operation(
            self._operation_timeout, f"producing {len(records)} records to {topics}", self.brokers
        ):
            results = await trio_asyncio.aio_as_trio(_send_all)(self._producer, records)
        _raise_failures(records, results)
        self._published += len(records)


async def _send_all(
    producer: aiokafka.AIOKafkaProducer, records: Sequence[OutgoingRecord]
) -> list[BaseException | None]:
    """Append every record to the producer's batches, then wait for their acknowledgements
    (asyncio side); each record's error, None when acknowledged."""
    futures: list[asyncio.Future[Any] | BaseException] = []
    for record in records:
        try:
            futures.append(
                await producer.send(
                    record.topic, record.value, key=record.key, headers=list(record.headers)
                )
            )
        except aiokafka.errors.KafkaError as exc:  # too large, unknown topic, metadata timeout
            futures.append(exc)
    results: list[BaseException | None] = []
    for future in futures:
        if isinstance(future, BaseException):
            results.append(future)
            continue
        try:
            await future
        except aiokafka.errors.KafkaError as exc:
            results.append(exc)
        else:
            results.append(None)
    return results


def _raise_failures(
    records: Sequence[OutgoingRecord], results: Sequence[BaseException | None]
) -> None:
    failures = [(r, e) for r, e in zip(records, results, strict=True) if e is not None]
    if not failures:
        return
    refused = tuple(i for i, e in enumerate(results) if isinstance(e, _REFUSED_FOR_GOOD))
    # The most telling failure first: a refusal for good explains itself.
    record, error = next(
        ((r, e) for r, e in failures if isinstance(e, _REFUSED_FOR_GOOD)), failures[0]
    )
    raise PublishFailed(
        f"{len(failures)} of {len(records)} records not acknowledged; topic '{record.topic}': "
        f"{describe_kafka_error(error)}",
        destination=record.topic,
        routing_key=(record.key or b"").decode("utf-8", "replace"),
        refused=refused,
    ) from error


async def _start(options: Mapping[str, Any], idempotent: bool) -> aiokafka.AIOKafkaProducer:
    producer = aiokafka.AIOKafkaProducer(**options, acks="all", enable_idempotence=idempotent)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer


async def _open(
    options: Mapping[str, Any], idempotent: bool, brokers: str
) -> tuple[aiokafka.AIOKafkaProducer, bool]:
    """Start a producer (asyncio side), without idempotence when the broker refuses it."""
    if not idempotent:
        return await _start(options, False), False
    try:
        return await _start(options, True), True
    except _NO_IDEMPOTENCE as exc:  # the start waits for the producer id
        refused: BaseException = exc
    logger.warning(
        "Kafka at %s refused an idempotent producer id (%s); producing without idempotence: a "
        "retried batch may be written twice and consumers drop the copy by CloudEvents source "
        "and id (set eventProcessing.kafka.idempotentProducer: false to skip this check)",
        brokers,
        describe_kafka_error(refused),
    )
    return await _start(options, False), False


@asynccontextmanager
async def open_kafka_producer(
    options: Mapping[str, Any],
    *,
    brokers: str,
    idempotent: bool = True,
    connect_timeout: float = 30.0,
    operation_timeout: float = 30.0,
) -> AsyncIterator[KafkaProducer]:
    """Start a producer with ``options`` (``client_options``: servers, security) for the block.

    Must run inside ``open_asyncio_bridge()``. ``brokers`` names the servers in messages (no
    credentials). Raises ``BrokerUnavailable`` when Kafka cannot be reached within
    ``connect_timeout``. On exit the records still buffered are flushed (shielded, bounded).
    """
    install_kafka_log_rules()
    with kafka_operation(connect_timeout, "starting a Kafka producer", brokers):
        producer, idempotent = await trio_asyncio.aio_as_trio(_open)(options, idempotent, brokers)
    wrapper = KafkaProducer(
        brokers=brokers,
        idempotent=idempotent,
        producer=producer,
        operation_timeout=operation_timeout,
    )
    try:
        yield wrapper
    finally:
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True) as scope:
            await trio_asyncio.aio_as_trio(producer.stop)()
        if scope.cancelled_caught:
            logger.warning("the Kafka producer did not stop within %.0fs", _CLOSE_TIMEOUT)
