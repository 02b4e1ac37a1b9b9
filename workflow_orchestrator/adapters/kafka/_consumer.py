"""Consuming as a member of a consumer group: batches of records for Trio, commits after routing.

``open_kafka_consumer`` subscribes an aiokafka consumer (auto-commit off, new groups start at the
earliest offset) on the one trio-asyncio loop. A Trio task fetches: each ``getmany`` (at most
``max_batch`` records) is one crossing, which also reads the high watermarks for the lag, and
the records go as one tuple of ``KafkaRecord`` into a bounded memory channel (``batches``). The
reader routes them and then calls ``commit`` with the same records: one crossing again.

Invariants:

- An offset is committed only by ``commit``, i.e. after its record was handled (routed in a
  committed transaction, or dead-lettered): a crash before leaves the record with Kafka, which
  hands it out again, and the router's deduplication drops what was committed already.
- Rebalances: when partitions are revoked, the offsets handled but not yet committed (a
  ``commit`` in flight or failed) are committed before the partitions go (aiokafka waits for
  the listener, at most half the session timeout: a commit the broker keeps refusing, say for
  a partition it lost, must not hold the rebalance up for ever); records still on their way
  through the router are handed out again to the new owner and deduplicated. ``commit`` only
  commits partitions assigned now, never an offset below what this member committed already.
- Order: the records of a partition arrive in offset order and the batches are handed out one
  after the other, so the events of one partition key are routed in order.
- Memory: at most ``buffered_batches`` batches wait in the channel; the fetcher waits for the
  reader (aiokafka's own prefetch buffer is bounded by its fetch sizes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import aiokafka
import aiokafka.errors
import attrs
import trio
import trio_asyncio
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition as AioTopicPartition

from workflow_orchestrator.adapters._broker_errors import BrokerUnavailable
from workflow_orchestrator.adapters.kafka._logs import (
    describe_kafka_error,
    install_kafka_log_rules,
    kafka_operation,
)
from workflow_orchestrator.adapters.kafka._values import (
    KafkaConsumerStatistics,
    KafkaRecord,
    KafkaState,
    PartitionLag,
    TopicPartition,
)

__all__ = ["KafkaConsumer", "open_kafka_consumer"]

logger = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 10.0


@attrs.define(eq=False)
class _Group(ConsumerRebalanceListener):  # type: ignore[misc]
    """The member's view of its group, kept on the asyncio side (trio-asyncio runs both sides
    on one thread; neither side awaits while changing it)."""

    consumer: aiokafka.AIOKafkaConsumer | None = None
    commit_timeout: float = 30.0  # of the commit at a revocation (the rebalance waits for it)
    assigned: frozenset[TopicPartition] = frozenset()
    committed: dict[TopicPartition, int | None] = attrs.field(factory=dict)
    handled: dict[TopicPartition, int] = attrs.field(factory=dict)  # next offsets, not committed
    ends: dict[TopicPartition, int] = attrs.field(factory=dict)
    rebalances: int = 0  # assignments so far: a record's ``generation``
    committed_total: int = 0
    joined: bool = False  # between an assignment and the next revocation

    async def on_partitions_revoked(self, revoked: Any) -> None:
        gone = {(tp.topic, tp.partition) for tp in revoked}
        pending = {tp: offset for tp, offset in self.handled.items() if tp in gone}
        if pending and self.consumer is not None:
            # aiokafka retries a retriable refusal (a partition the broker no longer knows)
            # for ever, and the rebalance waits for this listener: bounded.
            try:
                await asyncio.wait_for(self.commit_offsets(pending, gone), self.commit_timeout)
            except TimeoutError:
                logger.info(
                    "Kafka offsets of revoked partitions not committed within %gs; those "
                    "records come again and are deduplicated",
                    self.commit_timeout,
                )
        for tp in gone:
            self.handled.pop(tp, None)
            self.ends.pop(tp, None)
            self.committed.pop(tp, None)
        self.assigned = frozenset(self.assigned - gone)
        self.joined = False

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.rebalances += 1
        self.joined = True
        self.assigned = frozenset((tp.topic, tp.partition) for tp in assigned)
        self.committed.update(await self._committed_offsets(assigned))
        logger.info(
            "Kafka assigned %d partitions: %s",
            len(self.assigned),
            ", ".join(f"{t}/{p}" for t, p in sorted(self.assigned)) or "none",
        )
        fresh = sorted(tp for tp in self.assigned if self.committed.get(tp) is None)
        if fresh:
            logger.warning(
                "Kafka group has no committed offset for %s: reading from the earliest record "
                "kept; events older than eventProcessing.deduplicationWindow are routed again "
                "(expected once for a new group; otherwise the offsets expired or the group "
                "was renamed)",
                ", ".join(f"{t}/{p}" for t, p in fresh),
            )

    async def _committed_offsets(self, assigned: Any) -> dict[TopicPartition, int | None]:
        """The group's committed offsets of ``assigned`` (None: no commit yet, or the request
        failed, when the lag counts from the start of the partition): one OffsetFetch request
        through the coordinator's ``fetch_committed_offsets`` (which aiokafka's public
        ``committed`` calls with one partition at a time), else ``committed`` per partition."""
        offsets: dict[TopicPartition, int | None] = {
            (tp.topic, tp.partition): None for tp in assigned
        }
        consumer = self.consumer
        if consumer is None or not offsets:
            return offsets
        fetch = getattr(getattr(consumer, "_coordinator", None), "fetch_committed_offsets", None)
        try:
            if fetch is None:
                for tp in assigned:
                    offsets[(tp.topic, tp.partition)] = await consumer.committed(tp)
                return offsets
            found = await fetch(list(assigned))
        except aiokafka.errors.KafkaError:
            return offsets
        for tp, meta in found.items():
            offset = getattr(meta, "offset", -1)
            offsets[(tp.topic, tp.partition)] = None if offset == -1 else offset
        return offsets

    async def commit_offsets(
        self, offsets: Mapping[TopicPartition, int], allowed: frozenset[TopicPartition] | set[Any]
    ) -> int:
        """Commit ``offsets`` (next offsets to read) of the partitions in ``allowed`` that move
        forward; how many partitions were committed. A refused commit (rebalance under way,
        coordinator away) leaves them as they were: Kafka hands those records out again."""
        wanted = {
            tp: offset
            for tp, offset in offsets.items()
            if tp in allowed and offset > (self.committed.get(tp) or -1)
        }
        if not wanted or self.consumer is None:
            return 0
        try:
            await self.consumer.commit(
                {AioTopicPartition(t, p): offset for (t, p), offset in wanted.items()}
            )
        except (aiokafka.errors.KafkaError, aiokafka.errors.IllegalStateError) as exc:
            logger.info(
                "Kafka offsets not committed (%s); those records come again and are deduplicated",
                describe_kafka_error(exc),
            )
            return 0
        for tp, offset in wanted.items():
            self.committed[tp] = offset
            if self.handled.get(tp, -1) <= offset:
                self.handled.pop(tp, None)
        self.committed_total += len(wanted)
        return len(wanted)


def _to_record(message: Any, generation: int) -> KafkaRecord:
    headers = tuple((str(name), value) for name, value in (message.headers or ()))
    return KafkaRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=headers,
        timestamp=message.timestamp or 0,
        generation=generation,
    )


@attrs.define(eq=False)
class KafkaConsumer:
    """A started group member; made by ``open_kafka_consumer`` only. Read ``batches``; pass
    each batch's records to ``commit`` once they were handled."""

    brokers: str
    group_id: str
    topics: tuple[str, ...]
    batches: trio.MemoryReceiveChannel[tuple[KafkaRecord, ...]]
    _consumer: aiokafka.AIOKafkaConsumer
    _group: _Group
    _operation_timeout: float
    _received: int = 0
    _closed: bool = False

    @property
    def state(self) -> KafkaState:
        """``connecting`` until the first assignment, ``connected`` while the group coordinator
        is known and the member has its partitions, ``joining`` while the group reassigns them
        (a rebalance), ``reconnecting`` while aiokafka looks for the coordinator again (broker
        away), ``closed`` after the block ended (no I/O)."""
        if self._closed:
            return "closed"
        if self._group.rebalances == 0:  # no partitions yet (the coordinator is not known either)
            return "connecting"
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is not None and getattr(coordinator, "coordinator_id", 0) is None:
            return "reconnecting"
        return "connected" if self._group.joined else "joining"

    def statistics(self) -> KafkaConsumerStatistics:
        """A snapshot of the state, the assignment with its lag, and the counters (no I/O)."""
        group = self._group
        return KafkaConsumerStatistics(
            state=self.state,
            brokers=self.brokers,
            group=self.group_id,
            topics=self.topics,
            partitions=tuple(
                PartitionLag(
                    topic=topic,
                    partition=partition,
                    committed=group.committed.get((topic, partition)),
                    end=group.ends.get((topic, partition)),
                )
                for topic, partition in sorted(group.assigned)
            ),
            received_total=self._received,
            committed_total=group.committed_total,
            rebalances_total=group.rebalances,
        )

    async def commit(self, records: Sequence[KafkaRecord]) -> int:
        """Commit the offsets after ``records`` (handled: routed or dead-lettered) in one
        crossing; returns how many partitions were committed. Partitions no longer assigned are
        skipped (their new owner gets the records again). Raises ``BrokerUnavailable`` when the
        commit does not finish within the operation timeout."""
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = record.topic_partition
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        if not offsets:
            return 0
        group = self._group
        for tp, offset in offsets.items():  # committed at a revocation if this one fails
            if tp in group.assigned:
                group.handled[tp] = max(group.handled.get(tp, 0), offset)
        what = f"committing offsets of group '{self.group_id}'"
        with kafka_operation(self._operation_timeout, what, self.brokers):
            done: int = await trio_asyncio.aio_as_trio(group.commit_offsets)(
                offsets, group.assigned
            )
        return done

    async def _fetch(self, max_batch: int, poll_timeout: float) -> tuple[KafkaRecord, ...]:
        """One ``getmany`` and the high watermarks of the assigned partitions (asyncio side)."""
        consumer, group = self._consumer, self._group
        fetched = await consumer.getmany(timeout_ms=int(poll_timeout * 1000), max_records=max_batch)
        generation = group.rebalances
        records = tuple(
            _to_record(message, generation) for messages in fetched.values() for message in messages
        )
        for topic, partition in group.assigned:
            end = consumer.highwater(AioTopicPartition(topic, partition))
            if end is not None:
                group.ends[(topic, partition)] = end
        return records

    async def _run_fetches(
        self,
        send: trio.MemorySendChannel[tuple[KafkaRecord, ...]],
        max_batch: int,
        poll_timeout: float,
    ) -> None:
        # ``send`` is not closed when a fetch fails: the nursery then cancels the block, so its
        # reader sees the error alone, not an end of ``batches`` that looks like a normal one.
        while True:
            try:
                batch = await trio_asyncio.aio_as_trio(self._fetch)(max_batch, poll_timeout)
            except aiokafka.errors.KafkaError as exc:
                # Fatal for this member (authorization, a corrupt record): the owner
                # reconnects with a fresh consumer.
                raise BrokerUnavailable(
                    f"consuming from Kafka at {self.brokers} failed: {describe_kafka_error(exc)}",
                    broker=self.brokers,
                ) from exc
            if batch:
                self._received += len(batch)
                await send.send(batch)


async def _stop(consumer: aiokafka.AIOKafkaConsumer) -> None:
    """``consumer.stop()``, finished when aiokafka's own stop fails (asyncio side).

    aiokafka 0.14's fetcher, when closed, awaits the fetch requests it cancelled; one cancelled
    in its retry pause (the broker away) raises CancelledError out of ``stop()`` before the
    client's connections are closed. That error is not a cancellation of this task: the other
    requests are cancelled and the client closed here, and nothing escapes into Trio.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        fetcher = getattr(consumer, "_fetcher", None)
        for request in list(getattr(fetcher, "_pending_tasks", ())):
            request.cancel()
        await consumer._client.close()


async def _start(consumer: aiokafka.AIOKafkaConsumer, topics: Sequence[str], group: _Group) -> None:
    try:
        await consumer.start()
        consumer.subscribe(topics=list(topics), listener=group)
    except BaseException:
        await _stop(consumer)
        raise


@asynccontextmanager
async def open_kafka_consumer(
    options: Mapping[str, Any],
    *,
    brokers: str,
    group_id: str,
    topics: Sequence[str],
    max_batch: int = 500,
    session_timeout: float = 30.0,
    poll_timeout: float = 0.5,
    connect_timeout: float = 30.0,
    operation_timeout: float = 30.0,
    buffered_batches: int = 1,
) -> AsyncIterator[KafkaConsumer]:
    """Join ``group_id`` consuming ``topics`` with ``options`` (``client_options``) for the block.

    Must run inside ``open_asyncio_bridge()``. Raises ``BrokerUnavailable`` when Kafka cannot be
    reached within ``connect_timeout`` or when consuming fails for good (the fetch task's
    error ends the block). On exit the member leaves the group (shielded, bounded): what it did
    not commit goes to the next owner.
    """
    install_kafka_log_rules()
    # The rejoin waits for the commit at a revocation: well within the session timeout.
    group = _Group(commit_timeout=min(operation_timeout, session_timeout / 2))
    session_ms = int(session_timeout * 1000)
    consumer = aiokafka.AIOKafkaConsumer(
        **options,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(1000, session_ms // 3),
        max_poll_records=max_batch,
    )
    group.consumer = consumer
    with kafka_operation(connect_timeout, f"joining consumer group '{group_id}'", brokers):
        await trio_asyncio.aio_as_trio(_start)(consumer, topics, group)
    send, receive = trio.open_memory_channel[tuple[KafkaRecord, ...]](buffered_batches)
    wrapper = KafkaConsumer(
        brokers=brokers,
        group_id=group_id,
        topics=tuple(topics),
        batches=receive,
        consumer=consumer,
        group=group,
        operation_timeout=operation_timeout,
    )
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(wrapper._run_fetches, send, max_batch, poll_timeout))
            try:
                yield wrapper
            finally:
                nursery.cancel_scope.cancel()
    finally:
        wrapper._closed = True
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True) as scope:
            await trio_asyncio.aio_as_trio(_stop)(consumer)
        if scope.cancelled_caught:
            logger.warning("the Kafka consumer did not stop within %.0fs", _CLOSE_TIMEOUT)
