"""``call: mcp`` in the interpreter: what reaches the adapter (`ServiceCall`) from the task's
``with``: its timeout in seconds, an endpoint's authentication as a header, a URI template
expanded, the rest as evaluated."""

from __future__ import annotations

from typing import Any

from tests.unit.dsl.runtime_support import document
from workflow_orchestrator.adapters import open_expression_engine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import (
    InMemoryEffects,
    Interpreter,
    ServiceAdapters,
    ServiceCall,
    WorkflowResult,
)
from workflow_orchestrator.dsl.validation import ValidationOptions

ANSWER = {"content": [{"type": "text", "text": "hi"}], "isError": False}


async def run(body: str, input: Any, *, effects: InMemoryEffects) -> WorkflowResult:
    """Run ``body`` as a service that allows MCP stdio servers would."""
    workflow = load_workflow(document(body), ValidationOptions(allow_mcp_stdio=True))
    async with open_expression_engine() as engine:
        return await Interpreter(workflow, engine).start(effects, input)


def recording(calls: list[ServiceCall]) -> InMemoryEffects:
    """Effects whose mcp adapter records each call and answers ``ANSWER``."""

    async def record(request: ServiceCall) -> Any:
        calls.append(request)
        return ANSWER

    return InMemoryEffects(
        services=ServiceAdapters(callers={"mcp": record}),
        secrets={"mcpToken": {"token": "t0k"}},
    )


async def test_an_http_call_gets_its_header_timeout_and_expanded_endpoint() -> None:
    """The endpoint's bearer policy (from a secret) becomes the authorization header, its URI
    template is expanded from the input, with.timeout is in seconds; the output is the
    adapter's answer."""
    calls: list[ServiceCall] = []
    result = await run(
        """
        use:
          secrets: [mcpToken]
        do:
          - ask:
              call: mcp
              with:
                method: tools/call
                parameters:
                  name: echo
                  arguments: {text: '${ .text }'}
                timeout: {seconds: 2, milliseconds: 500}
                transport:
                  http:
                    endpoint:
                      uri: https://{tenant}.mcp.example.com/mcp
                      authentication:
                        bearer: {use: mcpToken}
                    headers: {X-Trace: abc}
        """,
        {"tenant": "acme", "text": "hi"},
        effects=recording(calls),
    )
    assert result.status == "completed", result.error
    assert result.output == ANSWER
    (request,) = calls
    assert (request.kind, request.task_ref, request.timeout) == ("mcp", "/do/0/ask", 2.5)
    assert request.key.endswith("/do/0/ask")
    assert request.arguments["parameters"] == {"name": "echo", "arguments": {"text": "hi"}}
    assert request.arguments["transport"] == {
        "http": {
            "endpoint": "https://acme.mcp.example.com/mcp",
            "headers": {"x-trace": "abc", "authorization": "Bearer t0k"},
        }
    }


async def test_a_stdio_call_passes_through_and_has_no_timeout_of_its_own() -> None:
    """Without with.timeout the adapter's own applies; stdio arguments are as evaluated."""
    calls: list[ServiceCall] = []
    result = await run(
        """
        do:
          - ask:
              call: mcp
              with:
                method: tools/list
                transport:
                  stdio:
                    command: my-server
                    arguments: ['${ .flag }']
                    environment: {TOKEN: abc}
        """,
        {"flag": "--quiet"},
        effects=recording(calls),
    )
    assert result.status == "completed", result.error
    (request,) = calls
    assert request.timeout is None
    assert request.arguments["transport"] == {
        "stdio": {"command": "my-server", "arguments": ["--quiet"], "environment": {"TOKEN": "abc"}}
    }


async def test_a_timeout_that_is_not_a_duration_is_a_validation_error() -> None:
    """with.timeout from an expression must still be a duration; the call is not made."""
    calls: list[ServiceCall] = []
    result = await run(
        """
        do:
          - ask:
              call: mcp
              with:
                method: tools/list
                timeout: '${ .wait }'
                transport:
                  stdio: {command: my-server}
        """,
        {"wait": "soon"},
        effects=recording(calls),
    )
    assert result.status == "faulted"
    assert result.error is not None
    assert result.error.type.endswith("/validation")
    assert result.error.detail == (
        "with.timeout: duration 'soon' is not ISO 8601; write it like 'PT30S' or 'P1DT2H'"
    )
    assert calls == []
