"""RabbitMQ adapter benchmark: confirmed publishing, consume+ack, and both at once.

Run: ``.venv/bin/python benchmarks/rabbitmq.py [--messages 20000] [--batch 100 500]
[--prefetch 100] [--rounds 3]`` against ``$BENCH_RABBITMQ_URL`` (default
``amqp://guest:guest@127.0.0.1:5672/``). Prints figures; asserts nothing. Targets (2-core
machine): consume+ack >= 12,000 msg/s, confirmed publishing >= 8,000 msg/s.

Every round declares its own exchanges and consumer group (uuid suffix) through
``open_rabbitmq`` and deletes them at the end, even when interrupted. Phases, per round:

1. ``publish``: ``--messages`` CloudEvent-like messages (JSON body of ``--body-size`` bytes,
   four ``cloudEvents:*`` headers, persistent) published with ``RabbitMQConnection.publish`` in
   calls of ``--batch`` messages, one call after the other; each call returns once the broker
   confirmed every message of it.
2. ``consume+ack``: a fresh connection of the same group drains the queue those messages were
   routed to: it reads batches from ``deliveries`` (at most ``--prefetch`` each) and acks each
   batch before reading the next, as the event pipeline does. Timed from the open connection to
   the last ack.
3. ``flow``: one connection publishes (largest ``--batch``) and consumes+acks the same messages
   at once; the rate is messages through the whole loop per second.

Measured on the 2-core box (broker on the same machine, defaults, median of 3 rounds; other
work on the machine moves these by +-30%): publish 11,600 msg/s (calls of 100 and 500),
consume+ack 11,400 msg/s (best 11,700; the same at prefetch 300), flow 7,500 msg/s. Before the
adapter went below aio-pika for its hot paths: publish 1,700-1,900, consume+ack 3,000-4,000,
flow 900-1,200. Consumption is ~9 messages per batch at any prefetch (what RabbitMQ sends per
multiple ack), so the per-batch cost (the ack crossing, socket reads) is half of it; every
asyncio callback is one pass of the Trio scheduler under trio-asyncio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import trio
import trio_asyncio

from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import RabbitMQSettings
from workflow_orchestrator.events import OutgoingMessage, RabbitMQConnection, open_rabbitmq

RABBITMQ_URL = os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


def messages(exchange: str, count: int, body_size: int) -> list[OutgoingMessage]:
    padding = "x" * max(0, body_size - 60)
    return [
        OutgoingMessage(
            exchange=exchange,
            routing_key="order.created",
            body=f'{{"orderId": "o-{n}", "amount": {n % 997}, "pad": "{padding}"}}'.encode(),
            content_type="application/cloudevents+json",
            headers={
                "cloudEvents:specversion": "1.0",
                "cloudEvents:type": "order.created",
                "cloudEvents:source": "/bench",
                "cloudEvents:id": f"e-{n}",
            },
            message_id=f"e-{n}",
        )
        for n in range(count)
    ]


async def on_broker(work: Callable[[aio_pika.abc.AbstractChannel], Awaitable[Any]]) -> Any:
    """Run ``work(channel)`` on a plain connection of its own (asyncio side)."""

    async def unit() -> Any:
        connection = await aio_pika.connect(RABBITMQ_URL, timeout=5)
        try:
            return await work(await connection.channel())
        finally:
            await connection.close()

    return await trio_asyncio.aio_as_trio(unit)()


async def clean_up(settings: RabbitMQSettings, group: str) -> None:
    async def delete(channel: aio_pika.abc.AbstractChannel) -> None:
        for queue in (group, f"{group}.dead-letter"):
            await channel.queue_delete(queue)
        for exchange in (*settings.exchanges, f"{group}.dead-letter"):
            await channel.exchange_delete(exchange)

    with trio.move_on_after(10, shield=True):
        await on_broker(delete)


async def publish_all(rmq: RabbitMQConnection, batch: list[OutgoingMessage], size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(batch), size):
        await rmq.publish(batch[start : start + size])
    return time.perf_counter() - started


async def consume_all(rmq: RabbitMQConnection, count: int) -> None:
    received = 0
    while received < count:
        deliveries = await rmq.deliveries.receive()
        received += len(deliveries)
        await rmq.ack(deliveries)


async def one_round(args: argparse.Namespace) -> dict[str, float]:
    suffix = uuid.uuid4().hex[:10]
    settings = RabbitMQSettings(
        url=RABBITMQ_URL,
        exchanges=(f"bench-business-{suffix}", f"bench-system-{suffix}"),
        prefetch=args.prefetch,
    )
    group = f"bench-{suffix}"
    outgoing = messages(settings.exchanges[0], args.messages, args.body_size)
    rates: dict[str, float] = {}
    try:
        for size in args.batch:
            async with open_rabbitmq(settings, consumer_group=group) as rmq:
                elapsed = await publish_all(rmq, outgoing, size)
            rates[f"publish (calls of {size})"] = args.messages / elapsed
        total = args.messages * len(args.batch)
        async with open_rabbitmq(settings, consumer_group=group) as rmq:
            started = time.perf_counter()
            await consume_all(rmq, total)
            rates["consume+ack"] = total / (time.perf_counter() - started)
        async with open_rabbitmq(settings, consumer_group=group) as rmq:
            started = time.perf_counter()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(publish_all, rmq, outgoing, max(args.batch))
                await consume_all(rmq, args.messages)
            rates["flow (publish + consume+ack)"] = args.messages / (time.perf_counter() - started)
    finally:
        await clean_up(settings, group)
    return rates


async def main(args: argparse.Namespace) -> None:
    async with open_asyncio_bridge():
        rounds = [await one_round(args) for _ in range(args.rounds)]
    print(
        f"{args.messages:,} messages of ~{args.body_size} B per phase, prefetch "
        f"{args.prefetch}, {args.rounds} round(s), broker {RABBITMQ_URL.split('@')[-1]}"
    )
    print(f"{'phase':<30} {'median msg/s':>13} {'best msg/s':>11}")
    for phase in rounds[0]:
        figures = [r[phase] for r in rounds]
        print(f"{phase:<30} {statistics.median(figures):>13,.0f} {max(figures):>11,.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--body-size", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    trio.run(main, parser.parse_args())
