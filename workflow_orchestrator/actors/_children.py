"""The child records of non-actor children: services and nested supervisors.

Both run as one task in their supervisor's nursery (``TaskChild``): a service runs
``spec.run(task_status=...)``, a nested supervisor a fresh ``Supervisor.run``. ``new_child``
is the one place that maps a child spec to the kind of record that runs it.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

import trio

from workflow_orchestrator.actors._cell import ActorCell
from workflow_orchestrator.actors._lifecycle import LifecycleState, StopReason
from workflow_orchestrator.actors._record import ChildRecord
from workflow_orchestrator.actors._spec import ActorSpec, ChildSpec, ServiceSpec, SupervisorSpec

if TYPE_CHECKING:
    from workflow_orchestrator.actors._supervisor import Supervisor

logger = logging.getLogger(__name__)

_CANCEL_GRACE = 1.0  # after cancelling a child, how long to wait for it to unwind


class StartedStatus:
    """Wraps the ``task_status`` of ``nursery.start`` to know whether ``started`` ran."""

    __slots__ = ("inner", "is_started")

    def __init__(self, inner: trio.TaskStatus[Any]) -> None:
        self.inner = inner
        self.is_started = False

    def started(self, value: Any = None) -> None:
        self.is_started = True
        self.inner.started(value)


class TaskChild(ChildRecord):
    """A child that runs as one task: its scope, completion event and stop request."""

    __slots__ = ("done", "request_stop", "scope")

    parent: Supervisor

    def __init__(self, parent: Supervisor, spec: ChildSpec) -> None:
        super().__init__(parent, spec)
        self.done: trio.Event | None = None
        self.scope: trio.CancelScope | None = None
        self.request_stop: Callable[[], None] | None = None

    @abc.abstractmethod
    def prepare(self) -> tuple[Callable[..., Awaitable[object]], dict[str, Any]]:
        """What to run for a new incarnation, with its extra keyword arguments; sets
        ``request_stop`` if the child can be asked to stop before it is cancelled."""

    async def start(self) -> Any:
        """Run the service in the parent's nursery; return what it passed to ``started``."""
        generation = self.begin_start()
        run, kwargs = self.prepare()
        self.done = trio.Event()
        value = await self.parent.start_task(self._run, generation, run, kwargs)
        if self.generation == generation:
            self.state = LifecycleState.RUNNING
        return value

    async def stop(self, reason: StopReason) -> None:
        """Request a graceful stop (if it has one), wait until the deadline, then cancel."""
        deadline = self.begin_stop()
        done = self.done
        if done is None or done.is_set():
            return
        if self.request_stop is not None:
            self.request_stop()
            with trio.move_on_at(deadline, shield=True):
                await done.wait()
        if not done.is_set():
            if self.scope is not None:
                self.scope.cancel()
            with trio.move_on_at(self.deadline_in(_CANCEL_GRACE), shield=True):
                await done.wait()
            if not done.is_set():
                logger.warning(
                    "child %s ignored cancellation while stopping",
                    self.path,
                    extra={"actor_path": self.path, "supervisor_path": self.parent.path},
                )

    async def terminate(self, reason: StopReason) -> None:
        """Nothing to clean up: the task has ended, which is how the exit was reported."""
        # No checkpoint: a restart goes on without yielding, as for an actor with no instance.
        return

    async def _run(
        self,
        generation: int,
        run: Callable[..., Awaitable[object]],
        kwargs: dict[str, Any],
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        status = StartedStatus(task_status)
        done = self.done
        assert done is not None
        error: Exception | None = None
        try:
            with trio.CancelScope() as scope:
                self.scope = scope
                await run(task_status=status, **kwargs)
        except Exception as exc:
            if not status.is_started:
                raise
            error = exc
        finally:
            if self.done is done:
                self.scope = None
            done.set()
        if status.is_started and self.generation == generation:
            self.parent.child_exited(self, generation, error)


class ServiceChild(TaskChild):
    """A ``ServiceSpec`` child; a graceful one gets a ``stop_requested`` event."""

    __slots__ = ()

    kind: ClassVar[str] = "service"
    spec: ServiceSpec

    def __init__(self, parent: Supervisor, spec: ServiceSpec) -> None:
        super().__init__(parent, spec)

    def prepare(self) -> tuple[Callable[..., Awaitable[object]], dict[str, Any]]:
        spec = self.spec
        self.request_stop = None
        if not spec.graceful:
            return spec.run, {}
        stop_requested = trio.Event()
        self.request_stop = stop_requested.set
        return spec.run, {"stop_requested": stop_requested}


class SupervisorChild(TaskChild):
    """A ``SupervisorSpec`` child: each incarnation is a fresh nested ``Supervisor``."""

    __slots__ = ("handle",)

    kind: ClassVar[str] = "supervisor"
    spec: SupervisorSpec

    def __init__(self, parent: Supervisor, spec: SupervisorSpec) -> None:
        super().__init__(parent, spec)
        self.handle: Supervisor | None = None  # the current incarnation's supervisor

    @property
    def nested(self) -> Supervisor | None:
        return self.handle

    def prepare(self) -> tuple[Callable[..., Awaitable[object]], dict[str, Any]]:
        nested = self.handle = self.parent.make_nested(self.spec, self.path)
        self.request_stop = nested.request_stop
        return nested.run, {}


def new_child(parent: Supervisor, spec: ChildSpec) -> ChildRecord:
    """A record of the kind that runs ``spec``; raises ``TypeError`` for other specs."""
    if isinstance(spec, ActorSpec):
        return ActorCell(parent, spec)
    if isinstance(spec, SupervisorSpec):
        return SupervisorChild(parent, spec)
    if isinstance(spec, ServiceSpec):
        return ServiceChild(parent, spec)
    raise TypeError(
        f"child spec {spec.name!r} is a {type(spec).__name__}, which cannot be started; "
        "use an ActorSpec, ServiceSpec or SupervisorSpec"
    )
