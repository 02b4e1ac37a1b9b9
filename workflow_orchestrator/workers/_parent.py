"""The parent of ``serve --workers N``: runs N service processes, each a replica of its own.

The parent runs no service, opens no database connection and binds no port. It re-executes
the same command line for each worker (``python -m workflow_orchestrator.cli serve ...``) with
the group's environment: the shared directory (``observability._worker_group``), the worker's
index and its replica id ``<cluster.replicaId or host name>-w<index>``, and
``PROMETHEUS_MULTIPROC_DIR``. The workers bind both ports with ``SO_REUSEPORT``.

- A worker that ends is restarted, after a back-off that doubles (from ``RESTART_DELAY`` to
  ``MAX_RESTART_DELAY``) while it keeps ending within ``STABLE_AFTER`` seconds of its start.
- While the group starts (until every worker has reported its status once), a worker that
  ends with the configuration-error exit code (2) before it reported stops the group with that
  code: a configuration is not fixed by restarting; one that fails ``MAX_START_FAILURES`` times
  in a row before reporting stops it with 1. Once the group was up, such a worker is only
  logged and restarted (the back-off grows to ``MAX_RESTART_DELAY``): the others keep serving.
- Each worker has its own process group (a terminal's Ctrl-C reaches the parent alone) and
  stops by itself when the parent is gone (SIGKILLed).
- SIGTERM and SIGINT are forwarded to every worker, which drain as a single process does; one
  still running ``server.shutdownGracePeriod`` + ``STOP_MARGIN`` seconds later is SIGKILLed. A
  second SIGTERM or SIGINT is forwarded too (the workers stop at once).
- SIGHUP restarts the workers one at a time (each drains, its successor is started and becomes
  ready before the next one is stopped): the workers read the configuration again. A successor
  that does not become ready stops the round, so a broken configuration takes one worker away,
  not all of them.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import attrs
import trio
from prometheus_client.multiprocess import mark_process_dead

from workflow_orchestrator.config import LoadedConfig
from workflow_orchestrator.observability import (
    GROUP_ENV,
    INDEX_ENV,
    REPLICA_ENV,
    GroupMember,
    read_status,
    write_members,
)

__all__ = [
    "EXIT_CONFIGURATION",
    "MAX_START_FAILURES",
    "WorkerParent",
    "worker_replica_id",
]

logger = logging.getLogger("workflow_orchestrator.workers")

EXIT_CONFIGURATION = 2
MAX_START_FAILURES = 5
RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
#: A worker that ran this long (seconds) before it ended is restarted after the first delay.
STABLE_AFTER = 60.0
#: Seconds past the grace period (the workers' own stop bound is the grace period + 15s).
STOP_MARGIN = 20.0
_POLL = 0.2


def worker_replica_id(base: str, index: int) -> str:
    """The replica id of worker ``index``: ``<base>-w<index>``."""
    return f"{base}-w{index}"


def _ending(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


@attrs.define(eq=False)
class _Worker:
    index: int
    replica: str
    process: trio.Process | None = None
    restarts: int = 0
    #: Stopped on purpose (SIGHUP): start the next at once, not as a failure.
    replacing: bool = False


@attrs.define(eq=False)
class WorkerParent:
    """Runs ``count`` workers of ``serve`` with ``arguments`` until a signal stops them."""

    loaded: LoadedConfig
    arguments: Sequence[str]
    count: int
    program: Sequence[str] = (sys.executable, "-m", "workflow_orchestrator.cli")
    environ: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ))
    _directory: Path = attrs.field(init=False)
    _workers: list[_Worker] = attrs.field(init=False)
    _members: dict[int, GroupMember] = attrs.field(factory=dict, init=False)
    _stopping: trio.Event = attrs.field(factory=trio.Event, init=False)
    _exit_code: int = attrs.field(default=0, init=False)
    _nursery: trio.Nursery | None = attrs.field(default=None, init=False)
    #: Every worker has reported once: from then on no failure of a worker stops the group.
    _up: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        base = self.loaded.settings.cluster.replica_id or socket.gethostname()
        self._workers = [
            _Worker(index=k, replica=worker_replica_id(base, k)) for k in range(self.count)
        ]

    async def run(self) -> int:
        """Run the group until it is stopped; returns the exit code of the command."""
        # mkdtemp: mode 0700, readable by this account only.
        self._directory = Path(tempfile.mkdtemp(prefix="workflow-orchestrator-workers-"))
        try:
            for name in ("status", "live", "metrics"):
                (self._directory / name).mkdir(mode=0o700)
            write_members(self._directory, {})
            logger.info(
                "starting %d workers (%s)",
                self.count,
                ", ".join(worker.replica for worker in self._workers),
            )
            await self._run_group()
        finally:
            shutil.rmtree(self._directory, ignore_errors=True)
        logger.info("all workers stopped")
        return self._exit_code

    async def _run_group(self) -> None:
        signals_watched = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        with trio.open_signal_receiver(*signals_watched) as signals:
            async with trio.open_nursery() as outer:
                self._nursery = outer
                outer.start_soon(self._watch_signals, signals)
                outer.start_soon(self._watch_startup)
                async with trio.open_nursery() as workers:
                    for worker in self._workers:
                        workers.start_soon(self._keep_running, worker)
                outer.cancel_scope.cancel()

    async def _watch_signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if signum == signal.SIGHUP:
                if not self._stopping.is_set():
                    logger.info("received %s: restarting the workers one at a time", name)
                    self._start_soon(self._restart_one_by_one)
                continue
            logger.info("received %s: stopping the workers", name)
            self._stop(signal.Signals(signum))

    async def _watch_startup(self) -> None:
        """Mark the group up once every worker's current process has reported."""
        while not self._stopping.is_set():
            current = [(w.index, w.process.pid) for w in self._workers if w.process is not None]
            statuses = [read_status(self._directory, index) for index, _ in current]
            reported = [
                s for s, (_, pid) in zip(statuses, current, strict=True) if s and s.pid == pid
            ]
            if len(reported) == self.count:
                self._up = True
                logger.info("all %d workers are up", self.count)
                return
            await trio.sleep(_POLL)

    def _start_soon(self, task: Callable[[], Awaitable[None]]) -> None:
        if self._nursery is None:  # set before any worker starts: a bug
            raise RuntimeError("the group is not running")
        self._nursery.start_soon(task)

    def _stop(self, sig: signal.Signals, *, code: int | None = None) -> None:
        """Forward ``sig`` to every worker; the first time, start the SIGKILL deadline (and
        keep ``code`` as the group's exit code)."""
        first = not self._stopping.is_set()
        self._stopping.set()
        self._signal_all(sig)
        if first:
            if code is not None:
                self._exit_code = code
            self._start_soon(self._kill_stragglers)

    def _signal_all(self, sig: signal.Signals) -> None:
        for worker in self._workers:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.send_signal(sig)

    async def _kill_stragglers(self) -> None:
        grace = self.loaded.settings.server.shutdown_grace_period
        await trio.sleep(grace + STOP_MARGIN)
        for worker in self._workers:
            if worker.process is not None and worker.process.returncode is None:
                logger.warning(
                    "worker %s (pid %d) still running %.0fs after the stop: killing it",
                    worker.replica,
                    worker.process.pid,
                    grace + STOP_MARGIN,
                )
                worker.process.kill()

    def _environment(self, worker: _Worker) -> dict[str, str]:
        return {
            **self.environ,
            GROUP_ENV: str(self._directory),
            INDEX_ENV: str(worker.index),
            REPLICA_ENV: worker.replica,
            "PROMETHEUS_MULTIPROC_DIR": str(self._directory / "metrics"),
        }

    async def _keep_running(self, worker: _Worker) -> None:
        """Start ``worker``, and again each time it ends, until the group stops."""
        failures = 0  # consecutive ends before the worker reported its status
        quick = 0  # consecutive ends within STABLE_AFTER of the start
        while not self._stopping.is_set():
            started = trio.current_time()
            # Its own process group: a terminal's Ctrl-C reaches the parent only, which
            # forwards it once (a second one would stop the worker without draining).
            process = await trio.lowlevel.open_process(
                [*self.program, *self.arguments], env=self._environment(worker), process_group=0
            )
            worker.process = process
            if self._stopping.is_set():  # the stop came while it was being started
                process.send_signal(signal.SIGTERM)
            self._members[worker.index] = GroupMember(
                index=worker.index,
                pid=process.pid,
                replica=worker.replica,
                restarts=worker.restarts,
            )
            write_members(self._directory, self._members)
            logger.info("worker %s started (pid %d)", worker.replica, process.pid)
            # Not cancellable: the group's stop is signals to the workers, then their exit.
            with trio.CancelScope(shield=True):
                code = await process.wait()
            reported = self._forget(worker, process.pid)
            if self._stopping.is_set():
                logger.info("worker %s stopped (%s)", worker.replica, _ending(code))
                return
            if worker.replacing:
                worker.replacing = False
                failures = quick = 0
                logger.info("worker %s stopped for its restart (%s)", worker.replica, _ending(code))
                continue
            if not reported and code == EXIT_CONFIGURATION and not self._up:
                logger.error(
                    "worker %s ended with a configuration error before it started; stopping "
                    "the group (fix the configuration and start again)",
                    worker.replica,
                )
                self._stop(signal.SIGTERM, code=EXIT_CONFIGURATION)
                return
            failures = 0 if reported else failures + 1
            if failures >= MAX_START_FAILURES and not self._up:
                logger.error(
                    "worker %s failed to start %d times in a row (last: %s); stopping the group",
                    worker.replica,
                    failures,
                    _ending(code),
                )
                self._stop(signal.SIGTERM, code=1)
                return
            quick = quick + 1 if trio.current_time() - started < STABLE_AFTER else 0
            delay = min(RESTART_DELAY * 2 ** max(quick - 1, 0), MAX_RESTART_DELAY)
            worker.restarts += 1
            logger.warning(
                "worker %s (pid %d) ended with %s%s; restarting it in %.1fs (restart %d)",
                worker.replica,
                process.pid,
                _ending(code),
                "" if reported else " before it started",
                delay,
                worker.restarts,
            )
            with trio.move_on_after(delay):
                await self._stopping.wait()

    def _forget(self, worker: _Worker, pid: int) -> bool:
        """Drop the ended process from the group's files; True when it had reported."""
        status = read_status(self._directory, worker.index)
        reported = status is not None and status.pid == pid
        self._members.pop(worker.index, None)
        write_members(self._directory, self._members)
        for leftover in (
            self._directory / "status" / f"{worker.index}.json",
            self._directory / "live" / f"{worker.index}.prom",
        ):
            leftover.unlink(missing_ok=True)
        mark_process_dead(pid, str(self._directory / "metrics"))  # type: ignore[no-untyped-call]
        return reported

    async def _restart_one_by_one(self) -> None:
        grace = self.loaded.settings.server.shutdown_grace_period
        for worker in self._workers:
            process = worker.process
            if self._stopping.is_set():
                return
            if process is None or process.returncode is not None:
                continue
            worker.replacing = True
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(grace + STOP_MARGIN + 60.0) as waiting:
                while not self._stopping.is_set():
                    current = worker.process
                    status = read_status(self._directory, worker.index)
                    if (
                        current is not process
                        and current is not None
                        and status is not None
                        and status.pid == current.pid
                        and status.ready
                    ):
                        break
                    await trio.sleep(_POLL)
            if waiting.cancelled_caught:
                logger.error(
                    "worker %s did not become ready again after its restart; the other workers "
                    "are left as they are (see its log, fix it and send SIGHUP again)",
                    worker.replica,
                )
                return
        logger.info("the workers were restarted")
