"""The RabbitMQ adapter's fast paths against the real broker: the live channels have every aiormq
internal they use and take them, and without one the adapter falls back to the public APIs with
the same results and one WARNING per path.

A failure of the first test means the installed aiormq is not the one the fast paths were checked
against (see ``events/_rabbitmq/_internals.py``). Every test declares its own names (uuid suffix)
and deletes them afterwards.
"""

from __future__ import annotations

import logging
import uuid

import pytest
import trio
import trio_asyncio

from tests.support.rabbitmq import (
    RABBITMQ_URL,
    broker_scratch,
    queue_depth,
    require_rabbitmq,
    unique_suffix,
)
from workflow_orchestrator.config import RabbitMQSettings
from workflow_orchestrator.events import (
    Delivery,
    OutgoingMessage,
    PublishFailed,
    RabbitMQConnection,
    open_rabbitmq,
)
from workflow_orchestrator.events._rabbitmq import _internals
from workflow_orchestrator.events._rabbitmq._internals import (
    CHECKED_AIORMQ,
    CONSUMER_HOOKS,
    Internal,
    installed_version,
    missing_for_consume,
    missing_for_publish,
    missing_internals,
)

pytestmark = pytest.mark.integration

GONE = Internal("Channel", "_gone_in_this_test", coroutine=True)


@pytest.fixture
def settings() -> RabbitMQSettings:
    """Exchanges unique to one test (RabbitMQ must be reachable)."""
    require_rabbitmq()
    suffix = unique_suffix()
    return RabbitMQSettings(
        url=RABBITMQ_URL,
        exchanges=(f"business-events-{suffix}", f"system-events-{suffix}"),
        prefetch=50,
    )


@pytest.fixture
def group(settings: RabbitMQSettings) -> str:
    """The test's consumer group, named after its exchanges."""
    return f"wo-test-{settings.exchanges[0].rsplit('-', 1)[1]}"


@pytest.fixture
def without_internals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both fast paths need an internal no aiormq has, and no fallback was reported yet."""
    monkeypatch.setattr(_internals, "CONSUME_INTERNALS", (*_internals.CONSUME_INTERNALS, GONE))
    monkeypatch.setattr(_internals, "PUBLISH_INTERNALS", (*_internals.PUBLISH_INTERNALS, GONE))
    monkeypatch.setattr(_internals, "_reported", set())


def scratch(settings: RabbitMQSettings, group: str) -> broker_scratch:  # type: ignore[valid-type]
    """The bridge, and the test's broker names deleted when the block ends."""
    dead_letter = f"{group}.dead-letter"
    return broker_scratch((group, dead_letter), (*settings.exchanges, dead_letter))


def message(settings: RabbitMQSettings, number: int, **overrides: str) -> OutgoingMessage:
    fields = {
        "exchange": settings.exchanges[0],
        "routing_key": "order.created",
        "message_id": f"m-{number}",
        **overrides,
    }
    return OutgoingMessage(
        body=f'{{"n": {number}}}'.encode(),
        content_type="application/json",
        headers={"cloudEvents:type": "order.created"},
        **fields,
    )


async def receive_and_ack(connection: RabbitMQConnection, count: int) -> list[Delivery]:
    """Read and ack batches until ``count`` deliveries arrived."""
    received: list[Delivery] = []
    while len(received) < count:
        batch = await connection.deliveries.receive()
        assert await connection.ack(batch) == len(batch)
        received.extend(batch)
    return received


async def test_live_channels_have_every_internal_and_take_the_fast_paths(
    settings: RabbitMQSettings, group: str
) -> None:
    """The installed aiormq's channels pass every check, and a round trip uses both fast paths."""
    version = f"aiormq {installed_version()} (checked against {CHECKED_AIORMQ})"
    with trio.fail_after(30):
        async with (
            scratch(settings, group),
            open_rabbitmq(settings, consumer_group=group) as rmq,
        ):
            consuming = await trio_asyncio.aio_as_trio(rmq._consuming.get_underlay_channel)()
            publishing = await trio_asyncio.aio_as_trio(
                rmq._publisher.channel.get_underlay_channel
            )()
            missing = [
                *missing_for_consume(consuming),
                *missing_internals(consuming, CONSUMER_HOOKS),
                *missing_for_publish(publishing),
            ]
            assert not missing, f"{version} lacks or changed {', '.join(map(str, missing))}"
            await rmq.publish([message(settings, n) for n in range(20)])
            await receive_and_ack(rmq, 20)
            assert rmq._inbox.via_callback == 0, (
                f"{version} did not call the consume override (Channel._on_deliver_frame)"
            )
            assert rmq._publisher.via_fallback == 0, f"{version}: publishing fell back"


async def test_without_the_internals_both_paths_fall_back(
    settings: RabbitMQSettings,
    group: str,
    without_internals: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With an internal missing, a batch still arrives in order through the public APIs, a
    dead letter still works, and each path logs one WARNING naming the internal."""
    caplog.set_level(logging.WARNING, logger=_internals.__name__)
    with trio.fail_after(60):
        async with scratch(settings, group):
            async with open_rabbitmq(settings, consumer_group=group) as rmq:
                await rmq.publish([message(settings, n) for n in range(200)])
                received = await receive_and_ack(rmq, 200)
                await rmq.publish([message(settings, 200)])
                (last,) = await rmq.deliveries.receive()
                assert await rmq.dead_letter(last, "refused by the test") is True
                assert rmq._inbox.via_callback == 201
                assert rmq._publisher.via_fallback == 202  # with the dead-letter copy
            assert await queue_depth(f"{group}.dead-letter") == 1
    assert [d.message_id for d in received] == [f"m-{n}" for n in range(200)]
    assert received[0].body == b'{"n": 0}' and received[0].properties["delivery_mode"] == 2
    assert received[0].headers == {"cloudEvents:type": "order.created"}
    warnings = sorted(r.getMessage() for r in caplog.records if r.name == _internals.__name__)
    assert [w.split(":")[0] for w in warnings] == [
        "RabbitMQ consume fast path off",
        "RabbitMQ publish fast path off",
    ]
    assert all("aiormq Channel._gone_in_this_test()" in w for w in warnings)
    assert all(f"aiormq {installed_version()} lacks or changed" in w for w in warnings)


async def test_the_publish_fallback_names_a_missing_exchange(
    settings: RabbitMQSettings, group: str, without_internals: None
) -> None:
    """Through aio-pika's public API an unknown exchange is the same PublishFailed, and
    publishing works again afterwards."""
    missing = f"no-such-exchange-{uuid.uuid4().hex[:6]}"
    with trio.fail_after(30):
        async with (
            scratch(settings, group),
            open_rabbitmq(settings, consumer_group=group) as rmq,
        ):
            with pytest.raises(PublishFailed) as caught:
                await rmq.publish([message(settings, 1, exchange=missing)])
            await rmq.publish([message(settings, 2)])
            (delivery,) = await receive_and_ack(rmq, 1)
    assert delivery.message_id == "m-2"
    assert caught.value.exchange == missing
    assert str(caught.value) == (
        f"1 of 1 messages not confirmed; exchange '{missing}' (routing key 'order.created'): "
        "the exchange does not exist (declare it, or fix its name)"
    )
