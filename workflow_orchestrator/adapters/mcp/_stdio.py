"""The stdio transport of ``call: mcp``: the MCP server as a child process of this call.

The SDK's own ``stdio_client`` hands the server the service's ``HOME``, ``USER``, ``PATH``...
and writes its stderr to ours; this transport treats the server like ``run.shell``:

- Its environment is ``LANG`` and the variables the task declares, with ``PATH`` always
  ``workflows.calls.mcp.stdioPath`` (where the command is looked up; a task cannot change
  it), and nothing of the service's.
- It starts in a fresh, empty temporary directory (removed afterwards) and in a process group
  of its own, which is killed when the call ends: after a short grace once its input is
  closed on success, at once on timeout, failure or cancellation, so the children it spawned
  (``npx`` runs ``node``) go too.
- stdout carries JSON-RPC messages, one per line, each at most ``max_message_size`` bytes;
  anything else ends the call with an error. stderr is read as it comes and its last
  `STDERR_TAIL` bytes are kept for error messages.

Messages cross to the SDK's `ClientSession` through the memory streams it expects.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import attrs
import pydantic
import trio
import trio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import types
from mcp.shared.message import SessionMessage

from workflow_orchestrator.adapters._processes import BASE_ENVIRONMENT
from workflow_orchestrator.adapters.mcp._abort import Abort
from workflow_orchestrator.adapters.mcp._arguments import StdioTransport
from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError

logger = logging.getLogger(__name__)

#: The seconds a server has to exit once its input is closed, before its group is killed.
STOP_GRACE = 2.0
#: The bytes of stderr kept for messages (the last ones).
STDERR_TAIL = 8192
_KILL_WAIT = 5.0
_READ_CHUNK = 65536
_SHOWN = 200

Incoming = SessionMessage | Exception
ReadStream = MemoryObjectReceiveStream[Incoming]
WriteStream = MemoryObjectSendStream[SessionMessage]


@attrs.define(eq=False)
class ServerProcess:
    """What the call may tell about its server process: ``command``, the end of its stderr
    and its exit status once it has ended (None before, or if it could not be reaped)."""

    command: str
    stderr: bytearray = attrs.field(factory=bytearray)
    returncode: int | None = None

    def stderr_tail(self, chars: int = 500) -> str:
        """The last ``chars`` characters of stderr, on one line (NUL replaced)."""
        text = self.stderr.decode("utf-8", "replace").replace("\0", "\ufffd").strip()
        text = " | ".join(line for line in text.splitlines() if line.strip())
        return text[-chars:]

    def describe(self, event: str) -> str:
        """``the MCP server 'cmd' <event>``, with its exit status and the end of its stderr
        when known."""
        status = f" (exit status {self.returncode})" if self.returncode is not None else ""
        text = f"the MCP server {self.command!r}{status} {event}"
        tail = self.stderr_tail()
        return f"{text}; its stderr ends with: {tail}" if tail else text


def _failure(detail: str, where: str) -> WorkflowError:
    return WorkflowError(Problem.standard(ErrorType.RUNTIME, detail=detail, instance=where))


async def _read_messages(
    stdout: trio.abc.ReceiveStream,
    sink: MemoryObjectSendStream[SessionMessage | Exception],
    *,
    limit: int,
    abort: Abort,
    server: ServerProcess,
    where: str,
) -> None:
    """Pass each line of ``stdout`` on as a message; stop the call on anything else."""
    buffer = bytearray()
    async with sink:
        while chunk := await stdout.receive_some(_READ_CHUNK):
            buffer += chunk
            while (end := buffer.find(b"\n")) >= 0 or len(buffer) > limit:
                if end < 0 or end > limit:
                    abort.fail(
                        _failure(
                            f"the MCP server {server.command!r} wrote a message of more than "
                            f"{limit:,} bytes; raise workflows.maxResponseSize or ask for less",
                            where,
                        )
                    )
                    return
                line = bytes(buffer[:end]).strip()
                del buffer[: end + 1]
                if not line:
                    continue
                try:
                    message = types.JSONRPCMessage.model_validate_json(line)
                except pydantic.ValidationError:
                    shown = line[:_SHOWN].decode("utf-8", "replace")
                    abort.fail(
                        _failure(
                            f"the MCP server {server.command!r} wrote something other than a "
                            f"JSON-RPC message to stdout: {shown!r}; a stdio server writes only "
                            "MCP messages there (logs go to stderr)",
                            where,
                        )
                    )
                    return
                try:
                    await sink.send(SessionMessage(message))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return  # the session is over


async def _write_messages(
    stdin: trio.abc.SendStream, source: MemoryObjectReceiveStream[SessionMessage]
) -> None:
    """Write each message of the session to ``stdin``, one per line; close it at the end."""
    try:
        async with source:
            async for message in source:
                line = message.message.model_dump_json(by_alias=True, exclude_none=True)
                await stdin.send_all(line.encode() + b"\n")
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the server exited; the reader sees its output end
    finally:
        with trio.CancelScope(shield=True):
            await stdin.aclose()


async def _keep_tail(stderr: trio.abc.ReceiveStream, server: ServerProcess) -> None:
    while chunk := await stderr.receive_some(_READ_CHUNK):
        server.stderr += chunk
        del server.stderr[:-STDERR_TAIL]


def _kill_group(process: trio.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def _stop(process: trio.Process, *, graceful: bool) -> None:
    """Let the server exit (``graceful``: its input is closed), then kill its whole group and
    reap it; shielded and bounded by the caller."""
    if graceful:
        with trio.move_on_after(STOP_GRACE):
            await process.wait()
    _kill_group(process)  # also the children of a leader that exited by itself
    with trio.move_on_after(_KILL_WAIT):
        await process.wait()


@asynccontextmanager
async def _process(
    transport: StdioTransport, *, path: str, workdir: str, server: ServerProcess, where: str
) -> AsyncIterator[trio.Process]:
    # PATH is the operator's, always: it says where commands are found.
    environment = {**BASE_ENVIRONMENT, **transport.environment, "PATH": path}
    try:
        process = await trio.lowlevel.open_process(
            [transport.command, *transport.arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            cwd=workdir,
            start_new_session=True,
        )
    except OSError as error:
        raise _failure(
            f"the MCP server command {transport.command!r} could not start: "
            f"{error.strerror or error}; commands are looked up in workflows.calls.mcp.stdioPath "
            f"({path})",
            where,
        ) from None
    graceful = False
    try:
        yield process
        graceful = True
    finally:
        with trio.CancelScope(shield=True):
            await _stop(process, graceful=graceful)
        server.returncode = process.returncode
        logger.debug(
            "MCP stdio server ended",
            extra={"command": transport.command, "returncode": process.returncode},
        )


@asynccontextmanager
async def open_stdio_transport(
    transport: StdioTransport,
    *,
    path: str,
    max_message_size: int,
    abort: Abort,
    server: ServerProcess,
    where: str,
) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
    """Start the server of ``transport`` and yield the session's streams to it; leaving the
    block stops the server (see the module docstring) and fills ``server`` in."""
    workdir = await trio.to_thread.run_sync(functools.partial(tempfile.mkdtemp, prefix="mcp-"))
    try:
        async with _process(
            transport, path=path, workdir=workdir, server=server, where=where
        ) as process:
            if process.stdin is None or process.stdout is None or process.stderr is None:
                raise RuntimeError("the process has no pipes")  # asked for above: a bug
            to_session, read_stream = anyio.create_memory_object_stream[Incoming]()
            write_stream, from_session = anyio.create_memory_object_stream[SessionMessage]()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    functools.partial(
                        _read_messages,
                        process.stdout,
                        to_session,
                        limit=max_message_size,
                        abort=abort,
                        server=server,
                        where=where,
                    )
                )
                nursery.start_soon(_write_messages, process.stdin, from_session)
                nursery.start_soon(_keep_tail, process.stderr, server)
                try:
                    yield read_stream, write_stream
                finally:
                    nursery.cancel_scope.cancel()
    finally:
        with trio.move_on_after(_KILL_WAIT, shield=True):
            await trio.to_thread.run_sync(
                functools.partial(shutil.rmtree, workdir, ignore_errors=True)
            )
