"""Plain values that cross out of the RabbitMQ adapter: deliveries, outgoing messages, topology
names and statistics. No aio-pika type leaves the adapter; these are what Trio code sees."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

__all__ = [
    "BrokerState",
    "Delivery",
    "OutgoingMessage",
    "RabbitMQStatistics",
    "RabbitMQTopology",
    "plain_headers",
]

BrokerState = Literal["connected", "reconnecting", "closed"]


_PLAIN = (str, int, float, decimal.Decimal, datetime.datetime)  # bool is an int


def _plain(value: Any) -> Any:
    if isinstance(value, _PLAIN):  # the common case first: no ABC check (per message)
        return value
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None:
        return None
    return str(value)


def plain_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """AMQP header values as plain Python values: ``bytes`` decoded as UTF-8 when they are text,
    ``Decimal`` kept, tables and arrays converted recursively."""
    return {str(key): _plain(value) for key, value in (headers or {}).items()}


@attrs.frozen(kw_only=True)
class Delivery:
    """One message received from the consumer group's queue, not yet acknowledged.

    ``delivery_tag`` is only meaningful on the channel it came on: ``channel_epoch`` counts the
    consuming channels of the connection (it grows after each reconnection). Pass deliveries back
    to ``RabbitMQConnection.ack`` / ``dead_letter`` unchanged.
    ``properties`` holds the AMQP basic properties that were set (``content_type``,
    ``message_id``, ``timestamp``, ``type``, ``app_id``, ...), ``headers`` the application
    headers (where AMQP-binding CloudEvents attributes live, as ``cloudEvents:*``).
    """

    body: bytes
    headers: dict[str, Any] = attrs.field(factory=dict)
    properties: dict[str, Any] = attrs.field(factory=dict)
    content_type: str | None = None
    message_id: str | None = None
    exchange: str = ""
    routing_key: str = ""
    delivery_tag: int
    redelivered: bool = False
    channel_epoch: int


@attrs.frozen(kw_only=True)
class OutgoingMessage:
    """One message to publish: persistent by default, so that a confirmed message survives a
    broker restart (the queues are durable)."""

    exchange: str
    routing_key: str
    body: bytes
    content_type: str | None = None
    headers: dict[str, Any] = attrs.field(factory=dict)
    message_id: str | None = None
    message_type: str | None = None
    correlation_id: str | None = None
    timestamp: datetime.datetime | None = None
    persistent: bool = True


@attrs.frozen(kw_only=True)
class RabbitMQTopology:
    """The names the adapter declares for one consumer group.

    All of ``exchanges`` are declared. The queue is named after the consumer group and bound
    with ``#`` to each exchange of ``bindings`` (some or all of ``exchanges``; a ``ValueError``
    otherwise); ``<queue>.dead-letter`` is both the dead-letter exchange (fanout) and the queue
    bound to it.
    """

    exchanges: tuple[str, ...]
    queue: str
    dead_letter_exchange: str
    dead_letter_queue: str
    quorum_queues: bool = False
    bindings: tuple[str, ...] = attrs.field()

    @bindings.default
    def _all_exchanges(self) -> tuple[str, ...]:
        return self.exchanges

    @bindings.validator
    def _declared(
        self, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
    ) -> None:
        unknown = [name for name in value if name not in self.exchanges]
        if unknown:
            raise ValueError(
                f"cannot bind '{self.queue}' to {unknown}: not among the declared exchanges "
                f"{list(self.exchanges)}"
            )

    @classmethod
    def for_group(
        cls,
        exchanges: tuple[str, ...],
        consumer_group: str,
        *,
        quorum_queues: bool = False,
        bindings: Sequence[str] | None = None,
    ) -> RabbitMQTopology:
        """The topology of ``consumer_group``: ``exchanges`` declared, its queue bound to
        ``bindings`` (default: all of ``exchanges``)."""
        dead_letter = f"{consumer_group}.dead-letter"
        exchanges = tuple(exchanges)
        return cls(
            exchanges=exchanges,
            queue=consumer_group,
            dead_letter_exchange=dead_letter,
            dead_letter_queue=dead_letter,
            quorum_queues=quorum_queues,
            bindings=exchanges if bindings is None else tuple(dict.fromkeys(bindings)),
        )


@attrs.frozen(kw_only=True)
class RabbitMQStatistics:
    """A snapshot of the adapter (no I/O): connection state, deliveries handed out and not yet
    acknowledged, and counters since it was opened."""

    state: BrokerState
    broker: str
    unacknowledged: int
    received_total: int
    acknowledged_total: int
    dead_lettered_total: int
    stale_total: int
    published_total: int
    reconnections_total: int
