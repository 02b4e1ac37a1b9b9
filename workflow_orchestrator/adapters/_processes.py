"""Local ``run.shell`` / ``run.script`` processes: the I/O behind the DSL's `Effects.run_process`.

Off by default: the service hands `LocalProcesses.run_process` to its instances only behind
``ConfiguredProcesses`` (``workflows.run.shell``/``script``) and the namespace policy.

Sandbox. Every process starts through ``_process_launcher`` (see its docstring), in a new
session, in a fresh private temporary folder (its working directory, ``HOME`` and ``TMPDIR``)
that is removed when it ends, as the service's user. It gets a scrubbed environment: a fixed
``PATH`` and ``LANG``, ``HOME``, ``TMPDIR`` and the variables its task declares, never the
service's own (database password, secrets). Resource limits apply to it and to everything it
starts (``ProcessLimits``: CPU seconds, private memory, processes of the user, open files,
file size). When it ends, is stopped (timeout, output cap, cancellation) or the service dies
(the lifeline pipe), the launcher kills every descendant it left, even those that left its
process group, so nothing outlives the task.

Bounds. At most ``ProcessLimits.concurrency`` processes run at once per service; a task waits
for a slot at most its timeout. A process runs at most ``ProcessRequest.timeout`` seconds
(then the timeout error); its stdout and stderr are read as they come, each at most
``max_output`` bytes (past that it is killed and the task faults naming the setting). A
process that is not awaited (``await: false``) is started in this object's nursery and the
task goes on at once; its output is discarded, its end is logged, and it is killed when its
timeout passes or the service stops. Every error names the setting to change.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path

import attrs
import trio
import trio.lowlevel

from workflow_orchestrator.config import RunTaskSettings
from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import ProcessRequest, ProcessResult

logger = logging.getLogger(__name__)

#: What every process gets besides ``HOME``, ``TMPDIR`` and the variables its task declares.
BASE_ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
DEFAULT_MAX_OUTPUT = 1024 * 1024
_MIB = 1024 * 1024
_LAUNCHER = Path(__file__).with_name("_process_launcher.py")
_SHELL = "/bin/sh"
_READ_CHUNK = 65536
_STOP_GRACE_SECONDS = 2.0
# The launcher's own deadline backs up the service's timeout (a service that died or hangs).
_LAUNCHER_GRACE_SECONDS = 2.0
_SCRIPT_FILES = {"javascript": "script.js", "js": "script.js", "python": "script.py"}


@attrs.frozen(kw_only=True)
class ProcessLimits:
    """The bounds of the local processes of one service (``workflows.run.*``); a 0 limit is
    no limit.

    ``max_output``: bytes of stdout, and of stderr, per process. ``cpu_seconds``
    (``RLIMIT_CPU``), ``max_memory`` (``RLIMIT_DATA``: private writable memory, bytes),
    ``max_user_processes`` (``RLIMIT_NPROC``: processes and threads of the service's user,
    counted by the kernel across the user), ``max_open_files`` (``RLIMIT_NOFILE``) and
    ``max_file_size`` (``RLIMIT_FSIZE``, bytes) apply to each process and what it starts.
    ``concurrency``: processes running at once. ``python`` and ``node``: the interpreters of
    scripts, a path or a name on the service's ``PATH`` (``python`` empty: the service's own).
    """

    max_output: int = DEFAULT_MAX_OUTPUT
    cpu_seconds: int = 60
    max_memory: int = 512 * _MIB
    max_user_processes: int = 512
    max_open_files: int = 256
    max_file_size: int = 64 * _MIB
    concurrency: int = 8
    python: str = ""
    node: str = "node"

    @classmethod
    def from_settings(cls, run: RunTaskSettings) -> ProcessLimits:
        """The limits ``workflows.run`` configures."""
        return cls(
            max_output=run.max_output_size,
            cpu_seconds=math.ceil(run.cpu_time),
            max_memory=run.max_memory,
            max_user_processes=run.max_user_processes,
            max_open_files=run.max_open_files,
            max_file_size=run.max_file_size,
            concurrency=run.concurrency,
            python=run.python,
            node=run.node,
        )

    def rlimits(self) -> dict[str, int]:
        """The launcher's ``limits`` order."""
        return {
            "cpu": self.cpu_seconds,
            "data": self.max_memory,
            "processes": self.max_user_processes,
            "files": self.max_open_files,
            "file_size": self.max_file_size,
        }


def _error(error_type: str, detail: str) -> WorkflowError:
    return WorkflowError(Problem.standard(error_type, detail=detail))


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
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the process ended without reading all of its stdin
    finally:
        await stream.aclose()


async def _stop(process: trio.Process) -> None:
    """Ask the launcher to kill its tree (SIGTERM), then kill its whole process group; bounded
    and shielded, so a cancelled caller still leaves nothing running."""
    with trio.move_on_after(_STOP_GRACE_SECONDS, shield=True):
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()
    if process.returncode is None:
        # Not reaped yet, so the group id is still this launcher's.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with trio.move_on_after(_STOP_GRACE_SECONDS, shield=True):
            await process.wait()
        logger.warning("a process launcher ignored SIGTERM and was killed (pid %s)", process.pid)


def _nothing() -> None:
    return None


def _new_folder(request: ProcessRequest) -> str:
    try:
        return tempfile.mkdtemp(prefix="workflow-run-")
    except OSError as exc:
        raise _error(
            ErrorType.RUNTIME,
            f"the {request.kind} process could not get a folder in {tempfile.gettempdir()}: "
            f"{exc.strerror}; give the service a writable temporary folder (TMPDIR)",
        ) from None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@attrs.define(eq=False)
class LocalProcesses:
    """Runs ``run.shell``/``run.script`` processes in the sandbox (see the module docstring).

    Build it with `open_local_processes`, whose nursery owns the processes that are not
    awaited (without a nursery, every process is awaited). ``started`` counts the processes
    started, ``running()`` those running now.
    """

    limits: ProcessLimits
    _nursery: trio.Nursery | None
    _lifeline: int
    _slots: trio.Semaphore = attrs.field(init=False)
    _running: int = attrs.field(init=False, default=0)
    started: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._slots = trio.Semaphore(self.limits.concurrency)

    def running(self) -> int:
        """How many processes run now (awaited or not)."""
        return self._running

    async def run_process(self, request: ProcessRequest) -> ProcessResult:
        """Run ``request`` and return what it did, or, when it is not awaited, return (an empty
        result) once it started. Raises `WorkflowError`: configuration (unknown language,
        interpreter not found), runtime (no slot within the timeout, could not start, output
        over the cap, CPU time or file size limit), timeout."""
        if not request.await_completion:
            if self._nursery is None:
                raise RuntimeError("processes that are not awaited need open_local_processes")
            await self._nursery.start(self._run_detached, request)
            return ProcessResult(code=0)
        return await self._run(request)

    async def _run_detached(
        self, request: ProcessRequest, *, task_status: trio.TaskStatus[None]
    ) -> None:
        """`_run` for a process nobody awaits: what fails before it started goes to the caller
        of ``start``; after that, its end is logged."""
        started = False

        def on_started() -> None:
            nonlocal started
            started = True
            task_status.started()

        try:
            result = await self._run(request, on_started=on_started)
        except WorkflowError as error:
            if not started:
                raise
            logger.info(
                "a %s process that was not awaited failed: %s",
                request.kind,
                error.problem.detail,
                extra={"task_ref": request.key},
            )
            return
        except Exception:
            if not started:
                raise
            # Nobody awaits it: a bug here must not end the processes of the others.
            logger.exception(
                "a %s process that was not awaited failed",
                request.kind,
                extra={"task_ref": request.key},
            )
            return
        logger.info(
            "a %s process that was not awaited ended with exit code %s",
            request.kind,
            result.code,
            extra={"task_ref": request.key},
        )

    def _program(self, request: ProcessRequest) -> str:
        """The program that runs ``request``: the shell, or the script's interpreter."""
        if request.kind == "shell":
            return _SHELL
        language = (request.language or "").lower()
        if language not in _SCRIPT_FILES:
            raise _error(
                ErrorType.CONFIGURATION,
                f"script language {request.language!r} is not supported; use javascript (or "
                "js) or python",
            )
        if language == "python":
            interpreter, setting = self.limits.python or sys.executable, "workflows.run.python"
        else:
            interpreter, setting = self.limits.node, "workflows.run.node"
        program = shutil.which(interpreter)
        if program is None:
            raise _error(
                ErrorType.CONFIGURATION,
                f"the {language} interpreter {interpreter!r} was not found on the service's "
                f"PATH; install it, or set {setting} to its path",
            )
        return program

    @staticmethod
    def _argv(request: ProcessRequest, program: str, workdir: str) -> list[str]:
        """The process's argv; a script's code is written to a file in ``workdir`` first."""
        if request.kind == "shell":
            return [program, "-c", request.command, "sh", *request.arguments]
        script = Path(workdir) / _SCRIPT_FILES[(request.language or "").lower()]
        script.write_text(request.command, encoding="utf-8", errors="replace")
        return [program, str(script), *request.arguments]

    async def _slot(self, request: ProcessRequest) -> None:
        with trio.move_on_after(request.timeout):
            await self._slots.acquire()
            return
        raise _error(
            ErrorType.RUNTIME,
            f"all {self.limits.concurrency} process slots stayed busy for "
            f"{request.timeout:g}s, so the {request.kind} process did not start; retry "
            "later, run fewer processes at once or raise workflows.run.concurrency",
        )

    async def _run(
        self, request: ProcessRequest, *, on_started: Callable[[], None] = _nothing
    ) -> ProcessResult:
        program = self._program(request)
        await self._slot(request)
        self._running += 1
        workdir = ""
        try:
            # Off the event loop: a folder, and a script of up to workflows.maxDocumentSize.
            workdir = await trio.to_thread.run_sync(_new_folder, request)
            argv = await trio.to_thread.run_sync(self._argv, request, program, workdir)
            environment = {**BASE_ENVIRONMENT, "HOME": workdir, "TMPDIR": workdir}
            orders = {
                "argv": argv,
                "env": {**environment, **request.environment},
                "cwd": workdir,
                "limits": self.limits.rlimits(),
                "deadline": request.timeout + _LAUNCHER_GRACE_SECONDS,
            }
            process = await self._spawn(request, workdir, not request.await_completion)
            self.started += 1
            on_started()
            try:
                return await self._supervise(process, request, orders)
            finally:
                await _stop(process)
                with trio.move_on_after(_STOP_GRACE_SECONDS, shield=True):
                    for stream in (process.stdin, process.stdout, process.stderr):
                        if stream is not None:
                            await stream.aclose()
        finally:
            self._running -= 1
            self._slots.release()
            if workdir:
                with trio.move_on_after(_STOP_GRACE_SECONDS, shield=True):
                    await trio.to_thread.run_sync(
                        shutil.rmtree, workdir, True, abandon_on_cancel=True
                    )

    async def _spawn(self, request: ProcessRequest, workdir: str, detached: bool) -> trio.Process:
        output = subprocess.DEVNULL if detached else subprocess.PIPE
        try:
            return await trio.lowlevel.open_process(
                [sys.executable, "-I", "-S", str(_LAUNCHER), str(self._lifeline)],
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=output,
                env={},
                cwd=workdir,
                pass_fds=(self._lifeline,),
                start_new_session=True,
            )
        except OSError as exc:
            raise _error(
                ErrorType.RUNTIME, f"the {request.kind} process could not start: {exc}"
            ) from None

    async def _supervise(
        self, process: trio.Process, request: ProcessRequest, orders: dict[str, object]
    ) -> ProcessResult:
        """Feed, read and wait for ``process`` within the timeout; the result or the error."""
        encoded = json.dumps(orders).encode()
        data = (request.stdin or "").encode("utf-8", "replace")  # a lone surrogate: "?"
        stdin = struct.pack(">I", len(encoded)) + encoded + data
        stdout, stderr = bytearray(), bytearray()
        cap = self.limits.max_output
        assert process.stdin is not None  # asked for in _spawn
        too_large: str | None = None
        with trio.move_on_after(request.timeout) as scope:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_feed, process.stdin, stdin)
                    if process.stdout is not None and process.stderr is not None:
                        nursery.start_soon(_read_capped, process.stdout, "stdout", cap, stdout)
                        nursery.start_soon(_read_capped, process.stderr, "stderr", cap, stderr)
                    await process.wait()
            except* _OutputTooLarge as group:
                leaf = group.exceptions[0]
                too_large = leaf.stream if isinstance(leaf, _OutputTooLarge) else "output"
        if too_large is not None:
            raise _error(
                ErrorType.RUNTIME,
                f"the {request.kind} process wrote more than {cap:,} bytes to {too_large}; "
                "it was stopped. Write less, or raise workflows.run.maxOutputSize",
            )
        if scope.cancelled_caught:
            raise _error(
                ErrorType.TIMEOUT,
                f"the {request.kind} process did not finish within {request.timeout:g}s; it "
                "was stopped. Make it faster, or raise workflows.run.timeout",
            )
        return self._result(request, process.returncode, stdout, stderr)

    def _result(
        self,
        request: ProcessRequest,
        returncode: int | None,
        stdout: bytes | bytearray,
        stderr: bytes | bytearray,
    ) -> ProcessResult:
        code = returncode if returncode is not None else -signal.SIGKILL
        if code == -signal.SIGXCPU:
            raise _error(
                ErrorType.RUNTIME,
                f"the {request.kind} process used more than {self.limits.cpu_seconds}s of "
                "CPU time and was stopped; make it do less, or raise workflows.run.cpuTime",
            )
        if code == -signal.SIGXFSZ:
            raise _error(
                ErrorType.RUNTIME,
                f"the {request.kind} process wrote a file larger than "
                f"{self.limits.max_file_size:,} bytes and was stopped; write less, or raise "
                "workflows.run.maxFileSize",
            )
        return ProcessResult(
            code=128 - code if code < 0 else code,
            stdout=stdout.decode("utf-8", "replace"),
            stderr=stderr.decode("utf-8", "replace"),
            signal=_signal_name(-code) if code < 0 else None,
        )


@asynccontextmanager
async def open_local_processes(
    limits: ProcessLimits | None = None,
) -> AsyncIterator[LocalProcesses]:
    """`LocalProcesses` whose processes (awaited or not) are killed when the block exits; an
    error of the block propagates inside an ``ExceptionGroup`` (the block runs in the nursery
    of the processes that are not awaited).

    A pipe whose write end only this process holds (the lifeline) tells every launcher when
    the service is gone, even killed: they then kill their processes.
    """
    with _lifeline() as lifeline:
        async with trio.open_nursery() as nursery:
            try:
                yield LocalProcesses(
                    limits=limits or ProcessLimits(), nursery=nursery, lifeline=lifeline
                )
            finally:
                nursery.cancel_scope.cancel()


@contextmanager
def _lifeline() -> Iterator[int]:
    read_end, write_end = os.pipe()
    try:
        yield read_end
    finally:
        os.close(read_end)
        os.close(write_end)


async def run_local_process(
    request: ProcessRequest, *, limits: ProcessLimits | None = None
) -> ProcessResult:
    """Run ``request`` to its end (even when it is not awaited) within ``limits`` (default:
    `ProcessLimits`): a convenience for tools and tests; the service uses `LocalProcesses`."""
    with _lifeline() as lifeline:
        processes = LocalProcesses(
            limits=limits or ProcessLimits(), nursery=None, lifeline=lifeline
        )
        return await processes.run_process(attrs.evolve(request, await_completion=True))
