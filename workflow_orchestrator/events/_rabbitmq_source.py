"""The RabbitMQ event source: batches of deliveries -> parsed CloudEvents -> router -> acks.

Per batch of deliveries (at most ``prefetch``): each message is parsed (AMQP binding, structured
or binary mode); one that is not a valid CloudEvent is dead-lettered with the parser's reason (a
WARNING names the message and the reason) and never retried. The valid ones are routed in ONE
transaction, and only after it committed are they acknowledged, with one ``multiple`` ack. When
routing fails (the database is away), the batch is retried with a bounded backoff, still
unacknowledged; a crash meanwhile leaves the messages with RabbitMQ, which redelivers them,
and the router's deduplication drops what was committed already.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.events._bindings import parse_amqp_message
from workflow_orchestrator.events._cloudevents import InvalidEvent
from workflow_orchestrator.events._rabbitmq import BrokerError, Delivery, RabbitMQConnection
from workflow_orchestrator.events._routing import Router
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.retrying import RetryBackoff

__all__ = ["consume_rabbitmq"]

logger = logging.getLogger(__name__)

_RETRY_INITIAL = 0.2
_RETRY_MAX = 5.0


def _describe(delivery: Delivery) -> str:
    ident = delivery.message_id or f"delivery {delivery.delivery_tag}"
    return f"message {ident} (exchange '{delivery.exchange}', key '{delivery.routing_key}')"


async def _route_until_done(
    router: Router, events: Sequence[CloudEvent], deliveries: Sequence[Delivery]
) -> None:
    """Route ``events``, retrying database failures with backoff (the deliveries wait)."""
    backoff = RetryBackoff(initial=_RETRY_INITIAL, maximum=_RETRY_MAX)
    while True:
        try:
            await router.route(events, source="rabbitmq")
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
        return


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
                try:
                    await connection.dead_letter(delivery, reason)
                except BrokerError as error:
                    logger.warning("dead-lettering failed (%s); RabbitMQ redelivers it", error)
                if metrics is not None:
                    metrics.events_dead_lettered.labels("rabbitmq", "").inc()
                continue
            events.append(event)
            valid.append(delivery)
        if not events:
            continue
        await _route_until_done(router, events, valid)
        try:
            await connection.ack(valid)
        except BrokerError as exc:
            # Not acknowledged: RabbitMQ redelivers them and deduplication drops them.
            logger.info("acknowledgement failed (%s); the events come back as duplicates", exc)
