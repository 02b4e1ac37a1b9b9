"""``call: mcp`` over stdio: a real FastMCP server process per call, with a scrubbed
environment, a fresh working directory, its process group killed at the end, its stderr kept
for messages, and every way it can fail as a DSL error."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel

from tests.support.mcp_hosting import LOOPBACK, mcp_settings, stdio_server
from workflow_orchestrator.adapters.mcp import McpCaller
from workflow_orchestrator.dsl import Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import ServiceCall

CALLER = McpCaller(settings=mcp_settings(), outbound=LOOPBACK)
SERVER = repr(sys.executable)


async def call(
    arguments: dict[str, Any],
    *,
    caller: McpCaller = CALLER,
    seconds: float | None = None,
    namespace: str = "test",
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
                namespace=namespace,
            )
        )


async def failure(arguments: dict[str, Any], **options: Any) -> Problem:
    """The problem the call fails with."""
    with pytest.raises(WorkflowError) as info:
        await call(arguments, **options)
    assert info.value.problem.instance == "/do/0/ask"
    return info.value.problem


def tool(name: str, transport: dict[str, Any], **arguments: Any) -> dict[str, Any]:
    """The ``with`` of a tools/call."""
    return {
        "method": "tools/call",
        "parameters": {"name": name, "arguments": arguments},
        "transport": transport,
    }


async def wait_dead(pid: int) -> None:
    """Wait (bounded) until process ``pid`` has exited; a killed process goes at once."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # exited and reaped already
    try:
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(descriptor)  # readable once it has exited
    finally:
        os.close(descriptor)


async def read_pid(fifo: Path) -> int:
    """The pid the server writes into the named pipe ``fifo`` when it starts."""
    return int(await trio.to_thread.run_sync(fifo.read_text, abandon_on_cancel=True))


def pid_pipe(directory: Path) -> Path:
    """A named pipe for the server's pid (reading it waits until the server has started)."""
    fifo = directory / "pid"
    os.mkfifo(fifo)
    return fifo


async def test_a_tool_call_answers_the_json_rpc_result() -> None:
    """tools/call over stdio: the output is the CallToolResult by alias, without nulls."""
    assert await call(tool("echo", stdio_server(), text="hi")) == {
        "content": [{"type": "text", "text": "hi"}],
        "structuredContent": {"result": "hi"},
        "isError": False,
    }


async def test_the_server_sees_only_the_declared_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The process gets PATH (stdioPath, which a task cannot replace), LANG and the
    declared variables, nothing of the service's environment."""
    monkeypatch.setenv("SERVICE_DATABASE_PASSWORD", "s3cret")
    environment = {"GIVEN": "yes", "PATH": "/tmp/evil"}
    result = await call(tool("environment", stdio_server(environment=environment)))
    assert result["structuredContent"] == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "GIVEN": "yes",
    }


async def test_the_server_runs_in_a_fresh_directory_removed_afterwards() -> None:
    """The working directory is new and empty, and gone when the call returns."""
    result = await call(tool("working_directory", stdio_server()))
    directory = result["structuredContent"]["path"]
    assert Path(directory).parent == Path(tempfile.gettempdir())
    assert Path(directory).name.startswith("mcp-")
    assert result["structuredContent"]["entries"] == []
    assert not await trio.Path(directory).exists()


async def test_the_servers_children_are_killed_with_it() -> None:
    """A child the server started dies with the call (the process group is killed)."""
    result = await call(tool("spawn_child", stdio_server()))
    await wait_dead(int(result["structuredContent"]["result"]))


async def test_a_timeout_kills_the_server(tmp_path: Path) -> None:
    """A call past its timeout is the DSL's timeout error and its server is dead."""
    fifo = pid_pipe(tmp_path)
    transport = stdio_server(environment={"MCP_TEST_PID_FILE": str(fifo)})
    pids: list[int] = []

    async def note_pid() -> None:
        pids.append(await read_pid(fifo))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(note_pid)
        # Long enough for the server to start on a busy machine; the tool sleeps a minute.
        problem = await failure(tool("slow", transport, seconds=60), seconds=4)
    assert problem.type.endswith("/timeout")
    assert problem.detail == (
        f"the MCP call tools/call to the MCP server {SERVER} did not finish within 4s "
        "(with.timeout, at most workflows.calls.mcp.timeout: 20s)"
    )
    await wait_dead(pids[0])


async def test_a_cancelled_call_kills_the_server(tmp_path: Path) -> None:
    """Cancelling the task (an instance cancelled, a task timeout) kills the server too."""
    fifo = pid_pipe(tmp_path)
    transport = stdio_server(environment={"MCP_TEST_PID_FILE": str(fifo)})
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, tool("slow", transport, seconds=60))
            pid = await read_pid(fifo)
            nursery.cancel_scope.cancel()
    await wait_dead(pid)


async def test_a_chatty_stderr_does_not_block_and_a_failed_start_shows_its_end() -> None:
    """stderr is drained while the server runs (100 kB do not block it); a server that
    exits before answering is a runtime error with its exit status and last stderr line."""
    said = await call(tool("chatter", stdio_server(), size=100_000))
    assert said["structuredContent"] == {"result": "said"}
    problem = await failure({"method": "tools/list", "transport": stdio_server("--exit", "3")})
    assert problem.type.endswith("/runtime")
    assert problem.detail == (
        f"the MCP server {SERVER} (exit status 3) ended the connection before answering "
        "tools/list; its stderr ends with: refusing to start: no token"
    )


async def test_a_tool_error_is_a_runtime_error_with_the_tools_text() -> None:
    """A result with isError is a runtime error the workflow can catch."""
    problem = await failure(tool("fail", stdio_server(), reason="no such channel"))
    assert problem.type.endswith("/runtime")
    assert problem.title == "MCP Tool Error"
    assert problem.detail == (
        f"tool 'fail' of the MCP server {SERVER} failed: Error executing tool fail: no such channel"
    )


async def test_a_json_rpc_error_is_a_runtime_error_with_the_servers_message() -> None:
    """An error answer keeps the server's code and message."""
    problem = await failure(
        {"method": "prompts/get", "parameters": {"name": "nope"}, "transport": stdio_server()}
    )
    assert problem.type.endswith("/runtime")
    assert problem.detail == (
        f"the MCP server {SERVER} answered prompts/get with JSON-RPC error 0: Unknown prompt: nope"
    )


async def test_the_session_uses_the_tasks_protocol_version_and_client() -> None:
    """initialize carries with.protocolVersion and with.client."""
    arguments = tool("session_info", stdio_server())
    arguments |= {"protocolVersion": "2025-03-26", "client": {"name": "me", "version": "9"}}
    result = await call(arguments)
    assert result["structuredContent"] == {
        "protocolVersion": "2025-03-26",
        "client": {"name": "me", "version": "9"},
    }


@pytest.mark.parametrize(
    ("arguments", "caller", "detail"),
    [
        (
            {"method": "tools/list", "transport": stdio_server("--junk")},
            CALLER,
            f"the MCP server {SERVER} wrote something other than a JSON-RPC message to stdout: "
            "'starting up...'; a stdio server writes only MCP messages there (logs go to stderr)",
        ),
        (
            {"method": "tools/list", "transport": {"stdio": {"command": "no-such-mcp-server"}}},
            CALLER,
            "the MCP server command 'no-such-mcp-server' could not start: No such file or "
            "directory; commands are looked up in workflows.calls.mcp.stdioPath "
            "(/usr/local/bin:/usr/bin:/bin)",
        ),
        (
            tool("huge", stdio_server(), size=5000),
            McpCaller(settings=mcp_settings(), outbound=LOOPBACK, max_message_size=4096),
            f"the MCP server {SERVER} wrote a message of more than 4,096 bytes; raise "
            "workflows.maxResponseSize or ask for less",
        ),
    ],
    ids=["junk-on-stdout", "missing-command", "message-too-large"],
)
async def test_a_misbehaving_server_is_a_runtime_error(
    arguments: dict[str, Any], caller: McpCaller, detail: str
) -> None:
    """What the server does wrong ends the call at once with a runtime error saying what."""
    problem = await failure(arguments, caller=caller)
    assert problem.type.endswith("/runtime")
    assert problem.detail == detail


async def test_stdio_is_refused_unless_enabled_and_allowed_to_the_namespace() -> None:
    """Off by default (naming the setting); on, only for workflows.run.namespaces."""
    arguments = tool("echo", stdio_server(), text="hi")
    off = McpCaller(settings=mcp_settings(stdio=False), outbound=LOOPBACK)
    problem = await failure(arguments, caller=off)
    assert problem.type.endswith("/configuration")
    assert problem.detail == (
        "call: mcp over stdio starts a local process, which this service does not do while "
        "workflows.calls.mcp.stdio is false (the default); set workflows.calls.mcp.stdio: true "
        "in the configuration, or use the http transport"
    )
    only_ops = McpCaller(settings=mcp_settings(), outbound=LOOPBACK, process_namespaces=("ops",))
    problem = await failure(arguments, caller=only_ops, namespace="test")
    assert problem.type.endswith("/configuration")
    assert problem.detail == (
        "namespace 'test' may not start MCP servers over stdio (local processes); add it to "
        "workflows.run.namespaces in the configuration"
    )
    assert (await call(arguments, caller=only_ops, namespace="ops"))["isError"] is False
