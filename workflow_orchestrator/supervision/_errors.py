"""Errors raised by supervisors."""

from __future__ import annotations

from workflow_orchestrator.errors import OrchestratorError


class ChildStartFailed(OrchestratorError, RuntimeError):
    """A child failed while starting (``on_start`` or before ``task_status.started``).

    The original exception is chained as ``__cause__``.
    """

    def __init__(self, path: str, error: BaseException) -> None:
        self.path = path
        super().__init__(
            f"child {path!r} failed to start: {type(error).__name__}: {error}; "
            "fix its start-up (on_start, or the service before task_status.started())"
        )


class DuplicateChild(OrchestratorError, ValueError):
    """A supervisor already has a live child with that name."""

    def __init__(self, supervisor_path: str, name: str) -> None:
        self.supervisor_path = supervisor_path
        self.name = name
        super().__init__(
            f"supervisor {supervisor_path!r} already has a child named {name!r}; "
            "pick a unique name or stop the existing child first"
        )


class RestartIntensityExceeded(OrchestratorError, RuntimeError):
    """A supervisor gave up: its children failed too often; it escalates to its parent.

    The last child failure is chained as ``__cause__``.
    """

    def __init__(
        self, supervisor_path: str, child_path: str, max_restarts: int, within_seconds: float
    ) -> None:
        self.supervisor_path = supervisor_path
        self.child_path = child_path
        self.max_restarts = max_restarts
        self.within_seconds = within_seconds
        super().__init__(
            f"supervisor {supervisor_path!r} gave up after more than {max_restarts} restarts "
            f"within {within_seconds:g}s (last failure in {child_path!r}); fix the failing "
            "child or raise max_restarts/within_seconds"
        )


class SupervisorStopped(OrchestratorError, RuntimeError):
    """A child was started on a supervisor that is not running."""

    def __init__(self, supervisor_path: str) -> None:
        self.supervisor_path = supervisor_path
        super().__init__(
            f"supervisor {supervisor_path!r} is not running and cannot start children; "
            "start children while the actor system is open"
        )
