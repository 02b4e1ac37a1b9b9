"""The AsyncAPI adapter against the real brokers: RabbitMQ (127.0.0.1:5672), a tansu Kafka
and a local WebSocket server, each reached under a ``*.fake.com`` name through the host map
and the outbound policy."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aio_pika
import pytest
import trio

from tests.support.asyncapi import open_adapter, open_ws_broker
from tests.support.kafka import open_kafka_broker
from tests.support.kafka_clients import Record, create_topics, produce
from tests.support.rabbitmq import (
    broker_scratch,
    on_broker,
    require_rabbitmq,
    take,
    unique_suffix,
)
from workflow_orchestrator.dsl import WorkflowError
from workflow_orchestrator.dsl.runtime import ServiceCall
from workflow_orchestrator.security import OutboundPolicy

AMQP = {"amqp://rabbitmq.fake.com:5672": "amqp://127.0.0.1:5672"}
KEY = "instance-1/do/0/send"


def call(
    action: str,
    protocol: str,
    url: str,
    address: str,
    *,
    bindings: Mapping[str, Any] | None = None,
    payload: Any = None,
    headers: Mapping[str, Any] | None = None,
    authorization: Mapping[str, str] | None = None,
) -> ServiceCall:
    arguments: dict[str, Any] = {
        "action": action,
        "protocol": protocol,
        "url": url,
        "address": address,
        "bindings": dict(bindings or {}),
        "contentType": None,
    }
    if action == "publish":
        arguments["message"] = {"payload": payload, "headers": dict(headers or {})}
    if authorization is not None:
        arguments["authorization"] = dict(authorization)
    return ServiceCall(kind="asyncapi", arguments=arguments, key=KEY, task_ref="/do/0/send")


def tap(exchange: str) -> dict[str, Any]:
    return {"channel": {"is": "routingKey", "exchange": {"name": exchange, "type": "topic"}}}


async def declare(queues: list[str] = [], exchanges: list[str] = []) -> None:  # noqa: B006
    async def work(channel: aio_pika.abc.AbstractChannel) -> None:
        for name in exchanges:
            await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, auto_delete=False)
        for name in queues:
            await channel.declare_queue(name, auto_delete=False)

    await on_broker(work)


async def send(exchange: str, routing_key: str, body: Any, **properties: Any) -> None:
    async def work(channel: aio_pika.abc.AbstractChannel) -> None:
        target = await channel.get_exchange(exchange) if exchange else channel.default_exchange
        message = aio_pika.Message(json.dumps(body).encode(), **properties)
        await target.publish(message, routing_key=routing_key)

    await on_broker(work)


async def test_amqp_publish_to_a_queue_carries_the_idempotency_key() -> None:
    """Without bindings the address is a queue: the message arrives there as JSON with its
    headers, content type and the call's key as ``message_id``."""
    require_rabbitmq()
    queue = f"asyncapi-{unique_suffix()}"
    with trio.fail_after(30):
        async with broker_scratch([queue], []), open_adapter(AMQP) as adapter:
            await declare(queues=[queue])
            result = await adapter.call(
                call(
                    "publish",
                    "amqp",
                    "amqp://rabbitmq.fake.com:5672",
                    queue,
                    payload={"petId": 7},
                    headers={"trace": "abc", "n": 1},
                )
            )
            (message,) = await take(queue, count=1, seconds=5)
    assert result == {"published": 1}
    assert json.loads(message.body) == {"petId": 7}
    assert (message.message_id, message.content_type) == (KEY, "application/json")
    assert message.headers == {"trace": "abc", "n": 1}
    assert adapter.open_connections == 0


async def test_amqp_tap_receives_what_is_routed_to_the_address_while_open() -> None:
    """An exchange binding: a server-named queue bound with the address as routing key
    receives in order what is published after the subscription opened, with the AMQP
    correlation id; nothing else; closing it releases the connection."""
    require_rabbitmq()
    exchange = f"asyncapi-x-{unique_suffix()}"
    request = call(
        "subscribe", "amqp", "amqp://rabbitmq.fake.com:5672", "user.notes", bindings=tap(exchange)
    )
    with trio.fail_after(30):
        async with broker_scratch([], [exchange]), open_adapter(AMQP) as adapter:
            await declare(exchanges=[exchange])
            async with adapter.consume(request) as messages:
                await send(exchange, "other.notes", {"n": 0})
                await send(exchange, "user.notes", {"n": 1}, correlation_id="u1")
                await send(exchange, "user.notes", "plain text", headers={"h": "v"})
                first = await anext(messages)
                second = await anext(messages)
                assert adapter.open_connections == 1
            assert adapter.open_connections == 0
    assert first == {"payload": {"n": 1}, "headers": {}, "correlationId": "u1"}
    assert second == {"payload": "plain text", "headers": {"h": "v"}}


async def test_amqp_subscription_to_a_missing_queue_declares_it() -> None:
    """A queue address that does not exist is declared, then consumed; what is already in an
    existing queue is consumed too."""
    require_rabbitmq()
    queue = f"asyncapi-q-{unique_suffix()}"
    request = call("subscribe", "amqp", "amqp://rabbitmq.fake.com:5672", queue)
    with trio.fail_after(30):
        async with broker_scratch([queue], []), open_adapter(AMQP) as adapter:
            async with adapter.consume(request) as messages:
                await send("", queue, {"n": 1})
                assert (await anext(messages))["payload"] == {"n": 1}
            await declare(queues=[queue])
            await send("", queue, {"n": 2})
            async with adapter.consume(request) as messages:
                assert (await anext(messages))["payload"] == {"n": 2}


async def test_amqp_refused_credentials_are_an_authentication_error() -> None:
    """Basic credentials the broker refuses fault with an authentication error."""
    require_rabbitmq()
    request = call(
        "publish",
        "amqp",
        "amqp://rabbitmq.fake.com:5672",
        "nowhere",
        payload={},
        authorization={"scheme": "Basic", "parameter": "Z3Vlc3Q6d3Jvbmc="},
    )
    with trio.fail_after(30):
        async with broker_scratch([], []), open_adapter(AMQP) as adapter:
            with pytest.raises(WorkflowError) as caught:
                await adapter.call(request)
    problem = caught.value.problem
    assert problem.type.endswith("/authentication")
    assert problem.detail == (
        "amqp://rabbitmq.fake.com:5672 refused the credentials while connecting; check the "
        "call's authentication"
    )


async def test_amqp_publish_to_a_missing_exchange_is_a_communication_error() -> None:
    """An exchange binding naming an exchange that does not exist: a communication error."""
    require_rabbitmq()
    exchange = f"asyncapi-missing-{unique_suffix()}"
    request = call(
        "publish", "amqp", "amqp://rabbitmq.fake.com:5672", "k", payload={}, bindings=tap(exchange)
    )
    with trio.fail_after(30):
        async with broker_scratch([], []), open_adapter(AMQP) as adapter:
            with pytest.raises(WorkflowError) as caught:
                await adapter.call(request)
    problem = caught.value.problem
    assert problem.type.endswith("/communication")
    assert f"publishing to exchange '{exchange}' on amqp://rabbitmq.fake.com:5672 failed" in str(
        problem.detail
    )


async def test_the_outbound_policy_refuses_before_connecting() -> None:
    """With the default policy (loopback refused) nothing connects: a 403 communication error
    naming the refusal and the setting."""
    request = call("publish", "amqp", "amqp://rabbitmq.fake.com:5672", "q", payload={})
    with trio.fail_after(30):
        async with broker_scratch([], []), open_adapter(AMQP, policy=OutboundPolicy()) as adapter:
            with pytest.raises(WorkflowError) as caught:
                await adapter.call(request)
    problem = caught.value.problem
    assert (problem.type.endswith("/communication"), problem.status) == (True, 403)
    assert problem.title == "Outbound Call Refused"
    assert "127.0.0.1 is a loopback address; add 127.0.0.1" in str(problem.detail)
    assert "security.outbound.allow" in str(problem.detail)


async def test_messages_over_the_size_limit_are_refused_both_ways() -> None:
    """Publishing or receiving more than ``maxMessageSize`` fails naming the setting."""
    require_rabbitmq()
    queue = f"asyncapi-big-{unique_suffix()}"
    big = {"text": "x" * 2000}
    with trio.fail_after(30):
        async with broker_scratch([queue], []), open_adapter(AMQP, max_message_size=1024) as a:
            with pytest.raises(WorkflowError) as sending:
                await a.call(
                    call("publish", "amqp", "amqp://rabbitmq.fake.com:5672", queue, payload=big)
                )
            await declare(queues=[queue])
            await send("", queue, big)
            async with a.consume(
                call("subscribe", "amqp", "amqp://rabbitmq.fake.com:5672", queue)
            ) as messages:
                with pytest.raises(WorkflowError) as receiving:
                    await anext(messages)
    assert sending.value.problem.status == 413, sending.value.problem
    assert str(sending.value.problem.detail).startswith(
        "the message to publish has 2,011 bytes, more than the limit of 1,024 set by "
        "workflows.calls.asyncapi.maxMessageSize"
    )
    assert "a message received from" in str(receiving.value.problem.detail)


async def test_connections_past_the_limit_fail_at_once() -> None:
    """With ``maxConnections`` held by a subscription, another call fails naming it."""
    require_rabbitmq()
    queue = f"asyncapi-c-{unique_suffix()}"
    with trio.fail_after(30):
        subscribe = call("subscribe", "amqp", "amqp://rabbitmq.fake.com:5672", queue)
        async with (
            broker_scratch([queue], []),
            open_adapter(AMQP, max_connections=1) as a,
            a.consume(subscribe),
        ):
            with pytest.raises(WorkflowError) as caught:
                await a.call(
                    call("publish", "amqp", "amqp://rabbitmq.fake.com:5672", queue, payload={})
                )
    assert "workflows.calls.asyncapi.maxConnections" in str(caught.value.problem.detail)


async def test_kafka_publish_and_tail() -> None:
    """Kafka: a tail reads what is produced after it opened (not before); a published record
    carries its headers, content type and idempotency key."""
    async with open_kafka_broker() as kafka:
        topic = f"notes-{unique_suffix()}"
        mapping = {"kafka://kafka.fake.com:9092": f"kafka://{kafka.bootstrap}"}
        url = "kafka://kafka.fake.com:9092"
        with trio.fail_after(60):
            async with broker_scratch([], []), open_adapter(mapping) as adapter:
                await create_topics(kafka.bootstrap, [topic])
                await produce(kafka.bootstrap, [Record(topic=topic, value=b'{"n": 0}')])
                async with adapter.consume(call("subscribe", "kafka", url, topic)) as messages:
                    await adapter.call(
                        call(
                            "publish", "kafka", url, topic, payload={"n": 1}, headers={"cid": "u1"}
                        )
                    )
                    await produce(kafka.bootstrap, [Record(topic=topic, value=b"text")])
                    first = await anext(messages)
                    second = await anext(messages)
                with pytest.raises(WorkflowError) as missing:
                    async with adapter.consume(call("subscribe", "kafka", url, "absent")):
                        pass
    assert first == {
        "payload": {"n": 1},
        "headers": {"cid": "u1", "content-type": "application/json", "idempotency-key": KEY},
    }
    assert second == {"payload": "text", "headers": {}}
    assert "topic 'absent' does not exist on kafka://kafka.fake.com:9092" in str(
        missing.value.problem.detail
    )


async def test_websocket_publish_and_subscribe_with_a_bearer_token() -> None:
    """WebSocket: the token goes in the handshake; a wrong one is an authentication error;
    a subscription reads what the server sends; headers cannot be published."""
    async with open_ws_broker(token="t0k") as ws:
        mapping = {"ws://ws.fake.com": ws.url}
        bearer = {"scheme": "Bearer", "parameter": "t0k"}
        ws.outbox["/chat/notifications"] = [{"n": 1}, {"n": 2}]
        with trio.fail_after(30):
            async with open_adapter(mapping) as adapter:
                await adapter.call(
                    call(
                        "publish",
                        "ws",
                        "ws://ws.fake.com/chat",
                        "pets",
                        payload={"petId": 7},
                        authorization=bearer,
                    )
                )
                subscribe = call(
                    "subscribe",
                    "ws",
                    "ws://ws.fake.com/chat",
                    "/notifications",
                    authorization=bearer,
                )
                async with adapter.consume(subscribe) as messages:
                    received = [await anext(messages), await anext(messages)]
                with pytest.raises(WorkflowError) as refused:
                    await adapter.call(
                        call(
                            "publish",
                            "ws",
                            "ws://ws.fake.com/chat",
                            "pets",
                            payload={},
                            authorization={**bearer, "parameter": "x"},
                        )
                    )
                with pytest.raises(WorkflowError) as headers:
                    await adapter.call(
                        call(
                            "publish",
                            "ws",
                            "ws://ws.fake.com/chat",
                            "pets",
                            payload={},
                            headers={"a": 1},
                            authorization=bearer,
                        )
                    )
            await ws.wait_for(lambda: "/chat/pets" in ws.received)
    assert ws.received["/chat/pets"] == ['{"petId":7}']
    assert ("/chat/pets", "Bearer t0k") in ws.connections
    assert received == [{"payload": {"n": 1}, "headers": {}}, {"payload": {"n": 2}, "headers": {}}]
    assert refused.value.problem.type.endswith("/authentication")
    assert refused.value.problem.status == 401
    assert headers.value.problem.type.endswith("/configuration")


async def test_an_unsupported_protocol_is_a_configuration_error() -> None:
    """A server of a protocol the adapter does not speak: a configuration error naming the
    ones it does."""
    async with open_adapter({}) as adapter:
        with pytest.raises(WorkflowError) as caught:
            await adapter.call(call("publish", "mqtt", "mqtt://m.fake.com:1883", "t", payload={}))
    assert caught.value.problem.type.endswith("/configuration")
    assert "uses protocol 'mqtt', which this service does not speak; use a server of protocol" in (
        str(caught.value.problem.detail)
    )
