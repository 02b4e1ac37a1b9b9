"""Consuming the group's queue: raw deliveries -> ``Delivery`` values -> batches for Trio.

Deliveries do not cross the bridge: the channel's frame reader (asyncio side) turns each raw
delivery into a ``Delivery``, appends it to the ``Inbox`` and unparks the pump, a Trio task on
the same thread, which takes everything waiting there synchronously and sends it, as one tuple,
into a bounded trio memory channel. The ``Consumer`` registers the consumer on the robust
consuming channel's current aiormq channel; consuming again, after aio-pika reopened the channel
or after the broker cancelled the consumer, is the work of its Trio task ``run_restarts`` (owned
by ``open_rabbitmq``'s nursery): the asyncio-side hooks only ask for it.

Invariants:

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
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import aio_pika.abc
import aiormq
import aiormq.abc
import aiormq.exceptions
import attrs
import trio
import trio_asyncio
from pamqp import commands as spec

from workflow_orchestrator.events._rabbitmq._internals import (
    CONSUME_INTERNALS,
    missing_for_consume,
    report_fallback,
    take_deliveries,
)
from workflow_orchestrator.events._rabbitmq._values import Delivery, plain_headers
from workflow_orchestrator.retrying import RetryBackoff

__all__ = ["Consumer", "Inbox", "pump"]

logger = logging.getLogger(__name__)

_SLOW_CONSUME = "aiormq's consumer callback receives the deliveries (a task per delivery)"


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
class Inbox:
    """Deliveries waiting for the pump, and the unacknowledged tags of the current consuming
    channel. Filled on the asyncio loop, emptied by the pump (Trio); trio-asyncio runs both on
    one thread and neither side awaits while changing it.

    ``bypassed`` is True while the fast consume path is installed on the current channel;
    ``via_callback`` counts the deliveries that came through aiormq's callback instead.
    """

    waiting: deque[Delivery] = attrs.field(factory=deque)
    arrived: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    epoch: int = 0
    channel: aiormq.abc.AbstractChannel | None = None
    unacked: set[int] = attrs.field(factory=set)
    received: int = 0
    bypassed: bool = False
    via_callback: int = 0

    async def on_message(self, message: aiormq.abc.DeliveredMessage) -> None:
        """aiormq's consumer callback: the fallback path (see ``_internals``)."""
        self.via_callback += 1
        if self.bypassed:
            # The override is installed but aiormq did not call it (it bound its handlers
            # before): the internals are there, their use is not.
            report_fallback(
                "consume",
                [CONSUME_INTERNALS[0]],
                f"it was not called; {_SLOW_CONSUME}",
            )
            self.bypassed = False
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
        cover every unacknowledged tag up to the highest, else one ack each (asyncio side)."""
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


@attrs.define(eq=False)
class Consumer:
    """Consumes the group's queue as a raw aiormq consumer on the robust consuming channel's
    current aiormq channel: ``start`` at open (asyncio side), then ``run_restarts`` (Trio) after
    each reopening (aio-pika re-declares the queue first) and after the broker cancelled the
    consumer (queue deleted, quorum leader moved), retrying with ``backoff``."""

    queue: str
    inbox: Inbox
    backoff: RetryBackoff
    channel: aiormq.abc.AbstractChannel | None = None
    tag: str | None = None
    closed: bool = False
    _wanted: bool = False
    _asked: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)

    async def start(self, robust: aio_pika.abc.AbstractRobustChannel) -> None:
        """Consume on ``robust``'s current channel unless already consuming there (asyncio
        side)."""
        channel = cast(aiormq.Channel, await robust.get_underlay_channel())
        if channel is self.channel and self.tag in getattr(channel, "consumers", ()):
            return
        cancelled = getattr(channel, "on_consumer_cancel_callbacks", None)
        if cancelled is not None:
            cancelled.add(self._on_cancel)  # a set: once per channel
        tag = f"workflow-orchestrator.{uuid.uuid4().hex}"
        self.inbox.bypassed = take_deliveries(channel, tag, self.inbox.deliver)
        if not self.inbox.bypassed:
            report_fallback("consume", missing_for_consume(channel), _SLOW_CONSUME)
        await channel.basic_consume(
            self.queue, self.inbox.on_message, no_ack=False, consumer_tag=tag
        )
        self.channel, self.tag = channel, tag

    def on_reopen(self, robust: Any) -> None:
        """aio-pika's ``reopen_callbacks`` hook (asyncio side, after the queue was declared
        again): ask ``run_restarts`` to consume there."""
        self._ask()

    def _on_cancel(self, frame: spec.Basic.Cancel) -> None:
        if frame.consumer_tag != self.tag or self.closed:
            return
        logger.warning("RabbitMQ cancelled the consumer of '%s'; consuming again", self.queue)
        self._ask()

    def _ask(self) -> None:
        if self.closed:
            return
        self._wanted = True
        self._asked.unpark_all()  # wakes run_restarts (a Trio task) without a crossing

    async def run_restarts(
        self,
        robust: aio_pika.abc.AbstractRobustChannel,
        *,
        attempt_seconds: float,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Consume again each time it is asked (see the class), until cancelled; each attempt
        is bounded by ``attempt_seconds``. A failed attempt is retried after a pause of
        ``backoff`` (on a closed channel it fails until aio-pika reopened it, which asks again
        anyway)."""
        task_status.started()
        while True:
            while not self._wanted:
                await self._asked.park()
            self._wanted = False
            try:
                with trio.fail_after(attempt_seconds):
                    await trio_asyncio.aio_as_trio(self.start)(robust)
            # asyncio.CancelledError: the connection closing under the call (our own
            # cancellation arrives as trio.Cancelled and ends the task).
            except (Exception, asyncio.CancelledError) as exc:
                if self.closed:
                    continue
                delay = self.backoff.failed()
                logger.info(
                    "consuming '%s' again failed (%s); retrying in %.1fs", self.queue, exc, delay
                )
                await trio.sleep(delay)
                self._wanted = True
            else:
                self.backoff.succeeded()

    def close(self) -> None:
        """Ignore the hooks from now on (the Trio task ends with its nursery)."""
        self.closed = True


async def pump(
    inbox: Inbox, send: trio.MemorySendChannel[tuple[Delivery, ...]], batch_size: int
) -> None:
    """Move the inbox's deliveries into ``send`` as tuples of at most ``batch_size`` until
    cancelled (backpressure: waits for the reader, never drops)."""
    async with send:
        while True:
            batch = await inbox.take(batch_size)
            await send.send(batch)
