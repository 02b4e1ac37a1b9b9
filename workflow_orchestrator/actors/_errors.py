"""Errors raised by the actor runtime.

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
