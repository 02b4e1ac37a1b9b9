"""The official ``call: asyncapi`` examples, run as written through the durable runtime
(``InstanceRuntime`` on the in-memory store) with the service's own adapters
(``open_service_adapters``): the document at ``https://fake.com/docs/asyncapi.json`` comes from
a local HTTP server, and its servers' ``*.fake.com`` hosts are the real RabbitMQ, a tansu Kafka
or a local WebSocket server, through the host map and an outbound policy allowing loopback.

The examples filter on ``$context.userId`` and ``$context.contact``; nothing sets the context
first, so the filter accepts the messages without a correlation id and without a sender's
names, and the tests send some of each kind.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import attrs
import trio

from tests.support.asyncapi import LOOPBACK, open_ws_broker
from tests.support.document_server import Document, serve_documents
from tests.support.instances import Runtime, open_runtime
from tests.support.kafka import open_kafka_broker
from tests.support.kafka_clients import Record, create_topics, produce
from tests.support.rabbitmq import broker_scratch, on_broker, require_rabbitmq, take, unique_suffix
from tests.support.spec import require_spec
from workflow_orchestrator.adapters import PooledHttpClient, ServiceContext, open_service_adapters
from workflow_orchestrator.config import WorkflowSettings
from workflow_orchestrator.dsl.runtime import ServiceAdapters, ServiceCall
from workflow_orchestrator.dsl.validation import load_document
from workflow_orchestrator.instances import StartRequest
from workflow_orchestrator.storage.instances import InstanceStatus

AMQP_HOST = {"amqp://rabbitmq.fake.com:5672": "amqp://127.0.0.1:5672"}


def example(name: str) -> dict[str, Any]:
    """The official example ``call-asyncapi-<name>.yaml``."""
    path = require_spec() / "examples" / f"call-asyncapi-{name}.yaml"
    return load_document(path.read_text(encoding="utf-8"))


def v3(
    servers: Mapping[str, Any],
    channels: Mapping[str, Any],
    operations: Mapping[str, Any],
    correlation: str | None = None,
) -> dict[str, Any]:
    """An AsyncAPI 3.0 document; every channel's message has the correlation ``location``."""
    message: dict[str, Any] = {"contentType": "application/json"}
    if correlation is not None:
        message["correlationId"] = {"location": correlation}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "examples", "version": "1.0.0"},
        "servers": dict(servers),
        "channels": {
            name: {**channel, "messages": {"note": {"$ref": "#/components/messages/note"}}}
            for name, channel in channels.items()
        },
        "operations": dict(operations),
        "components": {"messages": {"note": message}},
    }


def notes(accepted: int) -> list[dict[str, Any]]:
    """Messages: ``accepted`` that the examples' filter accepts (numbered from 1), and, among
    them, one with a correlation id and one from a named sender (both refused)."""
    out: list[dict[str, Any]] = []
    for n in range(1, accepted + 1):
        out.append({"n": n, "text": f"note {n}"})
        if n == 1:
            out.append({"n": -1, "correlationId": "someone"})
        if n == 2:
            out.append({"n": -2, "from": {"firstName": "Bob", "lastName": "Smith"}})
    return out


@attrs.define(eq=False)
class Observed:
    """The service's AsyncAPI consumer, with an event set once a subscription is open and one
    once it is closed again."""

    inner: Any
    opened: trio.Event = attrs.field(factory=trio.Event)
    closed: trio.Event = attrs.field(factory=trio.Event)

    @asynccontextmanager
    async def consume(self, request: ServiceCall) -> AsyncIterator[AsyncIterator[Any]]:
        try:
            async with self.inner(request) as messages:
                self.opened.set()
                yield messages
        finally:
            self.closed.set()


@asynccontextmanager
async def open_examples(
    document: Mapping[str, Any], host_map: Mapping[str, str]
) -> AsyncIterator[tuple[Runtime, Observed]]:
    """The runtime with the service's adapters, the document served at the example's URI."""
    with serve_documents() as docs:
        docs.documents["/docs/asyncapi.json"] = Document(json.dumps(document).encode())
        async with PooledHttpClient(
            policy=LOOPBACK, host_map={"https://fake.com": docs.url}, default_timeout=10
        ) as client:
            context = ServiceContext(
                workflows=WorkflowSettings(), outbound=LOOPBACK, http=client, host_map=host_map
            )
            async with open_service_adapters(context) as adapters:
                observed = Observed(adapters.consumers["asyncapi"])
                services = ServiceAdapters(
                    callers=adapters.callers, consumers={"asyncapi": observed.consume}
                )
                async with open_runtime(services=services) as harness:
                    harness.http.respond = client.http
                    yield harness, observed


async def run(harness: Runtime, name: str, input: Any) -> uuid.UUID:
    harness.store.register(name, "1.0.0", example(name))
    record, _ = await harness.runtime.start_instance(StartRequest(definition_id=name, input=input))
    return record.instance_id


async def ended(harness: Runtime, instance_id: uuid.UUID) -> Any:
    await harness.wait_status(
        instance_id, InstanceStatus.COMPLETED, InstanceStatus.FAULTED, InstanceStatus.CANCELLED
    )
    record = harness.store.stored(instance_id).record
    assert record.status is InstanceStatus.COMPLETED, record.error
    return record.output


PUBLISH_OPERATIONS = {
    "findPetsByStatus": {"action": "send", "channel": {"$ref": "#/channels/pets"}}
}


async def test_publish_example_over_websocket() -> None:
    """call-asyncapi-publish: the bearer token goes in the handshake and the evaluated
    payload to the staging server's channel; the output is the message published."""
    async with open_ws_broker(token="t0k") as ws:
        document = v3(
            {
                "production": {"host": "prod.fake.com", "protocol": "ws"},
                "staging": {"host": "ws.fake.com", "protocol": "ws"},
            },
            {"pets": {"address": "/pets"}},
            PUBLISH_OPERATIONS,
        )
        with trio.fail_after(30):
            async with open_examples(document, {"ws://ws.fake.com": ws.url}) as (harness, _):
                instance = await run(harness, "publish", {"pet": {"id": 7}, "token": "t0k"})
                output = await ended(harness, instance)
    assert output == {"payload": {"petId": 7}, "headers": {}}
    assert ws.received == {"/pets": ['{"petId":7}']}
    assert ws.connections == [("/pets", "Bearer t0k")]


async def test_publish_example_over_amqp() -> None:
    """call-asyncapi-publish to RabbitMQ: the bearer token is the AMQP password (the test's
    broker knows it as guest's), the message lands in the channel's queue with the task's
    idempotency key as message id."""
    require_rabbitmq()
    queue = f"asyncapi-pets-{unique_suffix()}"
    document = v3(
        {"staging": {"host": "rabbitmq.fake.com:5672", "protocol": "amqp"}},
        {"pets": {"address": queue}},
        PUBLISH_OPERATIONS,
    )
    with trio.fail_after(30):
        async with broker_scratch([queue], []), open_examples(document, AMQP_HOST) as (h, _):
            await on_broker(lambda channel: channel.declare_queue(queue, auto_delete=False))
            instance = await run(h, "publish", {"pet": {"id": 7}, "token": "guest"})
            output = await ended(h, instance)
            (message,) = await take(queue, count=1, seconds=5)
    assert output == {"payload": {"petId": 7}, "headers": {}}
    assert json.loads(message.body) == {"petId": 7}
    assert message.message_id == f"{instance}/do/0/findPet"


NOTIFICATIONS = {
    "getNotifications": {"action": "receive", "channel": {"$ref": "#/channels/notifications"}}
}


async def test_subscribe_amount_example_over_websocket() -> None:
    """call-asyncapi-subscribe-consume-amount (protocol ws): the ws server of the channel is
    chosen over its amqp one; five accepted messages are the output, in order."""
    async with open_ws_broker() as ws:
        ws.outbox["/notifications"] = notes(6)
        document = v3(
            {
                "broker": {"host": "rabbitmq.fake.com:5672", "protocol": "amqp"},
                "socket": {"host": "ws.fake.com", "protocol": "ws"},
            },
            {"notifications": {"address": "/notifications"}},
            NOTIFICATIONS,
            correlation="$message.payload#/correlationId",
        )
        with trio.fail_after(30):
            async with open_examples(document, {"ws://ws.fake.com": ws.url}) as (harness, seen):
                instance = await run(harness, "subscribe-consume-amount", {})
                output = await ended(harness, instance)
                await seen.closed.wait()
    assert [m["payload"]["n"] for m in output] == [1, 2, 3, 4, 5]
    assert output[0] == {"payload": {"n": 1, "text": "note 1"}, "headers": {}}


async def _fill(queue: str, messages: list[dict[str, Any]]) -> None:
    async def work(channel: aio_pika.abc.AbstractChannel) -> None:
        await channel.declare_queue(queue, auto_delete=False)
        for body in messages:
            correlation = body.pop("correlationId", None)
            await channel.default_exchange.publish(
                aio_pika.Message(json.dumps(body).encode(), correlation_id=correlation),
                routing_key=queue,
            )

    await on_broker(work)


async def test_subscribe_while_example_over_amqp() -> None:
    """call-asyncapi-subscribe-consume-while: consumes from the channel's queue while fewer
    than five messages were kept (``$context.consumedMessages``); the AMQP correlation id
    makes one message fail the filter."""
    require_rabbitmq()
    queue = f"asyncapi-notes-{unique_suffix()}"
    document = v3(
        {"broker": {"host": "rabbitmq.fake.com:5672", "protocol": "amqp"}},
        {"notifications": {"address": queue}},
        NOTIFICATIONS,
    )
    with trio.fail_after(30):
        async with broker_scratch([queue], []), open_examples(document, AMQP_HOST) as (h, seen):
            await _fill(queue, notes(7))
            instance = await run(h, "subscribe-consume-while", {})
            output = await ended(h, instance)
            await seen.closed.wait()
    assert [m["payload"]["n"] for m in output] == [1, 2, 3, 4, 5]


async def test_subscribe_until_example_over_amqp_with_a_v2_document() -> None:
    """call-asyncapi-subscribe-consume-until: an AsyncAPI 2.6 channel named ``/notifications``
    (its amqp binding names the queue), ``for`` 30 minutes, until five were kept."""
    require_rabbitmq()
    queue = f"asyncapi-v2-{unique_suffix()}"
    document = {
        "asyncapi": "2.6.0",
        "info": {"title": "examples", "version": "1.0.0"},
        "servers": {
            "broker": {
                "url": "rabbitmq.fake.com:{port}",
                "protocol": "amqp",
                "variables": {"port": {"default": "5672"}},
            }
        },
        "channels": {
            "/notifications": {
                "bindings": {"amqp": {"is": "queue", "queue": {"name": queue}}},
                "subscribe": {
                    "operationId": "getNotifications",
                    "message": {"contentType": "application/json"},
                },
            }
        },
    }
    with trio.fail_after(30):
        async with broker_scratch([queue], []), open_examples(document, AMQP_HOST) as (h, seen):
            await _fill(queue, notes(6))
            instance = await run(h, "subscribe-consume-until", {})
            output = await ended(h, instance)
            await seen.closed.wait()
    assert [m["payload"]["n"] for m in output] == [1, 2, 3, 4, 5]


async def test_subscribe_forever_foreach_example_over_kafka() -> None:
    """call-asyncapi-subscribe-consume-forever-foreach: each accepted Kafka record is emitted
    as a CloudEvent (committed with the instance) until the instance is cancelled, which
    closes the subscription."""
    async with open_kafka_broker() as kafka:
        topic = f"notifications-{unique_suffix()}"
        document = v3(
            {"broker": {"host": "kafka.fake.com:9092", "protocol": "kafka"}},
            {"notifications": {"address": topic}},
            NOTIFICATIONS,
            correlation="$message.header#/correlationId",
        )
        host_map = {"kafka://kafka.fake.com:9092": f"kafka://{kafka.bootstrap}"}
        with trio.fail_after(60):
            async with broker_scratch([], []), open_examples(document, host_map) as (h, seen):
                await create_topics(kafka.bootstrap, [topic])
                instance = await run(h, "subscribe-consume-forever-foreach", {})
                await seen.opened.wait()
                records = [
                    Record(topic=topic, value=json.dumps({"n": 1}).encode()),
                    Record(topic=topic, value=b'{"n": -1}', headers=(("correlationId", b"x"),)),
                    Record(topic=topic, value=json.dumps({"n": 2}).encode()),
                ]
                await produce(kafka.bootstrap, records)

                def emitted() -> list[Any]:
                    history = h.store.stored(instance).history
                    return [row for row in history if row.kind == "event.emitted"]

                while len(emitted()) < 2:
                    await h.store.changed.wait()
                await h.runtime.command(instance, "cancel")
                await seen.closed.wait()
                status = h.store.stored(instance).record.status
                events = [row.details for row in emitted()]
    assert status is InstanceStatus.CANCELLED
    assert [e["data"]["message"]["payload"] for e in events] == [{"n": 1}, {"n": 2}]
    assert {e["type"] for e in events} == {
        "io.serverlessworkflow.samples.asyncapi.message.consumed.v1"
    }
