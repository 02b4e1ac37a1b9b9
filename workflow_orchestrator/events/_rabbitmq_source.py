"""The RabbitMQ event source: batches of deliveries -> parsed CloudEvents -> router -> acks.

Per batch of deliveries (at most ``prefetch``): each message is parsed (AMQP binding, structured
or binary mode); one that is not a valid CloudEvent is dead-lettered with the parser's reason (a
WARNING names the message and the reason) and never retried. The valid ones are routed in ONE
transaction, and only after it committed are they acknowledged, with one ``multiple`` ack. When
routing fails (the database is away), the batch is retried with a bounded backoff, still
unacknowledged; a crash meanwhile leaves the messages with RabbitMQ, which redelivers them,
and the router's deduplication drops what was committed already.

When PostgreSQL refuses the batch because of one event's data (``_refusals``: an id too long
for its index, a value out of range), retrying it would block the queue for ever: its events
are routed one at a time (each still retried with backoff while the database is away), an
event refused alone is dead-lettered with the refusal as its reason (a WARNING names the
message, the event's id and source, and the reason), and the others are acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.events._bindings import parse_amqp_message
from workflow_orchestrator.events._cloudevents import InvalidEvent
from workflow_orchestrator.events._rabbitmq import BrokerError, Delivery, RabbitMQConnection
from workflow_orchestrator.events._refusals import REFUSED_BY_DATA, describe_event, refusal_reason
from workflow_orchestrator.events._routing import Router
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.retrying import RetryBackoff
from workflow_orchestrator.storage import describe_error

__all__ = ["consume_rabbitmq"]

logger = logging.getLogger(__name__)

_RETRY_INITIAL = 0.2
_RETRY_MAX = 5.0


def _describe(delivery: Delivery) -> str:
    ident = delivery.message_id or f"delivery {delivery.delivery_tag}"
    return f"message {ident} (exchange '{delivery.exchange}', key '{delivery.routing_key}')"


async def _route_until_done(router: Router, events: Sequence[CloudEvent]) -> Exception | None:
    """Route ``events``, retrying database failures with backoff (the deliveries wait); returns
    the error when PostgreSQL refused the batch's data instead (nothing was committed)."""
    backoff = RetryBackoff(initial=_RETRY_INITIAL, maximum=_RETRY_MAX)
    while True:
        try:
            await router.route(events, source="rabbitmq")
        except REFUSED_BY_DATA as exc:  # retrying the same batch would fail the same way
            return exc
        except Exception as exc:  # database errors: retry; nothing was committed
            delay = backoff.failed()
            if backoff.failures == 1:
                logger.warning(
                    "routing %d events from RabbitMQ failed (%s: %s); retrying, the messages "
                    "stay unacknowledged",
                    len(events),
                    type(exc).__name__,
                    exc,
                )
            await trio.sleep(delay)
            continue
        failures = backoff.succeeded()
        if failures:
            logger.info("routing from RabbitMQ works again after %d failures", failures)
        return None


async def _dead_letter(
    connection: RabbitMQConnection,
    delivery: Delivery,
    reason: str,
    metrics: ServiceMetrics | None,
    event_type: str = "",
) -> None:
    """Nack ``delivery`` to the dead-letter queue with ``reason`` (RabbitMQ redelivers it when
    that fails, and it is judged again)."""
    try:
        await connection.dead_letter(delivery, reason)
    except BrokerError as error:
        logger.warning("dead-lettering failed (%s); RabbitMQ redelivers it", error)
    if metrics is not None:
        label = metrics.event_type(event_type) if event_type else ""
        metrics.events_dead_lettered.labels("rabbitmq", label).inc()


async def _route_batch(
    connection: RabbitMQConnection,
    router: Router,
    events: Sequence[CloudEvent],
    deliveries: Sequence[Delivery],
    metrics: ServiceMetrics | None,
) -> list[Delivery]:
    """Route ``events`` (one per delivery, same order); the deliveries to acknowledge. When
    PostgreSQL refuses the batch's data, the events are routed one at a time and those refused
    alone are dead-lettered (see the module docstring)."""
    refused = await _route_until_done(router, events)
    if refused is None:
        return list(deliveries)
    if len(events) > 1:
        logger.warning(
            "routing %d events from RabbitMQ one at a time to find the one PostgreSQL refuses (%s)",
            len(events),
            describe_error(refused),
        )
    routed: list[Delivery] = []
    for event, delivery in zip(events, deliveries, strict=True):
        alone = refused if len(events) == 1 else await _route_until_done(router, [event])
        if alone is None:
            routed.append(delivery)
            continue
        reason = refusal_reason(alone)
        logger.warning(
            "dead-lettering %s, %s: %s", _describe(delivery), describe_event(event), reason
        )
        await _dead_letter(connection, delivery, reason, metrics, event.type)
    return routed


async def consume_rabbitmq(
    connection: RabbitMQConnection,
    router: Router,
    *,
    metrics: ServiceMetrics | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Consume ``connection.deliveries`` until cancelled (see the module docstring)."""
    task_status.started()
    async for batch in connection.deliveries:
        events: list[CloudEvent] = []
        valid: list[Delivery] = []
        for delivery in batch:
            try:
                event = parse_amqp_message(
                    headers=delivery.headers,
                    content_type=delivery.content_type,
                    body=delivery.body,
                )
            except InvalidEvent as exc:
                reason = str(exc)
                logger.warning("dead-lettering %s: %s", _describe(delivery), reason)
                await _dead_letter(connection, delivery, reason, metrics)
                continue
            events.append(event)
            valid.append(delivery)
        if not events:
            continue
        routed = await _route_batch(connection, router, events, valid, metrics)
        try:
            await connection.ack(routed)
        except BrokerError as exc:
            # Not acknowledged: RabbitMQ redelivers them and deduplication drops them.
            logger.info("acknowledgement failed (%s); the events come back as duplicates", exc)
