"""The outbox relay against the real PostgreSQL and RabbitMQ: what is published and deleted, order,
partition ownership, wake-ups, and at-least-once publishing through broker outages.

Every test declares its own exchanges and read-back queue (uuid suffix, via ``open_rabbitmq``:
durable topic exchanges and a queue bound to each with ``#``) and deletes them afterwards. Outbox
rows are inserted directly with SQL.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import attrs
import pytest
import trio

from tests.support.background import running, wait_until
from tests.support.database import open_test_database
from tests.support.rabbitmq import (
    RABBITMQ_URL,
    broker_names_deleted,
    on_broker,
    rabbitmqctl,
    require_rabbitmq,
    unique_suffix,
)
from workflow_orchestrator.config import RabbitMQSettings
from workflow_orchestrator.events._outbox_relay import OutboxRelay
from workflow_orchestrator.events._rabbitmq import (
    BrokerUnavailable,
    Delivery,
    OutgoingMessage,
    RabbitMQConnection,
    open_rabbitmq,
)
from workflow_orchestrator.storage import Database

pytestmark = pytest.mark.integration

RELAY_LOGGER = "workflow_orchestrator.events._outbox_relay"
INSTANCE = uuid.UUID("00000000-0000-4000-8000-000000000001")


@attrs.frozen(kw_only=True)
class Names:
    """The test's own broker names."""

    suffix: str

    @property
    def business(self) -> str:
        return f"business-events-{self.suffix}"

    @property
    def system(self) -> str:
        return f"system-events-{self.suffix}"

    @property
    def group(self) -> str:
        return f"wo-relay-test-{self.suffix}"

    @property
    def settings(self) -> RabbitMQSettings:
        return RabbitMQSettings(url=RABBITMQ_URL, exchanges=(self.business, self.system))

    @property
    def exchanges(self) -> dict[str, str]:
        return {"business": self.business, "system": self.system}


@pytest.fixture
def names() -> Names:
    """Exchange and queue names unique to one test (RabbitMQ must be reachable)."""
    require_rabbitmq()
    return Names(suffix=unique_suffix())


@asynccontextmanager
async def environment(
    database_url: str, names: Names, *, extra_exchanges: Sequence[str] = (), **rabbitmq: Any
) -> AsyncIterator[tuple[Database, RabbitMQConnection]]:
    """The test's database and a connection that declared its exchanges and read-back queue;
    the broker names are deleted when the block ends."""
    queues = (names.group, f"{names.group}.dead-letter")
    exchanges = (names.business, names.system, f"{names.group}.dead-letter", *extra_exchanges)
    async with (
        open_test_database(database_url) as database,
        broker_names_deleted(queues, exchanges),
        open_rabbitmq(names.settings, consumer_group=names.group, **rabbitmq) as rmq,
    ):
        yield database, rmq


def event_body(event_id: str, event_type: str, number: int) -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "/test/outbox",
            "type": event_type,
            "data": {"n": number},
        }
    )


async def insert_rows(
    database: Database,
    count: int,
    *,
    partition: int = 0,
    instance_id: uuid.UUID = INSTANCE,
    exchange: str = "business",
    routing_key: str = "order.created",
    prefix: str = "e",
) -> list[str]:
    """Insert ``count`` outbox rows in one statement; returns their event ids in order."""
    ids = [f"{prefix}-{n}" for n in range(count)]
    rows = [
        (
            partition,
            instance_id,
            exchange,
            routing_key,
            event_id,
            event_body(event_id, routing_key, n),
        )
        for n, event_id in enumerate(ids)
    ]

    async def work(connection: Any) -> None:
        await connection.executemany(
            "INSERT INTO outbox (partition, instance_id, exchange, routing_key, event_id, body) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            rows,
        )

    await database.run(work)
    return ids


async def outbox_ids(database: Database) -> list[str]:
    """The event ids left in the outbox, in outbox_seq order."""
    rows = await database.fetch("SELECT event_id FROM outbox ORDER BY outbox_seq")
    return [row["event_id"] for row in rows]


async def receive(rmq: RabbitMQConnection, count: int) -> list[Delivery]:
    """Read (and acknowledge) batches until ``count`` deliveries arrived."""
    received: list[Delivery] = []
    while len(received) < count:
        batch = await rmq.deliveries.receive()
        await rmq.ack(batch)
        received.extend(batch)
    return received


async def wait_until_empty(database: Database) -> None:
    while await outbox_ids(database):  # noqa: ASYNC110 (the database signals nothing)
        await trio.sleep(0.05)


async def nothing_more_arrives(rmq: RabbitMQConnection, seconds: float = 0.5) -> None:
    with trio.move_on_after(seconds):
        extra = await rmq.deliveries.receive()
        raise AssertionError(f"unexpected deliveries: {[d.message_id for d in extra]}")


def relay_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == RELAY_LOGGER and r.levelno == level]


async def test_rows_are_published_with_their_attributes_and_deleted(
    database_url: str, names: Names
) -> None:
    """Each row goes to its kind's exchange as a persistent structured CloudEvent, then leaves
    the outbox."""
    with trio.fail_after(30):
        async with environment(database_url, names) as (database, rmq):
            (business_id,) = await insert_rows(database, 1, prefix="biz")
            (system_id,) = await insert_rows(
                database,
                1,
                exchange="system",
                routing_key="io.workflow.instance.completed",
                prefix="sys",
            )
            relay = OutboxRelay(
                database=database,
                publisher=rmq,
                partitions=lambda: frozenset({0}),
                exchanges=names.exchanges,
            )
            async with running(relay):
                deliveries = await receive(rmq, 2)
                await wait_until_empty(database)
                statistics = relay.statistics()
                assert await relay.backlog() == 0
    by_id = {d.message_id: d for d in deliveries}
    business, system = by_id[business_id], by_id[system_id]
    assert (business.exchange, business.routing_key) == (names.business, "order.created")
    assert (system.exchange, system.routing_key) == (
        names.system,
        "io.workflow.instance.completed",
    )
    assert business.body == event_body(business_id, "order.created", 0).encode()
    assert json.loads(system.body)["type"] == "io.workflow.instance.completed"
    for delivery in deliveries:
        assert delivery.content_type == "application/cloudevents+json"
        assert delivery.properties["type"] == delivery.routing_key
        assert delivery.properties["delivery_mode"] == 2
    assert statistics.published_total == 2 and statistics.failures_total == 0
    assert statistics.last_error is None and statistics.backlog == 0


async def test_order_of_one_instance_is_preserved(database_url: str, names: Names) -> None:
    """1,000 rows of one instance, relayed in batches of 64, reach the queue in outbox order."""
    with trio.fail_after(60):
        async with environment(database_url, names) as (database, rmq):
            ids = await insert_rows(database, 1000)
            relay = OutboxRelay(
                database=database,
                publisher=rmq,
                partitions=lambda: frozenset({0}),
                exchanges=names.exchanges,
                batch_size=64,
            )
            async with running(relay):
                deliveries = await receive(rmq, 1000)
                await wait_until_empty(database)
                await nothing_more_arrives(rmq)
    assert [d.message_id for d in deliveries] == ids
    assert relay.statistics().published_total == 1000


async def test_only_rows_of_owned_partitions_are_published(database_url: str, names: Names) -> None:
    """Rows of a partition this replica does not hold stay; they go once it is held."""
    owned = {0, 2}
    with trio.fail_after(30):
        async with environment(database_url, names) as (database, rmq):
            mine = await insert_rows(database, 5, partition=0, prefix="p0")
            mine += await insert_rows(database, 5, partition=2, prefix="p2")
            theirs = await insert_rows(database, 5, partition=1, prefix="p1")
            relay = OutboxRelay(
                database=database,
                publisher=rmq,
                partitions=lambda: frozenset(owned),
                exchanges=names.exchanges,
            )
            assert await relay.backlog() == 10
            async with running(relay):
                first = await receive(rmq, 10)
                await wait_until(lambda: relay.statistics().state == "idle")
                await nothing_more_arrives(rmq)
                assert await outbox_ids(database) == theirs
                assert await relay.backlog() == 0
                owned.add(1)
                relay.notify()
                second = await receive(rmq, 5)
                await wait_until_empty(database)
    assert sorted(d.message_id or "" for d in first) == sorted(mine)
    assert [d.message_id for d in second] == theirs


async def test_notify_wakes_the_relay_before_the_poll_interval(
    database_url: str, names: Names
) -> None:
    """With a one-hour poll interval, a row is published after notify(), not by a poll.

    The relay polls once when it starts and then only every hour, so the delivery inside the
    test's 30-second bound can only come from the notification.
    """
    with trio.fail_after(30):
        async with environment(database_url, names) as (database, rmq):
            relay = OutboxRelay(
                database=database,
                publisher=rmq,
                partitions=lambda: frozenset({0}),
                exchanges=names.exchanges,
                poll_interval=3600.0,
            )
            async with running(relay):
                await wait_until(lambda: relay.statistics().state == "idle")
                (event_id,) = await insert_rows(database, 1)
                await trio.sleep(0.5)
                assert await outbox_ids(database) == [event_id]  # asleep: no poll yet
                for _ in range(1000):  # cheap to call often
                    relay.notify()
                (delivery,) = await receive(rmq, 1)
                await wait_until_empty(database)
    assert delivery.message_id == event_id


@attrs.define
class FlakyPublisher:
    """Raises BrokerUnavailable ``failures`` times, then records what it is given."""

    failures: int
    calls: int = 0
    published: list[OutgoingMessage] = attrs.field(factory=list)

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise BrokerUnavailable(
                f"publishing {len(messages)} messages did not finish within 3s; "
                "is RabbitMQ at 127.0.0.1:5672// reachable?",
                broker="127.0.0.1:5672//",
            )
        self.published.extend(messages)


async def test_publisher_failing_then_working_leaves_nothing_behind(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Three BrokerUnavailable in a row: one WARNING, backoff, then every row published in
    order, one INFO naming the rows that waited, and an empty outbox."""
    publisher = FlakyPublisher(failures=3)
    caplog.set_level(logging.DEBUG, logger=RELAY_LOGGER)
    with trio.fail_after(30):
        async with open_test_database(database_url) as database:
            ids = await insert_rows(database, 25)
            relay = OutboxRelay(
                database=database,
                publisher=publisher,
                partitions=lambda: frozenset({0}),
                exchanges={"business": "biz-x", "system": "sys-x"},
                batch_size=10,
                retry_initial=0.01,
                retry_max=0.05,
            )
            async with running(relay):
                await wait_until(lambda: relay.statistics().failures_total == 3)
                await wait_until_empty(database)
                await wait_until(lambda: relay.statistics().state == "idle")
            statistics = relay.statistics()
    assert [m.message_id for m in publisher.published] == ids
    assert {m.exchange for m in publisher.published} == {"biz-x"}
    assert publisher.calls == 3 + 3  # three failures, then batches of 10, 10 and 5
    assert statistics.published_total == 25 and statistics.failures_total == 3
    assert statistics.last_error is not None and "'biz-x'" in statistics.last_error
    (warning,) = relay_records(caplog, logging.WARNING)
    assert "exchange 'biz-x'" in warning.getMessage()
    assert "is RabbitMQ at 127.0.0.1:5672// reachable?" in warning.getMessage()
    (info,) = relay_records(caplog, logging.INFO)
    assert "after 3 failed attempts; 25 outbox rows were waiting" in info.getMessage()


async def test_unknown_exchange_keeps_the_rows_and_retries(
    database_url: str, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    """A mapping to an exchange the broker does not have (PublishFailed) keeps the rows and
    retries with backoff; once the exchange exists, the rows go out."""
    missing = f"missing-events-{names.suffix}"
    caplog.set_level(logging.INFO, logger=RELAY_LOGGER)
    with trio.fail_after(30):
        async with environment(database_url, names, extra_exchanges=[missing]) as (
            database,
            rmq,
        ):
            ids = await insert_rows(database, 3)
            relay = OutboxRelay(
                database=database,
                publisher=rmq,
                partitions=lambda: frozenset({0}),
                exchanges={"business": missing, "system": names.system},
                retry_initial=0.05,
                retry_max=0.2,
            )
            async with running(relay):
                await wait_until(lambda: relay.statistics().failures_total >= 3)
                retrying = relay.statistics()
                assert await outbox_ids(database) == ids
                assert await relay.backlog() == 3

                async def declare(channel: aio_pika.abc.AbstractChannel) -> None:
                    exchange = await channel.declare_exchange(
                        missing, aio_pika.ExchangeType.TOPIC, durable=True
                    )
                    queue = await channel.declare_queue(names.group, passive=True)
                    await queue.bind(exchange, routing_key="#")

                await on_broker(declare)
                deliveries = await receive(rmq, 3)
                await wait_until_empty(database)
    assert retrying.state == "retrying" and retrying.published_total == 0
    assert retrying.last_error is not None
    assert f"exchange '{missing}'" in retrying.last_error
    assert "the exchange does not exist" in retrying.last_error
    assert [d.message_id for d in deliveries] == ids
    assert {d.exchange for d in deliveries} == {missing}
    (warning,) = relay_records(caplog, logging.WARNING)
    assert f"exchange '{missing}'" in warning.getMessage()
    (info,) = relay_records(caplog, logging.INFO)
    assert "3 outbox rows were waiting" in info.getMessage()


@pytest.mark.slow
async def test_rows_written_during_a_broker_restart_are_all_published(
    database_url: str, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows committed while RabbitMQ is stopped stay in the outbox and are all published after
    it is back (duplicates allowed and counted, losses not)."""
    caplog.set_level(logging.INFO, logger=RELAY_LOGGER)
    received: list[str] = []
    with trio.fail_after(90):
        async with environment(
            database_url, names, reconnect_interval=0.5, operation_timeout=2
        ) as (database, rmq):
            relay = OutboxRelay(
                database=database,
                publisher=rmq,
                partitions=lambda: frozenset({0}),
                exchanges=names.exchanges,
                batch_size=20,
                poll_interval=0.2,
                retry_initial=0.1,
                retry_max=1.0,
            )
            async with running(relay):
                before = await insert_rows(database, 50, prefix="before")
                relay.notify()
                received += [d.message_id or "" for d in await receive(rmq, 50)]
                await wait_until_empty(database)
                try:
                    await rabbitmqctl("stop_app")
                    with trio.fail_after(15):
                        await wait_until(lambda: rmq.state == "reconnecting", 0.05)
                    during = await insert_rows(database, 100, prefix="during")
                    relay.notify()
                    with trio.fail_after(15):
                        await wait_until(lambda: relay.statistics().state == "retrying", 0.05)
                    assert await outbox_ids(database) == during
                finally:
                    await rabbitmqctl("start_app")
                with trio.fail_after(45):
                    while not set(during) <= set(received):
                        batch = await rmq.deliveries.receive()
                        await rmq.ack(batch)
                        received += [d.message_id or "" for d in batch]
                    await wait_until_empty(database)
                with trio.move_on_after(1):  # late duplicates, if any
                    while True:
                        batch = await rmq.deliveries.receive()
                        await rmq.ack(batch)
                        received += [d.message_id or "" for d in batch]
            statistics = relay.statistics()
    duplicates = len(received) - len(set(received))
    assert set(received) == set(before) | set(during), "rows were lost"
    first_seen = [i for i in dict.fromkeys(received) if i.startswith("during")]
    assert first_seen == during, "the order of the instance's events changed"
    assert duplicates <= 100, f"{duplicates} duplicates"  # at most republished batches
    assert statistics.failures_total >= 1
    assert statistics.published_total >= 150
    assert relay_records(caplog, logging.WARNING)
    assert any(
        "outbox rows were waiting" in r.getMessage() for r in relay_records(caplog, logging.INFO)
    )


async def test_a_failed_delete_publishes_the_batch_again(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When deleting a confirmed batch fails, its rows stay and go out again (duplicates, no
    loss), then the outbox empties."""
    original = Database.execute
    failed: list[str] = []

    async def flaky_execute(self: Database, sql: str, *args: object) -> str:
        if sql.startswith("DELETE FROM outbox") and not failed:
            failed.append(sql)
            raise ConnectionError("connection to the database lost")
        return await original(self, sql, *args)

    monkeypatch.setattr(Database, "execute", flaky_execute)
    publisher = FlakyPublisher(failures=0)
    with trio.fail_after(30):
        async with open_test_database(database_url) as database:
            ids = await insert_rows(database, 5)
            relay = OutboxRelay(
                database=database,
                publisher=publisher,
                partitions=lambda: frozenset({0}),
                exchanges={"business": "biz-x", "system": "sys-x"},
                retry_initial=0.01,
                retry_max=0.05,
            )
            async with running(relay):
                await wait_until_empty(database)
                await wait_until(lambda: relay.statistics().state == "idle")
            statistics = relay.statistics()
    assert [m.message_id for m in publisher.published] == ids + ids
    assert statistics.published_total == 10 and statistics.failures_total == 1
    assert statistics.last_error is not None
    assert "deleting 5 published outbox rows failed" in statistics.last_error
