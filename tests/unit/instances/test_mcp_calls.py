"""``call: mcp`` through the durable runtime, with the adapters the service opens
(``open_service_adapters``) and local MCP servers standing in for the examples' hosts.

The official ``call-mcp.yaml`` starts ``npx slack-mcp-serverr@latest --transport stdio``,
which cannot run here (no network). The test installs an executable ``npx`` of its own in a
temporary directory and puts that directory first in ``workflows.calls.mcp.stdioPath``, the
setting that says where the service looks up stdio commands: the example runs unchanged, by
the same code path as in production, and the stand-in reports the arguments and the
environment variable it was given.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.instances import Runtime, open_runtime
from tests.support.mcp_hosting import (
    LOOPBACK,
    SSE_GENERATOR_WARNINGS,
    install_command,
    mcp_settings,
    serve_mcp_http,
)
from tests.support.spec import require_spec
from workflow_orchestrator.adapters import PooledHttpClient, ServiceContext, open_service_adapters
from workflow_orchestrator.config import CallSettings, McpCallSettings, WorkflowSettings
from workflow_orchestrator.dsl.validation import load_document
from workflow_orchestrator.instances import StartRequest
from workflow_orchestrator.storage.instances import InstanceStatus

pytestmark = pytest.mark.filterwarnings(SSE_GENERATOR_WARNINGS)

ENDED = (InstanceStatus.COMPLETED, InstanceStatus.FAULTED)


@asynccontextmanager
async def open_mcp_runtime(
    settings: McpCallSettings, host_map: dict[str, str] | None = None
) -> AsyncIterator[Runtime]:
    """A runtime whose service adapters are the ones the service opens for ``settings``."""
    workflows = WorkflowSettings(calls=CallSettings(mcp=settings))
    async with PooledHttpClient(policy=LOOPBACK) as client:
        context = ServiceContext(
            workflows=workflows, outbound=LOOPBACK, http=client, host_map=host_map or {}
        )
        async with (
            open_service_adapters(context) as services,
            open_runtime(services=services) as harness,
        ):
            yield harness


async def run_to_end(harness: Runtime, definition_id: str) -> Any:
    """Start ``definition_id`` and wait (bounded) for its end; its stored record."""
    record, _ = await harness.runtime.start_instance(StartRequest(definition_id=definition_id))
    with trio.fail_after(60):
        await harness.wait_status(record.instance_id, *ENDED)
    return harness.store.stored(record.instance_id).record


async def test_the_official_call_mcp_example_runs_with_a_local_npx(tmp_path: Path) -> None:
    """call-mcp.yaml completes: the stand-in npx got the example's arguments and token, and
    the output is the tool call's JSON-RPC result."""
    example = require_spec() / "examples" / "call-mcp.yaml"
    bin_directory = install_command(tmp_path / "bin")
    settings = mcp_settings(stdio_path=(str(bin_directory), "/usr/bin", "/bin"))
    async with open_mcp_runtime(settings) as harness:
        harness.store.register("mcp-example", "0.1.0", load_document(example.read_text()))
        record = await run_to_end(harness, "mcp-example")
    assert record.status is InstanceStatus.COMPLETED, record.error
    assert record.output["isError"] is False
    assert record.output["structuredContent"] == {
        "channel": "C1234567890",
        "thread": "1623456789.123456",
        "text": "Hello, world! :wave:",
        "contentType": "text/markdown",
        "arguments": ["slack-mcp-serverr@latest", "--transport", "stdio"],
        "token": "xoxp-xv6Cv3jKqNW8esm5YnsftKwIzoQHUzAP",
    }


async def test_the_example_is_refused_while_stdio_is_off() -> None:
    """With the default settings the same example faults with a configuration error naming
    workflows.calls.mcp.stdio (registration refuses it too; see the validation tests)."""
    example = require_spec() / "examples" / "call-mcp.yaml"
    async with open_mcp_runtime(McpCallSettings()) as harness:
        harness.store.register("mcp-example", "0.1.0", load_document(example.read_text()))
        record = await run_to_end(harness, "mcp-example")
    assert record.status is InstanceStatus.FAULTED
    assert record.error["type"].endswith("/configuration")
    assert "set workflows.calls.mcp.stdio: true" in record.error["detail"]


MAPPED = """\
do:
  - tryIt:
      try:
        - post:
            call: mcp
            with:
              method: tools/call
              parameters:
                name: fail
                arguments: {reason: no such channel}
              transport:
                http: {endpoint: 'https://mcp.contoso.com/mcp'}
      catch:
        errors:
          with: {type: 'https://serverlessworkflow.io/spec/1.0.0/errors/runtime'}
        as: failure
        do:
          - note:
              set:
                title: '${ $failure.title }'
                detail: '${ $failure.detail }'
  - whoAmI:
      call: mcp
      with:
        method: tools/call
        parameters: {name: request_headers}
        timeout: PT10S
        transport:
          http:
            endpoint:
              uri: 'https://mcp.contoso.com/mcp'
              authentication:
                bearer: {token: t0k}
      output:
        as: '${ $input + {authorization: .structuredContent.authorization} }'
"""


async def test_an_http_call_to_a_mapped_host_catches_a_tool_error_and_authenticates() -> None:
    """Over streamable HTTP to an example host mapped to a local server: a failing tool is a
    runtime error the workflow catches, and the endpoint's bearer policy arrives as the
    Authorization header."""
    async with serve_mcp_http() as endpoint:
        local = endpoint.removesuffix("/mcp")
        async with open_mcp_runtime(
            mcp_settings(), host_map={"https://mcp.contoso.com": local}
        ) as harness:
            harness.register("mapped", MAPPED)
            record = await run_to_end(harness, "mapped")
    assert record.status is InstanceStatus.COMPLETED, record.error
    assert record.output == {
        "title": "MCP Tool Error",
        "detail": "tool 'fail' of the MCP server at https://mcp.contoso.com/mcp failed: "
        "Error executing tool fail: no such channel",
        "authorization": "Bearer t0k",
    }
