"""The ``Actor`` base class: the behaviour that runs inside a supervised actor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from workflow_orchestrator.actors._context import ActorContext
    from workflow_orchestrator.actors._lifecycle import StopReason

M = TypeVar("M")


class Actor(Generic[M]):
    """Subclass and override ``receive``; ``on_start`` and ``on_stop`` are optional.

    One actor instance handles one message at a time, in mailbox order. A fresh instance is
    made by the child spec's factory on every (re)start and re-activation, so state that must
    survive a restart or passivation belongs in storage, loaded in ``on_start``.

    - ``on_start`` runs before the first message; if it raises, ``spawn``/``start_child``
      raises ``ChildStartFailed`` (on a restart or re-activation it counts as a crash).
    - ``receive`` returns the reply for ``ask`` (ignored for ``tell``). An exception crashes
      the actor: the supervisor logs it and applies its strategy. Messages still queued
      survive a restart; the failing message is not redelivered.
    - ``on_stop`` runs once per instance (stop, failure, restart of a sibling, passivation),
      bounded by the child's ``shutdown_timeout`` and shielded from cancellation. Its own
      errors are logged, never raised.
    """

    async def on_start(self, ctx: ActorContext[M]) -> None:
        """Prepare state before the first message (default: nothing)."""

    async def receive(self, ctx: ActorContext[M], message: M) -> Any:
        """Handle one message; the return value answers an ``ask``."""
        raise NotImplementedError(f"{type(self).__name__} must override receive()")

    async def on_stop(self, ctx: ActorContext[M], reason: StopReason) -> None:
        """Release what ``on_start`` acquired (default: nothing)."""
