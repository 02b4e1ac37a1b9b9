"""An event PostgreSQL refuses never blocks its source: in a batch with innocent events it alone
is dead-lettered (the ``events`` table's ``event_dead_letters``, RabbitMQ's dead-letter queue)
with the refusal as the reason, the others are routed, and the source keeps consuming."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

import aio_pika
import pytest
import trio

from tests.support.events import PAYMENT_WAITER, cloud_event, start, wait_for
from tests.support.rabbitmq import (
    RABBITMQ_URL,
    broker_scratch,
    on_broker,
    require_rabbitmq,
    take,
    unique_suffix,
)
from tests.support.service import InProcessService, open_service, register_yaml
from tests.support.services import psql
from workflow_orchestrator.events import REJECTION_REASON_HEADER

pytestmark = pytest.mark.integration

ORDERS = [f"A-{n}" for n in range(1, 6)]
REFUSAL = "PostgreSQL refused the event (ProgramLimitExceededError: index row"


def payment(order: str, *, event_id: str | None = None) -> dict[str, Any]:
    """The payment of ``order`` (7) that completes its waiter."""
    return cloud_event("payment.received", {"orderId": order, "amount": 7}, event_id=event_id)


def poison() -> dict[str, Any]:
    """A valid CloudEvent whose id is too large for the deduplication index (~12 KB)."""
    return payment("A-poison", event_id=secrets.token_urlsafe(9_000))


async def start_waiters(app: InProcessService, orders: list[str]) -> dict[str, str]:
    """Register the payment waiter if needed and start one waiting instance per order."""
    known = await app.api.get("/v1/workflow-definitions")
    if "payment-waiter" not in known.text:
        await register_yaml(app, PAYMENT_WAITER)
    ids = {order: await start(app, "payment-waiter", {"orderId": order}) for order in orders}
    for instance_id in ids.values():
        await wait_for(app, instance_id, "waiting")
    return ids


def our_warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    """The WARNING messages of the events package that contain ``text``."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("workflow_orchestrator.events")
        and r.levelno == logging.WARNING
        and text in r.getMessage()
    ]


async def publish_rows(database_url: str, events: list[dict[str, Any]]) -> None:
    """Publish ``events`` into the ``events`` table in ONE transaction (one claim sees all)."""
    calls = " ".join(
        f"SELECT workflow_publish_event($${json.dumps(event)}$$::jsonb);" for event in events
    )
    await trio.to_thread.run_sync(
        lambda: psql(f"BEGIN; {calls} COMMIT;", database_url=database_url)
    )


async def test_database_source_dead_letters_a_refused_event_and_routes_the_rest(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Five payments and one event whose id PostgreSQL cannot index, published in one
    transaction: the batch is routed one at a time, the five waiters complete, the poison row
    moves to event_dead_letters with the refusal as its reason; a poison alone in its batch is
    dead-lettered too, and a later event is routed."""
    bad = poison()
    events = [payment(order) for order in ORDERS[:2]] + [bad]
    events += [payment(order) for order in ORDERS[2:]]
    with trio.fail_after(90):
        async with open_service(database_url) as app:
            ids = await start_waiters(app, ORDERS)
            await publish_rows(database_url, events)
            for instance_id in ids.values():
                assert (await wait_for(app, instance_id, "completed"))["output"] == {"paid": 7}
            # A poison alone in its batch is dead-lettered too, and the source goes on.
            await publish_rows(database_url, [poison()])
            dead_count = "0"
            while dead_count != "2":
                dead_count = await trio.to_thread.run_sync(
                    lambda: psql(
                        "SELECT count(*) FROM event_dead_letters", database_url=database_url
                    )
                )
                await trio.sleep(0.05)
            later = await start_waiters(app, ["A-later"])
            await publish_rows(database_url, [payment("A-later")])
            await wait_for(app, later["A-later"], "completed")
            letters = await trio.to_thread.run_sync(
                lambda: psql(
                    "SELECT json_agg(json_build_object('kind', source_kind, 'reason', reason, "
                    "'payload', payload) ORDER BY dead_letter_id) FROM event_dead_letters",
                    database_url=database_url,
                )
            )
            pending = await trio.to_thread.run_sync(
                lambda: psql("SELECT count(*) FROM events", database_url=database_url)
            )
    letter, alone = json.loads(letters)
    assert letter["kind"] == alone["kind"] == "database"
    assert letter["reason"].startswith(REFUSAL)
    assert letter["reason"].endswith("; shorten or change the event")
    assert json.loads(letter["payload"])["id"] == bad["id"]
    assert alone["reason"].startswith(REFUSAL)
    assert pending == "0"
    [batch] = our_warnings(caplog, "one at a time to find the one PostgreSQL refuses")
    assert "routing 6 events (event_seq " in batch
    assert "(RoutingRefused: PostgreSQL refused a batch of 6 events (ProgramLimitExceeded" in batch
    moved, _ = our_warnings(caplog, "moved to event_dead_letters")
    assert moved.startswith("database event source: event_seq ")
    assert (
        f", event {bad['id'][:120]!r}... ({len(bad['id'])} characters) from source '/tests', "
        f"refused by PostgreSQL, moved to event_dead_letters: {REFUSAL}"
    ) in moved


def rabbitmq_settings(queue: str, exchange: str) -> dict[str, Any]:
    """The service's settings for a RabbitMQ source on the test's own names."""
    return {
        "eventProcessing.source": "rabbitmq",
        "eventProcessing.rabbitmq.url": RABBITMQ_URL,
        "eventProcessing.rabbitmq.exchanges": [exchange, f"{exchange}-system"],
        "eventProcessing.rabbitmq.queue": queue,
    }


async def wait_connected(app: InProcessService) -> None:
    """Until the service reports its broker connected."""
    while True:
        body = (await app.management.get("/health/detailed")).json()
        if body["components"]["eventProcessing"]["details"].get("broker") == "connected":
            return
        await trio.sleep(0.05)


async def publish_messages(exchange: str, events: list[dict[str, Any]]) -> None:
    """Publish ``events`` in structured mode to ``exchange`` (one connection, in order), each
    with the message id ``m-<orderId>``."""

    async def work(channel: aio_pika.abc.AbstractChannel) -> None:
        target = await channel.get_exchange(exchange)
        for event in events:
            await target.publish(
                aio_pika.Message(
                    json.dumps(event).encode(),
                    content_type="application/cloudevents+json",
                    message_id=f"m-{event['data']['orderId']}",
                ),
                routing_key="payments",
            )

    await on_broker(work)


async def test_rabbitmq_source_dead_letters_a_refused_event_and_acks_the_rest(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Five payments and one event whose id PostgreSQL cannot index, waiting in the queue when
    the service starts: the five waiters complete, the poison goes to the dead-letter queue
    with the refusal as its reason, nothing stays in the queue, and a later event is routed."""
    require_rabbitmq()
    suffix = unique_suffix()
    queue, exchange = f"wo-poison-{suffix}", f"business-{suffix}"
    settings = rabbitmq_settings(queue, exchange)
    bad = poison()
    events = [payment(order) for order in ORDERS[:2]] + [bad]
    events += [payment(order) for order in ORDERS[2:]]
    queues = [queue, f"{queue}.dead-letter"]
    exchanges = [exchange, f"{exchange}-system", f"{queue}.dead-letter"]
    with trio.fail_after(120):
        async with broker_scratch(queues, exchanges, attempts=5):
            async with open_service(database_url, settings=settings) as app:
                await wait_connected(app)
                ids = await start_waiters(app, ORDERS)
            # The service is stopped: the six messages wait in the queue, so the consumer
            # receives them together when it starts again.
            await publish_messages(exchange, events)
            async with open_service(database_url, settings=settings) as app:
                for instance_id in ids.values():
                    body = await wait_for(app, instance_id, "completed")
                    assert body["output"] == {"paid": 7}
                later = await start_waiters(app, ["A-later"])
                await publish_messages(exchange, [payment("A-later")])
                await wait_for(app, later["A-later"], "completed")
                dead = await take(f"{queue}.dead-letter", count=2, seconds=2)
    [letter] = dead
    assert json.loads(letter.body)["id"] == bad["id"]
    reason = str((letter.headers or {})[REJECTION_REASON_HEADER])
    assert reason.startswith(REFUSAL)
    assert reason.endswith("; shorten or change the event")
    [logged] = our_warnings(caplog, "dead-lettering message m-A-poison")
    assert logged.startswith(
        f"dead-lettering message m-A-poison (exchange '{exchange}', key 'payments'), event "
        f"{bad['id'][:120]!r}... ({len(bad['id'])} characters) from source '/tests': {REFUSAL}"
    )
