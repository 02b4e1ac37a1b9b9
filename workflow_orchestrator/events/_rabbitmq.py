"""RabbitMQ adapter: topology, batched consumption, batched acknowledgements, confirmed publishing.

aio-pika lives on the one trio-asyncio loop. Every public method crosses the Trio->asyncio bridge
once per call (a batch of acks, a batch of publications). Deliveries do not cross at all: the
channel's frame reader (asyncio side) turns each ``DeliveredMessage`` into a ``Delivery``,
appends it to ``_Inbox`` and unparks the pump, a Trio task on the same thread, which takes
everything waiting there synchronously and sends it, as one tuple, into a bounded trio memory
channel (``RabbitMQConnection.deliveries``). Only the values of ``_rabbitmq_values`` leave.

aio-pika keeps the connection and both channels alive (robust connection and channels, which
re-declare the topology after a reconnection); the hot paths go below it to aiormq, where the
per-message cost of aio-pika (a coroutine, a task and a future per publication, an
``IncomingMessage`` and a task per delivery) would dominate: ``_write_batch`` writes the frames
of a whole batch of publications at once and ``_Consumer`` consumes with a plain callback and
consumes again on each channel aio-pika reopens.

Invariants:

- Nothing is acknowledged unless the caller says so (``ack``, ``dead_letter``). Closing or losing
  the connection leaves unacknowledged messages with RabbitMQ, which redelivers them.
- Memory is bounded by ``prefetch``: RabbitMQ never has more than ``prefetch`` unacknowledged
  messages out on the consuming channel. The overflow rule of the delivery channel is
  backpressure: the pump waits for the reader; nothing is ever dropped.
- A delivery tag belongs to one channel, and tags restart at 1 after a reconnection. Each
  ``Delivery`` carries its ``channel_epoch``; an ack for an older epoch is never sent (it would
  close the new channel with PRECONDITION_FAILED): RabbitMQ redelivers those messages instead.
- The messages of one ``publish`` call are written to the channel in list order, contiguously
  (the aiormq channel lock is held while they are written).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from typing import Any, cast

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import aiormq
import aiormq.abc
import aiormq.exceptions
import attrs
import trio
import trio_asyncio
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from workflow_orchestrator.config import RabbitMQSettings
from workflow_orchestrator.events._rabbitmq_errors import (
    BrokerUnavailable,
    PublishFailed,
    TopologyConflict,
)
from workflow_orchestrator.events._rabbitmq_logs import (
    broker_display,
    describe_connection_error,
    install_connection_log_rules,
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
# Messages per write to the connection's frame queue: big enough that a batch costs a few writes,
# small enough that one write does not hold the writer for long.
_WRITE_CHUNK = 256
_MAX_SHORTSTR = 255
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


def _to_delivery(message: aiormq.abc.DeliveredMessage, epoch: int) -> Delivery:
    """The plain value of one raw delivery, with the properties aio-pika's ``IncomingMessage``
    reported (``priority`` 0 and ``delivery_mode`` 1 when unset, ``expiration`` in seconds)."""
    deliver = cast(spec.Basic.Deliver, message.delivery)
    p = message.header.properties
    properties: dict[str, Any] = {
        "priority": p.priority or 0,
        "delivery_mode": p.delivery_mode or 1,
    }
    if p.content_type is not None:
        properties["content_type"] = p.content_type
    if p.content_encoding is not None:
        properties["content_encoding"] = p.content_encoding
    if p.correlation_id is not None:
        properties["correlation_id"] = p.correlation_id
    if p.reply_to is not None:
        properties["reply_to"] = p.reply_to
    if p.message_id is not None:
        properties["message_id"] = p.message_id
    if p.timestamp is not None:
        properties["timestamp"] = p.timestamp
    if p.message_type is not None:
        properties["type"] = p.message_type
    if p.app_id is not None:
        properties["app_id"] = p.app_id
    if p.expiration is not None:
        properties["expiration"] = float(p.expiration) / 1000
    if p.user_id is not None:
        properties["user_id"] = p.user_id
    return Delivery(
        body=message.body,
        headers=plain_headers(p.headers) if p.headers else {},
        properties=properties,
        content_type=p.content_type,
        message_id=p.message_id,
        exchange=deliver.exchange or "",
        routing_key=deliver.routing_key or "",
        delivery_tag=deliver.delivery_tag or 0,
        redelivered=bool(deliver.redelivered),
        channel_epoch=epoch,
    )


@attrs.define(eq=False)
class _Inbox:
    """Deliveries waiting for the pump, and the unacknowledged tags of the current consuming
    channel. Filled on the asyncio loop, emptied by the pump (Trio); trio-asyncio runs both on
    one thread and neither side awaits while changing it."""

    waiting: deque[Delivery] = attrs.field(factory=deque)
    arrived: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    epoch: int = 0
    channel: aiormq.abc.AbstractChannel | None = None
    unacked: set[int] = attrs.field(factory=set)
    received: int = 0

    async def on_message(self, message: aiormq.abc.DeliveredMessage) -> None:
        """aiormq's consumer callback (see ``_take_deliveries`` for the usual path)."""
        self.deliver(message)

    def deliver(self, message: aiormq.abc.DeliveredMessage) -> None:
        """Take one delivery (no I/O)."""
        channel = message.channel
        if channel.is_closed:
            return  # its channel closed before we saw it: RabbitMQ redelivers it
        if channel is not self.channel:
            self._begin_epoch(channel)
        delivery = _to_delivery(message, self.epoch)
        self.unacked.add(delivery.delivery_tag)
        self.received += 1
        self.waiting.append(delivery)
        if self.arrived:
            self.arrived.unpark_all()  # wakes the pump (a Trio task) without a crossing

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
        """Wait for at least one delivery, then take up to ``limit``; runs on the Trio side
        (no await after taking, so a cancelled wait loses nothing)."""
        while True:
            if self.waiting and self.current_channel(self.waiting[0].channel_epoch) is None:
                self.waiting.clear()  # its channel closed: RabbitMQ redelivers them
            if self.waiting:
                waiting = self.waiting
                if len(waiting) <= limit:
                    batch = tuple(waiting)
                    waiting.clear()
                    return batch
                return tuple(waiting.popleft() for _ in range(limit))
            await self.arrived.park()

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


def _take_deliveries(channel: aiormq.Channel, tag: str, inbox: _Inbox) -> None:
    """Hand the deliveries of consumer ``tag`` on ``channel`` to ``inbox`` straight from the
    channel's frame reader.

    aiormq runs each delivery's consumer callback as a task of its own; on trio-asyncio every
    task step and done callback is a pass of the Trio scheduler, which made them most of the cost
    of consuming. This replaces the channel's ``_on_deliver_frame`` (on this channel object only)
    with one that reads the delivery as aiormq does and calls ``inbox.deliver`` directly; other
    consumer tags go to aiormq's own. Without those aiormq internals (another aiormq version) it
    does nothing: the consumer callback registered with ``basic_consume`` receives everything.
    """
    original = getattr(channel, "_on_deliver_frame", None)
    get_frame = getattr(channel, "_get_frame", None)
    read_content = getattr(channel, "_read_content", None)
    if original is None or get_frame is None or read_content is None:
        return
    original = getattr(original, "_workflow_orchestrator_original", original)

    async def on_deliver_frame(frame: spec.Basic.Deliver) -> None:
        if frame.consumer_tag != tag:
            await original(frame)
            return
        header = await get_frame()
        if not isinstance(header, ContentHeader):
            raise ValueError(f"Unexpected frame {header!r} instead of ContentHeader", header)
        inbox.deliver(await read_content(frame, header))

    on_deliver_frame._workflow_orchestrator_original = original  # type: ignore[attr-defined]
    setattr(channel, "_on_deliver_frame", on_deliver_frame)  # noqa: B010 (a method)


@attrs.define(eq=False)
class _Consumer:
    """Consumes the group's queue with ``_Inbox.on_message`` as a raw aiormq consumer, on the
    robust consuming channel's current aiormq channel: at start, after each reopening (aio-pika
    re-declares the queue first) and after the broker cancelled the consumer (queue deleted,
    quorum leader moved). Only touched on the asyncio loop."""

    queue: str
    inbox: _Inbox
    retry_interval: float
    channel: aiormq.abc.AbstractChannel | None = None
    tag: str | None = None
    closed: bool = False
    _retrying: asyncio.Task[None] | None = None

    async def start(self, robust: aio_pika.abc.AbstractRobustChannel) -> None:
        """Consume on ``robust``'s current channel unless already consuming there."""
        channel = cast(aiormq.Channel, await robust.get_underlay_channel())
        if channel is self.channel and self.tag in channel.consumers:
            return
        cancelled = getattr(channel, "on_consumer_cancel_callbacks", None)
        if cancelled is not None:
            cancelled.add(self._on_cancel)
        tag = f"workflow-orchestrator.{uuid.uuid4().hex}"
        _take_deliveries(channel, tag, self.inbox)
        await channel.basic_consume(
            self.queue, self.inbox.on_message, no_ack=False, consumer_tag=tag
        )
        self.channel, self.tag = channel, tag

    async def on_reopen(self, robust: Any) -> None:
        """aio-pika's ``reopen_callbacks`` hook (its errors would be dropped: log them)."""
        if self.closed:
            return
        try:
            await self.start(cast(aio_pika.abc.AbstractRobustChannel, robust))
        except Exception as exc:
            logger.warning(
                "consuming '%s' again after the channel reopened failed (%s); retrying when "
                "it reopens again",
                self.queue,
                exc,
            )

    def _on_cancel(self, frame: spec.Basic.Cancel) -> None:
        if frame.consumer_tag != self.tag or self.closed or self.channel is None:
            return
        logger.warning("RabbitMQ cancelled the consumer of '%s'; consuming again", self.queue)
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._consume_again())

    async def _consume_again(self) -> None:
        channel = self.channel
        while not self.closed and channel is self.channel and channel is not None:
            if channel.is_closed:
                return  # aio-pika reopens it and on_reopen consumes there
            try:
                tag = f"workflow-orchestrator.{uuid.uuid4().hex}"
                _take_deliveries(cast(aiormq.Channel, channel), tag, self.inbox)
                await channel.basic_consume(
                    self.queue, self.inbox.on_message, no_ack=False, consumer_tag=tag
                )
            except Exception as exc:
                logger.info("consuming '%s' again failed (%s); retrying", self.queue, exc)
                await asyncio.sleep(self.retry_interval)
            else:
                self.tag = tag
                return

    def close(self) -> None:
        self.closed = True
        if self._retrying is not None:
            self._retrying.cancel()


async def _declare(
    channel: aio_pika.abc.AbstractChannel, topology: RabbitMQTopology
) -> aio_pika.abc.AbstractQueue:
    """Declare (idempotently) the dead-letter exchange and queue, the topic exchanges and the
    consumer group's queue bound with ``#`` to each exchange of ``topology.bindings`` (and
    unbound from the other declared exchanges)."""
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
            if exchange.name in topology.bindings:
                await queue.bind(exchange, routing_key="#")
            else:
                await queue.unbind(exchange, routing_key="#")  # a no-op unless bound before
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise TopologyConflict(
            f"'{declaring}' exists on the broker with different properties ({exc}); delete it or "
            "change the configuration (quorum queues cannot be switched on an existing queue)",
            name=declaring,
        ) from exc
    return queue


def _frames(message: OutgoingMessage, max_content_size: int) -> list[Any]:
    """The frames of one publication: Basic.Publish, the content header, the body frames."""
    if len(message.routing_key.encode()) > _MAX_SHORTSTR:
        raise ValueError(f"routing key longer than {_MAX_SHORTSTR} bytes")
    properties = spec.Basic.Properties(
        content_type=message.content_type,
        headers=message.headers or None,
        delivery_mode=2 if message.persistent else 1,
        priority=0,
        correlation_id=message.correlation_id,
        # aiormq gives every publication a message id; so do we (consumers may rely on one).
        message_id=message.message_id or uuid.uuid4().hex,
        timestamp=message.timestamp,
        message_type=message.message_type,
    )
    body = message.body
    frames: list[Any] = [
        spec.Basic.Publish(exchange=message.exchange, routing_key=message.routing_key),
        ContentHeader(body_size=len(body), properties=properties),
    ]
    if len(body) <= max_content_size:
        if body:
            frames.append(ContentBody(body))
    else:
        view = memoryview(body)
        for start in range(0, len(body), max_content_size):
            frames.append(ContentBody(bytes(view[start : start + max_content_size])))
    return frames


async def _write_batch(
    channel: aiormq.Channel, messages: Sequence[OutgoingMessage]
) -> list[asyncio.Future[Any] | BaseException]:
    """Write the publications of ``messages`` in list order on ``channel`` (publisher confirms
    on), holding its lock; return each one's confirmation future, or the error that kept it
    from being written (a message the frames cannot encode).

    This is aiormq's ``basic_publish`` for a whole batch: the same sequence numbers, confirmation
    futures and frame queue, but one write per ``_WRITE_CHUNK`` messages and no task per message.
    """
    outcomes: list[asyncio.Future[Any] | BaseException] = []
    loop = asyncio.get_running_loop()
    async with channel.lock:
        for start in range(0, len(messages), _WRITE_CHUNK):
            frames: list[Any] = []
            futures: list[asyncio.Future[Any]] = []
            for message in messages[start : start + _WRITE_CHUNK]:
                try:
                    frames.extend(_frames(message, channel.max_content_size))
                except (ValueError, TypeError) as exc:
                    outcomes.append(exc)
                    continue
                channel.delivery_tag += 1
                # A plain future: aiormq's own (``create_future``) carry three done callbacks,
                # each a pass of the Trio scheduler. ``_confirmations`` watches the channel's
                # closing instead of relying on aiormq rejecting them.
                future = loop.create_future()
                channel.confirmations[channel.delivery_tag] = future
                futures.append(future)
                outcomes.append(future)
            if not frames:
                continue
            try:
                payload = aiormq.abc.ChannelFrame.marshall(
                    channel_number=channel.number, frames=frames
                )
                await channel.write_queue.put(payload)
            except BaseException:
                # Not written: give their sequence numbers back (we hold the lock, they are the
                # last ones). The chunks written before are abandoned like a cancelled wait.
                for _ in futures:
                    channel.confirmations.pop(channel.delivery_tag, None)
                    channel.delivery_tag -= 1
                for outcome in outcomes:
                    if isinstance(outcome, asyncio.Future):
                        outcome.cancel()
                raise
    return outcomes


async def _confirmations(
    outcomes: list[asyncio.Future[Any] | BaseException], channel: aiormq.Channel
) -> list[BaseException | None]:
    """Wait for every confirmation, or for ``channel`` to close; return each message's error
    (None when confirmed). A suspension only when the next confirmation has not arrived yet
    (no callback per message). Cancelled: the pending futures are cancelled (aiormq ignores
    their late confirms)."""
    closing = channel.closing
    closed: BaseException | None = None
    try:
        for outcome in outcomes:
            if isinstance(outcome, asyncio.Future) and not outcome.done():
                await asyncio.wait((outcome, closing), return_when=asyncio.FIRST_COMPLETED)
                if closing.done():
                    if not closing.cancelled():
                        closed = closing.exception()
                    closed = closed or aiormq.exceptions.ChannelInvalidStateError("closed")
                    break
    except BaseException:
        for outcome in outcomes:
            if isinstance(outcome, asyncio.Future):
                outcome.cancel()
        raise
    finally:
        closing.cancel()  # only stops observing (a no-op when it is done)
    results: list[BaseException | None] = []
    for outcome in outcomes:
        if not isinstance(outcome, asyncio.Future):
            results.append(outcome)
        elif not outcome.done():
            outcome.cancel()
            results.append(closed)
        elif outcome.cancelled():
            results.append(asyncio.CancelledError())
        else:
            results.append(outcome.exception())
    return results


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
            await trio_asyncio.aio_as_trio(self._confirm)(messages)
        self._published += len(messages)

    async def _confirm(self, messages: Sequence[OutgoingMessage]) -> None:
        # After a channel error (say, an unknown exchange) aio-pika reopens the channel in the
        # background and refuses to publish until then: wait for it (the caller's bound applies).
        await self._publishing.ready()
        channel = cast(aiormq.Channel, await self._publishing.get_underlay_channel())
        try:
            outcomes = await _write_batch(channel, messages)
        except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
            results: list[BaseException | None] = [exc] * len(messages)
        else:
            results = await _confirmations(outcomes, channel)
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
            batch = await inbox.take(batch_size)
            await send.send(batch)  # backpressure: wait for the reader, never drop


async def _start(
    robust: aio_pika.abc.AbstractRobustConnection,
    topology: RabbitMQTopology,
    consumer: _Consumer,
    prefetch: int,
) -> tuple[aio_pika.abc.AbstractRobustChannel, aio_pika.abc.AbstractRobustChannel]:
    """Open both channels, declare the topology and start consuming (asyncio side).

    The topology is declared on the consuming channel so that aio-pika's robust channel, which
    restores what it declared, re-declares the queue on reconnection before ``consumer``
    consumes again.
    """
    consuming = await robust.channel(publisher_confirms=False)
    await consuming.set_qos(prefetch_count=prefetch)
    await _declare(consuming, topology)
    publishing = await robust.channel(publisher_confirms=True)
    consuming.reopen_callbacks.add(consumer.on_reopen)
    await consumer.start(consuming)
    return consuming, publishing


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
    inbox = _Inbox()
    consumer = _Consumer(queue=topology.queue, inbox=inbox, retry_interval=reconnect_interval)

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
            consuming, publishing = await trio_asyncio.aio_as_trio(_start)(
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
            await trio_asyncio.aio_as_trio(close)(robust)
        if scope.cancelled_caught:
            logger.warning("RabbitMQ connection did not close within %.0fs", _CLOSE_TIMEOUT)
