"""An MCP server for the ``call: mcp`` tests, written with the SDK's FastMCP.

Served over streamable HTTP in the test's own trio run (``tests.support.mcp_hosting``), or
run as a stdio server by the adapter: ``python mcp_server.py [args...]``. As a script it
imports only the SDK and the standard library (the adapter gives it a scrubbed environment,
without ``PYTHONPATH``). Arguments it understands, for the failure tests: ``--junk`` (write a
line that is not JSON-RPC to stdout first), ``--exit CODE`` (write to stderr and exit at
once); any other arguments are kept and shown by ``conversations_add_message``.

Tools: ``echo``, ``add``, ``fail`` (raises: an ``isError`` result), ``slow``, ``environment``
(the process's variables), ``working_directory``, ``session_info`` (what ``initialize``
said), ``spawn_child`` (starts a long-lived child
and returns its pid), ``chatter`` (writes to stderr), ``huge``, ``request_headers`` (over
HTTP) and ``conversations_add_message`` (the tool of the official ``call-mcp.yaml``).
Prompt ``greeting``; resources ``text://hello`` and ``greeting://{name}``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import anyio
from mcp.server.fastmcp import Context, FastMCP

ARGUMENTS: list[str] = []


def build_server(*, json_response: bool = False) -> FastMCP:
    """The test server (``json_response``: streamable HTTP answers plain JSON, not SSE)."""
    server = FastMCP(
        "workflow-orchestrator-tests", json_response=json_response, log_level="CRITICAL"
    )

    @server.tool()
    def echo(text: str) -> str:
        """Answer the text."""
        return text

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def fail(reason: str) -> str:
        """Fail with the reason."""
        raise ValueError(reason)

    @server.tool()
    async def slow(seconds: float) -> str:
        """Answer after a while."""
        await anyio.sleep(seconds)
        return "late"

    @server.tool()
    def environment() -> dict[str, str]:
        """The variables of this process."""
        return dict(os.environ)

    @server.tool()
    def working_directory() -> dict[str, Any]:
        """Where this process runs, and what is there."""
        return {"path": os.getcwd(), "entries": sorted(os.listdir("."))}

    @server.tool()
    def spawn_child() -> int:
        """Start a child that would live for ten minutes; its pid."""
        child = subprocess.Popen(["sleep", "600"])
        return child.pid

    @server.tool()
    def chatter(size: int) -> str:
        """Write ``size`` bytes to stderr."""
        sys.stderr.write("e" * size + "\nlast words\n")
        sys.stderr.flush()
        return "said"

    @server.tool()
    def huge(size: int) -> str:
        """A text of ``size`` characters."""
        return "x" * size

    @server.tool()
    def request_headers(ctx: Context) -> dict[str, str]:  # type: ignore[type-arg]
        """The headers of the HTTP request that carried this call."""
        request = ctx.request_context.request
        return dict(request.headers) if request is not None else {}

    @server.tool()
    def session_info(ctx: Context) -> dict[str, Any]:  # type: ignore[type-arg]
        """What the client said in ``initialize``."""
        params = ctx.session.client_params
        assert params is not None
        return {
            "protocolVersion": str(params.protocolVersion),
            "client": {"name": params.clientInfo.name, "version": params.clientInfo.version},
        }

    @server.tool()
    def conversations_add_message(
        channel_id: str, thread_ts: str, payload: str, content_type: str
    ) -> dict[str, Any]:
        """What the official example's Slack server would post, with what this server got."""
        return {
            "channel": channel_id,
            "thread": thread_ts,
            "text": payload,
            "contentType": content_type,
            "arguments": ARGUMENTS,
            "token": os.environ.get("SLACK_MCP_XOXP_TOKEN"),
        }

    @server.prompt()
    def greeting(name: str) -> str:
        """Greet someone."""
        return f"Hello, {name}!"

    @server.resource("text://hello", mime_type="text/plain")
    def hello() -> str:
        """A fixed text."""
        return "hello world"

    @server.resource("greeting://{name}")
    def greeting_of(name: str) -> str:
        """A greeting for ``name``."""
        return f"Hello, {name}!"

    return server


def main(argv: list[str]) -> None:
    """Run over stdio (see the module docstring for the arguments); with
    ``MCP_TEST_PID_FILE`` set, write this process's pid there first."""
    pid_file = os.environ.get("MCP_TEST_PID_FILE")
    if pid_file:
        with open(pid_file, "w") as file:
            file.write(str(os.getpid()))
    if "--exit" in argv:
        sys.stderr.write("refusing to start: no token\n")
        sys.exit(int(argv[argv.index("--exit") + 1]))
    if "--junk" in argv:
        sys.stdout.write("starting up...\n")
        sys.stdout.flush()
    ARGUMENTS.extend(argv)
    build_server().run("stdio")


if __name__ == "__main__":
    main(sys.argv[1:])
