"""``call: a2a``: JSON-RPC requests over the HTTP effect, agent cards, errors and streams."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.unit.dsl.runtime_support import document, run
from workflow_orchestrator.adapters import open_expression_engine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    InMemoryEffects,
    Interpreter,
    RuntimeOptions,
    json_response,
)
from workflow_orchestrator.dsl.runtime._a2a_call import parse_events

CARD_URI = "https://agents.example.com/.well-known/agent-card.json"
RPC_URI = "https://agents.example.com/rpc"

SEND = """
do:
  - ask:
      call: a2a
      with:
        method: message/send
        server: https://agents.example.com/rpc
        parameters:
          message:
            parts:
              - kind: text
                text: ${ .question }
"""


class Agent:
    """A scripted A2A agent: records the JSON-RPC requests and answers per method."""

    def __init__(self, card: dict[str, Any] | None = None) -> None:
        self.requests: list[HttpRequest] = []
        self.card = card or {"name": "agent", "url": "/rpc", "preferredTransport": "JSONRPC"}

    def rpc(self, index: int = -1) -> dict[str, Any]:
        posts = [r for r in self.requests if r.method == "POST"]
        body = posts[index].body
        assert body is not None
        decoded: dict[str, Any] = json.loads(body)
        return decoded

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if request.method == "GET":
            return json_response(200, self.card)
        assert request.body is not None
        envelope = json.loads(request.body)
        method, rpc_id = envelope["method"], envelope["id"]
        params = envelope.get("params") or {}
        if method == "message/send":
            text = params["message"]["parts"][0]["text"]
            result = {"kind": "message", "role": "agent", "parts": [{"kind": "text", "text": text}]}
            return json_response(200, {"jsonrpc": "2.0", "id": rpc_id, "result": result})
        if method in ("message/stream", "tasks/resubscribe"):
            events = [
                {"kind": "task", "id": "t1", "status": {"state": "working"}},
                {"kind": "status-update", "taskId": "t1", "status": {"state": "completed"}},
            ]
            stream = ": keep-alive\n\n" + "".join(
                "event: message\ndata: "
                + json.dumps({"jsonrpc": "2.0", "id": rpc_id, "result": e})
                + "\n\n"
                for e in events
            )
            return HttpResponse(
                status=200, headers={"content-type": "text/event-stream"}, body=stream.encode()
            )
        if method == "tasks/get":
            error = {"code": -32001, "message": "Task not found", "data": {"id": params["id"]}}
            return json_response(200, {"jsonrpc": "2.0", "id": rpc_id, "error": error})
        return json_response(500, {"oops": True})


async def test_message_send_posts_a_json_rpc_request_with_the_task_key_as_id() -> None:
    """The request is JSON-RPC 2.0 with a stable id (the idempotency key), the message gets a
    messageId, role user and kind message, and the output is the JSON-RPC result."""
    agent = Agent()
    result, _ = await run(SEND, {"question": "hi?"}, effects=InMemoryEffects(http=agent))
    assert result.status == "completed", result.error
    assert result.output == {
        "kind": "message",
        "role": "agent",
        "parts": [{"kind": "text", "text": "hi?"}],
    }
    request = agent.requests[0]
    envelope = agent.rpc()
    assert request.url == RPC_URI and request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert envelope["jsonrpc"] == "2.0" and envelope["method"] == "message/send"
    assert envelope["id"] == request.idempotency_key == f"{result.state.instance_id}/do/0/ask"
    message = envelope["params"]["message"]
    expected_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "a2a:" + envelope["id"]))
    assert message == {
        "parts": [{"kind": "text", "text": "hi?"}],
        "messageId": expected_id,
        "role": "user",
        "kind": "message",
    }


async def test_a_given_message_id_and_role_are_kept() -> None:
    """Defaults fill only what the message lacks."""
    agent = Agent()
    body = SEND.replace(
        "            parts:",
        "            messageId: m-1\n            role: agent\n            parts:",
    )
    result, _ = await run(body, {"question": "x"}, effects=InMemoryEffects(http=agent))
    assert result.status == "completed", result.error
    assert agent.rpc()["params"]["message"]["messageId"] == "m-1"
    assert agent.rpc()["params"]["message"]["role"] == "agent"


async def test_the_agent_card_gives_the_server_and_is_fetched_once_per_run() -> None:
    """With agentCard, the card's (relative) url is resolved against the card's URI; two calls
    fetch the card once."""
    agent = Agent()
    body = """
    do:
      - first:
          call: a2a
          with:
            method: message/send
            agentCard:
              endpoint: https://agents.example.com/.well-known/agent-card.json
            parameters:
              message: {parts: [{kind: text, text: one}]}
      - second:
          call: a2a
          with:
            method: message/send
            agentCard:
              endpoint:
                uri: https://agents.example.com/.well-known/agent-card.json
            parameters:
              message: {parts: [{kind: text, text: two}]}
    """
    result, _ = await run(body, effects=InMemoryEffects(http=agent))
    assert result.status == "completed", result.error
    assert [(r.method, r.url) for r in agent.requests] == [
        ("GET", CARD_URI),
        ("POST", RPC_URI),
        ("POST", RPC_URI),
    ]
    assert agent.requests[0].headers["accept"] == "application/json"
    assert result.output["parts"][0]["text"] == "two"


async def test_an_additional_json_rpc_interface_is_used_when_the_preferred_one_is_not() -> None:
    """A card preferring another transport names its JSON-RPC interface elsewhere."""
    agent = Agent(
        {
            "url": "https://agents.example.com/grpc",
            "preferredTransport": "GRPC",
            "additionalInterfaces": [
                {"url": "https://agents.example.com/grpc", "transport": "GRPC"},
                {"url": "https://agents.example.com/jsonrpc", "transport": "JSONRPC"},
            ],
        }
    )
    body = SEND.replace(
        "server: https://agents.example.com/rpc",
        "agentCard: {endpoint: 'https://agents.example.com/.well-known/agent-card.json'}",
    )
    result, _ = await run(body, {"question": "q"}, effects=InMemoryEffects(http=agent))
    assert result.status == "completed", result.error
    assert agent.requests[1].url == "https://agents.example.com/jsonrpc"


async def test_a_card_without_a_json_rpc_interface_is_a_configuration_error() -> None:
    """The error names the card and what it lacks."""
    agent = Agent({"url": "https://agents.example.com/grpc", "preferredTransport": "GRPC"})
    body = SEND.replace(
        "server: https://agents.example.com/rpc",
        "agentCard: {endpoint: 'https://agents.example.com/.well-known/agent-card.json'}",
    )
    result, _ = await run(body, {"question": "q"}, effects=InMemoryEffects(http=agent))
    assert result.status == "faulted"
    assert result.error is not None
    assert result.error.type.endswith("/configuration")
    assert f"the agent card {CARD_URI} names no JSON-RPC interface" in (result.error.detail or "")


async def test_a_json_rpc_error_is_a_runtime_error_naming_code_and_message() -> None:
    """The reference: failures of the A2A call raise the runtime error type."""
    body = """
    do:
      - look:
          call: a2a
          with:
            method: tasks/get
            server: https://agents.example.com/rpc
            parameters: {id: missing}
    """
    result, _ = await run(body, effects=InMemoryEffects(http=Agent()))
    assert result.status == "faulted"
    assert result.error is not None
    assert result.error.type.endswith("/runtime")
    assert result.error.title == "A2A Error"
    assert result.error.instance == "/do/0/look"
    assert result.error.detail == (
        f"A2A method 'tasks/get' at {RPC_URI} failed with JSON-RPC error -32001: Task not found"
        ' ({"id": "missing"})'
    )


async def test_an_http_error_is_a_communication_error_with_its_status() -> None:
    """A non-2xx answer that is no JSON-RPC error: communication, with the HTTP status."""
    body = """
    do:
      - cancel:
          call: a2a
          with:
            method: tasks/cancel
            server: https://agents.example.com/rpc
            parameters: {id: t1}
    """
    result, _ = await run(body, effects=InMemoryEffects(http=Agent()))
    assert result.status == "faulted"
    assert result.error is not None
    assert result.error.type.endswith("/communication")
    assert result.error.status == 500
    assert "A2A method 'tasks/cancel': POST https://agents.example.com/rpc returned status 500" in (
        result.error.detail or ""
    )


async def test_an_answer_that_is_no_json_rpc_response_is_a_communication_error() -> None:
    """200 with some other JSON is not a result."""
    effects = InMemoryEffects(http=lambda request: json_response(200, {"hello": "world"}))
    result, _ = await run(SEND, {"question": "q"}, effects=effects)
    assert result.error is not None
    assert result.error.type.endswith("/communication")
    assert "is not a JSON-RPC response" in (result.error.detail or "")


async def test_message_stream_reads_the_event_stream_into_an_array_of_results() -> None:
    """message/stream asks for text/event-stream and returns every event's result in order."""
    agent = Agent()
    body = SEND.replace("message/send", "message/stream")
    result, _ = await run(body, {"question": "q"}, effects=InMemoryEffects(http=agent))
    assert result.status == "completed", result.error
    assert agent.requests[0].headers["accept"] == "text/event-stream"
    assert result.output == [
        {"kind": "task", "id": "t1", "status": {"state": "working"}},
        {"kind": "status-update", "taskId": "t1", "status": {"state": "completed"}},
    ]


async def test_a_streaming_method_answered_with_one_json_response_gives_one_result() -> None:
    """A server that does not stream answers with one JSON-RPC response: an array of one."""
    effects = InMemoryEffects(
        http=lambda request: json_response(
            200, {"jsonrpc": "2.0", "id": "x", "result": {"kind": "task", "id": "t9"}}
        )
    )
    body = """
    do:
      - again:
          call: a2a
          with:
            method: tasks/resubscribe
            server: https://agents.example.com/rpc
            parameters: {id: t9}
    """
    result, _ = await run(body, effects=effects)
    assert result.status == "completed", result.error
    assert result.output == [{"kind": "task", "id": "t9"}]


async def test_a2a_disabled_by_configuration_is_refused_with_the_setting_to_change() -> None:
    """Without a2a in the enabled calls, the task faults naming workflows.calls.a2a.enabled."""
    agent = Agent()
    result, _ = await run(
        SEND,
        {"question": "q"},
        effects=InMemoryEffects(http=agent),
        options=RuntimeOptions(enabled_calls=frozenset({"grpc"})),
    )
    assert result.error is not None
    assert result.error.type.endswith("/configuration")
    assert result.error.detail == (
        "call: a2a is not enabled on this service; set workflows.calls.a2a.enabled: true in the "
        "configuration"
    )
    assert agent.requests == []


async def test_parameters_that_are_not_an_object_are_a_validation_error() -> None:
    """An expression yielding a string is no JSON-RPC params object."""
    body = """
    do:
      - ask:
          call: a2a
          with:
            method: tasks/get
            server: https://agents.example.com/rpc
            parameters: ${ .id }
    """
    result, _ = await run(body, {"id": "t1"}, effects=InMemoryEffects(http=Agent()))
    assert result.error is not None
    assert result.error.type.endswith("/validation")
    assert "the parameters of A2A method 'tasks/get' must be an object, got str" in (
        result.error.detail or ""
    )


async def test_the_server_endpoint_authentication_authorizes_the_request() -> None:
    """A bearer policy on the server endpoint becomes the Authorization header."""
    agent = Agent()
    body = SEND.replace(
        "server: https://agents.example.com/rpc",
        "server:\n          uri: https://agents.example.com/rpc\n"
        "          authentication: {bearer: {token: t0k}}",
    )
    result, _ = await run(body, {"question": "q"}, effects=InMemoryEffects(http=agent))
    assert result.status == "completed", result.error
    assert agent.requests[0].headers["authorization"] == "Bearer t0k"


async def test_the_request_is_the_same_when_the_instance_runs_again() -> None:
    """Re-executing the same task of the same instance sends the same id and messageId."""
    first, second = Agent(), Agent()

    workflow = load_workflow(document(SEND))
    async with open_expression_engine() as engine:
        for agent in (first, second):
            interpreter = Interpreter(workflow, engine)
            await interpreter.start(
                InMemoryEffects(http=agent), {"question": "q"}, instance_id="i-1"
            )
    assert first.rpc() == second.rpc()


def test_server_sent_events_are_split_into_their_data() -> None:
    """Multi-line data joins with newlines; comments and other fields are skipped."""
    text = ': hello\nevent: x\ndata: {"a":\ndata: 1}\nid: 7\n\ndata:2\n\n\ndata: 3'
    assert parse_events(text) == ['{"a":\n1}', "2", "3"]


async def test_the_server_uri_template_is_expanded_with_the_input() -> None:
    """``server`` is an endpoint like http's: {name} comes from the task's input."""
    agent = Agent()
    body = SEND.replace("https://agents.example.com/rpc", "https://agents.example.com/{tenant}/rpc")
    result, _ = await run(
        body, {"question": "q", "tenant": "acme"}, effects=InMemoryEffects(http=agent)
    )
    assert result.status == "completed", result.error
    assert agent.requests[0].url == "https://agents.example.com/acme/rpc"
