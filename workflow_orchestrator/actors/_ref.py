"""``ActorRef``: the handle through which everyone else talks to an actor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio

from workflow_orchestrator.actors._errors import AskTimeout
from workflow_orchestrator.actors._messages import Ask, message_type
from workflow_orchestrator.actors._snapshot import snapshot_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from workflow_orchestrator.actors._cell import ActorCell
    from workflow_orchestrator.actors._lifecycle import StopReason
    from workflow_orchestrator.actors._snapshot import ChildSnapshot

M = TypeVar("M")


class ActorRef(Generic[M]):
    """A reference to one actor; cheap to create, equal when it points at the same actor.

    A ref stays valid across restarts and passivation of its actor (the mailbox is kept
    across a restart, the failing message is not redelivered). Once the actor has stopped
    for good, sending raises ``ActorStopped``.
    """

    __slots__ = ("_cell",)

    def __init__(self, cell: ActorCell[M]) -> None:
        self._cell = cell

    @property
    def path(self) -> str:
        """The actor's path, e.g. ``/user/instances/42``."""
        return self._cell.path

    def tell_nowait(self, message: M) -> None:
        """Queue ``message`` without blocking.

        Raises ``MailboxFull`` when the bounded mailbox is full and ``ActorStopped`` when the
        actor has stopped. A passivated actor is re-activated transparently.
        """
        self._cell.enqueue(message)

    async def tell(self, message: M) -> None:
        """Queue ``message``, waiting while the mailbox is full (backpressure).

        Always a checkpoint. Raises ``ActorStopped`` if the actor stops meanwhile.
        """
        await self._cell.put(message)

    # The timeout is a parameter (not the caller's fail_after) so that its error can name the
    # actor and the message type.
    async def ask(self, message: M, *, timeout: float = 5.0) -> Any:  # noqa: ASYNC109
        """Send ``message`` and return what the actor's ``receive`` returns for it.

        ``timeout`` covers waiting for mailbox space and for the reply. Raises ``AskTimeout``
        (naming the actor path and message type) when it expires, ``AskFailed`` (with the
        exception as ``__cause__``) when the handler raises, ``ActorStopped`` when the actor
        stops before answering. A reply that arrives after the timeout is dropped.
        """
        request = Ask(message)
        with trio.move_on_after(timeout):
            await self._cell.put(request)
            return await request.wait()
        raise AskTimeout(self._cell.path, message_type(message), timeout)

    async def stop(self) -> None:
        """Stop the actor gracefully and remove it from its supervisor.

        The current message finishes (up to the child's ``shutdown_timeout``, then it is
        cancelled), ``on_stop`` runs, queued messages are dropped and waiting asks fail with
        ``ActorStopped``. Watchers get ``Terminated`` with ``StopKind.NORMAL``.
        """
        cell = self._cell
        await cell.parent.stop_record(cell)

    async def wait_stopped(self) -> StopReason:
        """Wait until the actor stops for good and return why (death watch for non-actors)."""
        cell = self._cell
        if cell.stop_reason is not None:
            await trio.lowlevel.checkpoint()
            return cell.stop_reason
        done = trio.Event()
        reasons: list[StopReason] = []

        def notify(reason: StopReason) -> None:
            reasons.append(reason)
            done.set()

        cell.add_watcher(notify)
        try:
            await done.wait()
        finally:
            cell.remove_watcher(notify)
        return reasons[0]

    def notify_stopped(self, callback: Callable[[StopReason], None]) -> None:
        """Call ``callback(reason)`` once, synchronously, when the actor stops for good (at
        once if it has); no task is kept meanwhile. Restarts do not count as stops."""
        self._cell.add_watcher(callback)

    def statistics(self) -> ChildSnapshot:
        """A frozen snapshot of this actor (state, restarts, mailbox, uptime)."""
        return snapshot_of(self._cell, depth=0)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other._cell is self._cell

    def __hash__(self) -> int:
        return id(self._cell)

    def __repr__(self) -> str:
        return f"<ActorRef {self._cell.path} {self._cell.state.value}>"
