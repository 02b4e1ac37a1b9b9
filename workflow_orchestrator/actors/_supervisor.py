"""``Supervisor``: OTP-style supervision of actors, services and nested supervisors.

A supervisor is a Trio task (``run``) owning one nursery in which all its children's tasks
live: actors' message loops, services, nested supervisors, restart timers and the
passivation sweeper. Children report exits synchronously (``child_exited``); the
supervisor's own task handles the reports one at a time in its control loop, so restart
decisions never race each other.

What starting, stopping and cleaning up a child means is the business of its record
(``ChildRecord.start``/``stop``/``terminate``, one implementation per kind); the supervisor
only decides when, in which order and whether to restart, and never looks at a child's kind.

Invariants:

- ``_children`` is in start order; stopping goes in reverse order.
- Every record's ``generation`` changes on each (re)start and on each stop we initiate; an
  exit report whose generation differs is stale and ignored.
- A supervisor stops in stages: children in reverse order, each given its
  ``shutdown_timeout`` to finish and then cancelled; only then is its nursery cancelled.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs
import trio

from workflow_orchestrator.actors._children import new_child
from workflow_orchestrator.actors._errors import (
    ActorNotFound,
    ChildStartFailed,
    DuplicateChild,
    RestartIntensityExceeded,
    SupervisorStopped,
)
from workflow_orchestrator.actors._lifecycle import (
    FailureInfo,
    LifecycleState,
    StopKind,
    StopReason,
)
from workflow_orchestrator.actors._metrics import ACTOR_RESTARTS
from workflow_orchestrator.actors._passivation import PassivationSweeper
from workflow_orchestrator.actors._snapshot import (
    ChildSnapshot,
    snapshot_of,
    snapshot_of_supervisor,
)
from workflow_orchestrator.actors._spec import (
    ActorSpec,
    ChildSpec,
    Restart,
    RestartStrategy,
    ServiceSpec,
    SupervisorSpec,
)

if TYPE_CHECKING:
    from workflow_orchestrator.actors._cell import ActorCell
    from workflow_orchestrator.actors._record import ChildRecord
    from workflow_orchestrator.actors._ref import ActorRef
    from workflow_orchestrator.actors._system import ActorSystem

logger = logging.getLogger(__name__)

M = TypeVar("M")

_SHUTDOWN = StopReason(kind=StopKind.SHUTDOWN)
_NORMAL = StopReason(kind=StopKind.NORMAL)
_RESTART = StopReason(kind=StopKind.RESTART)


def _exit_reason(error: Exception | None) -> StopReason:
    if error is None:
        return _NORMAL
    return StopReason(kind=StopKind.FAILURE, error=error)


@attrs.define(eq=False)
class Supervisor:
    """A running supervisor. Created by the actor system or by a parent supervisor.

    Use ``start_child`` to add children at run time (dynamic children, as OTP's
    ``simple_one_for_one``), ``stop_child`` to stop and remove one, ``statistics`` for a
    snapshot of its subtree.
    """

    spec: SupervisorSpec
    path: str
    system: ActorSystem
    rng: random.Random
    state: LifecycleState = LifecycleState.STARTING
    started_at: float = attrs.field(factory=trio.current_time)
    _children: dict[str, ChildRecord] = attrs.field(factory=dict)
    _nursery: trio.Nursery | None = None
    _events: deque[tuple[ChildRecord, int, Exception | None]] = attrs.field(factory=deque)
    _wakeup: trio.Event = attrs.field(factory=trio.Event)
    _stop_requested: bool = False
    _done: trio.Event = attrs.field(factory=trio.Event)
    _restart_times: deque[float] = attrs.field(factory=deque)
    _backoff_scope: trio.CancelScope | None = None
    _sweeper: PassivationSweeper | None = None

    # -- public API ---------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Start the initial children in order, signal readiness, supervise until stopped.

        Raises ``ChildStartFailed`` (before readiness) if an initial child fails to start,
        after stopping the ones already started, and ``RestartIntensityExceeded`` when it
        gives up; both after its children have stopped.
        """
        failure: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    for spec in self.spec.children:
                        await self.start_child(spec)
                except ChildStartFailed as exc:
                    self._stop_requested = True
                    await self._stop_all(_SHUTDOWN)
                    failure = exc
                else:
                    self.state = LifecycleState.RUNNING
                    task_status.started(self)
                    try:
                        await self._control_loop()
                    except RestartIntensityExceeded as exc:
                        failure = exc
                    except BaseException:
                        self._abandon_all()
                        raise
                nursery.cancel_scope.cancel()
        finally:
            self.state = LifecycleState.STOPPED
            self._nursery = None
            self._done.set()
        if failure is not None:
            raise failure

    def request_stop(self) -> None:
        """Ask the supervisor to stop its children (reverse order) and return from ``run``."""
        self._stop_requested = True
        if self._backoff_scope is not None:
            self._backoff_scope.cancel()
        self._wakeup.set()

    async def wait_stopped(self) -> None:
        """Wait until ``run`` has returned or raised."""
        await self._done.wait()

    @overload
    async def start_child(self, spec: ActorSpec[M]) -> ActorRef[M]: ...
    @overload
    async def start_child(self, spec: SupervisorSpec) -> Supervisor: ...
    @overload
    async def start_child(self, spec: ServiceSpec) -> Any: ...
    @overload
    async def start_child(self, spec: ChildSpec) -> Any: ...

    async def start_child(self, spec: ChildSpec) -> Any:
        """Start a child and return, once it is ready, its handle.

        An ``ActorRef`` for an ``ActorSpec`` (after ``on_start`` returned), the nested
        ``Supervisor`` for a ``SupervisorSpec``, the value given to ``task_status.started``
        for a ``ServiceSpec``. Raises ``ChildStartFailed`` (cause chained) when it fails to
        start, ``DuplicateChild`` if the name is taken and ``SupervisorStopped`` when this
        supervisor is not running.
        """
        if self._nursery is None or self._stop_requested:
            raise SupervisorStopped(self.path)
        if spec.name in self._children:
            raise DuplicateChild(self.path, spec.name)
        record = new_child(self, spec)
        self._children[spec.name] = record
        if self.system.tracked is not None:
            self.system.tracked.append(record)
        try:
            return await record.start()
        except BaseException as exc:
            if self._children.get(spec.name) is record:
                del self._children[spec.name]
            record.mark_stopped(StopReason(kind=StopKind.FAILURE, error=exc))
            if isinstance(exc, Exception):
                raise ChildStartFailed(record.path, exc) from exc
            raise

    async def get_or_start_child(self, spec: ActorSpec[M]) -> ActorRef[M]:
        """The actor named ``spec.name`` if this supervisor has it, else start it from
        ``spec`` (virtual-actor style, e.g. an instance registry re-creating an instance
        actor on its next event). Raises as ``start_child`` does.
        """
        # A child of another kind under that name makes start_child raise DuplicateChild.
        while (record := self._children.get(spec.name)) is not None and (
            ref := record.ref()
        ) is not None:
            if record.state is not LifecycleState.STOPPING:
                await trio.lowlevel.checkpoint()
                return ref
            await ref.wait_stopped()  # then start a fresh one
        return await self.start_child(spec)

    async def stop_child(self, name: str) -> None:
        """Stop the child ``name`` gracefully and remove it, whatever its restart type.

        Raises ``ActorNotFound`` if there is no such child. Stopping a child that is already
        stopping waits for that stop to finish.
        """
        record = self._children.get(name)
        if record is None:
            raise ActorNotFound(f"{self.path.rstrip('/')}/{name}", list(self._children))
        await self.stop_record(record)

    async def stop_record(self, record: ChildRecord) -> None:
        """``stop_child`` for a record this supervisor may have had: returns at once if it
        has stopped for good, raises ``ActorNotFound`` if it is not a child here."""
        if self._children.get(record.name) is not record:
            if record.stop_reason is not None:
                await trio.lowlevel.checkpoint()
                return
            raise ActorNotFound(record.path, list(self._children))
        if record.state is LifecycleState.STOPPING:
            done = trio.Event()
            record.add_watcher(lambda _reason: done.set())
            await done.wait()
            return
        await record.stop(_NORMAL)
        self._finish(record, _NORMAL)

    def child(self, name: str) -> ChildRecord | None:
        """The record of the child ``name``, or None."""
        return self._children.get(name)

    def child_records(self) -> list[ChildRecord]:
        """The children in start order."""
        return list(self._children.values())

    def statistics(
        self, *, depth: int | None = None, offset: int = 0, limit: int | None = None
    ) -> ChildSnapshot:
        """A frozen snapshot of this supervisor's subtree (see ``ChildSnapshot``)."""
        if self.system.guardian is self:
            return snapshot_of_supervisor(self, depth=depth, offset=offset, limit=limit)
        parent_path, _, name = self.path.rpartition("/")
        parent = self.system.find_supervisor(parent_path or "/")
        record = parent.child(name) if parent is not None else None
        if record is None:
            return snapshot_of_supervisor(self, depth=depth, offset=offset, limit=limit)
        return snapshot_of(record, depth=depth, offset=offset, limit=limit)

    def make_nested(self, spec: SupervisorSpec, path: str) -> Supervisor:
        """A new supervisor (not yet running) for a nested child at ``path``; it shares
        this supervisor's system and backoff random generator."""
        return Supervisor(spec=spec, path=path, system=self.system, rng=self.rng)

    # -- called by children (the ``Parent`` protocol, and services' task start) ------------

    def spawn_task(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Run ``fn(*args)`` as a task owned by this supervisor's nursery."""
        if self._nursery is None:
            return  # shutting down; the record is being abandoned
        self._nursery.start_soon(fn, *args)

    async def start_task(self, fn: Callable[..., Awaitable[object]], *args: Any) -> Any:
        """``nursery.start(fn, *args)`` in this supervisor's nursery: wait for readiness."""
        assert self._nursery is not None
        return await self._nursery.start(fn, *args)

    def child_exited(self, record: ChildRecord, generation: int, error: Exception | None) -> None:
        """Report that ``record``'s incarnation ``generation`` ended (``error`` None: normally)."""
        self._events.append((record, generation, error))
        self._wakeup.set()

    def note_idle(self, cell: ActorCell[Any]) -> None:
        """Schedule a passivation check for an actor that just went idle."""
        if self._sweeper is None:
            self._sweeper = PassivationSweeper(self.spawn_task)
            self.spawn_task(self._sweeper.run)
        self._sweeper.note_idle(cell)

    # -- control loop ---------------------------------------------------------------------

    async def _control_loop(self) -> None:
        while True:
            while self._events and not self._stop_requested:
                record, generation, error = self._events.popleft()
                await self._handle_exit(record, generation, error)
            if self._stop_requested:
                self.state = LifecycleState.STOPPING
                await self._stop_all(_SHUTDOWN)
                return
            self._wakeup = trio.Event()
            await self._wakeup.wait()

    async def _handle_exit(
        self, record: ChildRecord, generation: int, error: Exception | None
    ) -> None:
        if self._children.get(record.name) is not record or record.generation != generation:
            return
        if error is not None:
            record.last_failure = FailureInfo(
                type=type(error).__name__, message=str(error), time=time.time()
            )
            logger.error(
                "child %s crashed: %s: %s",
                record.path,
                type(error).__name__,
                error,
                exc_info=error,
                extra={"actor_path": record.path, "supervisor_path": self.path},
            )
        restart = record.spec.restart
        if not (
            restart is Restart.PERMANENT or (restart is Restart.TRANSIENT and error is not None)
        ):
            reason = _exit_reason(error)
            if self.spec.strategy is RestartStrategy.ONE_FOR_ONE:
                # Independent children: a slow on_stop must not hold up the others' exits.
                record.state = LifecycleState.STOPPING
                self.spawn_task(self._stop_and_finish, record, reason)
            else:
                await self._stop_and_finish(record, reason)
            return
        if self._intensity_exceeded():
            await self._give_up(record, error)
        if self.spec.strategy is RestartStrategy.ONE_FOR_ONE:
            record.state = LifecycleState.RESTARTING
            self.spawn_task(self._restart_one, record, error)
        else:
            await self._restart_group(record, error)

    async def _stop_and_finish(self, record: ChildRecord, reason: StopReason) -> None:
        await record.stop(reason)
        self._finish(record, reason)

    def _intensity_exceeded(self) -> bool:
        now = trio.current_time()
        times = self._restart_times
        times.append(now)
        while times and times[0] < now - self.spec.within_seconds:
            times.popleft()
        return len(times) > self.spec.max_restarts

    async def _give_up(self, record: ChildRecord, error: Exception | None) -> None:
        self._stop_requested = True
        self.state = LifecycleState.STOPPING
        reason = _exit_reason(error)
        await record.stop(reason)
        self._finish(record, reason)
        await self._stop_all(_SHUTDOWN)
        logger.error(
            "supervisor %s gave up after more than %d restarts within %gs",
            self.path,
            self.spec.max_restarts,
            self.spec.within_seconds,
            extra={"supervisor_path": self.path, "actor_path": record.path},
        )
        exc = RestartIntensityExceeded(
            self.path, record.path, self.spec.max_restarts, self.spec.within_seconds
        )
        raise exc from error

    def _next_delay(self, record: ChildRecord) -> float:
        now = trio.current_time()
        backoff = self.spec.backoff
        if now - record.last_failure_at > backoff.reset_after:
            record.attempts = 0
        delay = backoff.delay(record.attempts, self.rng)
        record.attempts += 1
        record.last_failure_at = now
        return delay

    def _count_restart(self, record: ChildRecord) -> None:
        record.restart_count += 1
        ACTOR_RESTARTS.labels(self.path, self.spec.strategy.value).inc()

    async def _restart_one(self, record: ChildRecord, error: Exception | None) -> None:
        generation = record.generation
        await record.terminate(_exit_reason(error))
        delay = self._next_delay(record)
        if delay > 0:
            await trio.sleep(delay)
        if (
            self._stop_requested
            or record.generation != generation
            or self._children.get(record.name) is not record
        ):
            return  # stopped (or restarted by someone else) meanwhile
        self._count_restart(record)
        try:
            await record.start()
        except Exception as exc:
            self.child_exited(record, record.generation, exc)

    async def _restart_group(self, failed: ChildRecord, error: Exception | None) -> None:
        records = list(self._children.values())
        if self.spec.strategy is RestartStrategy.REST_FOR_ONE:
            records = records[records.index(failed) :]
        failed.state = LifecycleState.RESTARTING
        for record in reversed(records):
            if record is failed:
                continue
            await record.stop(_RESTART)
            if record.spec.restart is Restart.TEMPORARY:
                self._finish(record, _SHUTDOWN)
            else:
                record.state = LifecycleState.RESTARTING
        await failed.terminate(_exit_reason(error))
        delay = self._next_delay(failed)
        if delay > 0:
            with trio.CancelScope() as self._backoff_scope:
                await trio.sleep(delay)
            self._backoff_scope = None
            if self._stop_requested:
                return
        for record in records:
            if self._children.get(record.name) is not record:
                continue
            self._count_restart(record)
            try:
                await record.start()
            except Exception as exc:
                self.child_exited(record, record.generation, exc)

    # -- removing children ------------------------------------------------

    def _finish(self, record: ChildRecord, reason: StopReason) -> None:
        if self._children.get(record.name) is record:
            del self._children[record.name]
        record.mark_stopped(reason)

    async def _stop_all(self, reason: StopReason) -> None:
        for record in reversed(list(self._children.values())):
            await record.stop(reason)
            self._finish(record, reason)

    def _abandon_all(self) -> None:
        """Cancelled from outside: mark every child stopped without waiting for it."""
        for record in reversed(list(self._children.values())):
            self._finish(record, _SHUTDOWN)
