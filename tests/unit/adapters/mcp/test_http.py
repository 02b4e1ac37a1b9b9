"""``call: mcp`` over streamable HTTP: every method of the DSL against a FastMCP server on
loopback, headers and the negotiated protocol version on the wire, the outbound policy, the
size cap, the timeout and the failures of the endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from tests.support.mcp_hosting import (
    LOOPBACK,
    SSE_GENERATOR_WARNINGS,
    mcp_settings,
    serve_mcp_http,
)
from workflow_orchestrator.adapters import PooledHttpClient, ServiceContext, open_service_adapters
from workflow_orchestrator.adapters.mcp import McpCaller
from workflow_orchestrator.config import CallSettings, McpCallSettings, WorkflowSettings
from workflow_orchestrator.dsl import Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import ServiceCall
from workflow_orchestrator.security import OutboundPolicy

pytestmark = pytest.mark.filterwarnings(SSE_GENERATOR_WARNINGS)

CALLER = McpCaller(settings=mcp_settings(), outbound=LOOPBACK)


@pytest.fixture
async def endpoint() -> AsyncIterator[str]:
    """The test server's endpoint, answering with SSE streams."""
    async with serve_mcp_http() as url:
        yield url


async def call(
    arguments: dict[str, Any], *, caller: McpCaller = CALLER, seconds: float | None = None
) -> Any:
    """The result of the call (``seconds``: its with.timeout), within a bound of its own."""
    with trio.fail_after(30):
        return await caller(
            ServiceCall(
                kind="mcp",
                arguments=arguments,
                key="instance/do/0/ask",
                task_ref="/do/0/ask",
                timeout=seconds,
            )
        )


async def failure(arguments: dict[str, Any], **options: Any) -> Problem:
    """The problem the call fails with."""
    with pytest.raises(WorkflowError) as info:
        await call(arguments, **options)
    assert info.value.problem.instance == "/do/0/ask"
    return info.value.problem


def http(url: str, **headers: str) -> dict[str, Any]:
    """A ``with.transport`` to ``url``."""
    return {"http": {"endpoint": url, "headers": headers}}


def tool(name: str, url: str, **arguments: Any) -> dict[str, Any]:
    """The ``with`` of a tools/call to ``url``."""
    return {
        "method": "tools/call",
        "parameters": {"name": name, "arguments": arguments},
        "transport": http(url),
    }


METHODS: list[tuple[str, dict[str, Any] | None, Any]] = [
    (
        "tools/call",
        {"name": "add", "arguments": {"a": 2, "b": 3}},
        {"content": [{"type": "text", "text": "5"}], "structuredContent": {"result": 5}},
    ),
    ("prompts/list", None, {"prompts": [{"name": "greeting"}]}),
    (
        "prompts/get",
        {"name": "greeting", "arguments": {"name": "Ada"}},
        {
            "description": "Greet someone.",
            "messages": [{"role": "user", "content": {"type": "text", "text": "Hello, Ada!"}}],
        },
    ),
    ("resources/list", None, {"resources": [{"uri": "text://hello"}]}),
    (
        "resources/read",
        {"uri": "text://hello"},
        {"contents": [{"uri": "text://hello", "mimeType": "text/plain", "text": "hello world"}]},
    ),
    (
        "resources/read",
        {"uri": "greeting://Ada"},
        {"contents": [{"uri": "greeting://Ada", "mimeType": "text/plain", "text": "Hello, Ada!"}]},
    ),
    (
        "resources/templates/list",
        None,
        {"resourceTemplates": [{"uriTemplate": "greeting://{name}"}]},
    ),
]


def contains(actual: Any, expected: Any) -> bool:
    """``expected`` is a subset of ``actual``: mappings by key, lists item by item."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and contains(actual[key], value) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(contains(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(actual == expected)


@pytest.mark.parametrize(
    ("method", "parameters", "expected"),
    METHODS,
    ids=[f"{m}-{(p or {}).get('uri', (p or {}).get('name', ''))}" for m, p, _ in METHODS],
)
async def test_every_method_answers_its_json_rpc_result(
    endpoint: str, method: str, parameters: dict[str, Any] | None, expected: Any
) -> None:
    """Each method of the DSL's enum returns the server's JSON-RPC result."""
    arguments: dict[str, Any] = {"method": method, "transport": http(endpoint)}
    if parameters is not None:
        arguments["parameters"] = parameters
    result = await call(arguments)
    assert contains(result, expected), result


async def test_tools_list_names_the_tools(endpoint: str) -> None:
    """tools/list answers every tool with its schema."""
    result = await call({"method": "tools/list", "transport": http(endpoint)})
    tools = {item["name"]: item for item in result["tools"]}
    assert {"echo", "add", "fail", "conversations_add_message"} <= set(tools)
    assert tools["echo"]["inputSchema"]["required"] == ["text"]


async def test_plain_json_answers_work_too() -> None:
    """A server answering application/json instead of SSE streams is read the same way."""
    async with serve_mcp_http(json_response=True) as url:
        assert (await call(tool("echo", url, text="hi")))["structuredContent"] == {"result": "hi"}


async def test_headers_and_the_negotiated_version_reach_the_server(endpoint: str) -> None:
    """The task's headers go with every request, and after initialize the transport sends
    the protocol version the task asked for."""
    arguments = tool("request_headers", endpoint)
    arguments["transport"] = http(endpoint, Authorization="Bearer t0k", **{"X-Tenant": "acme"})
    arguments["protocolVersion"] = "2025-03-26"
    headers = (await call(arguments))["structuredContent"]
    assert headers["authorization"] == "Bearer t0k"
    assert headers["x-tenant"] == "acme"
    assert headers["mcp-protocol-version"] == "2025-03-26"


async def test_the_outbound_policy_refuses_before_connecting(endpoint: str) -> None:
    """The default policy refuses loopback: a communication error naming the setting."""
    strict = McpCaller(settings=mcp_settings(), outbound=OutboundPolicy())
    problem = await failure(tool("echo", endpoint, text="hi"), caller=strict)
    port = endpoint.rsplit(":", 1)[1].split("/")[0]
    assert problem.type.endswith("/communication")
    assert (problem.status, problem.title) == (403, "Outbound Call Refused")
    assert problem.detail == (
        f"the MCP server at {endpoint}: the outbound policy refuses 127.0.0.1 port {port}: "
        "127.0.0.1 is a loopback address; add 127.0.0.1 or a range holding it (a host name "
        "does not open it) to security.outbound.allow if workflows must reach it"
    )


async def test_an_answer_past_the_cap_ends_the_call_naming_the_setting() -> None:
    """A streamed (SSE) answer and a plain JSON one larger than maxResponseSize are refused at
    once, not at the timeout."""
    small = McpCaller(settings=mcp_settings(), outbound=LOOPBACK, max_message_size=4096)
    for json_response in (False, True):
        async with serve_mcp_http(json_response=json_response) as url:
            with trio.fail_after(10):
                problem = await failure(tool("huge", url, size=10_000), caller=small)
        assert problem.type.endswith("/runtime")
        assert problem.detail == (
            f"the MCP server at {url} answered with more than 4,096 bytes; raise "
            "workflows.maxResponseSize or ask for less"
        )


async def test_the_timeout_is_the_tasks_within_the_settings_maximum(endpoint: str) -> None:
    """with.timeout bounds the call; workflows.calls.mcp.timeout bounds with.timeout."""
    problem = await failure(tool("slow", endpoint, seconds=60), seconds=0.5)
    assert problem.type.endswith("/timeout")
    assert problem.detail == (
        f"the MCP call tools/call to the MCP server at {endpoint} did not finish within 0.5s "
        "(with.timeout, at most workflows.calls.mcp.timeout: 20s)"
    )
    capped = McpCaller(settings=mcp_settings(timeout=0.5), outbound=LOOPBACK)
    problem = await failure(tool("slow", endpoint, seconds=60), caller=capped, seconds=60)
    assert "did not finish within 0.5s" in (problem.detail or "")


async def test_tool_errors_and_json_rpc_errors_are_runtime_errors(endpoint: str) -> None:
    """isError and error answers keep the server's words."""
    problem = await failure(tool("fail", endpoint, reason="quota exceeded"))
    assert (problem.type.rsplit("/", 1)[1], problem.title) == ("runtime", "MCP Tool Error")
    assert problem.detail == (
        f"tool 'fail' of the MCP server at {endpoint} failed: Error executing tool fail: "
        "quota exceeded"
    )
    problem = await failure(
        {
            "method": "resources/read",
            "parameters": {"uri": "text://nope"},
            "transport": http(endpoint),
        }
    )
    assert problem.detail == (
        f"the MCP server at {endpoint} answered resources/read with JSON-RPC error 0: Unknown "
        "resource: text://nope"
    )


async def test_an_endpoint_that_is_not_there_is_a_runtime_error(endpoint: str) -> None:
    """A wrong path (404) and a closed port say what happened."""
    problem = await failure({"method": "tools/list", "transport": http(endpoint + "-nope")})
    assert problem.type.endswith("/runtime")
    assert problem.detail == (
        f"the MCP server at {endpoint}-nope answered HTTP 404: no MCP endpoint at that path, "
        "or the session ended; check with.transport.http.endpoint"
    )
    problem = await failure({"method": "tools/list", "transport": http("http://127.0.0.1:9/mcp")})
    assert problem.type.endswith("/runtime")
    assert (problem.detail or "").startswith(
        "the MCP server at http://127.0.0.1:9/mcp could not be reached: "
    )


async def test_only_http_endpoints_are_called() -> None:
    """Another scheme is a validation error, before any connection."""
    problem = await failure({"method": "tools/list", "transport": http("file:///etc/passwd")})
    assert problem.type.endswith("/validation")
    assert problem.detail == (
        "with.transport.http.endpoint must be an http or https URL, not 'file:///etc/passwd'"
    )


async def test_the_service_adapters_serve_mcp_where_enabled_with_the_host_map(
    endpoint: str,
) -> None:
    """open_service_adapters adds the mcp caller when enabled; its host map sends an
    example's host to the local server. Disabled, the kind is refused naming the setting."""
    enabled = WorkflowSettings(calls=CallSettings(mcp=mcp_settings()))
    async with PooledHttpClient(policy=LOOPBACK) as client:
        context = ServiceContext(
            workflows=enabled,
            outbound=LOOPBACK,
            http=client,
            host_map={"https://mcp.contoso.com": endpoint.removesuffix("/mcp")},
        )
        async with open_service_adapters(context) as adapters:
            request = ServiceCall(
                kind="mcp",
                arguments=tool("echo", "https://mcp.contoso.com/mcp", text="mapped"),
                key="k",
            )
            with trio.fail_after(30):
                result = await adapters.call(request)
            assert result["structuredContent"] == {"result": "mapped"}
        disabled = WorkflowSettings(calls=CallSettings(mcp=McpCallSettings(enabled=False)))
        async with open_service_adapters(
            ServiceContext(workflows=disabled, outbound=LOOPBACK, http=client)
        ) as adapters:
            assert "mcp" not in adapters.kinds()
            with pytest.raises(WorkflowError) as info:
                await adapters.call(request)
    assert "set workflows.calls.mcp.enabled: true" in (info.value.problem.detail or "")
