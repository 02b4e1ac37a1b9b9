"""``ChildRecord``: the bookkeeping a supervisor keeps for each child, and its life cycle.

Each kind of child (``ActorCell``, ``ServiceChild``, ``SupervisorChild``) is a subclass that
implements ``start``, ``stop`` and ``terminate`` and overrides the views (``ref``,
``nested``, ``mailbox_figures``, ``leftovers``) that apply to it, so the supervisor and the
system never switch on a child's kind.

Slotted plain classes rather than attrs records: there is one per live actor (hundreds of
thousands), they are mutable and have identity.

Invariants: ``generation`` changes on every (re)start and on every stop the parent
initiates, so exit reports of an earlier incarnation are recognised as stale; ``stop_reason``
is set exactly once, by ``mark_stopped``, and watchers are called then and dropped.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import trio

from workflow_orchestrator.actors._lifecycle import FailureInfo, LifecycleState, StopReason

if TYPE_CHECKING:
    from workflow_orchestrator.actors._parent import Parent
    from workflow_orchestrator.actors._ref import ActorRef
    from workflow_orchestrator.actors._spec import ChildSpec
    from workflow_orchestrator.actors._supervisor import Supervisor


class ChildRecord(abc.ABC):
    """State common to every kind of child, and the life-cycle steps each kind implements."""

    __slots__ = (
        "attempts",
        "generation",
        "last_failure",
        "last_failure_at",
        "name",
        "parent",
        "path",
        "restart_count",
        "spec",
        "started_at",
        "state",
        "stop_reason",
        "watchers",
    )

    kind: ClassVar[str]
    """``actor``, ``service`` or ``supervisor``, as shown by ``ChildSnapshot.kind``."""

    def __init__(self, parent: Parent, spec: ChildSpec) -> None:
        self.parent = parent
        self.spec = spec
        self.name = spec.name
        parent_path = parent.path
        self.path = f"{parent_path}/{spec.name}" if parent_path != "/" else f"/{spec.name}"
        self.state = LifecycleState.STARTING
        self.generation = 0
        self.restart_count = 0
        self.attempts = 0  # consecutive restarts, for backoff; reset after a quiet period
        self.last_failure: FailureInfo | None = None
        self.last_failure_at = 0.0  # trio clock, for the backoff reset
        self.started_at = trio.current_time()
        self.stop_reason: StopReason | None = None
        self.watchers: list[Callable[[StopReason], None]] | None = None

    # -- life cycle, one implementation per kind ------------------------------------------

    @abc.abstractmethod
    async def start(self) -> Any:
        """Start a new incarnation and return, once it is ready, the handle for
        ``start_child``. Raises whatever the start-up raised (the parent wraps it)."""

    @abc.abstractmethod
    async def stop(self, reason: StopReason) -> None:
        """Stop the current incarnation: gracefully within ``spec.shutdown_timeout`` (never
        past the system's drain deadline), then by cancellation. Never raises; the record
        stays with its parent, which removes it with ``mark_stopped`` if it is not restarted.
        """

    @abc.abstractmethod
    async def terminate(self, reason: StopReason) -> None:
        """Clean up what an incarnation that already exited left behind, before it is
        restarted. Never raises."""

    def mark_stopped(self, reason: StopReason) -> None:
        """Final transition: record why, tell the watchers (synchronously)."""
        self.state = LifecycleState.STOPPED
        self.stop_reason = reason
        watchers, self.watchers = self.watchers, None
        for callback in watchers or ():
            callback(reason)

    # -- views; kinds override those that apply to them -----------------------------------

    def ref(self) -> ActorRef[Any] | None:
        """An ``ActorRef`` to this child if it is an actor, else None."""
        return None

    @property
    def nested(self) -> Supervisor | None:
        """The running supervisor of a nested-supervisor child, else None."""
        return None

    def mailbox_figures(self) -> tuple[int | None, int | None]:
        """``(depth, capacity)`` of an actor's mailbox; ``(None, None)`` for other kinds."""
        return None, None

    def leftovers(self) -> list[str]:
        """What this record still holds that a stopped child should not (for leak checks)."""
        found = []
        if self.state is not LifecycleState.STOPPED:
            found.append(f"{self.path} is {self.state.value}, not stopped")
        if self.watchers:
            found.append(f"{self.path} still has {len(self.watchers)} watchers")
        return found

    # -- helpers for the kinds --------------------------------------------------------------

    def begin_start(self) -> int:
        """Enter a new incarnation (``starting``); return its generation."""
        self.generation += 1
        self.state = LifecycleState.STARTING
        self.started_at = trio.current_time()
        return self.generation

    def begin_stop(self) -> float:
        """Enter ``stopping`` (making exit reports of the current incarnation stale); return
        the deadline for a graceful stop."""
        self.generation += 1
        self.state = LifecycleState.STOPPING
        return self.deadline_in(self.spec.shutdown_timeout)

    def deadline_in(self, seconds: float) -> float:
        """``seconds`` from now, but never past the system's drain deadline."""
        return min(trio.current_time() + seconds, self.parent.system.drain_deadline)

    def add_watcher(self, callback: Callable[[StopReason], None]) -> None:
        """Call ``callback(reason)`` once when this child stops for good (now, if it has)."""
        if self.stop_reason is not None:
            callback(self.stop_reason)
            return
        if self.watchers is None:
            self.watchers = []
        self.watchers.append(callback)

    def remove_watcher(self, callback: Callable[[StopReason], None]) -> None:
        """Forget ``callback`` (no-op if it was never added or already called)."""
        if self.watchers is not None and callback in self.watchers:
            self.watchers.remove(callback)
