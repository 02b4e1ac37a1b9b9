"""Short Kafka operations of the test itself (aiokafka), next to the code under test: create
topics, produce records, read a whole topic, read a group's committed offsets and the end
offsets for lag checks.

Invariants:

- Each helper opens its own client and closes it before returning (also on failure), so a
  broker restart never leaves the test holding a dead client; each call is one crossing into
  asyncio.
- They run on the test task's trio-asyncio loop when one is open (``open_asyncio_bridge()``),
  else on a loop opened for the call (``on_asyncio``, also for the test's own aiokafka code).
- ``security`` (a ``ClientSecurity``) says how to connect: plaintext by default, TLS and/or
  SASL to a front of ``kafka_front.py``.
- Producers are not idempotent (tansu refuses InitProducerId) and wait for all acks.
- End offsets come from a Fetch answer's high watermark: tansu answers ListOffsets(latest)
  (aiokafka's ``end_offsets``, ``seek_to_end``) with its last batch's base offset + 1, too
  low after a producer sent several records in one batch.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

import attrs
import outcome
import trio_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge

__all__ = [
    "ClientSecurity",
    "ConsumedRecord",
    "ProducedRecord",
    "Record",
    "commit_offsets",
    "committed_offsets",
    "consume_all",
    "create_topics",
    "end_offsets",
    "group_lag",
    "on_asyncio",
    "produce",
]

T = TypeVar("T")

_REQUEST_TIMEOUT_MS = 10_000
_POLL_MS = 200


@attrs.frozen(kw_only=True)
class ClientSecurity:
    """How a client connects: TLS when ``ssl_context`` is set, SASL when ``sasl_mechanism``
    (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) is, with ``username`` and ``password``."""

    ssl_context: ssl.SSLContext | None = None
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = None

    @property
    def security_protocol(self) -> str:
        """aiokafka's ``security_protocol`` for these settings."""
        sasl = "SASL_" if self.sasl_mechanism else ""
        return f"{sasl}SSL" if self.ssl_context is not None else f"{sasl}PLAINTEXT"

    def options(self) -> dict[str, Any]:
        """Keyword arguments of aiokafka's clients (producer, consumer, admin)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        if self.sasl_mechanism:
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password,
            }
        return options


PLAINTEXT = ClientSecurity()


def _headers(value: Iterable[tuple[str, bytes]]) -> tuple[tuple[str, bytes], ...]:
    return tuple((str(name), bytes(data)) for name, data in value)


@attrs.frozen(kw_only=True)
class Record:
    """A record to produce; ``partition`` None lets the key choose it."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = attrs.field(default=(), converter=_headers)
    partition: int | None = None


@attrs.frozen(kw_only=True)
class ProducedRecord:
    """Where the broker stored a produced record."""

    topic: str
    partition: int
    offset: int


@attrs.frozen(kw_only=True)
class ConsumedRecord:
    """A record as read back from the broker."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int

    def header(self, name: str) -> bytes | None:
        """The value of the last header called ``name``, None without one."""
        found = [value for key, value in self.headers if key == name]
        return found[-1] if found else None


async def on_asyncio(work: Callable[[], Awaitable[T]]) -> T:
    """``work()`` (an asyncio coroutine function) on the test task's asyncio loop, or on one
    opened for the call; either way its exception comes out as itself, not in a group."""
    if trio_asyncio.current_loop.get() is not None:
        return cast(T, await trio_asyncio.aio_as_trio(work)())
    async with open_asyncio_bridge():
        result = await outcome.acapture(trio_asyncio.aio_as_trio(work))
    return cast(T, result.unwrap())


async def create_topics(
    bootstrap: str,
    names: Iterable[str],
    *,
    partitions: int = 1,
    security: ClientSecurity = PLAINTEXT,
) -> None:
    """Create the topics ``names`` with ``partitions`` partitions each (replication 1); an
    error the broker reports for any of them (one that exists too) is a RuntimeError."""
    topics = [NewTopic(name, partitions, 1) for name in names]

    async def work() -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=_REQUEST_TIMEOUT_MS,
            **security.options(),
        )
        try:
            await admin.start()
            response = await admin.create_topics(topics)
        finally:
            await admin.close()
        failed = [
            f"{topic}: {for_code(code).__name__} ({code})"
            for topic, code, *_ in response.topic_errors
            if code != 0
        ]
        if failed:
            raise RuntimeError(f"creating Kafka topics failed: {'; '.join(failed)}")

    await on_asyncio(work)


def _producer(bootstrap: str, security: ClientSecurity) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        request_timeout_ms=_REQUEST_TIMEOUT_MS,
        **security.options(),
    )


async def produce(
    bootstrap: str, records: Iterable[Record], *, security: ClientSecurity = PLAINTEXT
) -> list[ProducedRecord]:
    """Send ``records`` in order (one producer, all acks) and return where each was stored."""
    batch = list(records)

    async def work() -> list[ProducedRecord]:
        producer = _producer(bootstrap, security)
        try:
            await producer.start()
            pending = [
                await producer.send(
                    record.topic,
                    record.value,
                    key=record.key,
                    partition=record.partition,
                    headers=list(record.headers),
                )
                for record in batch
            ]
            stored = [await future for future in pending]
        finally:
            await producer.stop()
        return [
            ProducedRecord(topic=meta.topic, partition=meta.partition, offset=meta.offset)
            for meta in stored
        ]

    return await on_asyncio(work)


async def _partitions(
    consumer: AIOKafkaConsumer, topic: str, deadline: float
) -> list[TopicPartition] | None:
    """The partitions of ``topic``, waiting (polling metadata) until it exists or the
    asyncio-loop time ``deadline``; None if it never appeared."""
    while True:
        await consumer.topics()  # refreshes the metadata of every topic
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, partition) for partition in sorted(found)]
        if asyncio.get_running_loop().time() >= deadline:
            return None
        await asyncio.sleep(0.1)


def _consumed(message: Any) -> ConsumedRecord:
    return ConsumedRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=_headers(message.headers or ()),
        timestamp=message.timestamp,
    )


async def consume_all(
    bootstrap: str,
    topic: str,
    *,
    expect: int,
    timeout: float,  # noqa: ASYNC109 (a deadline inside one asyncio crossing)
    security: ClientSecurity = PLAINTEXT,
) -> list[ConsumedRecord]:
    """Read ``topic`` from the beginning of every partition, without a group (nothing is
    committed), until ``expect`` records arrived or ``timeout`` seconds passed; waits for the
    topic to exist meanwhile. Returns what arrived (check the count), ordered by partition and
    offset; more than ``expect`` when they came in one fetch."""

    async def work() -> list[ConsumedRecord]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=_REQUEST_TIMEOUT_MS,
            **security.options(),
        )
        got: list[ConsumedRecord] = []
        try:
            await consumer.start()
            partitions = await _partitions(consumer, topic, deadline)
            if partitions is None:
                return []
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            while len(got) < expect and loop.time() < deadline:
                wait_ms = int(max(0.0, min(_POLL_MS / 1000, deadline - loop.time())) * 1000)
                batches = await consumer.getmany(timeout_ms=wait_ms)
                got.extend(_consumed(message) for batch in batches.values() for message in batch)
        finally:
            await consumer.stop()
        return sorted(got, key=lambda record: (record.partition, record.offset))

    return await on_asyncio(work)


async def _with_group_consumer(
    bootstrap: str,
    group: str | None,
    security: ClientSecurity,
    work: Callable[[AIOKafkaConsumer], Awaitable[T]],
) -> T:
    """``work(consumer)`` with a started consumer of ``group`` that never joins it (no
    subscription), stopped afterwards."""

    async def unit() -> T:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            request_timeout_ms=_REQUEST_TIMEOUT_MS,
            **security.options(),
        )
        try:
            await consumer.start()
            return await work(consumer)
        finally:
            await consumer.stop()

    return await on_asyncio(unit)


async def _known_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    await consumer.topics()
    found = consumer.partitions_for_topic(topic)
    if not found:
        raise LookupError(f"Kafka topic {topic!r} does not exist")
    return [TopicPartition(topic, partition) for partition in sorted(found)]


async def _high_watermarks(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The end offset of each partition, from a Fetch response's high watermark.

    tansu answers ListOffsets(latest), which ``end_offsets`` sends, with the base offset of the
    partition's last batch + 1, too low when a producer sent several records in one batch; its
    Fetch high watermark is right. So this fetches from the listed end - 1 (a record of the last
    batch) and reads the high watermark of the answer."""
    listed = await consumer.end_offsets(partitions)
    ends = {partition: 0 for partition in partitions if listed[partition] <= 0}
    pending = [partition for partition in partitions if listed[partition] > 0]
    if not pending:
        return ends
    consumer.assign(pending)
    for partition in pending:
        consumer.seek(partition, listed[partition] - 1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _REQUEST_TIMEOUT_MS / 1000
    while any(consumer.highwater(partition) is None for partition in pending):
        if loop.time() >= deadline:
            raise RuntimeError(f"no Fetch answer with the high watermarks of {pending}")
        await consumer.getmany(*pending, timeout_ms=_POLL_MS)
    for partition in pending:
        ends[partition] = max(int(consumer.highwater(partition)), int(listed[partition]))
    return ends


async def committed_offsets(
    bootstrap: str, group: str, topic: str, *, security: ClientSecurity = PLAINTEXT
) -> dict[int, int]:
    """The offsets consumer group ``group`` committed for ``topic``: partition -> the next
    offset it will read; partitions without a commit are left out. LookupError when the
    topic does not exist."""

    async def work(consumer: AIOKafkaConsumer) -> dict[int, int]:
        offsets: dict[int, int] = {}
        for partition in await _known_partitions(consumer, topic):
            committed = await consumer.committed(partition)
            if committed is not None and committed >= 0:
                offsets[partition.partition] = committed
        return offsets

    return await _with_group_consumer(bootstrap, group, security, work)


async def commit_offsets(
    bootstrap: str,
    group: str,
    offsets: Mapping[tuple[str, int], int],
    *,
    security: ClientSecurity = PLAINTEXT,
) -> None:
    """Commit ``offsets`` ((topic, partition) -> next offset to read) for ``group`` as a
    consumer outside the group's generation would (the group must have no active members)."""

    async def work(consumer: AIOKafkaConsumer) -> None:
        partitions = {
            TopicPartition(topic, partition): offset
            for (topic, partition), offset in offsets.items()
        }
        consumer.assign(list(partitions))
        await consumer.commit(partitions)

    await _with_group_consumer(bootstrap, group, security, work)


async def end_offsets(
    bootstrap: str, topic: str, *, security: ClientSecurity = PLAINTEXT
) -> dict[int, int]:
    """The end offset (the next offset to be written) of each partition of ``topic``."""

    async def work(consumer: AIOKafkaConsumer) -> dict[int, int]:
        ends = await _high_watermarks(consumer, await _known_partitions(consumer, topic))
        return {partition.partition: offset for partition, offset in sorted(ends.items())}

    return await _with_group_consumer(bootstrap, None, security, work)


async def group_lag(
    bootstrap: str, group: str, topic: str, *, security: ClientSecurity = PLAINTEXT
) -> int:
    """How many records of ``topic`` consumer group ``group`` has not committed yet (a
    partition without a commit counts from its first offset)."""

    async def work(consumer: AIOKafkaConsumer) -> int:
        partitions = await _known_partitions(consumer, topic)
        starts = await consumer.beginning_offsets(partitions)
        committed_by_partition = {
            partition: await consumer.committed(partition) for partition in partitions
        }
        ends = await _high_watermarks(consumer, partitions)
        lag = 0
        for partition in partitions:
            committed = committed_by_partition[partition]
            position = committed if committed is not None and committed >= 0 else starts[partition]
            lag += max(0, ends[partition] - position)
        return lag

    return await _with_group_consumer(bootstrap, group, security, work)
