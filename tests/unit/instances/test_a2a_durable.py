"""``call: a2a`` in durable instances, over the real HTTP client, against a local A2A agent
(JSON-RPC over HTTP, with its agent card and an event stream): the protocol end to end."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from tests.support.a2a_server import A2aAgent, serve_agent
from tests.support.instances import Runtime, open_runtime
from workflow_orchestrator.adapters import PooledHttpClient
from workflow_orchestrator.config import OutboundSettings
from workflow_orchestrator.dsl.runtime import RuntimeOptions
from workflow_orchestrator.instances import StartRequest
from workflow_orchestrator.security import OutboundPolicy
from workflow_orchestrator.storage.instances import InstanceRecord, InstanceStatus

LOOPBACK = OutboundPolicy.from_settings(OutboundSettings(allow=("127.0.0.0/8", "::1")))
AGENT = "https://agent.example.com"

CONVERSATION = """\
do:
  - ask:
      call: a2a
      with:
        method: message/send
        agentCard:
          endpoint: https://agent.example.com/.well-known/agent-card.json
        parameters:
          message:
            parts:
              - kind: text
                text: ${ .question }
      export:
        as: '${ {taskId: .id, sent: .artifacts[0].parts[0].text} }'
  - check:
      call: a2a
      with:
        method: tasks/get
        server: https://agent.example.com/a2a
        parameters:
          id: ${ $context.taskId }
      export:
        as: '${ $context + {state: .status.state} }'
  - stream:
      call: a2a
      with:
        method: message/stream
        server:
          uri: https://agent.example.com/a2a
        parameters:
          message:
            parts:
              - kind: text
                text: streamed
      output:
        as: '${ $context + {events: [.[0].kind, .[1].kind, .[2].kind, .[3].kind], final: .[3].final} }'
"""


@asynccontextmanager
async def agent_runtime(
    options: RuntimeOptions | None = None,
) -> AsyncIterator[tuple[Runtime, A2aAgent]]:
    """A durable runtime whose HTTP reaches the local agent for https://agent.example.com."""
    with serve_agent() as agent:
        async with (
            PooledHttpClient(
                host_map={AGENT: agent.url}, default_timeout=10, policy=LOOPBACK
            ) as client,
            open_runtime(runtime_options=options) as harness,
        ):
            harness.http.respond = client.http
            yield harness, agent


async def run(harness: Runtime, name: str, body: str, input: Any = None) -> InstanceRecord:
    harness.register(name, body)
    record, _ = await harness.runtime.start_instance(
        StartRequest(definition_id=name, input=input or {})
    )
    with trio.fail_after(30):
        await harness.wait_status(
            record.instance_id, InstanceStatus.COMPLETED, InstanceStatus.FAULTED
        )
    return harness.store.stored(record.instance_id).record


async def test_send_get_and_stream_against_a_local_agent() -> None:
    """message/send (server from the agent card), tasks/get of the task it created and
    message/stream read from the event stream; each request's id is its idempotency key."""
    async with agent_runtime() as (harness, agent):
        record = await run(harness, "talk", CONVERSATION, {"question": "hello agent"})
    assert record.status == InstanceStatus.COMPLETED, record.error
    assert record.output == {
        "taskId": "task-1",
        "sent": "echo: hello agent",
        "state": "completed",
        "events": ["task", "status-update", "artifact-update", "status-update"],
        "final": True,
    }
    assert agent.methods() == ["message/send", "tasks/get", "message/stream"]
    for request in agent.requests:
        assert request["jsonrpc"] == "2.0"
        assert request["id"] == request["idempotencyKey"]
        assert request["id"].startswith(str(record.instance_id))
    message = agent.requests[0]["params"]["message"]
    assert message["role"] == "user" and message["kind"] == "message"
    assert uuid.UUID(message["messageId"]).version == 5


async def test_a_json_rpc_error_of_the_agent_faults_the_instance() -> None:
    """tasks/get of an unknown task: the agent's JSON-RPC error, as a runtime error."""
    body = """\
do:
  - check:
      call: a2a
      with:
        method: tasks/get
        server: https://agent.example.com/a2a
        parameters:
          id: no-such-task
"""
    async with agent_runtime() as (harness, _):
        record = await run(harness, "lost", body)
    assert record.status == InstanceStatus.FAULTED
    assert record.error["type"].endswith("/runtime")
    assert record.error["detail"] == (
        "A2A method 'tasks/get' at https://agent.example.com/a2a failed with JSON-RPC error "
        "-32001: Task not found"
    )


async def test_a_caught_agent_error_lets_the_workflow_go_on() -> None:
    """tasks/cancel refused by the agent (-32002) is caught by a try."""
    body = """\
do:
  - cancel:
      try:
        - ask:
            call: a2a
            with:
              method: tasks/cancel
              server: https://agent.example.com/a2a
              parameters: {id: task-1}
      catch:
        errors:
          with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime}
        as: failure
        do:
          - note:
              set:
                title: ${ $failure.title }
                detail: ${ $failure.detail }
"""
    async with agent_runtime() as (harness, agent):
        record = await run(harness, "cancel", body)
    assert record.status == InstanceStatus.COMPLETED, record.error
    assert record.output["title"] == "A2A Error"
    assert "JSON-RPC error -32002: Task cannot be canceled" in record.output["detail"]
    assert agent.methods() == ["tasks/cancel"]


async def test_a2a_disabled_by_configuration_sends_nothing() -> None:
    """workflows.calls.a2a.enabled: false reaches the interpreter: the task faults naming it
    and the agent hears nothing."""
    options = RuntimeOptions(enabled_calls=frozenset({"grpc", "asyncapi", "mcp"}))
    async with agent_runtime(options) as (harness, agent):
        record = await run(harness, "off", CONVERSATION, {"question": "x"})
    assert record.status == InstanceStatus.FAULTED
    assert record.error["detail"] == (
        "call: a2a is not enabled on this service; set workflows.calls.a2a.enabled: true in the "
        "configuration"
    )
    assert agent.requests == []
