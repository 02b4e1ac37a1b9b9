"""The RabbitMQ event source: batches of deliveries -> parsed CloudEvents -> router -> acks.

Per batch of deliveries (at most ``prefetch``): each message is parsed (AMQP binding, structured
or binary mode); one that is not a valid CloudEvent is dead-lettered with the parser's reason (a
WARNING names the message and the reason) and never retried. The valid ones are routed in ONE
transaction, and only after it committed are they acknowledged, with one ``multiple`` ack.
``_source_routing`` retries the batch while the database is away (still unacknowledged: a crash
meanwhile leaves the messages with RabbitMQ, which redelivers them, and the router's
deduplication drops what was committed already) and, when PostgreSQL refuses one event's data,
routes the events one at a time: an event refused alone is dead-lettered with the refusal as
its reason (a WARNING names the message, the event's id and source, and the reason), and the
others are acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.events._bindings import parse_amqp_message
from workflow_orchestrator.events._rabbitmq import BrokerError, Delivery, RabbitMQConnection
from workflow_orchestrator.events._refusals import describe_event, parse_failure
from workflow_orchestrator.events._routing import Router
from workflow_orchestrator.events._source_routing import route_or_refuse
from workflow_orchestrator.observability import ServiceMetrics

__all__ = ["consume_rabbitmq"]

logger = logging.getLogger(__name__)


def _describe(delivery: Delivery) -> str:
    ident = delivery.message_id or f"delivery {delivery.delivery_tag}"
    return f"message {ident} (exchange '{delivery.exchange}', key '{delivery.routing_key}')"


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
    """Route ``events`` (one per delivery, same order); the deliveries to acknowledge. Those
    PostgreSQL refused alone are dead-lettered (``route_or_refuse``)."""
    routed, refused = await route_or_refuse(
        router, events, deliveries, source="rabbitmq", broker="RabbitMQ"
    )
    for delivery, event, reason in refused:
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
            except Exception as exc:  # InvalidEvent, or a parser bug: never end the source
                reason = parse_failure(exc)
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
