"""The RabbitMQ connection: one robust aio-pika connection, a consuming and a publishing channel.

aio-pika lives on the one trio-asyncio loop and keeps the connection and both channels alive
(robust connection and channels, which re-declare the topology after a reconnection). Every
public method of ``RabbitMQConnection`` crosses the Trio->asyncio bridge once per call (a batch
of acks, a batch of publications); deliveries do not cross at all (``_consume``). Only the
values of ``_values`` leave. ``open_rabbitmq`` owns every task: the pump that batches deliveries
and the consumer's restarts run in its nursery, and closing is shielded and bounded.

Invariants:

- Nothing is acknowledged unless the caller says so (``ack``, ``dead_letter``). Closing or losing
  the connection leaves unacknowledged messages with RabbitMQ, which redelivers them.
- The messages of one ``publish`` call are written to the channel in list order, contiguously
  (``_publish``).
- The hot paths go below aio-pika to aiormq internals, named and checked in ``_internals``, with
  a fallback to the public APIs when one is missing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from functools import partial
from typing import Any

import aio_pika
import aio_pika.abc
import aiormq.exceptions
import attrs
import trio
import trio_asyncio

from workflow_orchestrator.adapters._broker_errors import broker_deadline
from workflow_orchestrator.config import RabbitMQSettings
from workflow_orchestrator.events._rabbitmq._consume import Consumer, Inbox, pump
from workflow_orchestrator.events._rabbitmq._errors import BrokerUnavailable
from workflow_orchestrator.events._rabbitmq._logs import (
    broker_display,
    describe_connection_error,
    install_connection_log_rules,
)
from workflow_orchestrator.events._rabbitmq._publish import Publisher, dead_letter_copy
from workflow_orchestrator.events._rabbitmq._topology import declare
from workflow_orchestrator.events._rabbitmq._values import (
    BrokerState,
    Delivery,
    OutgoingMessage,
    RabbitMQStatistics,
    RabbitMQTopology,
)
from workflow_orchestrator.retrying import RetryBackoff

__all__ = ["RabbitMQConnection", "open_rabbitmq"]

logger = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 5.0


@attrs.define(eq=False)
class RabbitMQConnection:
    """One robust connection: a consuming channel (prefetch from settings) and a publishing
    channel with publisher confirms. Made by ``open_rabbitmq`` only.

    Read batches of deliveries from ``deliveries``; acknowledge them with ``ack`` once their
    effects are durable, or ``dead_letter`` them.
    """

    topology: RabbitMQTopology
    broker: str
    deliveries: trio.MemoryReceiveChannel[tuple[Delivery, ...]]
    _connection: aio_pika.abc.AbstractRobustConnection
    _consuming: aio_pika.abc.AbstractRobustChannel
    _publisher: Publisher
    _inbox: Inbox
    _operation_timeout: float
    _closed: bool = False
    _acknowledged: int = 0
    _dead_lettered: int = 0
    _stale: int = 0
    _published: int = 0
    _reconnections: int = 0

    @property
    def state(self) -> BrokerState:
        """``connected`` when both channels are open, ``reconnecting`` while aio-pika restores
        them, ``closed`` after the block of ``open_rabbitmq`` ended (no I/O)."""
        if self._closed or self._connection.is_closed:
            return "closed"
        if (
            not self._connection.connected.is_set()
            or self._consuming.is_closed
            or self._publisher.channel.is_closed
        ):
            return "reconnecting"
        return "connected"

    def statistics(self) -> RabbitMQStatistics:
        """A snapshot of the state and counters (no I/O)."""
        return RabbitMQStatistics(
            state=self.state,
            broker=self.broker,
            unacknowledged=len(self._inbox.unacked),
            received_total=self._inbox.received,
            acknowledged_total=self._acknowledged,
            dead_lettered_total=self._dead_lettered,
            stale_total=self._stale,
            published_total=self._published,
            reconnections_total=self._reconnections,
        )

    async def ack(self, deliveries: Sequence[Delivery]) -> int:
        """Acknowledge ``deliveries`` in one crossing; returns how many acks were sent.

        Deliveries of a channel that has closed since (a reconnection) are not acknowledged:
        RabbitMQ redelivers them, flagged ``redelivered``, and the caller deduplicates them.
        Bounded by the operation timeout (``BrokerUnavailable`` when exceeded).
        """
        if not deliveries:
            return 0
        with self._bounded(f"acknowledging {len(deliveries)} deliveries"):
            sent: int = await trio_asyncio.aio_as_trio(self._inbox.ack)(deliveries)
        self._acknowledged += sent
        self._stale += len(deliveries) - sent
        return sent

    async def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        """Move ``delivery`` to the dead-letter queue with ``reason`` in the
        ``x-rejection-reason`` header, in one crossing; returns False when its channel has
        closed since (RabbitMQ redelivers it instead).

        A copy goes to the dead-letter exchange with publisher confirms, then the original is
        acknowledged: a crash in between leaves the message in both places (at least once).
        Raises ``PublishFailed`` naming the dead-letter exchange when the copy is refused.
        """

        async def unit() -> bool:
            if self._inbox.current_channel(delivery.channel_epoch) is None:
                return False
            await self._publisher.confirm([dead_letter_copy(delivery, reason, self.topology)])
            return await self._inbox.ack([delivery]) == 1

        with self._bounded(f"dead-lettering to '{self.topology.dead_letter_exchange}'"):
            done: bool = await trio_asyncio.aio_as_trio(unit)()
        if done:
            self._dead_lettered += 1
        else:
            self._stale += 1
        return done

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish ``messages`` in one crossing and wait until the broker confirmed every one.

        Order: the messages of one call are written to the publishing channel in list order,
        contiguously (no message of another call or of ``dead_letter`` comes in between), so a
        queue they are all routed to receives them in that order; an outbox relay publishing
        one batch per call keeps its per-instance order. Two concurrent calls are ordered
        between themselves only in the order they get to the channel. A failed call that is
        published again can duplicate messages; what the broker kept stays in order.

        Raises ``PublishFailed`` naming the exchange when the broker refuses one (nack, unknown
        exchange), ``BrokerUnavailable`` naming the exchanges when the confirms do not arrive
        within the operation timeout (broker unreachable). Either way some messages may have
        been kept: publish the batch again (consumers deduplicate).
        """
        if not messages:
            return
        names = sorted({m.exchange for m in messages})
        with self._bounded(f"publishing {len(messages)} messages to exchange(s) {names}"):
            await trio_asyncio.aio_as_trio(self._publisher.confirm)(messages)
        self._published += len(messages)

    def _bounded(self, what: str) -> AbstractContextManager[None]:
        return broker_deadline(
            self._operation_timeout, what, broker=self.broker, product="RabbitMQ"
        )

    def _on_reconnect(self, *_: Any) -> None:
        self._reconnections += 1
        logger.info("reconnected to RabbitMQ at %s", self.broker)


async def _start(
    robust: aio_pika.abc.AbstractRobustConnection,
    topology: RabbitMQTopology,
    consumer: Consumer,
    prefetch: int,
) -> tuple[aio_pika.abc.AbstractRobustChannel, Publisher]:
    """Open both channels, declare the topology and start consuming (asyncio side); the
    consuming channel and the publisher of the publishing one.

    The topology is declared on the consuming channel so that aio-pika's robust channel, which
    restores what it declared, re-declares the queue on reconnection before ``consumer``
    consumes again.
    """
    consuming = await robust.channel(publisher_confirms=False)
    await consuming.set_qos(prefetch_count=prefetch)
    await declare(consuming, topology)
    publishing = await robust.channel(publisher_confirms=True)
    consuming.reopen_callbacks.add(consumer.on_reopen)
    await consumer.start(consuming)
    return consuming, Publisher(channel=publishing)


@asynccontextmanager
async def open_rabbitmq(
    settings: RabbitMQSettings,
    *,
    consumer_group: str,
    consume_exchanges: Sequence[str] | None = None,
    quorum_queues: bool = False,
    heartbeat: float = 30.0,
    reconnect_interval: float = 2.0,
    connect_timeout: float = 10.0,
    operation_timeout: float = 30.0,
    buffered_batches: int = 2,
) -> AsyncIterator[RabbitMQConnection]:
    """Connect (robust connection), declare the topology and consume the group's queue.

    Must run inside ``open_asyncio_bridge()``. Declares idempotently: the durable topic
    exchanges ``settings.exchanges``, the durable queue ``consumer_group`` bound with ``#`` to
    each exchange of ``consume_exchanges`` (default: all of ``settings.exchanges``; each must be
    one of them, ``()`` binds none) and unbound from the other ones, and the dead-letter exchange
    and queue ``<consumer_group>.dead-letter``; replicas with the same group compete for the
    queue's messages. ``quorum_queues`` makes both queues quorum queues. Deliveries arrive as
    batches of at most ``settings.prefetch`` on ``connection.deliveries``, which holds
    ``buffered_batches`` batches before the pump waits.

    Raises ``ValueError`` for a ``consume_exchanges`` name not in ``settings.exchanges``,
    ``BrokerUnavailable`` when RabbitMQ cannot be reached within ``connect_timeout`` and
    ``TopologyConflict`` when a name exists with other properties. On exit the connection is
    closed (shielded, bounded): what was not acknowledged goes back to the queue.
    """
    install_connection_log_rules()
    broker = broker_display(settings.url)
    topology = RabbitMQTopology.for_group(
        settings.exchanges,
        consumer_group,
        quorum_queues=quorum_queues,
        bindings=consume_exchanges,
    )
    inbox = Inbox()
    # Consuming again at the pace aio-pika reconnects (the exact interval, as it does).
    backoff = RetryBackoff(initial=reconnect_interval, maximum=reconnect_interval, jitter=0.0)
    consumer = Consumer(queue=topology.queue, inbox=inbox, backoff=backoff)

    async def connect() -> aio_pika.abc.AbstractRobustConnection:
        return await aio_pika.connect_robust(
            settings.url,
            heartbeat=int(heartbeat),
            reconnect_interval=reconnect_interval,
            timeout=connect_timeout,
            client_properties={"connection_name": f"workflow-orchestrator {consumer_group}"},
        )

    async def close(robust: aio_pika.abc.AbstractRobustConnection) -> None:
        consumer.close()
        await robust.close()

    try:
        with trio.fail_after(connect_timeout + 1.0):
            robust = await trio_asyncio.aio_as_trio(connect)()
    except (OSError, aiormq.exceptions.AMQPError, TimeoutError, trio.TooSlowError) as exc:
        raise BrokerUnavailable(
            f"cannot connect to RabbitMQ at {broker}: {describe_connection_error(exc)}",
            broker=broker,
        ) from exc

    try:
        with trio.fail_after(operation_timeout):
            consuming, publisher = await trio_asyncio.aio_as_trio(_start)(
                robust, topology, consumer, settings.prefetch
            )
    except trio.TooSlowError as exc:
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await trio_asyncio.aio_as_trio(close)(robust)
        raise BrokerUnavailable(
            f"declaring the topology of '{consumer_group}' on RabbitMQ at {broker} did not "
            f"finish within {operation_timeout:g}s",
            broker=broker,
        ) from exc
    except BaseException:
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await trio_asyncio.aio_as_trio(close)(robust)
        raise

    send, receive = trio.open_memory_channel[tuple[Delivery, ...]](buffered_batches)
    connection = RabbitMQConnection(
        topology=topology,
        broker=broker,
        deliveries=receive,
        connection=robust,
        consuming=consuming,
        publisher=publisher,
        inbox=inbox,
        operation_timeout=operation_timeout,
    )
    robust.reconnect_callbacks.add(connection._on_reconnect)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, inbox, send, settings.prefetch)
            await nursery.start(
                partial(consumer.run_restarts, consuming, attempt_seconds=operation_timeout)
            )
            try:
                yield connection
            finally:
                nursery.cancel_scope.cancel()
    finally:
        connection._closed = True
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True) as scope:
            await trio_asyncio.aio_as_trio(close)(robust)
        if scope.cancelled_caught:
            logger.warning("RabbitMQ connection did not close within %.0fs", _CLOSE_TIMEOUT)
