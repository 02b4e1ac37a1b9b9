"""The outbox relay: publishes the rows of the transactional ``outbox`` table to the broker.

The snapshot writer inserts an outbox row (an emitted business event or a lifecycle event, as
structured-mode CloudEvent JSON) in the transaction of the snapshot that produced it. The relay
of the replica that owns the row's partition publishes it and then deletes it:

1. read up to ``batch_size`` rows of the owned partitions in ``outbox_seq`` order (one crossing);
2. publish them with one ``publisher.publish`` call, which waits for the broker's confirms;
3. delete exactly the published rows (one crossing).

``encode`` turns a row into the broker's message: by default ``outbox_message``, a RabbitMQ
message to the exchange of the row's kind; the Kafka source passes ``kafka_outbox_record``, a
record to the topic of the row's kind keyed by the instance id.

It loops at once while batches come back full, else waits for ``notify()`` (called after a
commit that added outbox rows) or ``poll_interval``, whichever comes first.

Delivery is at least once. A row is deleted only after the broker confirmed it, so a failed or
interrupted publication (broker down, a refused message, cancellation, a failed delete) leaves
the rows in the table and they are published again: consumers deduplicate by CloudEvent
``source`` + ``id``, and the ids in the rows are stable. Publication failures are retried with
exponential backoff and jitter; the WARNING is logged once per outage, not per retry, and an
INFO line when it ends.

Ordering: only the owner of a partition relays its rows (``partitions`` is asked before every
read), and every instance lives in one partition, so one relay at a time publishes an instance's
rows. A batch is published in ``outbox_seq`` order (``publish`` keeps the list order on its one
channel) and the next batch is read only after the previous one was confirmed and deleted, so
each instance's events reach each queue in the order they were committed. A retry republishes the
whole batch from its first row: a consumer may see ``1 2 3 1 2 3 4`` but never ``2`` before
``1`` once duplicates are dropped. (During a partition handover both relays may briefly publish
the same rows; that makes duplicates, not reordering after deduplication, for the same reason.)
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Literal, Protocol

import attrs
import trio

from workflow_orchestrator.adapters._broker_errors import BrokerError, PublishFailed
from workflow_orchestrator.adapters.kafka import OutgoingRecord
from workflow_orchestrator.events._cloudevents import STRUCTURED_CONTENT_TYPE
from workflow_orchestrator.events._outbox_signal import OutboxSignal
from workflow_orchestrator.events._rabbitmq import OutgoingMessage
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.retrying import backoff_step
from workflow_orchestrator.storage import CONNECTION_ERRORS, Database
from workflow_orchestrator.storage.events import (
    OutboxRow,
    count_outbox,
    dead_letter_outbox_rows,
    delete_outbox_rows,
    read_outbox,
)

__all__ = [
    "OUTBOX_EXCHANGE_KINDS",
    "OutboxRelay",
    "OutboxRelayStatistics",
    "Publisher",
    "kafka_outbox_record",
    "outbox_message",
    "publish_failure",
    "retry_delay",
]

logger = logging.getLogger(__name__)

RelayState = Literal["publishing", "retrying", "idle"]

#: The values of ``outbox.exchange`` (a CHECK constraint); ``exchanges`` maps each to a name.
OUTBOX_EXCHANGE_KINDS = ("business", "system")

# What a lost or refused database connection raises through ``Database.run`` (OSError
# includes DatabaseUnavailable); anything else (a bug, a schema mismatch) ends the relay
# instead of being retried forever.
_DATABASE_ERRORS: tuple[type[BaseException], ...] = CONNECTION_ERRORS


class Publisher(Protocol):
    """What the relay publishes with (``RabbitMQConnection``, ``KafkaProducer``): publish the
    messages ``encode`` made, in order, and return once the broker confirmed every one, else
    raise a ``BrokerError``."""

    async def publish(self, messages: Sequence[Any]) -> None: ...


@attrs.frozen(kw_only=True)
class OutboxRelayStatistics:
    """A snapshot of the relay (no I/O).

    ``published_total`` counts confirmed messages (a batch republished after a failed delete
    counts twice), ``failures_total`` failed attempts (publish or database). ``backlog`` is the
    number of rows of the last read not deleted yet: a lower bound, at most ``batch_size``;
    ``OutboxRelay.backlog()`` counts exactly.
    """

    state: RelayState
    published_total: int
    failures_total: int
    last_error: str | None
    backlog: int


def _check_exchanges(
    instance: OutboxRelay, attribute: attrs.Attribute[Any], value: Mapping[str, str]
) -> None:
    missing = [kind for kind in OUTBOX_EXCHANGE_KINDS if not value.get(kind)]
    if missing:
        raise ValueError(
            f"exchanges must name the exchange of every outbox kind; missing: {missing} "
            "(for example {'business': 'business-events', 'system': 'system-events'})"
        )


def _positive(instance: OutboxRelay, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, not {value!r}")


@attrs.define(eq=False)
class OutboxRelay:
    """Publishes the outbox rows of ``partitions()`` and deletes them once confirmed.

    ``partitions`` returns the partitions this replica holds now (for example
    ``lambda: leases.current().partitions``); it is called before every read. ``exchanges`` maps
    ``business``/``system`` to exchange names. Run ``run`` in a nursery (``nursery.start``); call
    ``notify()`` after committing outbox rows, or pass the replica's ``signal``, which the
    snapshot writer rings.
    """

    database: Database
    publisher: Publisher
    partitions: Callable[[], frozenset[int]]
    exchanges: Mapping[str, str] = attrs.field(
        factory=lambda: {"business": "business-events", "system": "system-events"},
        validator=_check_exchanges,
    )
    # The message of a row: by default ``outbox_message`` with ``exchanges`` (RabbitMQ).
    encode: Callable[[OutboxRow], Any] = attrs.field()
    batch_size: int = attrs.field(default=500, validator=_positive)
    poll_interval: float = attrs.field(default=1.0, validator=_positive)
    retry_initial: float = attrs.field(default=0.2, validator=_positive)
    retry_max: float = attrs.field(default=10.0, validator=_positive)
    rng: random.Random = attrs.field(factory=random.Random, repr=False)
    signal: OutboxSignal = attrs.field(factory=OutboxSignal, repr=False)
    metrics: ServiceMetrics | None = attrs.field(default=None, repr=False)
    _wakeup: trio.Event = attrs.field(factory=trio.Event, init=False, repr=False)
    _state: RelayState = attrs.field(default="idle", init=False)
    _published: int = attrs.field(default=0, init=False)
    _failures: int = attrs.field(default=0, init=False)
    _last_error: str | None = attrs.field(default=None, init=False)
    _backlog: int = attrs.field(default=0, init=False)
    _attempt: int = attrs.field(default=0, init=False)  # failed attempts of the current outage

    @encode.default
    def _rabbitmq_message(self) -> Callable[[OutboxRow], Any]:
        return partial(outbox_message, exchanges=self.exchanges)

    def notify(self) -> None:
        """Wake the relay now (rows were committed). Cheap and idempotent; Trio thread only."""
        self.signal.notify()

    def statistics(self) -> OutboxRelayStatistics:
        """The state and counters (no I/O)."""
        return OutboxRelayStatistics(
            state=self._state,
            published_total=self._published,
            failures_total=self._failures,
            last_error=self._last_error,
            backlog=self._backlog,
        )

    async def backlog(self) -> int:
        """The outbox rows of this replica's partitions, counted exactly (one query)."""
        owned = sorted(self.partitions())
        if not owned:
            return 0
        return await count_outbox(self.database, owned)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Relay batches until cancelled (see the module docstring). The state is
        ``publishing`` from the start until the first read found the outbox drained."""
        if not self._attempt:
            self._state = "publishing"
        task_status.started()
        while True:
            # A fresh event before reading: a notify() that arrives while this batch is in
            # flight makes the wait below return at once, so no commit waits for the poll.
            self._wakeup = self.signal.arm()
            full = await self._relay_one_batch()
            if full is None:
                await trio.sleep(self._next_delay())
                continue
            if full:
                continue
            self._state = "idle"
            with trio.move_on_after(self.poll_interval):
                await self._wakeup.wait()

    async def _relay_one_batch(self) -> bool | None:
        """Read, publish and delete one batch: True when it was full (more may be waiting),
        False when not, None when it failed (the rows stay; back off and try again)."""
        owned = sorted(self.partitions())
        if not owned:
            self._backlog = 0
            if self._attempt:
                logger.info("outbox relay: no partitions held any more; stopped retrying")
                self._attempt = 0
            return False
        if self._attempt == 0:
            self._state = "publishing"
        try:
            rows = await read_outbox(self.database, owned, self.batch_size)
        except _DATABASE_ERRORS as exc:
            self._failed(f"reading the outbox failed: {_reason(exc)}", exc)
            return None
        self._backlog = len(rows)
        if not rows:
            self._recovered(0)
            return False
        encode = self.encode
        messages = [encode(row) for row in rows]
        try:
            await self.publisher.publish(messages)
        except PublishFailed as exc:
            if exc.refused:
                return await self._dead_letter(rows, exc)
            self._failed(publish_failure(messages, exc), exc)
            return None
        except (BrokerError, OSError) as exc:
            self._failed(publish_failure(messages, exc), exc)
            return None
        self._published += len(messages)
        if self.metrics is not None:
            for destination, count in Counter(map(_destination, messages)).items():
                self.metrics.events_published.labels(destination).inc(count)
        try:
            await delete_outbox_rows(self.database, [row.outbox_seq for row in rows])
        except _DATABASE_ERRORS as exc:
            # Published but still in the table: they go out again (consumers deduplicate).
            self._failed(
                f"deleting {len(rows)} published outbox rows failed ({_reason(exc)}); "
                "they will be published again",
                exc,
            )
            return None
        self._backlog = 0
        full = len(rows) >= self.batch_size
        if self._attempt:
            waiting = len(rows) + (await self._count_quietly() if full else 0)
            self._recovered(waiting)
        return full

    async def _dead_letter(self, rows: Sequence[OutboxRow], exc: PublishFailed) -> bool | None:
        """Move the rows the broker refuses for good (``exc.refused``) to
        ``event_dead_letters``, so that they do not hold back every row behind them; the
        others are read and published again at once (a few may go out twice)."""
        refused = [rows[i] for i in exc.refused if i < len(rows)]
        reason = f"the broker refuses it for good: {exc}"
        try:
            await dead_letter_outbox_rows(self.database, [(r.outbox_seq, reason) for r in refused])
        except _DATABASE_ERRORS as error:
            self._failed(
                f"dead-lettering {len(refused)} outbox rows failed: {_reason(error)}", error
            )
            return None
        if self.metrics is not None:
            self.metrics.events_dead_lettered.labels("outbox", "").inc(len(refused))
        for row in refused:
            logger.error(
                "outbox event %s of instance %s (%s) cannot be published: %s; it was moved to "
                "event_dead_letters (source_kind 'outbox'); keep emitted and lifecycle events "
                "under the broker's message size limit",
                row.event_id,
                row.instance_id,
                row.routing_key,
                exc,
            )
        return True

    def _failed(self, what: str, exc: BaseException) -> None:
        self._failures += 1
        self._last_error = what
        self._attempt += 1
        if self._attempt == 1:
            self._state = "retrying"
            logger.warning(
                "outbox relay: %s; keeping the rows and retrying (backoff up to %gs)",
                what,
                self.retry_max,
            )
        else:
            logger.debug("outbox relay: attempt %d: %s", self._attempt, what, exc_info=exc)

    def _recovered(self, waiting: int) -> None:
        if not self._attempt:
            return
        logger.info(
            "outbox relay: publishing again after %d failed attempts; %d outbox rows were waiting",
            self._attempt,
            waiting,
        )
        self._attempt = 0
        self._state = "publishing"

    def _next_delay(self) -> float:
        return retry_delay(
            self._attempt, initial=self.retry_initial, maximum=self.retry_max, rng=self.rng
        )

    async def _count_quietly(self) -> int:
        try:
            return await self.backlog()
        except _DATABASE_ERRORS:
            return 0


def outbox_message(row: OutboxRow, exchanges: Mapping[str, str]) -> OutgoingMessage:
    """The persistent structured-mode message of an outbox row: to the exchange of its kind,
    routed and typed by its routing key, with the CloudEvent's stable ``id`` as message id."""
    return OutgoingMessage(
        exchange=exchanges[row.exchange],
        routing_key=row.routing_key,
        body=row.body.encode("utf-8"),
        content_type=STRUCTURED_CONTENT_TYPE,
        message_id=row.event_id,
        message_type=row.routing_key,
        persistent=True,
    )


def _destination(message: Any) -> str:
    """The exchange (RabbitMQ) or topic (Kafka) of a message."""
    return str(getattr(message, "exchange", None) or getattr(message, "topic", ""))


def kafka_outbox_record(row: OutboxRow, topics: Mapping[str, str]) -> OutgoingRecord:
    """The structured-mode record of an outbox row: to the topic of its kind, keyed by its
    instance id (an instance's events share a partition, so they stay in order)."""
    return OutgoingRecord(
        topic=topics[row.exchange],
        key=row.instance_id.encode("utf-8"),
        value=row.body.encode("utf-8"),
        headers=(("content-type", STRUCTURED_CONTENT_TYPE.encode()),),
    )


def publish_failure(messages: Sequence[Any], exc: BaseException) -> str:
    """What failed, for the log and ``last_error``: the exchange or topic that refused a
    message, else every one of the batch, and the reason."""
    if isinstance(exc, PublishFailed):
        destinations = [exc.destination]
    else:
        destinations = sorted({_destination(m) for m in messages})
    kind = "topic" if messages and hasattr(messages[0], "topic") else "exchange"
    named = ", ".join(f"'{name}'" for name in destinations)
    return f"publishing {len(messages)} outbox rows to {kind} {named} failed: {_reason(exc)}"


def retry_delay(attempt: int, *, initial: float, maximum: float, rng: random.Random) -> float:
    """The pause after failed attempt ``attempt``: exponential backoff with jitter, half the
    step fixed and half random (so between ``step / 2`` and ``step``)."""
    step = backoff_step(attempt, initial=initial, maximum=maximum)
    return step / 2 + rng.uniform(0, step / 2)


def _reason(exc: BaseException) -> str:
    detail = str(exc).strip()
    return detail or type(exc).__name__
