"""A helper program (a broker, an S3 server) run as a task of the test's Trio nursery, which can
be stopped and started again while the test goes on.

Invariants:

- Each run of the program is one ``trio.run_process`` task of the nursery handed in, inside its
  own cancel scope: the nursery owns the process, so when the nursery ends (the test passed,
  failed or was cancelled) the program is stopped with it; nothing outlives the test.
- Stopping delivers ``SIGTERM`` (or ``SIGKILL`` for a crash), waits at most ``STOP_GRACE``
  seconds, then kills: a stop is bounded, and runs shielded.
- Standard output and error of every run are appended to one log file; ``log_tail()`` is what a
  failed start shows.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import attrs
import trio

__all__ = ["STOP_GRACE", "ChildProcess"]

STOP_GRACE = 5.0  # seconds between the stop signal and SIGKILL


@attrs.define(eq=False)
class _Run:
    """One run of the program: the scope that stops it, the signal a stop sends, its end."""

    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    finished: trio.Event = attrs.Factory(trio.Event)
    stop_signal: signal.Signals = signal.SIGTERM
    process: trio.Process | None = None


@attrs.define(eq=False)
class ChildProcess:
    """``command`` run in ``nursery`` with ``env``, output appended to ``log_path``."""

    command: tuple[str, ...]
    env: Mapping[str, str]
    log_path: Path
    nursery: trio.Nursery
    _run: _Run | None = attrs.field(default=None, init=False)

    @property
    def running(self) -> bool:
        """Whether the last run was started and has not ended (stopped or exited)."""
        return self._run is not None and not self._run.finished.is_set()

    @property
    def returncode(self) -> int | None:
        """The exit status of the last run once it ended, else None."""
        if self._run is None or self._run.process is None:
            return None
        return self._run.process.returncode

    async def start(self) -> None:
        """Start a run (the previous one must have ended)."""
        if self.running:
            raise RuntimeError(f"{self.command[0]} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- starting: {' '.join(self.command)}\n".encode())
            log.flush()
            run = self._run = _Run()
            run.process = await self.nursery.start(self._execute, log, run)
        # The child has its own copy of the log's descriptor: ours is closed here.

    async def stop(self, *, kill: bool = False) -> None:
        """End the run (``kill``: SIGKILL at once, as a crash) and wait until it exited."""
        run = self._run
        if run is None or run.finished.is_set():
            return
        run.stop_signal = signal.SIGKILL if kill else signal.SIGTERM
        run.scope.cancel()
        with trio.CancelScope(shield=True):
            await run.finished.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log was written)"
        return "\n".join(text.splitlines()[-lines:])

    async def _execute(
        self,
        log: BinaryIO,
        run: _Run,
        *,
        task_status: trio.TaskStatus[trio.Process],
    ) -> None:
        async def deliver_cancel(process: trio.Process) -> None:
            process.send_signal(run.stop_signal)
            with trio.move_on_after(STOP_GRACE):
                await process.wait()
                return
            process.kill()

        try:
            with run.scope:
                await trio.run_process(
                    list(self.command),
                    check=False,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(self.env),
                    cwd=os.fspath(self.log_path.parent),
                    deliver_cancel=deliver_cancel,
                    task_status=task_status,
                )
        finally:
            run.finished.set()
