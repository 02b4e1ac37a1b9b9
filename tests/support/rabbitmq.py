"""The real RabbitMQ of the test run: reachability, throwaway names, short broker operations
through the test's own ``open_asyncio_bridge()``, and stopping/starting the broker.

Each operation opens a plain (not robust) connection of its own, so that a broker restart never
leaves a test holding a dead connection.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TypeVar

import aio_pika
import trio
import trio_asyncio

from tests.support.services import require_reachable, unavailable
from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")

T = TypeVar("T")


def require_rabbitmq() -> None:
    """Fail (CI) or skip unless RabbitMQ at ``RABBITMQ_URL`` accepts connections."""
    require_reachable("RabbitMQ", RABBITMQ_URL, 5672)


def unique_suffix() -> str:
    """A short random suffix that makes a test's exchange and queue names its own."""
    return uuid.uuid4().hex[:10]


async def on_broker(work: Callable[[aio_pika.abc.AbstractChannel], Awaitable[T]]) -> T:
    """Run ``work(channel)`` on a plain connection of its own: one asyncio crossing."""

    async def unit() -> T:
        connection = await aio_pika.connect(RABBITMQ_URL, timeout=5)
        try:
            channel = await connection.channel()
            return await work(channel)
        finally:
            await connection.close()

    result: T = await trio_asyncio.aio_as_trio(unit)()
    return result


async def delete_broker_names(
    queues: Iterable[str], exchanges: Iterable[str], *, seconds: float = 10, attempts: int = 1
) -> None:
    """Delete ``queues`` then ``exchanges`` (shielded, within ``seconds``); with several
    ``attempts`` a failure is retried every 0.5 s and the last one is ignored."""
    queue_names, exchange_names = list(queues), list(exchanges)

    async def delete(channel: aio_pika.abc.AbstractChannel) -> None:
        for queue in queue_names:
            await channel.queue_delete(queue)
        for exchange in exchange_names:
            await channel.exchange_delete(exchange)

    with trio.move_on_after(seconds, shield=True):
        if attempts == 1:
            await on_broker(delete)
            return
        for _ in range(attempts):
            try:
                await on_broker(delete)
                break
            except Exception:
                await trio.sleep(0.5)


@asynccontextmanager
async def broker_names_deleted(
    queues: Iterable[str], exchanges: Iterable[str], *, seconds: float = 10, attempts: int = 1
) -> AsyncIterator[None]:
    """The block, then ``delete_broker_names`` (also when the block fails)."""
    try:
        yield
    finally:
        await delete_broker_names(queues, exchanges, seconds=seconds, attempts=attempts)


@asynccontextmanager
async def broker_scratch(
    queues: Iterable[str], exchanges: Iterable[str], *, seconds: float = 10, attempts: int = 1
) -> AsyncIterator[None]:
    """The test task's asyncio bridge; ``queues`` and ``exchanges`` are deleted when the block
    ends."""
    async with (
        open_asyncio_bridge(),
        broker_names_deleted(queues, exchanges, seconds=seconds, attempts=attempts),
    ):
        yield


async def queue_depth(name: str) -> int:
    """Messages ready in queue ``name`` (passive declare)."""

    async def depth(channel: aio_pika.abc.AbstractChannel) -> int:
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)

    return await on_broker(depth)


async def take(
    queue: str, *, count: int, seconds: float
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Read (and ack) messages from ``queue`` until ``count`` arrived or ``seconds`` passed."""

    async def work(
        channel: aio_pika.abc.AbstractChannel,
    ) -> list[aio_pika.abc.AbstractIncomingMessage]:
        target = await channel.declare_queue(queue, passive=True)
        got: list[aio_pika.abc.AbstractIncomingMessage] = []
        deadline = asyncio.get_running_loop().time() + seconds
        while len(got) < count and asyncio.get_running_loop().time() < deadline:
            message = await target.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
            else:
                got.append(message)
        return got

    return await on_broker(work)


async def rabbitmqctl(*args: str) -> None:
    """Run ``rabbitmqctl args`` (e.g. ``stop_app``/``start_app``); fail or skip without it."""
    binary = shutil.which("rabbitmqctl")
    if binary is None:
        unavailable("rabbitmqctl is not installed; the broker cannot be restarted by the test")
        raise AssertionError("unreachable")
    await trio.run_process([binary, *args], capture_stdout=True, capture_stderr=True)
