"""Publishing with publisher confirms: a batch in list order, contiguously, then its confirmations.

``Publisher.confirm`` (asyncio side) takes the fast path of ``_internals`` (the frames of the
whole batch written under the channel's lock, a plain future per message) on an aiormq channel
that has every internal it needs, and aio-pika's public ``Exchange.publish`` otherwise, one
message after the other under the publisher's own lock: slower, with the same order and the same
errors. ``dead_letter_copy`` is what ``dead_letter`` publishes.

Invariant: the messages of one ``confirm`` call are written to the channel in list order,
contiguously (the channel's lock, or the publisher's, is held while they are written).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import aiormq.exceptions
import attrs

from workflow_orchestrator.events._rabbitmq._errors import PublishFailed
from workflow_orchestrator.events._rabbitmq._internals import (
    missing_for_publish,
    report_fallback,
    wait_for_confirmations,
    write_batch,
)
from workflow_orchestrator.events._rabbitmq._values import (
    Delivery,
    OutgoingMessage,
    RabbitMQTopology,
)
from workflow_orchestrator.events._refusals import REJECTION_REASON_HEADER

__all__ = ["REJECTION_REASON_HEADER", "Publisher", "dead_letter_copy"]

_SLOW_PUBLISH = "aio-pika's Exchange.publish sends one message at a time (a broker round trip each)"
# What a publication the channel refused or lost raises (ChannelInvalidStateError, a
# RuntimeError: the channel closed under it).
_CHANNEL_ERRORS = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
)
# How often to look whether aio-pika noticed that its channel closed (only right after a close).
_REOPEN_POLL = 0.01


@attrs.define(eq=False)
class Publisher:
    """Publishes batches on ``channel``, the robust channel with publisher confirms. Made and
    used on the asyncio loop; ``via_fallback`` counts the messages published through aio-pika's
    public API (see the module docstring)."""

    channel: aio_pika.abc.AbstractRobustChannel
    via_fallback: int = 0
    _checked: Any = None  # the aiormq channel the internals were checked on, last
    _fast: bool = False
    _lock: asyncio.Lock = attrs.field(factory=asyncio.Lock)

    async def confirm(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish ``messages`` and wait until the broker confirmed every one.

        Raises ``PublishFailed`` naming the exchange of the most telling failure (a refusal
        before the channel errors it caused); re-raises ``asyncio.CancelledError``.
        """
        underlay = await self._open_channel()
        if self._fast_on(underlay):
            try:
                outcomes = await write_batch(underlay, messages)
            except _CHANNEL_ERRORS as exc:
                results: list[BaseException | None] = [exc] * len(messages)
            else:
                results = await wait_for_confirmations(outcomes, underlay)
        else:
            results = await self._one_by_one(messages)
        _raise_failures(messages, results)

    async def _open_channel(self) -> Any:
        """The robust channel's current aiormq channel, once open. After a channel error (say,
        an unknown exchange) aio-pika reopens the channel in the background and refuses to
        publish until then: wait for it (the caller's bound applies)."""
        while True:
            await self.channel.ready()
            underlay = await self.channel.get_underlay_channel()
            if not underlay.is_closed:
                return underlay
            await asyncio.sleep(_REOPEN_POLL)  # closed, and aio-pika has not noticed it yet

    def _fast_on(self, channel: Any) -> bool:
        """Whether ``channel`` has every publish internal (checked once per channel)."""
        if channel is not self._checked:
            missing = missing_for_publish(channel)
            if missing:
                report_fallback("publish", missing, _SLOW_PUBLISH)
            self._checked, self._fast = channel, not missing
        return self._fast

    async def _one_by_one(self, messages: Sequence[OutgoingMessage]) -> list[BaseException | None]:
        """The fallback: aio-pika's public API, each message confirmed before the next."""
        results: list[BaseException | None] = []
        exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
        async with self._lock:
            for index, message in enumerate(messages):
                try:
                    exchange = exchanges.get(message.exchange)
                    if exchange is None:
                        exchange = await self.channel.get_exchange(message.exchange, ensure=False)
                        exchanges[message.exchange] = exchange
                    await exchange.publish(
                        _to_message(message), message.routing_key, mandatory=False
                    )
                except (ValueError, TypeError) as exc:  # this message cannot be encoded
                    results.append(exc)
                except _CHANNEL_ERRORS as exc:  # the others would meet the same channel
                    results.extend([exc] * (len(messages) - index))
                    break
                else:
                    results.append(None)
        self.via_fallback += len(messages)
        return results


def _to_message(message: OutgoingMessage) -> aio_pika.Message:
    """The aio-pika message with the properties the fast path writes."""
    return aio_pika.Message(
        message.body,
        headers=message.headers or None,
        content_type=message.content_type,
        delivery_mode=(
            aio_pika.DeliveryMode.PERSISTENT
            if message.persistent
            else aio_pika.DeliveryMode.NOT_PERSISTENT
        ),
        priority=0,
        correlation_id=message.correlation_id,
        message_id=message.message_id or uuid.uuid4().hex,
        timestamp=message.timestamp,
        type=message.message_type,
    )


def _raise_failures(
    messages: Sequence[OutgoingMessage], results: Sequence[BaseException | None]
) -> None:
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
        destination=message.exchange,
        routing_key=message.routing_key,
    ) from (error if isinstance(error, Exception) else None)


def dead_letter_copy(
    delivery: Delivery, reason: str, topology: RabbitMQTopology
) -> OutgoingMessage:
    """The copy of ``delivery`` for the dead-letter exchange: its body, headers and properties,
    ``reason`` in ``x-rejection-reason`` and where it came from. Not ``expiration`` (the copy
    would vanish from the dead-letter queue) nor ``user_id`` (RabbitMQ refuses one other than
    the connection's user)."""
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
