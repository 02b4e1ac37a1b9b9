"""The Kafka event source: batches of records -> parsed CloudEvents -> router -> commits.

Per batch of records (at most ``maxBatch``, from any of the assigned partitions): each record
is parsed (the CloudEvents Kafka binding, structured or binary mode); one that is not a valid
CloudEvent is dead-lettered with the parser's reason. The valid ones are routed in ONE
transaction (``_source_routing``: retried while the database is away; split when PostgreSQL
refuses one event's data, that event dead-lettered with the refusal). Only then are the
dead-letter copies produced (acknowledged by the broker, retried until they are) and the
batch's offsets committed, in one crossing each. Nothing behind a poison record stalls: it is
handled like any other, by being dead-lettered.

A crash anywhere before the commit leaves the records with Kafka, which hands them out again:
the router's deduplication (CloudEvents ``source`` + ``id``) drops what was routed already and
a poison record is dead-lettered again (at least once in the dead-letter topic).

Dead-letter records keep the original key, value and headers, and add ``x-rejection-reason``
(the reason in UTF-8, at most 4096 bytes, cut on a character boundary), ``x-original-topic``,
``x-original-partition`` and ``x-original-offset``. While the broker is away the copies are
retried without end (nothing flows anyway). A copy refused for good (over the producer's
maximum request size or the broker's message size, an invalid topic: ``PublishFailed.refused``)
is not retried; other refusals (the topic missing or not writable) are retried a few times.
Then the copy goes without the record's value and headers, with ``x-original-size`` (the bytes
left out) and ``x-value-omitted`` (the refusal), and as a last resort the record is left where
it is with an ERROR: a poison record never stalls its partition, and the original stays in its
topic for the topic's retention time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from workflow_orchestrator.adapters._broker_errors import BrokerError, PublishFailed
from workflow_orchestrator.adapters.kafka import (
    KafkaConsumer,
    KafkaProducer,
    KafkaRecord,
    OutgoingRecord,
)
from workflow_orchestrator.events._bindings import parse_kafka_record
from workflow_orchestrator.events._refusals import (
    REJECTION_REASON_HEADER,
    describe_event,
    parse_failure,
)
from workflow_orchestrator.events._routing import Router
from workflow_orchestrator.events._source_routing import route_or_refuse
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.retrying import RetryBackoff

__all__ = ["consume_kafka", "dead_letter_record"]

logger = logging.getLogger(__name__)

_RETRY_INITIAL = 0.5
_RETRY_MAX = 10.0
_REFUSED_ATTEMPTS = 5  # a refused copy is tried this often (about 10 s) before the fallback
_MAX_REASON = 4096  # bytes of the reason header (a reason may quote a long value)


def _utf8_prefix(text: str, limit: int) -> bytes:
    """``text`` in UTF-8, cut to at most ``limit`` bytes on a character boundary."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore").encode("utf-8")


def _record_size(record: KafkaRecord) -> int:
    """The bytes of ``record``'s key, value, header names and header values."""
    headers = sum(len(name.encode()) + len(value or b"") for name, value in record.headers)
    return len(record.key or b"") + len(record.value or b"") + headers


def dead_letter_record(
    record: KafkaRecord, reason: str, topic: str, *, omitted: str | None = None
) -> OutgoingRecord:
    """The copy of ``record`` for the dead-letter ``topic`` (see the module docstring); with
    ``omitted`` (why the broker refused the whole copy), without its value and headers, with
    ``x-original-size`` and ``x-value-omitted``."""
    where = (
        (REJECTION_REASON_HEADER, _utf8_prefix(reason, _MAX_REASON)),
        ("x-original-topic", record.topic.encode()),
        ("x-original-partition", str(record.partition).encode()),
        ("x-original-offset", str(record.offset).encode()),
    )
    if omitted is not None:
        return OutgoingRecord(
            topic=topic,
            key=record.key,
            value=b"",
            headers=(
                *where,
                ("x-original-size", str(_record_size(record)).encode()),
                ("x-value-omitted", _utf8_prefix(omitted, _MAX_REASON)),
            ),
        )
    headers = tuple((name, value) for name, value in record.headers if value is not None)
    return OutgoingRecord(
        topic=topic, key=record.key, value=record.value or b"", headers=(*headers, *where)
    )


async def _produce_copies(producer: KafkaProducer, copies: Sequence[OutgoingRecord]) -> None:
    """Produce ``copies``, retrying while the broker is away (``BrokerUnavailable``) without
    end, and ``_REFUSED_ATTEMPTS`` times when it refuses them (``PublishFailed``: the
    dead-letter topic unknown for now, a record too large); raises the last refusal."""
    backoff = RetryBackoff(initial=_RETRY_INITIAL, maximum=_RETRY_MAX)
    refusals = 0
    while True:
        try:
            await producer.publish(copies)
            return
        except PublishFailed as exc:
            refusals += 1
            if exc.refused or refusals >= _REFUSED_ATTEMPTS:  # refused for good: no retry
                raise
            delay = backoff.failed()
        except BrokerError as exc:
            delay = backoff.failed()
            if backoff.failures == 1:
                logger.warning(
                    "dead-lettering %d records to '%s' failed (%s); retrying, the batch is not "
                    "committed until they are",
                    len(copies),
                    copies[0].topic,
                    exc,
                )
        await trio.sleep(delay)


async def _dead_letter(
    producer: KafkaProducer,
    poison: Sequence[tuple[KafkaRecord, str, str]],
    topic: str,
    metrics: ServiceMetrics | None,
) -> None:
    """Produce the copies of ``poison`` (record, reason, event type) to ``topic`` before the
    batch is committed (see the module docstring for the copies the broker refuses)."""
    copies = [dead_letter_record(record, reason, topic) for record, reason, _ in poison]
    try:
        await _produce_copies(producer, copies)
        written = [True] * len(copies)
    except PublishFailed:
        written = [
            await _dead_letter_alone(producer, record, reason, copy)
            for (record, reason, _), copy in zip(poison, copies, strict=True)
        ]
    if metrics is not None:
        for (_, _, event_type), done in zip(poison, written, strict=True):
            if done:
                label = metrics.event_type(event_type) if event_type else ""
                metrics.events_dead_lettered.labels("kafka", label).inc()


async def _dead_letter_alone(
    producer: KafkaProducer, record: KafkaRecord, reason: str, copy: OutgoingRecord
) -> bool:
    """Dead-letter ``record`` alone: its copy, else a copy without its content; False when even
    that is refused (the record is skipped with an ERROR)."""
    try:
        await _produce_copies(producer, [copy])
        return True
    except PublishFailed as exc:
        refusal = str(exc)
    bare = dead_letter_record(record, reason, copy.topic, omitted=refusal)
    try:
        await _produce_copies(producer, [bare])
    except PublishFailed as exc:
        logger.error(
            "%s could not be dead-lettered to '%s' (%s); it stays in its topic, skipped (check "
            "that the dead-letter topic exists and that the service may write to it)",
            record.describe(),
            copy.topic,
            exc,
        )
        return False
    logger.warning(
        "%s was dead-lettered to '%s' without its value: %s",
        record.describe(),
        copy.topic,
        refusal,
    )
    return True


async def consume_kafka(
    consumer: KafkaConsumer,
    producer: KafkaProducer,
    router: Router,
    *,
    dead_letter_topic: str,
    metrics: ServiceMetrics | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Consume ``consumer.batches`` until cancelled or the consumer ends (see the module
    docstring)."""
    task_status.started()
    async for batch in consumer.batches:
        events = []
        valid: list[KafkaRecord] = []
        poison: list[tuple[KafkaRecord, str, str]] = []
        for record in batch:
            try:
                event = parse_kafka_record(record.headers, record.key, record.value)
            except Exception as exc:  # InvalidEvent, or a parser bug: never end the source
                reason = parse_failure(exc)
                logger.warning("dead-lettering %s: %s", record.describe(), reason)
                poison.append((record, reason, ""))
                continue
            events.append(event)
            valid.append(record)
        if events:
            _, refused = await route_or_refuse(
                router, events, valid, source="kafka", broker="Kafka"
            )
            for record, event, reason in refused:
                logger.warning(
                    "dead-lettering %s, %s: %s", record.describe(), describe_event(event), reason
                )
                poison.append((record, reason, event.type))
        if poison:
            await _dead_letter(producer, poison, dead_letter_topic, metrics)
        try:
            await consumer.commit(batch)
        except BrokerError as exc:
            # Not committed: Kafka hands them out again and deduplication drops them.
            logger.info("committing offsets failed (%s); the events come back as duplicates", exc)
