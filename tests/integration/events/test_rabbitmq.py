"""The RabbitMQ adapter against the real broker: topology, batches, acks, dead letters, confirms,
and consumption that survives a broker restart.

Every test declares its own exchanges and queues (uuid suffix) and deletes them afterwards.
"""

from __future__ import annotations

import socket
import uuid
from contextlib import AbstractAsyncContextManager
from typing import Any

import aio_pika
import aiormq
import attrs
import pytest
import trio

from tests.support.background import wait_until
from tests.support.rabbitmq import (
    RABBITMQ_URL,
    broker_scratch,
    on_broker,
    queue_depth,
    rabbitmqctl,
    require_rabbitmq,
    unique_suffix,
)
from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import RabbitMQSettings
from workflow_orchestrator.events import (
    REJECTION_REASON_HEADER,
    BrokerUnavailable,
    Delivery,
    OutgoingMessage,
    PublishFailed,
    RabbitMQConnection,
    TopologyConflict,
    open_rabbitmq,
)

pytestmark = pytest.mark.integration


@attrs.frozen(kw_only=True)
class Names:
    """The test's own broker names."""

    settings: RabbitMQSettings
    group: str

    @property
    def business(self) -> str:
        return self.settings.exchanges[0]

    @property
    def queues(self) -> tuple[str, ...]:
        return (self.group, f"{self.group}.dead-letter")

    @property
    def exchanges(self) -> tuple[str, ...]:
        return (*self.settings.exchanges, f"{self.group}.dead-letter")


@pytest.fixture
def names() -> Names:
    """Exchange and queue names unique to one test (RabbitMQ must be reachable)."""
    require_rabbitmq()
    suffix = unique_suffix()
    settings = RabbitMQSettings(
        url=RABBITMQ_URL,
        exchanges=(f"business-events-{suffix}", f"system-events-{suffix}"),
        prefetch=50,
    )
    return Names(settings=settings, group=f"wo-test-{suffix}")


def scratch(names: Names) -> AbstractAsyncContextManager[None]:
    """The bridge, and the test's broker names deleted when the block ends."""
    return broker_scratch(names.queues, names.exchanges)


def message(names: Names, number: int, **overrides: Any) -> OutgoingMessage:
    fields: dict[str, Any] = {
        "exchange": names.business,
        "routing_key": "order.created",
        "body": f'{{"n": {number}}}'.encode(),
        "content_type": "application/json",
        "headers": {"cloudEvents:type": "order.created"},
        "message_id": f"m-{number}",
    }
    fields.update(overrides)
    return OutgoingMessage(**fields)


async def receive(connection: RabbitMQConnection, count: int) -> list[Delivery]:
    """Read batches until ``count`` deliveries arrived."""
    received: list[Delivery] = []
    while len(received) < count:
        received.extend(await connection.deliveries.receive())
    return received


async def wait_for_state(connection: RabbitMQConnection, state: str) -> None:
    """Poll until the adapter reports ``state`` (it changes inside aio-pika: no signal)."""
    await wait_until(lambda: connection.state == state, 0.05)


async def test_declaring_twice_is_a_no_op(names: Names) -> None:
    """Opening the same consumer group twice (at once and again) declares nothing new."""
    with trio.fail_after(30):
        async with scratch(names):
            async with (
                open_rabbitmq(names.settings, consumer_group=names.group) as first,
                open_rabbitmq(names.settings, consumer_group=names.group) as second,
            ):
                assert first.state == second.state == "connected"
            async with open_rabbitmq(names.settings, consumer_group=names.group) as third:
                assert third.topology.dead_letter_queue == f"{names.group}.dead-letter"
                assert third.topology.exchanges == names.settings.exchanges
            assert third.state == "closed"
            assert await queue_depth(names.group) == 0


async def test_quorum_on_an_existing_classic_queue_is_a_clear_conflict(names: Names) -> None:
    """Switching an existing classic queue to quorum fails naming the queue and the fix."""
    with trio.fail_after(30):
        async with scratch(names):
            async with open_rabbitmq(names.settings, consumer_group=names.group):
                pass
            with pytest.raises(TopologyConflict) as caught:
                async with open_rabbitmq(
                    names.settings, consumer_group=names.group, quorum_queues=True
                ):
                    pass
    assert caught.value.name == f"{names.group}.dead-letter"
    assert f"'{names.group}.dead-letter' exists on the broker with different properties" in str(
        caught.value
    )


async def test_quorum_queues_consume_and_ack(names: Names) -> None:
    """With quorum queues a published batch is consumed and acknowledged."""
    with trio.fail_after(30):
        async with (
            scratch(names),
            open_rabbitmq(names.settings, consumer_group=names.group, quorum_queues=True) as rmq,
        ):
            await rmq.publish([message(names, n) for n in range(5)])
            deliveries = await receive(rmq, 5)
            assert await rmq.ack(deliveries) == 5


async def test_batch_is_consumed_and_acked_with_one_multiple_ack(
    names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Published messages arrive as batches of plain values; one multiple ack clears them."""
    acks: list[tuple[int, bool]] = []
    original = aiormq.Channel.basic_ack

    async def spy(self: aiormq.Channel, delivery_tag: int, multiple: bool = False) -> None:
        acks.append((delivery_tag, multiple))
        await original(self, delivery_tag, multiple)

    monkeypatch.setattr(aiormq.Channel, "basic_ack", spy)
    with trio.fail_after(30):
        async with scratch(names):
            async with open_rabbitmq(names.settings, consumer_group=names.group) as rmq:
                await rmq.publish([message(names, n) for n in range(20)])
                await rmq.publish(
                    [message(names, 99, exchange=names.settings.exchanges[1], routing_key="x.y")]
                )
                deliveries = await receive(rmq, 21)
                assert await rmq.ack(deliveries) == 21
                assert rmq.statistics().unacknowledged == 0
            assert await queue_depth(names.group) == 0
    assert acks == [(21, True)]
    first = deliveries[0]
    assert first.body == b'{"n": 0}'
    assert first.content_type == "application/json"
    assert first.message_id == "m-0"
    assert first.headers == {"cloudEvents:type": "order.created"}
    assert first.properties["delivery_mode"] == 2
    assert (first.exchange, first.routing_key) == (names.business, "order.created")
    assert first.delivery_tag == 1 and not first.redelivered
    assert {d.exchange for d in deliveries} == set(names.settings.exchanges)


async def test_acks_with_gaps_are_sent_one_by_one(
    names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acking deliveries 2 and 4 of 4 never acks 1 and 3 by accident."""
    acks: list[tuple[int, bool]] = []
    original = aiormq.Channel.basic_ack

    async def spy(self: aiormq.Channel, delivery_tag: int, multiple: bool = False) -> None:
        acks.append((delivery_tag, multiple))
        await original(self, delivery_tag, multiple)

    monkeypatch.setattr(aiormq.Channel, "basic_ack", spy)
    with trio.fail_after(30):
        async with scratch(names):
            async with open_rabbitmq(names.settings, consumer_group=names.group) as rmq:
                await rmq.publish([message(names, n) for n in range(4)])
                deliveries = sorted(await receive(rmq, 4), key=lambda d: d.delivery_tag)
                assert await rmq.ack([deliveries[1], deliveries[3]]) == 2
                assert rmq.statistics().unacknowledged == 2
            assert await queue_depth(names.group) == 2
    assert acks == [(2, False), (4, False)]


async def test_one_publish_call_keeps_its_order(names: Names) -> None:
    """1,000 messages published in one call arrive in the queue in list order."""
    with trio.fail_after(30):
        async with (
            scratch(names),
            open_rabbitmq(names.settings, consumer_group=names.group) as rmq,
        ):
            await rmq.publish([message(names, n) for n in range(1000)])
            deliveries: list[Delivery] = []
            while len(deliveries) < 1000:  # acking as they come: prefetch is 50
                batch = await rmq.deliveries.receive()
                assert await rmq.ack(batch) == len(batch)
                deliveries.extend(batch)
    assert [d.message_id for d in deliveries] == [f"m-{n}" for n in range(1000)]
    assert [d.delivery_tag for d in deliveries] == list(range(1, 1001))


async def test_consume_exchanges_binds_the_queue_to_those_only(names: Names) -> None:
    """With consume_exchanges the queue is bound to those exchanges only (and unbound from a
    declared one it was bound to before); every exchange is still declared."""
    business, system = names.settings.exchanges
    with trio.fail_after(30):
        async with scratch(names):
            async with open_rabbitmq(names.settings, consumer_group=names.group) as rmq:
                assert rmq.topology.bindings == (business, system)
            async with open_rabbitmq(
                names.settings, consumer_group=names.group, consume_exchanges=[business]
            ) as rmq:
                assert rmq.topology.exchanges == (business, system)
                assert rmq.topology.bindings == (business,)
                # Published to its own system exchange (declared: confirmed), then business.
                await rmq.publish([message(names, 1, exchange=system, routing_key="x.y")])
                await rmq.publish([message(names, 2)])
                (delivery,) = await receive(rmq, 1)
                assert (delivery.exchange, delivery.message_id) == (business, "m-2")
                assert await rmq.ack([delivery]) == 1
            assert await queue_depth(names.group) == 0


async def test_consume_exchanges_must_be_declared_ones(names: Names) -> None:
    """An exchange to consume from that is not among settings.exchanges is a ValueError."""
    with trio.fail_after(30):
        async with scratch(names):
            with pytest.raises(ValueError, match="not among the declared exchanges"):
                async with open_rabbitmq(
                    names.settings, consumer_group=names.group, consume_exchanges=["other"]
                ):
                    pass


async def test_unacked_messages_come_back_after_closing(names: Names) -> None:
    """Messages received but not acknowledged are redelivered to the next connection."""
    with trio.fail_after(30):
        async with scratch(names):
            async with open_rabbitmq(names.settings, consumer_group=names.group) as rmq:
                await rmq.publish([message(names, n) for n in range(5)])
                first = await receive(rmq, 5)
            async with open_rabbitmq(names.settings, consumer_group=names.group) as rmq:
                again = await receive(rmq, 5)
                assert await rmq.ack(again) == 5
    assert all(d.redelivered for d in again) and not any(d.redelivered for d in first)
    assert sorted(d.message_id or "" for d in again) == sorted(d.message_id or "" for d in first)


async def test_dead_letter_keeps_the_message_with_the_reason(names: Names) -> None:
    """A dead-lettered delivery leaves the queue and lands in <queue>.dead-letter with its
    reason in x-rejection-reason."""
    reason = "not a CloudEvent: attribute 'id' is missing"
    with trio.fail_after(30):
        async with scratch(names):
            async with open_rabbitmq(names.settings, consumer_group=names.group) as rmq:
                await rmq.publish([message(names, 1)])
                (delivery,) = await receive(rmq, 1)
                assert await rmq.dead_letter(delivery, reason) is True
                assert rmq.statistics().dead_lettered_total == 1

            async def get_dead(channel: aio_pika.abc.AbstractChannel) -> Any:
                queue = await channel.declare_queue(f"{names.group}.dead-letter", passive=True)
                got = await queue.get(no_ack=True, timeout=5)
                assert got is not None
                return got.body, got.headers, got.message_id

            body, headers, message_id = await on_broker(get_dead)
            assert await queue_depth(names.group) == 0
    assert body == b'{"n": 1}' and message_id == "m-1"
    assert headers[REJECTION_REASON_HEADER] == reason
    assert headers["x-original-exchange"] == names.business
    assert headers["cloudEvents:type"] == "order.created"


async def test_publish_to_a_missing_exchange_names_it(names: Names) -> None:
    """An unconfirmed publication raises PublishFailed naming the exchange; the adapter keeps
    publishing afterwards."""
    missing = f"no-such-exchange-{uuid.uuid4().hex[:6]}"
    with trio.fail_after(30):
        async with (
            scratch(names),
            open_rabbitmq(names.settings, consumer_group=names.group) as rmq,
        ):
            with pytest.raises(PublishFailed) as caught:
                await rmq.publish([message(names, 1, exchange=missing)])
            await rmq.publish([message(names, 2)])
            (delivery,) = await receive(rmq, 1)
            assert delivery.message_id == "m-2"
    assert caught.value.exchange == missing
    assert str(caught.value) == (
        f"1 of 1 messages not confirmed; exchange '{missing}' (routing key 'order.created'): "
        "the exchange does not exist (declare it, or fix its name)"
    )


async def test_publish_waits_for_confirms_and_reports_nacks(names: Names) -> None:
    """publish returns after every confirm; a nack (full queue rejecting publishes) raises."""
    full = f"{names.group}.full"
    with trio.fail_after(30):
        async with scratch(names):
            try:
                async with open_rabbitmq(names.settings, consumer_group=names.group) as rmq:

                    async def bounded_queue(channel: aio_pika.abc.AbstractChannel) -> None:
                        queue = await channel.declare_queue(
                            full, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
                        )
                        await queue.bind(names.business, routing_key="full.#")

                    await on_broker(bounded_queue)
                    await rmq.publish([message(names, n) for n in range(10)])
                    assert rmq.statistics().published_total == 10
                    assert await queue_depth(names.group) + len(await receive(rmq, 10)) >= 10
                    with pytest.raises(PublishFailed) as caught:
                        await rmq.publish(
                            [message(names, n, routing_key="full.order") for n in range(3)]
                        )
            finally:
                await on_broker(lambda channel: channel.queue_delete(full))
    assert caught.value.exchange == names.business
    assert "the broker refused the message (nack)" in str(caught.value)


async def test_consuming_resumes_after_the_broker_cancelled_the_consumer(
    names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    """Deleting the queue under the consumer (the broker cancels it) is survived: the queue is
    declared and bound again and the adapter's own task consumes it again."""
    with trio.fail_after(60):
        async with (
            scratch(names),
            open_rabbitmq(
                names.settings,
                consumer_group=names.group,
                reconnect_interval=0.2,
                operation_timeout=3,
            ) as rmq,
        ):
            await rmq.publish([message(names, 0)])
            (first,) = await receive(rmq, 1)
            assert await rmq.ack([first]) == 1
            await on_broker(lambda channel: channel.queue_delete(names.group))
            # Until the queue is bound again, what is published is dropped (unroutable).
            number, arrived = 0, []
            while not arrived:
                number += 1
                await rmq.publish([message(names, number)])
                with trio.move_on_after(0.5):
                    arrived = await receive(rmq, 1)
            assert arrived[0].message_id == f"m-{number}"
            assert await rmq.ack(arrived) == 1
    assert f"RabbitMQ cancelled the consumer of '{names.group}'; consuming again" in [
        record.getMessage() for record in caplog.records
    ]


async def test_unreachable_broker_is_a_clear_error() -> None:
    """Connecting to a port where nothing listens raises BrokerUnavailable naming the broker."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = RabbitMQSettings(url=f"amqp://guest:secret@127.0.0.1:{port}/")
    with trio.fail_after(30):
        async with open_asyncio_bridge():
            with pytest.raises(BrokerUnavailable) as caught:
                async with open_rabbitmq(settings, consumer_group="g", connect_timeout=3):
                    pass
    assert str(caught.value).startswith(f"cannot connect to RabbitMQ at 127.0.0.1:{port}//: ")
    assert "secret" not in str(caught.value)


@pytest.mark.slow
@pytest.mark.parametrize("quorum_queues", [False, True], ids=["classic", "quorum"])
async def test_consumption_resumes_after_a_broker_restart(
    names: Names, quorum_queues: bool
) -> None:
    """After stop_app/start_app the adapter reports reconnecting, then consumes and publishes
    again by itself; a delivery of the old channel is not acked on the new one."""
    with trio.fail_after(60):
        async with (
            scratch(names),
            open_rabbitmq(
                names.settings,
                consumer_group=names.group,
                quorum_queues=quorum_queues,
                reconnect_interval=0.5,
                operation_timeout=3,
            ) as rmq,
        ):
            await rmq.publish([message(names, 1)])
            (before,) = await receive(rmq, 1)
            try:
                await rabbitmqctl("stop_app")
                with trio.fail_after(15):
                    await wait_for_state(rmq, "reconnecting")
                with pytest.raises(BrokerUnavailable) as caught:
                    await rmq.publish([message(names, 2)])
            finally:
                await rabbitmqctl("start_app")
            with trio.fail_after(30):
                await wait_for_state(rmq, "connected")
            # The unacked delivery is redelivered on the new channel; its old tag is stale.
            (redelivered,) = await receive(rmq, 1)
            assert await rmq.ack([before]) == 0
            assert redelivered.redelivered and redelivered.channel_epoch > before.channel_epoch
            assert await rmq.ack([redelivered]) == 1
            await rmq.publish([message(names, 3)])
            (after,) = await receive(rmq, 1)
            assert after.message_id == "m-3"
            assert await rmq.ack([after]) == 1
            statistics = rmq.statistics()
    assert statistics.reconnections_total >= 1 and statistics.stale_total == 1
    assert f"exchange(s) ['{names.business}'] did not finish within 3s" in str(caught.value)


@pytest.mark.slow
async def test_no_message_is_lost_while_flowing_through_a_restart(names: Names) -> None:
    """Batches published (retried on failure) and consumed while the broker restarts all
    arrive; duplicates are possible (at least once), losses are not."""
    published: set[str] = set()
    received: set[str] = set()
    total = 300
    with trio.fail_after(60):
        async with (
            scratch(names),
            open_rabbitmq(
                names.settings,
                consumer_group=names.group,
                reconnect_interval=0.5,
                operation_timeout=2,
            ) as rmq,
        ):

            async def produce() -> None:
                for start in range(0, total, 10):
                    batch = [message(names, n) for n in range(start, start + 10)]
                    while True:
                        try:
                            await rmq.publish(batch)
                            break
                        except (PublishFailed, BrokerUnavailable):
                            await trio.sleep(0.2)
                    published.update(m.message_id or "" for m in batch)
                    await trio.sleep(0.1)

            async def consume() -> None:
                while len(received) < total:
                    batch = await rmq.deliveries.receive()
                    received.update(d.message_id or "" for d in batch)
                    await rmq.ack(batch)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                nursery.start_soon(consume)
                await trio.sleep(0.5)
                try:
                    await rabbitmqctl("stop_app")
                    await trio.sleep(1)
                finally:
                    await rabbitmqctl("start_app")
                assert 0 < len(published) < total  # the restart happened mid-flow
            statistics = rmq.statistics()
    assert published == received == {f"m-{n}" for n in range(total)}
    assert statistics.reconnections_total >= 1
