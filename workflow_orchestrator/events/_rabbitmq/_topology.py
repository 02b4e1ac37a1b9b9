"""Declaring a consumer group's topology: the exchanges, its queue and bindings, and its
dead-letter exchange and queue (idempotent: declaring again changes nothing)."""

from __future__ import annotations

import aio_pika
import aio_pika.abc
import aiormq.exceptions

from workflow_orchestrator.events._rabbitmq._errors import TopologyConflict
from workflow_orchestrator.events._rabbitmq._values import RabbitMQTopology

__all__ = ["declare"]


async def declare(
    channel: aio_pika.abc.AbstractChannel, topology: RabbitMQTopology
) -> aio_pika.abc.AbstractQueue:
    """Declare (idempotently) the dead-letter exchange and queue, the topic exchanges and the
    consumer group's queue bound with ``#`` to each exchange of ``topology.bindings`` (and
    unbound from the other declared exchanges); asyncio side.

    Raises ``TopologyConflict`` naming the first name that exists with other properties.
    """
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
