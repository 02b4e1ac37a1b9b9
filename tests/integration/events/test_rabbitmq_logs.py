"""RabbitMQ connection trouble in the log: one WARNING of ours per attempt, with the error and
the next delay, and no ERROR of aiormq or aio-pika (``grep ERROR`` must not find a broker that
is merely away)."""

from __future__ import annotations

import logging
import urllib.parse
import uuid
from typing import Any

import pytest
import trio

from tests.support.rabbitmq import RABBITMQ_URL, broker_scratch, require_rabbitmq
from tests.support.service import InProcessService, open_service
from tests.support.services import free_port

pytestmark = pytest.mark.integration

LIBRARIES = ("aiormq", "aio_pika")
OURS = "workflow_orchestrator.events"


def broker_settings(url: str) -> tuple[dict[str, Any], list[str], list[str]]:
    """Settings for a broker at ``url`` with names of the test's own, and those names."""
    suffix = uuid.uuid4().hex[:8]
    queue, exchanges = f"queue-{suffix}", [f"business-{suffix}", f"system-{suffix}"]
    settings = {
        "eventProcessing.source": "rabbitmq",
        "eventProcessing.rabbitmq.url": url,
        "eventProcessing.rabbitmq.exchanges": exchanges,
        "eventProcessing.rabbitmq.queue": queue,
    }
    return settings, [queue, f"{queue}.dead-letter"], [*exchanges, f"{queue}.dead-letter"]


def library_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(LIBRARIES) and r.levelno >= level]


def our_warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(OURS) and r.levelno == logging.WARNING and text in r.getMessage()
    ]


async def wait_for_warnings(caplog: pytest.LogCaptureFixture, text: str, count: int) -> list[str]:
    while True:
        found = our_warnings(caplog, text)
        if len(found) >= count:
            return found
        await trio.sleep(0.05)


async def wait_connected(app: InProcessService) -> None:
    while True:
        body = (await app.management.get("/health/detailed")).json()
        if body["components"]["eventProcessing"]["details"].get("broker") == "connected":
            return
        await trio.sleep(0.05)


async def test_unreachable_broker_is_one_warning_of_ours_per_attempt(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A closed port: each connection attempt is one WARNING of ours naming the broker, the
    error and the next delay; aiormq and aio-pika log nothing at WARNING or above."""
    port = free_port()
    settings, _, _ = broker_settings(f"amqp://guest:guest@127.0.0.1:{port}/")
    with trio.fail_after(60):
        async with open_service(database_url, settings=settings):
            found = await wait_for_warnings(caplog, "cannot connect to RabbitMQ", 2)
    assert found[:2] == [
        f"RabbitMQ: cannot connect to RabbitMQ at 127.0.0.1:{port}//: connection refused (is "
        f"RabbitMQ running and listening on that host and port?); connecting again in {delay}s"
        for delay in (1, 2)
    ]
    assert library_records(caplog, logging.WARNING) == []


async def run_proxy(
    listen_port: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Forward 127.0.0.1:``listen_port`` to the test run's RabbitMQ until cancelled (then every
    forwarded connection drops at once, as when the broker's host goes away)."""
    target = urllib.parse.urlsplit(RABBITMQ_URL)

    async def pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
        async for chunk in source:
            await sink.send_all(chunk)

    async def forward(client: trio.SocketStream) -> None:
        async with (
            client,
            await trio.open_tcp_stream(
                target.hostname or "127.0.0.1", target.port or 5672
            ) as upstream,
            trio.open_nursery() as nursery,
        ):

            async def one_way(source: trio.SocketStream, sink: trio.SocketStream) -> None:
                await pump(source, sink)
                nursery.cancel_scope.cancel()

            nursery.start_soon(one_way, client, upstream)
            nursery.start_soon(one_way, upstream, client)

    await trio.serve_tcp(forward, listen_port, host="127.0.0.1", task_status=task_status)


async def test_lost_broker_reconnects_with_warnings_of_ours(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A connected broker that goes away: its loss and each reconnect attempt are WARNINGs of
    ours with the error and the next delay, never an ERROR of aiormq or aio-pika."""
    require_rabbitmq()
    port = free_port()
    parts = urllib.parse.urlsplit(RABBITMQ_URL)
    url = urllib.parse.urlunsplit(
        parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{port}")
    )
    settings, queues, exchanges = broker_settings(url)
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            proxy = trio.CancelScope()

            async def proxied(*, task_status: trio.TaskStatus[None]) -> None:
                with proxy:
                    await run_proxy(port, task_status=task_status)

            await nursery.start(proxied)
            async with (
                broker_scratch(queues, exchanges, attempts=5),
                open_service(database_url, settings=settings) as app,
            ):
                await wait_connected(app)
                proxy.cancel()
                found = await wait_for_warnings(caplog, "reconnect attempt failed", 2)
                await nursery.start(run_proxy, port)
                await wait_connected(app)
            nursery.cancel_scope.cancel()
    assert found[0] == (
        f"RabbitMQ at 127.0.0.1:{port}//: reconnect attempt failed: connection refused (is "
        "RabbitMQ running and listening on that host and port?); trying again in 2s"
    )
    assert len(our_warnings(caplog, "RabbitMQ connection lost (")) == 1
    assert library_records(caplog, logging.WARNING) == []
