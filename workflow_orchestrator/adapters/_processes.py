"""Local ``run.shell`` / ``run.script`` processes: the I/O behind the DSL's `Effects.run_process`.

Off by default: runtimes call `run_local_process` from their `Effects.run_process` only when
configuration enables shell/script tasks. Every process runs under a hard timeout; on timeout
it is killed and the task faults with the spec's timeout error.

A process gets a scrubbed environment: a fixed ``PATH`` and ``LANG`` plus the variables its
task declares (``run.shell.environment``), never the service's own (database password,
secrets). Its stdout and stderr are read as they come, each at most ``max_output`` bytes
(``workflows.run.maxOutputSize``): past that it is killed and the task faults naming the
setting.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import trio
import trio.lowlevel

from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import ProcessRequest, ProcessResult

#: What every process gets besides the variables its task declares.
BASE_ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
DEFAULT_MAX_OUTPUT = 1024 * 1024
_READ_CHUNK = 65536

_INTERPRETERS = {
    "python": (sys.executable, "-c"),
    "js": ("node", "-e"),
    "javascript": ("node", "-e"),
}


def _command(request: ProcessRequest) -> list[str]:
    if request.kind == "shell":
        return ["/bin/sh", "-c", request.command, "sh", *request.arguments]
    interpreter = _INTERPRETERS.get((request.language or "").lower())
    if interpreter is None:
        raise WorkflowError(
            Problem.standard(
                ErrorType.CONFIGURATION,
                detail=f"script language {request.language!r} is not supported; "
                f"use one of {sorted(_INTERPRETERS)}",
            )
        )
    # Found on the service's PATH: the process's own PATH is the scrubbed one.
    program = shutil.which(interpreter[0]) or interpreter[0]
    return [program, interpreter[1], request.command, *request.arguments]


class _OutputTooLarge(Exception):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.stream = stream


async def _read_capped(
    stream: trio.abc.ReceiveStream, name: str, cap: int, into: bytearray
) -> None:
    while True:
        chunk = await stream.receive_some(_READ_CHUNK)
        if not chunk:
            return
        into += chunk
        if len(into) > cap:
            raise _OutputTooLarge(name)


async def _feed(stream: trio.abc.SendStream, data: bytes) -> None:
    try:
        if data:
            await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the process exited without reading all of its stdin
    finally:
        await stream.aclose()


async def run_local_process(
    request: ProcessRequest, *, max_output: int = DEFAULT_MAX_OUTPUT
) -> ProcessResult:
    """Run ``request`` as a child process and collect its exit code, stdout and stderr (see
    the module docstring for its environment and the ``max_output`` cap)."""
    command = _command(request)
    stdout, stderr = bytearray(), bytearray()
    try:
        process = await trio.lowlevel.open_process(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**BASE_ENVIRONMENT, **request.environment},
        )
    except OSError as exc:
        raise WorkflowError(
            Problem.standard(
                ErrorType.RUNTIME, detail=f"the {request.kind} process could not start: {exc}"
            )
        ) from None
    if process.stdin is None or process.stdout is None or process.stderr is None:
        raise RuntimeError("the process has no pipes")  # asked for above: a bug
    too_large: str | None = None
    timed_out = False
    try:
        with trio.move_on_after(request.timeout) as scope:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_feed, process.stdin, (request.stdin or "").encode())
                    nursery.start_soon(_read_capped, process.stdout, "stdout", max_output, stdout)
                    nursery.start_soon(_read_capped, process.stderr, "stderr", max_output, stderr)
                await process.wait()
            except* _OutputTooLarge as group:
                leaf = group.exceptions[0]
                too_large = leaf.stream if isinstance(leaf, _OutputTooLarge) else "output"
        timed_out = scope.cancelled_caught
    finally:
        if process.returncode is None:
            process.kill()
            with trio.move_on_after(5, shield=True):
                await process.wait()
    if too_large is not None:
        raise WorkflowError(
            Problem.standard(
                ErrorType.RUNTIME,
                detail=f"the {request.kind} process wrote more than {max_output:,} bytes to "
                f"{too_large}; it was stopped. Write less, or raise workflows.run.maxOutputSize",
            )
        )
    if timed_out:
        raise WorkflowError(
            Problem.standard(
                ErrorType.TIMEOUT,
                detail=f"the {request.kind} process did not finish within {request.timeout:g}s",
            )
        )
    return ProcessResult(
        code=process.returncode if process.returncode is not None else -1,
        stdout=stdout.decode("utf-8", "replace"),
        stderr=stderr.decode("utf-8", "replace"),
    )
