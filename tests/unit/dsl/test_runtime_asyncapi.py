"""``call: asyncapi`` in the interpreter: documents, targets, publish, and a subscription's
filter, amount, while, until, for, foreach, limit and resumption, against an in-memory broker
(a fake adapter: what it is handed is recorded, what it delivers is scripted)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

from tests.unit.dsl.runtime_support import document, run
from workflow_orchestrator.adapters import open_expression_engine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    InMemoryEffects,
    Interpreter,
    RuntimeOptions,
    ServiceAdapters,
    ServiceCall,
)

DOC_URI = "https://fake.com/docs/asyncapi.json"

V3 = {
    "asyncapi": "3.0.0",
    "info": {"title": "chat", "version": "1"},
    "defaultContentType": "application/json",
    "servers": {
        "production": {"host": "broker.fake.com:5672", "protocol": "amqp"},
        "staging": {
            "host": "{env}.fake.com:{port}",
            "pathname": "/vh",
            "protocol": "amqp",
            "variables": {"env": {"default": "staging", "enum": ["staging", "dev"]}, "port": {}},
        },
        "socket": {"host": "ws.fake.com", "protocol": "ws"},
    },
    "channels": {
        "notifications": {
            "address": "user.notifications",
            "messages": {"note": {"$ref": "#/components/messages/note"}},
            "bindings": {"amqp": {"is": "queue", "queue": {"name": "notes"}}},
        },
        "pets": {"address": "pets", "servers": [{"$ref": "#/servers/staging"}]},
    },
    "operations": {
        "getNotifications": {
            "action": "receive",
            "channel": {"$ref": "#/channels/notifications"},
            "bindings": {"amqp": {"ack": True}},
        },
        "findPetsByStatus": {"action": "send", "channel": {"$ref": "#/channels/pets"}},
    },
    "components": {
        "messages": {
            "note": {
                "contentType": "application/json",
                "correlationId": {"location": "$message.header#/cid"},
            }
        }
    },
}

V2 = {
    "asyncapi": "2.6.0",
    "info": {"title": "chat", "version": "1"},
    "servers": {
        "main": {
            "url": "broker.fake.com:{port}",
            "protocol": "kafka",
            "variables": {"port": {"default": "9092"}},
        }
    },
    "channels": {
        "/notifications": {"subscribe": {"operationId": "getNotifications"}},
        "orders": {"publish": {"operationId": "placeOrder"}},
    },
}


def serve(document: Mapping[str, Any]) -> Any:
    """An HTTP handler answering the AsyncAPI document at ``DOC_URI``."""

    def handler(request: HttpRequest) -> HttpResponse:
        if request.url != DOC_URI:
            return HttpResponse(status=404)
        body = json.dumps(document).encode()
        return HttpResponse(status=200, headers={"content-type": "application/json"}, body=body)

    return handler


@attrs.define
class MemoryBroker:
    """A fake adapter: records publishes and subscriptions, delivers scripted messages
    (``(delay, message)``, one after the other) to each subscription."""

    script: list[tuple[float, Any]] = attrs.field(factory=list)
    published: list[ServiceCall] = attrs.field(factory=list)
    subscriptions: list[ServiceCall] = attrs.field(factory=list)
    open: int = 0
    delivered: int = 0

    async def call(self, request: ServiceCall) -> Any:
        self.published.append(request)
        return {"published": 1}

    @asynccontextmanager
    async def consume(self, request: ServiceCall) -> AsyncIterator[AsyncIterator[Any]]:
        self.subscriptions.append(request)
        self.open += 1
        messages = self._deliver()
        try:
            yield messages
        finally:
            self.open -= 1
            await messages.aclose()

    async def _deliver(self) -> AsyncGenerator[Any, None]:
        while self.delivered < len(self.script):
            delay, message = self.script[self.delivered]
            await trio.sleep(delay)
            self.delivered += 1
            yield message
        await trio.sleep_forever()

    def adapters(self) -> ServiceAdapters:
        return ServiceAdapters(
            callers={"asyncapi": self.call}, consumers={"asyncapi": self.consume}
        )


def effects(broker: MemoryBroker, document: Mapping[str, Any] = V3) -> InMemoryEffects:
    return InMemoryEffects(http=serve(document), services=broker.adapters())


def note(n: int, cid: str = "u1", sender: str = "Ann") -> dict[str, Any]:
    return {"payload": {"n": n, "from": {"firstName": sender}}, "headers": {"cid": cid}}


SUBSCRIBE = """\
do:
  - remember:
      set: {{userId: u1, first: Ann}}
      export: {{as: '${{ . }}'}}
  - getNotifications:
      call: asyncapi
      with:
        document: {{endpoint: {uri}}}
        operation: getNotifications
        subscription:
          filter: '${{ .correlationId == $context.userId and .payload.from.firstName == $context.first }}'
          consume:
{consume}
"""


def subscribe(consume: str) -> str:
    return SUBSCRIBE.format(uri=DOC_URI, consume=consume)


async def test_publish_sends_the_evaluated_message_to_the_named_server(autojump_clock: Any) -> None:
    """Publish resolves operation, server (variables, pathname), address and authorization
    and hands the evaluated message to the adapter; the output is the message published."""
    broker = MemoryBroker()
    result, _ = await run(
        f"""\
        do:
          - findPet:
              call: asyncapi
              with:
                document: {{endpoint: {DOC_URI}}}
                operation: findPetsByStatus
                server: {{name: staging, variables: {{port: 5673}}}}
                message:
                  payload: {{petId: '${{ .pet.id }}'}}
                  headers: {{trace: abc}}
                authentication:
                  bearer: {{token: '${{ .token }}'}}
        """,
        {"pet": {"id": 7}, "token": "t0k"},
        effects=effects(broker),
    )
    assert result.status == "completed", result.error
    assert result.output == {"payload": {"petId": 7}, "headers": {"trace": "abc"}}
    (request,) = broker.published
    assert request.kind == "asyncapi"
    assert request.key == f"{result.state.instance_id}/do/0/findPet"
    arguments = dict(request.arguments)
    assert arguments["action"] == "publish"
    assert arguments["protocol"] == "amqp"
    assert arguments["url"] == "amqp://staging.fake.com:5673/vh"
    assert arguments["address"] == "pets"
    assert arguments["authorization"] == {"scheme": "Bearer", "parameter": "t0k"}
    assert arguments["message"] == {"payload": {"petId": 7}, "headers": {"trace": "abc"}}


async def test_a_v2_channel_and_protocol_choose_the_target(autojump_clock: Any) -> None:
    """AsyncAPI 2.6: a channel by name, the server by protocol, its URL from the defaults."""
    broker = MemoryBroker()
    result, _ = await run(
        f"""\
        do:
          - order:
              call: asyncapi
              with:
                document: {{endpoint: {DOC_URI}}}
                channel: orders
                protocol: kafka
                message: {{payload: {{id: 1}}}}
        """,
        effects=effects(broker, V2),
    )
    assert result.status == "completed", result.error
    arguments = broker.published[0].arguments
    assert (arguments["url"], arguments["address"]) == ("kafka://broker.fake.com:9092", "orders")


@pytest.mark.parametrize(
    ("with_", "detail"),
    [
        (
            "operation: nope",
            "operation 'nope' is not declared; declared: ['findPetsByStatus', 'getNotifications']",
        ),
        (
            "operation: findPetsByStatus\nserver: {name: production}",
            "the channel is not available on server 'production'; it is on ['staging']",
        ),
        (
            "operation: getNotifications\nprotocol: kafka",
            "no server of the channel uses protocol 'kafka'",
        ),
        (
            "operation: findPetsByStatus\nserver: {name: staging, variables: {env: prod, port: 1}}",
            "variable 'env' of server 'staging' is 'prod', not one of ['staging', 'dev']",
        ),
        (
            "operation: findPetsByStatus\nserver: {name: staging}",
            "server 'staging' needs variable 'port'; set it under with.server.variables",
        ),
    ],
)
async def test_what_the_document_lacks_is_a_configuration_error(
    autojump_clock: Any, with_: str, detail: str
) -> None:
    """A call the document cannot serve faults with a configuration error naming the fix."""
    indented = "\n".join("                " + line for line in with_.splitlines())
    result, _ = await run(
        f"""\
        do:
          - send:
              call: asyncapi
              with:
                document: {{endpoint: {DOC_URI}}}
{indented}
                message: {{payload: {{}}}}
        """,
        effects=effects(MemoryBroker()),
    )
    assert result.status == "faulted"
    assert result.error is not None
    assert result.error.type.endswith("/configuration")
    assert detail in str(result.error.detail)


async def test_amount_keeps_the_filtered_messages_and_closes_the_subscription(
    autojump_clock: Any,
) -> None:
    """``amount`` counts the messages the filter accepts; the correlation id comes from the
    document's location; the subscription is closed when the task ends."""
    broker = MemoryBroker(
        script=[
            (1, note(1)),
            (1, note(2, cid="u2")),
            (1, note(3, sender="Bob")),
            (1, note(4)),
            (1, note(5)),
        ]
    )
    result, _ = await run(subscribe("            amount: 2"), effects=effects(broker))
    assert result.status == "completed", result.error
    assert [m["payload"]["n"] for m in result.output] == [1, 4]
    assert result.output[0] == {
        "payload": {"n": 1, "from": {"firstName": "Ann"}},
        "headers": {"cid": "u1"},
        "correlationId": "u1",
    }
    assert broker.open == 0
    (request,) = broker.subscriptions
    assert request.arguments["action"] == "subscribe"
    assert request.arguments["address"] == "user.notifications"
    assert request.arguments["bindings"]["channel"] == {"is": "queue", "queue": {"name": "notes"}}
    assert "message" not in request.arguments


async def test_while_sees_the_consumed_messages_in_the_context(autojump_clock: Any) -> None:
    """``while`` is evaluated after each kept message with ``$context.consumedMessages``."""
    broker = MemoryBroker(script=[(1, note(n)) for n in range(1, 9)])
    result, _ = await run(
        subscribe("            while: '${ ($context.consumedMessages | length) < 3 }'"),
        effects=effects(broker),
    )
    assert result.status == "completed", result.error
    assert [m["payload"]["n"] for m in result.output] == [1, 2, 3]


async def test_until_is_checked_before_each_message(autojump_clock: Any) -> None:
    """``until`` stops before waiting for a message (so a true condition consumes none)."""
    broker = MemoryBroker(script=[(1, note(n)) for n in range(1, 9)])
    result, _ = await run(
        subscribe("            until: '${ ($context.messages | length) == 2 }'"),
        effects=effects(broker),
    )
    assert [m["payload"]["n"] for m in result.output] == [1, 2]
    broker = MemoryBroker(script=[(1, note(1))])
    result, _ = await run(subscribe("            until: '${ true }'"), effects=effects(broker))
    assert result.output == []
    assert broker.subscriptions == []


async def test_for_ends_the_consumption_at_its_due_time(autojump_clock: Any) -> None:
    """``for`` stops waiting once its duration passed: the messages kept until then are the
    output and the subscription is closed."""
    broker = MemoryBroker(script=[(10, note(n)) for n in range(1, 9)])
    result, memory = await run(
        subscribe("            for: {seconds: 25}\n            until: '${ false }'"),
        effects=effects(broker),
    )
    assert result.status == "completed", result.error
    assert [m["payload"]["n"] for m in result.output] == [1, 2]
    assert broker.open == 0
    assert [r.data["until"] for r in memory.log if r.kind == "timer"] == ["2026-01-01T00:00:25Z"]


async def test_foreach_runs_tasks_per_message_and_outputs_their_results() -> None:
    """``foreach`` runs its tasks for each kept message, in order, with ``item``/``at``; the
    output is the iterations' outputs (after ``output.as``), and ``export.as`` updates the
    context. (Real clock: arithmetic runs in the expression sandbox's worker processes.)"""
    broker = MemoryBroker(script=[(0, note(n)) for n in range(1, 5)])
    body = f"""\
        do:
          - getNotifications:
              call: asyncapi
              with:
                document: {{endpoint: {DOC_URI}}}
                operation: getNotifications
                subscription:
                  consume:
                    amount: 3
                  foreach:
                    item: message
                    at: i
                    do:
                      - tell:
                          emit:
                            event:
                              with:
                                source: https://test
                                type: consumed
                                data: {{n: '${{ $message.payload.n }}', at: '${{ $i }}'}}
                    output: {{as: '${{ .data.n * 10 }}'}}
                    export: {{as: {{last: '${{ $message.payload.n }}'}}}}
        """
    result, memory = await run(body, effects=effects(broker))
    assert result.status == "completed", result.error
    assert result.output == [10, 20, 30]
    assert result.state.context == {"last": 3}
    emitted = [r.data["data"] for r in memory.log if r.kind == "emit"]
    assert emitted == [{"n": 1, "at": 0}, {"n": 2, "at": 1}, {"n": 3, "at": 2}]


async def test_a_subscription_past_max_messages_faults_naming_the_setting(
    autojump_clock: Any,
) -> None:
    """A subscription that would keep more than ``maxMessages`` faults with a limit error."""
    broker = MemoryBroker(script=[(1, note(n)) for n in range(1, 9)])
    result, _ = await run(
        subscribe("            while: '${ true }'"),
        effects=effects(broker),
        options=RuntimeOptions(asyncapi_max_messages=3),
    )
    assert result.status == "faulted"
    assert result.error is not None
    assert result.error.type.endswith("limit-exceeded")
    assert "kept 3 messages and would consume more, over the limit " in str(result.error.detail)
    assert "workflows.calls.asyncapi.maxMessages" in str(result.error.detail)
    assert broker.open == 0


async def test_a_subscription_the_broker_ends_ends_the_consumption(autojump_clock: Any) -> None:
    """When the adapter's iterator ends, the task completes with what was kept."""

    @asynccontextmanager
    async def consume(request: ServiceCall) -> AsyncIterator[AsyncIterator[Any]]:
        async def two() -> AsyncIterator[Any]:
            for n in (1, 2):
                yield note(n)

        yield two()

    memory = InMemoryEffects(
        http=serve(V3), services=ServiceAdapters(consumers={"asyncapi": consume})
    )
    result, _ = await run(subscribe("            amount: 5"), effects=memory)
    assert [m["payload"]["n"] for m in result.output] == [1, 2]


async def test_a_resumed_subscription_keeps_what_it_consumed(autojump_clock: Any) -> None:
    """Resuming from a checkpoint taken mid-subscription keeps the messages and iterations
    recorded (not run again) and consumes the rest from a new subscription."""
    body = f"""\
        do:
          - getNotifications:
              call: asyncapi
              with:
                document: {{endpoint: {DOC_URI}}}
                operation: getNotifications
                subscription:
                  consume: {{amount: 4}}
                  foreach:
                    do:
                      - tell:
                          emit:
                            event:
                              with: {{source: https://test, type: consumed, data: '${{ $item.payload.n }}'}}
        """
    first = MemoryBroker(script=[(1, note(1)), (1, note(2)), (1000, note(99))])
    memory = InMemoryEffects(http=serve(V3), services=first.adapters(), record_snapshots=True)
    with trio.move_on_after(100):
        await run(body, effects=memory)
    saved = next(
        s
        for s in reversed(memory.snapshots)
        if len((s["frames"].get("/do/0/getNotifications") or {}).get("outputs", [])) == 2
    )
    second = MemoryBroker(script=[(1, note(3)), (1, note(4))])
    resumed_effects = InMemoryEffects(http=serve(V3), services=second.adapters())
    async with open_expression_engine() as engine:
        result = await Interpreter(load_workflow(document(body)), engine).resume(
            resumed_effects, saved
        )
    assert result.status == "completed", result.error
    assert [output["data"] for output in result.output] == [1, 2, 3, 4]
    assert [r.data["data"] for r in resumed_effects.log if r.kind == "emit"] == [3, 4]
    assert len(second.subscriptions) == 1
