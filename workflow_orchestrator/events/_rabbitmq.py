"""RabbitMQ adapter: topology, batched consumption, batched acknowledgements, confirmed publishing.

aio-pika lives on the one trio-asyncio loop. Every public method crosses the Trio->asyncio bridge
once per call (a batch of acks, a batch of publications). Deliveries cross once per batch:
aio-pika's consumer callback (asyncio side) appends them to ``_Inbox``; one Trio task takes
everything waiting there in one crossing and sends it, as one tuple, into a bounded trio memory
channel (``RabbitMQConnection.deliveries``). Only the values of ``_rabbitmq_values`` leave.

Invariants:

- Nothing is acknowledged unless the caller says so (``ack``, ``dead_letter``). Closing or losing
  the connection leaves unacknowledged messages with RabbitMQ, which redelivers them.
- Memory is bounded by ``prefetch``: RabbitMQ never has more than ``prefetch`` unacknowledged
  messages out on the consuming channel. The overflow rule of the delivery channel is
  backpressure: the pump waits for the reader; nothing is ever dropped.
- A delivery tag belongs to one channel, and tags restart at 1 after a reconnection. Each
  ``Delivery`` carries its ``channel_epoch``; an ack for an older epoch is never sent (it would
  close the new channel with PRECONDITION_FAILED): RabbitMQ redelivers those messages instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from typing import Any

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import aiormq.abc
import aiormq.exceptions
import attrs
import trio
import trio_asyncio
from yarl import URL

from workflow_orchestrator.config import RabbitMQSettings
from workflow_orchestrator.events._rabbitmq_errors import (
    BrokerUnavailable,
    PublishFailed,
    TopologyConflict,
)
from workflow_orchestrator.events._rabbitmq_values import (
    BrokerState,
    Delivery,
    OutgoingMessage,
    RabbitMQStatistics,
    RabbitMQTopology,
    plain_headers,
)

__all__ = ["RabbitMQConnection", "open_rabbitmq"]

logger = logging.getLogger(__name__)

REJECTION_REASON_HEADER = "x-rejection-reason"
_CLOSE_TIMEOUT = 5.0
# Properties copied to the dead-letter copy of a message. ``expiration`` would let it vanish from
# the dead-letter queue and RabbitMQ refuses a ``user_id`` other than the connection's user.
_COPIED_PROPERTIES = (
    "content_type",
    "content_encoding",
    "priority",
    "correlation_id",
    "reply_to",
    "message_id",
    "timestamp",
    "type",
    "app_id",
)


def _display(url: str) -> str:
    """``host:port/vhost`` of an AMQP URL, without credentials."""
    parsed = URL(url)
    vhost = parsed.path[1:] or "/"
    return f"{parsed.host}:{parsed.port or 5672}/{vhost}"


def _to_delivery(message: aio_pika.abc.AbstractIncomingMessage, epoch: int) -> Delivery:
    info = message.info()
    properties = {
        key: info.get(key)
        for key in (*_COPIED_PROPERTIES, "expiration", "user_id")
        if info.get(key) is not None
    }
    if message.delivery_mode is not None:
        properties["delivery_mode"] = int(message.delivery_mode)
    return Delivery(
        body=message.body,
        headers=plain_headers(message.headers),
        properties=properties,
        content_type=message.content_type,
        message_id=message.message_id,
        exchange=message.exchange or "",
        routing_key=message.routing_key or "",
        delivery_tag=message.delivery_tag or 0,
        redelivered=bool(message.redelivered),
        channel_epoch=epoch,
    )


@attrs.define(eq=False)
class _Inbox:
    """The asyncio side of consumption: deliveries waiting to cross, and the unacknowledged tags
    of the current consuming channel. Only touched on the asyncio loop (or synchronously)."""

    waiting: deque[Delivery] = attrs.field(factory=deque)
    arrived: asyncio.Event = attrs.field(factory=asyncio.Event)
    epoch: int = 0
    channel: aiormq.abc.AbstractChannel | None = None
    unacked: set[int] = attrs.field(factory=set)
    received: int = 0

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            channel = message.channel
        except aiormq.exceptions.ChannelInvalidStateError:
            return  # its channel closed before we saw it: RabbitMQ redelivers it
        if channel is not self.channel:
            self._begin_epoch(channel)
        tag = message.delivery_tag or 0
        self.unacked.add(tag)
        self.received += 1
        self.waiting.append(_to_delivery(message, self.epoch))
        self.arrived.set()

    def _begin_epoch(self, channel: aiormq.abc.AbstractChannel) -> None:
        self.epoch += 1
        self.channel = channel
        self.unacked.clear()
        if self.waiting:
            logger.info(
                "dropping %d deliveries of a closed channel; RabbitMQ redelivers them",
                len(self.waiting),
            )
            self.waiting.clear()

    def current_channel(self, epoch: int) -> aiormq.abc.AbstractChannel | None:
        """The open channel of ``epoch``, or None when it is gone (or superseded)."""
        if epoch != self.epoch or self.channel is None or self.channel.is_closed:
            return None
        return self.channel

    async def take(self, limit: int) -> tuple[Delivery, ...]:
        """Wait for at least one delivery, then take up to ``limit`` (no await after taking, so
        a cancelled wait loses nothing)."""
        while True:
            if self.waiting and self.current_channel(self.waiting[0].channel_epoch) is None:
                self.waiting.clear()  # its channel closed: RabbitMQ redelivers them
            if self.waiting:
                count = min(limit, len(self.waiting))
                return tuple(self.waiting.popleft() for _ in range(count))
            self.arrived.clear()
            await self.arrived.wait()

    async def ack(self, deliveries: Sequence[Delivery]) -> int:
        """Acknowledge the deliveries of the current channel: one ``multiple`` ack when they
        cover every unacknowledged tag up to the highest, else one ack each."""
        tags = sorted(
            {
                d.delivery_tag
                for d in deliveries
                if d.channel_epoch == self.epoch and d.delivery_tag in self.unacked
            }
        )
        channel = self.current_channel(self.epoch)
        if not tags or channel is None:
            return 0
        highest = tags[-1]
        contiguous = len(tags) == sum(1 for tag in self.unacked if tag <= highest)
        self.unacked.difference_update(tags)
        try:
            if contiguous:
                await channel.basic_ack(highest, multiple=True)
            else:
                for tag in tags:
                    await channel.basic_ack(tag)
        except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
            logger.info("acknowledgement not sent (%s); RabbitMQ redelivers those messages", exc)
            return 0
        return len(tags)


async def _declare(
    channel: aio_pika.abc.AbstractChannel, topology: RabbitMQTopology
) -> aio_pika.abc.AbstractQueue:
    """Declare (idempotently) the dead-letter exchange and queue, the topic exchanges and the
    consumer group's queue bound to each with ``#``."""
    queue_type = {"x-queue-type": "quorum"} if topology.quorum_queues else {}
    declaring = topology.dead_letter_exchange
    try:
        dead_letter_exchange = await channel.declare_exchange(
            declaring, aio_pika.ExchangeType.FANOUT, durable=True
        )
        declaring = topology.dead_letter_queue
        dead_letter_queue = await channel.declare_queue(
            declaring, durable=True, arguments=dict(queue_type)
        )
        await dead_letter_queue.bind(dead_letter_exchange, routing_key="#")
        exchanges = []
        for name in topology.exchanges:
            declaring = name
            exchanges.append(
                await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
            )
        declaring = topology.queue
        queue = await channel.declare_queue(
            declaring,
            durable=True,
            arguments={"x-dead-letter-exchange": topology.dead_letter_exchange, **queue_type},
        )
        for exchange in exchanges:
            await queue.bind(exchange, routing_key="#")
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise TopologyConflict(
            f"'{declaring}' exists on the broker with different properties ({exc}); delete it or "
            "change the configuration (quorum queues cannot be switched on an existing queue)",
            name=declaring,
        ) from exc
    return queue


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
    _publishing: aio_pika.abc.AbstractRobustChannel
    _inbox: _Inbox
    _operation_timeout: float
    _exchanges: dict[str, aio_pika.abc.AbstractExchange] = attrs.field(factory=dict)
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
            or self._publishing.is_closed
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
            await self._confirm([_dead_letter_copy(delivery, reason, self.topology)])
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

        Raises ``PublishFailed`` naming the exchange when the broker refuses one (nack, unknown
        exchange), ``BrokerUnavailable`` naming the exchanges when the confirms do not arrive
        within the operation timeout (broker unreachable). Either way some messages may have
        been kept: publish the batch again (consumers deduplicate).
        """
        if not messages:
            return
        names = sorted({m.exchange for m in messages})
        with self._bounded(f"publishing {len(messages)} messages to exchange(s) {names}"):
            await trio_asyncio.aio_as_trio(self._confirm)(messages)
        self._published += len(messages)

    async def _confirm(self, messages: Sequence[OutgoingMessage]) -> None:
        # After a channel error (say, an unknown exchange) aio-pika reopens the channel in the
        # background and refuses to publish until then: wait for it (the caller's bound applies).
        await self._publishing.ready()
        results = await asyncio.gather(
            *(self._publish_one(message) for message in messages), return_exceptions=True
        )
        failures = [(m, r) for m, r in zip(messages, results, strict=True) if r is not None]
        if not failures:
            return
        # The most telling failure first: a refusal explains the channel errors that follow it.
        failures.sort(key=lambda f: isinstance(f[1], aiormq.exceptions.ChannelInvalidStateError))
        message, error = failures[0]
        if isinstance(error, asyncio.CancelledError):
            raise error
        if isinstance(error, aio_pika.exceptions.ChannelNotFoundEntity):
            detail = "the exchange does not exist (declare it, or fix its name)"
        elif isinstance(error, aio_pika.exceptions.DeliveryError):
            detail = "the broker refused the message (nack)"
        else:
            detail = f"{type(error).__name__}: {error}"
        raise PublishFailed(
            f"{len(failures)} of {len(messages)} messages not confirmed; exchange "
            f"'{message.exchange}' (routing key '{message.routing_key}'): {detail}",
            exchange=message.exchange,
            routing_key=message.routing_key,
        ) from (error if isinstance(error, Exception) else None)

    async def _publish_one(self, message: OutgoingMessage) -> None:
        exchange = self._exchanges.get(message.exchange)
        if exchange is None:
            exchange = await self._publishing.get_exchange(message.exchange, ensure=False)
            self._exchanges[message.exchange] = exchange
        await exchange.publish(
            aio_pika.Message(
                message.body,
                headers=message.headers,
                content_type=message.content_type,
                message_id=message.message_id,
                type=message.message_type,
                correlation_id=message.correlation_id,
                timestamp=message.timestamp,
                delivery_mode=(
                    aio_pika.DeliveryMode.PERSISTENT
                    if message.persistent
                    else aio_pika.DeliveryMode.NOT_PERSISTENT
                ),
            ),
            routing_key=message.routing_key,
            mandatory=False,
        )

    def _bounded(self, what: str) -> AbstractContextManager[None]:
        return _fail_after(self._operation_timeout, what, self.broker)

    def _on_reconnect(self, *_: Any) -> None:
        self._reconnections += 1
        logger.info("reconnected to RabbitMQ at %s", self.broker)


@contextmanager
def _fail_after(seconds: float, what: str, broker: str) -> Iterator[None]:
    """``trio.fail_after`` that turns the timeout into ``BrokerUnavailable`` naming the work."""
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError as exc:
        raise BrokerUnavailable(
            f"{what} did not finish within {seconds:g}s; is RabbitMQ at {broker} reachable?",
            broker=broker,
        ) from exc


def _dead_letter_copy(
    delivery: Delivery, reason: str, topology: RabbitMQTopology
) -> OutgoingMessage:
    return OutgoingMessage(
        exchange=topology.dead_letter_exchange,
        routing_key=delivery.routing_key,
        body=delivery.body,
        content_type=delivery.content_type,
        headers={
            **delivery.headers,
            REJECTION_REASON_HEADER: reason,
            "x-original-exchange": delivery.exchange,
            "x-original-routing-key": delivery.routing_key,
        },
        message_id=delivery.message_id,
        message_type=delivery.properties.get("type"),
        correlation_id=delivery.properties.get("correlation_id"),
        timestamp=delivery.properties.get("timestamp"),
    )


async def _pump(
    inbox: _Inbox, send: trio.MemorySendChannel[tuple[Delivery, ...]], batch_size: int
) -> None:
    async with send:
        while True:
            batch: tuple[Delivery, ...] = await trio_asyncio.aio_as_trio(inbox.take)(batch_size)
            await send.send(batch)  # backpressure: wait for the reader, never drop


async def _start(
    robust: aio_pika.abc.AbstractRobustConnection,
    topology: RabbitMQTopology,
    inbox: _Inbox,
    prefetch: int,
) -> tuple[aio_pika.abc.AbstractRobustChannel, aio_pika.abc.AbstractRobustChannel]:
    """Open both channels, declare the topology and start consuming (asyncio side).

    The topology is declared on the consuming channel so that aio-pika's robust channel, which
    restores what it declared, re-declares the queue and restores the consumer on reconnection.
    """
    consuming = await robust.channel(publisher_confirms=False)
    await consuming.set_qos(prefetch_count=prefetch)
    queue = await _declare(consuming, topology)
    publishing = await robust.channel(publisher_confirms=True)
    await queue.consume(inbox.on_message, no_ack=False)
    return consuming, publishing


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
        return "the broker refused the login (wrong user name or password)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is RabbitMQ running and listening on that host and port?)"
    if isinstance(exc, TimeoutError | trio.TooSlowError):
        return "no answer within the connect timeout"
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


@asynccontextmanager
async def open_rabbitmq(
    settings: RabbitMQSettings,
    *,
    consumer_group: str,
    quorum_queues: bool = False,
    heartbeat: float = 30.0,
    reconnect_interval: float = 2.0,
    connect_timeout: float = 10.0,
    operation_timeout: float = 30.0,
    buffered_batches: int = 2,
) -> AsyncIterator[RabbitMQConnection]:
    """Connect (robust connection), declare the topology and consume the group's queue.

    Must run inside ``open_asyncio_bridge()``. Declares idempotently: the durable topic
    exchanges ``settings.exchanges``, the durable queue ``consumer_group`` bound to each with
    ``#`` (replicas with the same group compete for its messages), and the dead-letter exchange
    and queue ``<consumer_group>.dead-letter``; ``quorum_queues`` makes both queues quorum
    queues. Deliveries arrive as batches of at most ``settings.prefetch`` on
    ``connection.deliveries``, which holds ``buffered_batches`` batches before the pump waits.

    Raises ``BrokerUnavailable`` when RabbitMQ cannot be reached within ``connect_timeout`` and
    ``TopologyConflict`` when a name exists with other properties. On exit the connection is
    closed (shielded, bounded): what was not acknowledged goes back to the queue.
    """
    broker = _display(settings.url)
    topology = RabbitMQTopology.for_group(
        settings.exchanges, consumer_group, quorum_queues=quorum_queues
    )
    inbox = _Inbox()

    async def connect() -> aio_pika.abc.AbstractRobustConnection:
        return await aio_pika.connect_robust(
            settings.url,
            heartbeat=int(heartbeat),
            reconnect_interval=reconnect_interval,
            timeout=connect_timeout,
            client_properties={"connection_name": f"workflow-orchestrator {consumer_group}"},
        )

    try:
        with trio.fail_after(connect_timeout + 1.0):
            robust = await trio_asyncio.aio_as_trio(connect)()
    except (OSError, aiormq.exceptions.AMQPError, TimeoutError, trio.TooSlowError) as exc:
        raise BrokerUnavailable(
            f"cannot connect to RabbitMQ at {broker}: {_describe(exc)}", broker=broker
        ) from exc

    try:
        with trio.fail_after(operation_timeout):
            consuming, publishing = await trio_asyncio.aio_as_trio(_start)(
                robust, topology, inbox, settings.prefetch
            )
    except trio.TooSlowError as exc:
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await trio_asyncio.aio_as_trio(robust.close)()
        raise BrokerUnavailable(
            f"declaring the topology of '{consumer_group}' on RabbitMQ at {broker} did not "
            f"finish within {operation_timeout:g}s",
            broker=broker,
        ) from exc
    except BaseException:
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await trio_asyncio.aio_as_trio(robust.close)()
        raise

    send, receive = trio.open_memory_channel[tuple[Delivery, ...]](buffered_batches)
    connection = RabbitMQConnection(
        topology=topology,
        broker=broker,
        deliveries=receive,
        connection=robust,
        consuming=consuming,
        publishing=publishing,
        inbox=inbox,
        operation_timeout=operation_timeout,
    )
    robust.reconnect_callbacks.add(connection._on_reconnect)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump, inbox, send, settings.prefetch)
            try:
                yield connection
            finally:
                nursery.cancel_scope.cancel()
    finally:
        connection._closed = True
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True) as scope:
            await trio_asyncio.aio_as_trio(robust.close)()
        if scope.cancelled_caught:
            logger.warning("RabbitMQ connection did not close within %.0fs", _CLOSE_TIMEOUT)
