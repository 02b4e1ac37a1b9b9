"""``Supervisor``: OTP-style supervision of actors, services and nested supervisors.

A supervisor is a Trio task (``run``) owning one nursery in which all its children's tasks
live: actors' message loops, services, nested supervisors, restart timers and the
passivation sweeper. Children report exits synchronously (``child_exited``); the
supervisor's own task handles the reports one at a time in its control loop, so restart
decisions never race each other.

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

from workflow_orchestrator.actors._cell import ActorContext
from workflow_orchestrator.actors._errors import ActorNotFound
from workflow_orchestrator.actors._lifecycle import (
    FailureInfo,
    LifecycleState,
    StopKind,
    StopReason,
)
from workflow_orchestrator.actors._record import ChildRecord
from workflow_orchestrator.actors._ref import ActorRef
from workflow_orchestrator.supervision._children import ServiceRecord, StartedStatus
from workflow_orchestrator.supervision._errors import (
    ChildStartFailed,
    DuplicateChild,
    RestartIntensityExceeded,
    SupervisorStopped,
)
from workflow_orchestrator.supervision._metrics import ACTOR_RESTARTS
from workflow_orchestrator.supervision._passivation import PassivationSweeper
from workflow_orchestrator.supervision._snapshot import ChildSnapshot, snapshot_of_supervisor
from workflow_orchestrator.supervision._spec import (
    ActorSpec,
    ChildSpec,
    Restart,
    RestartStrategy,
    ServiceSpec,
    SupervisorSpec,
)

if TYPE_CHECKING:
    from workflow_orchestrator.actors._system import ActorSystem

logger = logging.getLogger(__name__)

M = TypeVar("M")

_CANCEL_GRACE = 1.0  # after cancelling a child, how long to wait for it to unwind
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
        record: ChildRecord
        record = (
            ActorContext(self, spec) if isinstance(spec, ActorSpec) else ServiceRecord(self, spec)
        )
        self._children[spec.name] = record
        if self.system.tracked is not None:
            self.system.tracked.append(record)
        try:
            value = await self._start_record(record)
        except BaseException as exc:
            if self._children.get(spec.name) is record:
                del self._children[spec.name]
            reason = StopReason(kind=StopKind.FAILURE, error=exc)
            if isinstance(record, ActorContext):
                record.fail_pending()
            record.mark_stopped(reason)
            if isinstance(exc, Exception):
                raise ChildStartFailed(record.path, exc) from exc
            raise
        if isinstance(record, ActorContext):
            return ActorRef(record)
        if isinstance(record, ServiceRecord) and record.handle is not None:
            return record.handle
        return value

    async def get_or_start_child(self, spec: ActorSpec[M]) -> ActorRef[M]:
        """The actor named ``spec.name`` if this supervisor has it, else start it from
        ``spec`` (virtual-actor style, e.g. an instance registry re-creating an instance
        actor on its next event). Raises as ``start_child`` does.
        """
        while isinstance(record := self._children.get(spec.name), ActorContext):
            if record.state is not LifecycleState.STOPPING:
                await trio.lowlevel.checkpoint()
                return ActorRef(record)
            await ActorRef(record).wait_stopped()  # then start a fresh one
        return await self.start_child(spec)

    async def stop_child(self, name: str, *, _record: ChildRecord | None = None) -> None:
        """Stop the child ``name`` gracefully and remove it, whatever its restart type.

        Raises ``ActorNotFound`` if there is no such child. Stopping a child that is already
        stopping waits for that stop to finish.
        """
        record = self._children.get(name)
        if record is None or (_record is not None and record is not _record):
            target = _record or record
            if target is not None and target.stop_reason is not None:
                await trio.lowlevel.checkpoint()
                return
            raise ActorNotFound(f"{self.path.rstrip('/')}/{name}", list(self._children))
        if record.state is LifecycleState.STOPPING:
            done = trio.Event()
            record.add_watcher(lambda _reason: done.set())
            await done.wait()
            return
        await self._stop_record(record, _NORMAL)
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
        from workflow_orchestrator.supervision._snapshot import snapshot_of

        return snapshot_of(record, depth=depth, offset=offset, limit=limit)

    # -- called by children (synchronously) ------------------------------------------------

    def spawn_task(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Run ``fn(*args)`` as a task owned by this supervisor's nursery."""
        if self._nursery is None:
            return  # shutting down; the record is being abandoned
        self._nursery.start_soon(fn, *args)

    def child_exited(self, record: ChildRecord, generation: int, error: Exception | None) -> None:
        """Report that ``record``'s incarnation ``generation`` ended (``error`` None: normally)."""
        self._events.append((record, generation, error))
        self._wakeup.set()

    def note_idle(self, cell: ActorContext[Any]) -> None:
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
        await self._stop_record(record, reason)
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
        await self._stop_record(record, reason)
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
        await self._terminate(record, _exit_reason(error))
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
            await self._start_record(record)
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
            await self._stop_record(record, _RESTART)
            if record.spec.restart is Restart.TEMPORARY:
                self._finish(record, _SHUTDOWN)
            else:
                record.state = LifecycleState.RESTARTING
        await self._terminate(failed, _exit_reason(error))
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
                await self._start_record(record)
            except Exception as exc:
                self.child_exited(record, record.generation, exc)

    # -- starting and stopping one child ------------------------------------------------

    async def _start_record(self, record: ChildRecord) -> Any:
        record.generation += 1
        generation = record.generation
        record.state = LifecycleState.STARTING
        record.started_at = trio.current_time()
        if isinstance(record, ActorContext):
            record.stop_requested = record.passivate_requested = False
            actor = record.spec.factory()
            await actor.on_start(record)
            if record.generation != generation:
                await record.call_on_stop(actor, _SHUTDOWN)
                return None
            record.actor = actor
            record.state = LifecycleState.RUNNING
            if record.mailbox and not record.running:
                record.schedule()
            await trio.lowlevel.checkpoint()
            return None
        assert isinstance(record, ServiceRecord)
        assert self._nursery is not None
        spec = record.spec
        kwargs: dict[str, Any] = {}
        if isinstance(spec, SupervisorSpec):
            nested = Supervisor(spec=spec, path=record.path, system=self.system, rng=self.rng)
            record.handle = nested
            record.request_stop = nested.request_stop
            run: Callable[..., Awaitable[object]] = nested.run
        else:
            assert isinstance(spec, ServiceSpec)
            run = spec.run
            record.request_stop = None
            if spec.graceful:
                stop_requested = trio.Event()
                kwargs["stop_requested"] = stop_requested
                record.request_stop = stop_requested.set
        record.done = trio.Event()
        value = await self._nursery.start(self._run_service, record, generation, run, kwargs)
        if record.generation == generation:
            record.state = LifecycleState.RUNNING
        return value

    async def _run_service(
        self,
        record: ServiceRecord,
        generation: int,
        run: Callable[..., Awaitable[object]],
        kwargs: dict[str, Any],
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        status = StartedStatus(task_status)
        done = record.done
        assert done is not None
        error: Exception | None = None
        try:
            with trio.CancelScope() as scope:
                record.scope = scope
                await run(task_status=status, **kwargs)
        except Exception as exc:
            if not status.is_started:
                raise
            error = exc
        finally:
            if record.done is done:
                record.scope = None
            done.set()
        if status.is_started and record.generation == generation:
            self.child_exited(record, generation, error)

    async def _stop_record(self, record: ChildRecord, reason: StopReason) -> None:
        """Stop a child gracefully, then by cancellation; it stays in ``_children``."""
        record.generation += 1
        record.state = LifecycleState.STOPPING
        deadline = record.deadline_in(record.spec.shutdown_timeout)
        if isinstance(record, ActorContext):
            await record.wait_quiet(deadline)
            actor, record.actor = record.actor, None
            if actor is not None:
                await record.call_on_stop(actor, reason, deadline)
            return
        assert isinstance(record, ServiceRecord)
        done = record.done
        if done is None or done.is_set():
            return
        if record.request_stop is not None:
            record.request_stop()
            with trio.move_on_at(deadline, shield=True):
                await done.wait()
        if not done.is_set():
            if record.scope is not None:
                record.scope.cancel()
            with trio.move_on_at(record.deadline_in(_CANCEL_GRACE), shield=True):
                await done.wait()
            if not done.is_set():
                logger.warning(
                    "child %s ignored cancellation while stopping",
                    record.path,
                    extra={"actor_path": record.path, "supervisor_path": self.path},
                )

    async def _terminate(self, record: ChildRecord, reason: StopReason) -> None:
        """Clean up the remains of a child that already exited, before restarting it."""
        if isinstance(record, ActorContext):
            actor, record.actor = record.actor, None
            if actor is not None:
                await record.call_on_stop(actor, reason)

    def _finish(self, record: ChildRecord, reason: StopReason) -> None:
        if self._children.get(record.name) is record:
            del self._children[record.name]
        if isinstance(record, ActorContext):
            record.fail_pending()
        record.mark_stopped(reason)

    async def _stop_all(self, reason: StopReason) -> None:
        for record in reversed(list(self._children.values())):
            await self._stop_record(record, reason)
            self._finish(record, reason)

    def _abandon_all(self) -> None:
        """Cancelled from outside: mark every child stopped without waiting for it."""
        for record in reversed(list(self._children.values())):
            self._finish(record, _SHUTDOWN)
