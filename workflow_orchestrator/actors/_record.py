"""The bookkeeping a supervisor keeps for each child, whatever its kind.

Slotted plain classes rather than attrs records: there is one per live actor (hundreds of
thousands), they are mutable and have identity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from workflow_orchestrator.actors._lifecycle import FailureInfo, LifecycleState, StopReason

if TYPE_CHECKING:
    from collections.abc import Callable

    from workflow_orchestrator.supervision._spec import ChildSpec
    from workflow_orchestrator.supervision._supervisor import Supervisor


class ChildRecord:
    """State common to actor, service and supervisor children."""

    __slots__ = (
        "attempts",
        "generation",
        "last_failure",
        "last_failure_at",
        "name",
        "path",
        "restart_count",
        "spec",
        "started_at",
        "state",
        "stop_reason",
        "supervisor",
        "watchers",
    )

    def __init__(self, supervisor: Supervisor, spec: ChildSpec) -> None:
        self.supervisor = supervisor
        self.spec = spec
        self.name = spec.name
        parent = supervisor.path
        self.path = f"{parent}/{spec.name}" if parent != "/" else f"/{spec.name}"
        self.state = LifecycleState.STARTING
        # Bumped on every (re)start and on every stop we initiate, so that exit reports of a
        # previous incarnation are recognised as stale and ignored.
        self.generation = 0
        self.restart_count = 0
        self.attempts = 0  # consecutive restarts, for backoff; reset after a quiet period
        self.last_failure: FailureInfo | None = None
        self.last_failure_at = 0.0  # trio clock, for the backoff reset
        self.started_at = trio.current_time()
        self.stop_reason: StopReason | None = None
        self.watchers: list[Callable[[StopReason], None]] | None = None

    @property
    def kind(self) -> str:
        raise NotImplementedError

    def deadline_in(self, seconds: float) -> float:
        """``seconds`` from now, but never past the system's drain deadline."""
        return min(trio.current_time() + seconds, self.supervisor.system.drain_deadline)

    def add_watcher(self, callback: Callable[[StopReason], None]) -> None:
        """Call ``callback(reason)`` once when this child stops for good (now, if it has)."""
        if self.stop_reason is not None:
            callback(self.stop_reason)
            return
        if self.watchers is None:
            self.watchers = []
        self.watchers.append(callback)

    def remove_watcher(self, callback: Callable[[StopReason], None]) -> None:
        if self.watchers is not None and callback in self.watchers:
            self.watchers.remove(callback)

    def mark_stopped(self, reason: StopReason) -> None:
        """Final transition: record why, tell the watchers (synchronously)."""
        self.state = LifecycleState.STOPPED
        self.stop_reason = reason
        watchers, self.watchers = self.watchers, None
        for callback in watchers or ():
            callback(reason)
