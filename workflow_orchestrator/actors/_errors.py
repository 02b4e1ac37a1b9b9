"""Errors raised by the actor runtime: actors, references and supervisors.

Each error carries the actor path (and other ids) as attributes; messages start in lower case,
name the values and say what to change.
"""

from __future__ import annotations

import trio

from workflow_orchestrator.errors import OrchestratorError


class ActorNotFound(OrchestratorError, LookupError):
    """No actor or supervisor lives at ``path``."""

    def __init__(self, path: str, known: list[str]) -> None:
        self.path = path
        self.known = known
        shown = known[:10]
        more = f" and {len(known) - 10} more" if len(known) > 10 else ""
        super().__init__(
            f"no actor at path {path!r}; children of its parent: {shown}{more}; "
            "check the path or whether the actor has stopped"
        )


class ActorStopped(OrchestratorError, RuntimeError):
    """The actor at ``path`` has stopped (or is stopping) and accepts no messages."""

    def __init__(self, path: str, message_type: str) -> None:
        self.path = path
        self.message_type = message_type
        super().__init__(
            f"actor {path!r} is stopped and cannot take a {message_type!r} message; "
            "look it up again or watch it to learn when it stops"
        )


class MailboxFull(OrchestratorError, trio.WouldBlock):
    """``tell_nowait`` found the bounded mailbox of ``path`` full."""

    def __init__(self, path: str, capacity: int, message_type: str) -> None:
        self.path = path
        self.capacity = capacity
        self.message_type = message_type
        super().__init__(
            f"mailbox of actor {path!r} is full ({capacity} messages) and cannot take a "
            f"{message_type!r} message; use 'await tell()' to wait for space or raise the "
            "actor's mailbox_capacity"
        )


class AskTimeout(OrchestratorError, TimeoutError):
    """``ask`` got no reply from ``path`` within ``timeout`` seconds."""

    def __init__(self, path: str, message_type: str, timeout: float) -> None:
        self.path = path
        self.message_type = message_type
        self.timeout = timeout
        super().__init__(
            f"ask to actor {path!r} with a {message_type!r} message got no reply within "
            f"{timeout:g}s; raise the timeout or check that the actor is not blocked"
        )


class AskFailed(OrchestratorError, RuntimeError):
    """The actor at ``path`` crashed while handling an ``ask``; the cause is chained."""

    def __init__(self, path: str, message_type: str, error: BaseException) -> None:
        self.path = path
        self.message_type = message_type
        super().__init__(
            f"actor {path!r} failed while handling a {message_type!r} message: "
            f"{type(error).__name__}: {error}; its supervisor decides whether it restarts"
        )


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
