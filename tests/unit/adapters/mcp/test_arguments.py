"""Reading a ``call: mcp``'s arguments: defaults, the SDK's request per method, and every
refusal as a validation error naming the field, before anything starts or connects."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import types

from workflow_orchestrator._version import __version__
from workflow_orchestrator.adapters.mcp._arguments import (
    HttpTransport,
    StdioTransport,
    read_call,
)
from workflow_orchestrator.dsl import WorkflowError

STDIO = {"stdio": {"command": "server", "arguments": ["--quiet", 3], "environment": {"A": 1}}}
HTTP = {"http": {"endpoint": "https://mcp.example.com/mcp", "headers": {"X-Key": "k"}}}


def _refusal(arguments: dict[str, Any]) -> str:
    with pytest.raises(WorkflowError) as info:
        read_call(arguments, "/do/0/ask")
    problem = info.value.problem
    assert problem.type.endswith("/validation")
    assert problem.instance == "/do/0/ask"
    return problem.detail or ""


def test_defaults_are_the_dsl_protocol_version_and_this_service_as_client() -> None:
    """Without protocolVersion and client the session asks for 2025-06-18 as
    workflow-orchestrator at this version; a list method needs no parameters."""
    call = read_call({"method": "tools/list", "transport": STDIO}, "/do/0/ask")
    assert call.protocol_version == "2025-06-18"
    assert (call.client.name, call.client.version) == ("workflow-orchestrator", __version__)
    assert isinstance(call.request.root, types.ListToolsRequest)
    assert call.request.root.params is None
    assert call.result_type is types.ListToolsResult
    assert call.tool is None
    assert call.transport == StdioTransport(
        command="server", arguments=("--quiet", "3"), environment={"A": "1"}
    )


def test_a_tool_call_carries_its_name_arguments_and_client() -> None:
    """tools/call becomes the SDK's CallToolRequest; headers are lower-cased."""
    call = read_call(
        {
            "method": "tools/call",
            "protocolVersion": "2025-03-26",
            "parameters": {"name": "echo", "arguments": {"text": "hi"}},
            "client": {"name": "synapse", "version": "1.0.0"},
            "transport": HTTP,
        },
        "/do/0/ask",
    )
    root = call.request.root
    assert isinstance(root, types.CallToolRequest)
    assert (root.params.name, root.params.arguments) == ("echo", {"text": "hi"})
    assert call.tool == "echo"
    assert call.protocol_version == "2025-03-26"
    assert (call.client.name, call.client.version) == ("synapse", "1.0.0")
    assert call.transport == HttpTransport(
        endpoint="https://mcp.example.com/mcp", headers={"x-key": "k"}
    )


@pytest.mark.parametrize(
    ("arguments", "detail"),
    [
        (
            {"method": "tools/delete", "transport": STDIO},
            "with.method must be one of ['prompts/get', 'prompts/list', 'resources/list', "
            "'resources/read', 'resources/templates/list', 'tools/call', 'tools/list'], not "
            "'tools/delete'",
        ),
        (
            {"method": "tools/call", "parameters": {"arguments": {}}, "transport": STDIO},
            "the parameters of tools/call are not valid: with.parameters.name: Field required",
        ),
        (
            {"method": "resources/read", "parameters": {"url": "x"}, "transport": STDIO},
            "the parameters of resources/read are not valid: with.parameters.uri: Field required",
        ),
        (
            {"method": "tools/list", "parameters": "${ .p }", "transport": STDIO},
            "with.parameters must be an object (or an expression giving one), not str",
        ),
        (
            {"method": "tools/list", "protocolVersion": "1999-01-01", "transport": STDIO},
            "with.protocolVersion '1999-01-01' is not one this runtime speaks; use one of "
            "['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25']",
        ),
        (
            {"method": "tools/list", "transport": {**STDIO, **HTTP}},
            "with.transport must have exactly one of http and stdio",
        ),
        (
            {"method": "tools/list", "transport": {"stdio": {"arguments": []}}},
            "with.transport.stdio.command must be a non-empty string, not None",
        ),
        (
            {"method": "tools/list", "transport": {"stdio": {"command": "s\0"}}},
            "with.transport.stdio.command must not contain a NUL character",
        ),
        (
            {
                "method": "tools/list",
                "transport": {"stdio": {"command": "s", "environment": {"A=B": "1"}}},
            },
            "with.transport.stdio.environment: 'A=B' cannot be given to a process (a name is "
            "not empty and has no '=' or NUL; a value has no NUL)",
        ),
        (
            {"method": "tools/list", "transport": {"http": {"headers": {}}}},
            "with.transport.http.endpoint must be a non-empty string, not None",
        ),
        (
            {"method": "tools/list", "client": "me", "transport": STDIO},
            "with.client must be an object with name and version",
        ),
    ],
)
def test_invalid_arguments_are_refused_naming_the_field(
    arguments: dict[str, Any], detail: str
) -> None:
    """Each invalid argument is a validation error saying what to change."""
    assert _refusal(arguments) == detail
