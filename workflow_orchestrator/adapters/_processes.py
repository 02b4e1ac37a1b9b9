"""Local ``run.shell`` / ``run.script`` processes: the I/O behind the DSL's `Effects.run_process`.

Off by default: runtimes call `run_local_process` from their `Effects.run_process` only when
configuration enables shell/script tasks. Every process runs under a hard timeout; on timeout
it is killed and the task faults with the spec's timeout error.
"""

from __future__ import annotations

import os
import subprocess
import sys

import trio

from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import ProcessRequest, ProcessResult

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
    return [*interpreter, request.command, *request.arguments]


async def run_local_process(request: ProcessRequest) -> ProcessResult:
    """Run ``request`` as a child process and collect its exit code, stdout and stderr."""
    command = _command(request)
    try:
        with trio.fail_after(request.timeout):
            completed = await trio.run_process(
                command,
                stdin=(request.stdin or "").encode(),
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env={**os.environ, **request.environment},
            )
    except trio.TooSlowError:
        raise WorkflowError(
            Problem.standard(
                ErrorType.TIMEOUT,
                detail=f"the {request.kind} process did not finish within {request.timeout:g}s",
            )
        ) from None
    except OSError as exc:
        raise WorkflowError(
            Problem.standard(
                ErrorType.RUNTIME, detail=f"the {request.kind} process could not start: {exc}"
            )
        ) from None
    assert isinstance(completed, subprocess.CompletedProcess)
    return ProcessResult(
        code=completed.returncode,
        stdout=completed.stdout.decode("utf-8", "replace"),
        stderr=completed.stderr.decode("utf-8", "replace"),
    )
