"""The expression sandbox: a pool of killable jq worker processes (the DSL's `ExpressionSandbox`).

The expression engine sends here the programs it cannot prove cheap (and cheap ones over a big
input). Each worker serves one evaluation at a time; up to ``limits.max_workers`` run
concurrently and further evaluations wait (without blocking the event loop), queued per owner
(a definition) and served in turn between owners (``FairSlots``): a definition hammering slow
expressions gets its share of the workers, and the others keep their throughput. Each owner
has at most ``limits.max_queued_per_owner`` evaluations admitted; more wait for room before
their input is encoded (backpressure, not memory growth). Inputs and outputs larger than
``_OFF_LOOP_BYTES`` are encoded and decoded in a worker thread. A worker that blows its budget dies
(the kernel ends it, see ``_sandbox_worker``) and is replaced lazily by the next evaluation.
A wall-clock deadline of ``3 * cpu_seconds + 1`` seconds backs up the CPU budget (a starved
worker); the worker enforces it itself with a real-time alarm, so a test's mock clock (which
jumps whenever every task waits, also on the worker's pipe) cannot fire it early. A cancelled
caller kills its worker, since the reply would be out of step. The pool's owner closes it
(``open_sandbox`` / ``open_expression_engine``); closing stops idle workers at once and busy
ones when their evaluation ends.
"""

from __future__ import annotations

import json
import logging
import signal
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from workflow_orchestrator.adapters._fair_slots import FairSlots
from workflow_orchestrator.dsl.expressions import (
    CompiledExpression,
    ExpressionEngine,
    ExpressionError,
    ExpressionLimits,
    jq_detail,
    json_size_exceeds,
)

logger = logging.getLogger(__name__)

_WORKER_SCRIPT = Path(__file__).with_name("_sandbox_worker.py")
_STOP_GRACE_SECONDS = 1.0
_DEFAULT_LIMITS = ExpressionLimits()
_OFF_LOOP_BYTES = 64 * 1024


class _WorkerDied(Exception):
    pass


@attrs.define(eq=False)
class _Worker:
    process: trio.Process
    buffer: bytearray = attrs.field(factory=bytearray)

    async def request(self, program: str, payload: bytes) -> tuple[bytes, bytes]:
        encoded = program.encode()
        body = struct.pack(">I", len(encoded)) + encoded + payload
        assert self.process.stdin is not None
        try:
            await self.process.stdin.send_all(struct.pack(">I", len(body)) + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise _WorkerDied from error
        (size,) = struct.unpack(">I", await self._read_exactly(4))
        reply = await self._read_exactly(size)
        return reply[:1], reply[1:]

    async def _read_exactly(self, size: int) -> bytes:
        assert self.process.stdout is not None
        while len(self.buffer) < size:
            try:
                chunk = await self.process.stdout.receive_some(max(65536, size))
            except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                raise _WorkerDied from error
            if not chunk:
                raise _WorkerDied
            self.buffer += chunk
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def kill(self) -> int | None:
        """Kill the process and reap it within a bounded, shielded scope."""
        with trio.move_on_after(_STOP_GRACE_SECONDS, shield=True):
            self.process.kill()
            return await self.process.wait()
        return None

    async def stop(self) -> None:
        """Ask the worker to exit (close its stdin), then kill it after a grace period."""
        with trio.move_on_after(_STOP_GRACE_SECONDS, shield=True):
            assert self.process.stdin is not None
            await self.process.stdin.aclose()
            await self.process.wait()
        if self.process.returncode is None:
            await self.kill()


class SandboxPool:
    """Worker processes for evaluations that are not proven cheap; an ``ExpressionSandbox``.

    Workers start on the first evaluation that needs one, at most ``limits.max_workers`` of
    them; ``started`` and ``killed`` count them. Evaluations wait for a worker in their
    owner's turn (see the module docstring). Prefer ``open_sandbox``, which closes the pool.
    """

    def __init__(self, limits: ExpressionLimits = _DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._slots = FairSlots(limits.max_workers, limits.max_queued_per_owner)
        self._idle: list[_Worker] = []
        self._closed = False
        self.started = 0
        self.killed = 0

    async def _spawn(self) -> _Worker:
        command = [
            sys.executable,
            "-s",  # no user site-packages; PYTHONPATH is honoured, as in the service itself
            "-P",  # not this folder on sys.path: a module here must not shadow a standard one
            str(_WORKER_SCRIPT),
            repr(self._limits.cpu_seconds),
            str(self._limits.max_output_bytes),
            str(self._limits.max_memory_bytes),
        ]
        process = await trio.lowlevel.open_process(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.started += 1
        return _Worker(process=process)

    def waiting(self, owner: str) -> int:
        """How many evaluations of ``owner`` wait for a worker."""
        return self._slots.waiting(owner)

    async def evaluate(
        self, compiled: CompiledExpression, value: Any, *, owner: str = ""
    ) -> list[Any]:
        """Run ``compiled`` over ``value`` in a worker, in ``owner``'s turn; return jq's
        outputs."""
        if self.is_closed():
            raise RuntimeError("the expression sandbox is closed; open a new one")
        async with self._slots.admitted(owner):
            if json_size_exceeds(value, _OFF_LOOP_BYTES):
                payload = await trio.to_thread.run_sync(_encode, compiled, value)
            else:
                payload = _encode(compiled, value)
            async with self._slots.slot(owner):
                replies, returncode = await self._run(compiled, payload)
        if not replies:
            if returncode in (None, -signal.SIGALRM):
                raise ExpressionError(
                    compiled.source,
                    f"took longer than {self._limits.cpu_seconds * 3 + 1:g} s; "
                    "simplify the expression or raise workflows.expressions.cpuBudget",
                )
            raise self._death(compiled, returncode)
        status, body = replies[0]
        if len(body) > _OFF_LOOP_BYTES:
            return await trio.to_thread.run_sync(self._decode, compiled, status, body)
        return self._decode(compiled, status, body)

    async def _run(
        self, compiled: CompiledExpression, payload: bytes
    ) -> tuple[list[tuple[bytes, bytes]], int | None]:
        """One request to a worker (the caller holds a slot): its reply, or none and the exit
        status of the worker that died or was killed."""
        worker = self._idle.pop() if self._idle else await self._spawn()
        replies: list[tuple[bytes, bytes]] = []  # a list, so mypy sees the finally clause
        returncode: int | None = None
        try:
            replies.append(await worker.request(compiled.wrapped, payload))
        except _WorkerDied:
            returncode = await worker.kill()
        finally:
            if not replies:
                self.killed += 1
                await worker.kill()
            elif self.is_closed():
                await worker.stop()
            else:
                self._idle.append(worker)
        return replies, returncode

    def _death(self, compiled: CompiledExpression, returncode: int | None) -> ExpressionError:
        if returncode in (-signal.SIGPROF, -signal.SIGXCPU):
            detail = (
                f"used more than {self._limits.cpu_seconds:g} s of CPU time; "
                "simplify the expression or raise workflows.expressions.cpuBudget"
            )
        elif returncode in (-signal.SIGABRT, -signal.SIGSEGV, -signal.SIGKILL):
            detail = (
                f"needed more than {self._limits.max_memory_bytes} bytes of memory; "
                "simplify the expression, reduce the data it builds or raise "
                "workflows.expressions.maxMemory"
            )
        else:
            detail = f"the expression worker stopped unexpectedly (exit status {returncode})"
        logger.info("expression sandbox worker ended: %s", detail)
        return ExpressionError(compiled.source, detail)

    def _decode(self, compiled: CompiledExpression, status: bytes, body: bytes) -> list[Any]:
        if status == b"o":
            text = body.decode()
            outputs: list[Any] = json.loads(f"[{text.replace(chr(10), ',')}]") if text else []
            return outputs
        if status == b"e":
            raise ExpressionError(compiled.source, jq_detail(body.decode()))
        if status == b"s":
            raise ExpressionError(
                compiled.source,
                f"produced {body.decode()} bytes of output, more than the limit of "
                f"{self._limits.max_output_bytes}; make the result smaller or raise "
                "workflows.expressions.maxOutputSize",
            )
        return self._raise_memory(compiled)

    def _raise_memory(self, compiled: CompiledExpression) -> list[Any]:
        raise ExpressionError(
            compiled.source,
            f"needed more than {self._limits.max_memory_bytes} bytes of memory; "
            "simplify the expression, reduce the data it builds or raise "
            "workflows.expressions.maxMemory",
        )

    def is_closed(self) -> bool:
        """Whether ``aclose`` was called."""
        return self._closed

    async def aclose(self) -> None:
        """Stop idle workers; busy ones are stopped when their evaluation ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for worker in idle:
            await worker.stop()


def _encode(compiled: CompiledExpression, value: Any) -> bytes:
    try:
        return json.dumps(value, allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError) as error:
        raise ExpressionError(
            compiled.source, f"the data is not JSON ({error}); pass JSON values only"
        ) from None


@asynccontextmanager
async def open_sandbox(limits: ExpressionLimits = _DEFAULT_LIMITS) -> AsyncIterator[SandboxPool]:
    """A ``SandboxPool`` whose worker processes are stopped when the block exits."""
    pool = SandboxPool(limits)
    try:
        yield pool
    finally:
        await pool.aclose()


@asynccontextmanager
async def open_expression_engine(
    limits: ExpressionLimits = _DEFAULT_LIMITS,
) -> AsyncIterator[ExpressionEngine]:
    """An ``ExpressionEngine`` with its own ``SandboxPool``, stopped when the block exits.

    The engine compiles without starting anything; the first sandbox-tier evaluation starts a
    worker process.
    """
    async with open_sandbox(limits) as sandbox:
        yield ExpressionEngine(
            sandbox=sandbox, max_inline_input_bytes=limits.max_inline_input_bytes
        )
