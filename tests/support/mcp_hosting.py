"""Where the ``call: mcp`` tests find their MCP server (``tests/support/mcp_server.py``).

- `serve_mcp_http`: the server over streamable HTTP on a free 127.0.0.1 port, served by
  hypercorn in a thread of its own until the block exits.
- `stdio_server`: the ``with.transport.stdio`` that starts it as a stdio server, run by this
  virtualenv's Python (the adapter gives it a scrubbed environment).
- `install_command`: an executable ``npx`` (or another name) in a directory, standing in
  for the real one of the official ``call-mcp.yaml`` (no network here): it starts the same
  server with the arguments it is given. A test puts that directory first in
  ``workflows.calls.mcp.stdioPath``, the setting that says where the service looks up stdio
  commands, so the example runs unchanged through the production code path.
- `mcp_settings`: ``workflows.calls.mcp`` settings for the tests.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from tests.support.mcp_server import build_server
from workflow_orchestrator.config import McpCallSettings, OutboundSettings
from workflow_orchestrator.security import OutboundPolicy

__all__ = [
    "LOOPBACK",
    "SERVER_SCRIPT",
    "SSE_GENERATOR_WARNINGS",
    "install_command",
    "mcp_settings",
    "serve_mcp_http",
    "stdio_server",
]

SERVER_SCRIPT = Path(__file__).with_name("mcp_server.py")
#: The SDK's streamable HTTP client stops reading an SSE answer from inside its ``async for``
#: (mcp 1.30, ``_handle_sse_response``), so under trio the async generators of httpx-sse,
#: httpx and httpcore under it are finalized by the garbage collector with a ResourceWarning
#: (the response itself was closed). Upstream: modelcontextprotocol/python-sdk#3543 (close the
#: SSE iterators explicitly) and encode/httpx#3686. Tests that call over HTTP ignore exactly
#: these warnings; the service does not turn warnings into errors.
SSE_GENERATOR_WARNINGS = (
    r"ignore:Async generator '(httpx_sse|httpx|httpcore)\.[\w.]+' was garbage collected"
    ":ResourceWarning"
)
#: The outbound policy of these tests: the servers are on loopback, which the default refuses.
LOOPBACK = OutboundPolicy.from_settings(OutboundSettings(allow=("127.0.0.0/8", "::1")))


@asynccontextmanager
async def serve_mcp_http(*, json_response: bool = False) -> AsyncIterator[str]:
    """The endpoint (``http://127.0.0.1:<port>/mcp``) of the test server, served until the
    block exits (``json_response``: plain JSON answers instead of SSE streams).

    The server has a thread and a trio run of its own, as a remote server would: none of its
    tasks is in the test's run (whose actor system checks that nothing is left running).
    """
    started: queue.Queue[list[str] | BaseException] = queue.Queue()
    stop = threading.Event()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0
    app = build_server(json_response=json_response).streamable_http_app()

    async def stopped() -> None:
        await trio.to_thread.run_sync(stop.wait)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            # Starlette is an ASGI app; hypercorn's annotation names its own scope types.
            serving = partial(serve, app, config, shutdown_trigger=stopped)  # type: ignore[arg-type]
            started.put(await nursery.start(serving))

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as error:
            started.put(error)

    thread = threading.Thread(target=run, name="mcp-test-server", daemon=True)
    thread.start()
    try:
        binds = await trio.to_thread.run_sync(partial(started.get, timeout=30))
        if isinstance(binds, BaseException):
            raise RuntimeError("the MCP test server did not start") from binds
        yield f"{binds[0]}/mcp"
    finally:
        stop.set()
        await trio.to_thread.run_sync(partial(thread.join, 10))


def stdio_server(*arguments: str, environment: dict[str, str] | None = None) -> dict[str, Any]:
    """A ``with.transport`` that starts the test server over stdio."""
    stdio: dict[str, Any] = {
        "command": sys.executable,
        "arguments": [str(SERVER_SCRIPT), *arguments],
    }
    if environment is not None:
        stdio["environment"] = environment
    return {"stdio": stdio}


def install_command(directory: Path, name: str = "npx") -> Path:
    """Write an executable ``name`` (``npx`` by default) into ``directory`` that runs the test
    server over stdio with its arguments; return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    command = directory / name
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SERVER_SCRIPT}" "$@"\n')
    command.chmod(0o755)
    return directory


def mcp_settings(**changes: Any) -> McpCallSettings:
    """``workflows.calls.mcp`` for the tests: stdio on, 20 s per call, then ``changes``."""
    values: dict[str, Any] = {"stdio": True, "timeout": 20.0}
    values.update(changes)
    return McpCallSettings(**values)
