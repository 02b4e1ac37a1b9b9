"""``ActorContext``: what an actor's hooks see of their own actor.

A context is a view of one actor, like ``ActorRef``: it holds nothing but the actor's cell,
so an idle actor carries no context at all. The runtime makes one per ``on_start``, per
``on_stop`` and per run of the message loop (never per message); contexts of the same actor
are equal. The supervisor's bookkeeping (generation, backoff, mailbox internals) stays on the
cell and is not part of this API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from workflow_orchestrator.actors._ref import ActorRef

if TYPE_CHECKING:
    from workflow_orchestrator.actors._cell import ActorCell
    from workflow_orchestrator.actors._lifecycle import FailureInfo
    from workflow_orchestrator.actors._system import ActorSystem

M = TypeVar("M")


class ActorContext(Generic[M]):
    """What an actor knows about itself; passed to every hook. Created by the runtime.

    ``path``/``name`` identify the actor, ``self_ref`` is its own ``ActorRef``, ``system`` the
    ``ActorSystem`` (to spawn, look up or stop others). ``restart_count`` and
    ``last_failure`` tell a restarted actor why it runs again. ``stop()`` and ``passivate()``
    take effect after the current message; ``watch(ref)`` delivers a ``Terminated`` message
    when ``ref`` stops for good.
    """

    __slots__ = ("_cell",)

    def __init__(self, cell: ActorCell[M]) -> None:
        self._cell = cell

    @property
    def path(self) -> str:
        """The actor's path, e.g. ``/user/instances/42``."""
        return self._cell.path

    @property
    def name(self) -> str:
        """The last segment of the path (the child spec's name)."""
        return self._cell.name

    @property
    def self_ref(self) -> ActorRef[M]:
        """A reference to this actor, to hand to others or to send to itself."""
        return ActorRef(self._cell)

    @property
    def system(self) -> ActorSystem:
        """The actor system this actor runs in."""
        return self._cell.parent.system

    @property
    def restart_count(self) -> int:
        """How often the supervisor restarted this actor (0 on the first start)."""
        return self._cell.restart_count

    @property
    def last_failure(self) -> FailureInfo | None:
        """The failure that caused the latest restart, or None."""
        return self._cell.last_failure

    def tell_self_first(self, message: M) -> None:
        """Queue ``message`` to this actor ahead of everything queued, whatever the mailbox's
        capacity: what a restarted actor must handle first (its recovery) is never refused
        by a full mailbox. Raises ``ActorStopped`` once the actor has stopped."""
        self._cell.enqueue_first(message)

    def stop(self) -> None:
        """Stop this actor after the current message (a normal exit, as OTP's ``stop``)."""
        self._cell.stop_requested = True

    def passivate(self) -> None:
        """Leave memory after the current message; the next message re-activates it."""
        self._cell.passivate_requested = True

    def watch(self, ref: ActorRef[Any]) -> None:
        """Receive ``Terminated(path, reason)`` once ``ref``'s actor stops for good."""
        self._cell.watch(ref._cell)

    def unwatch(self, ref: ActorRef[Any]) -> None:
        """Stop watching ``ref``; no ``Terminated`` is delivered for it afterwards."""
        self._cell.unwatch(ref._cell)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorContext) and other._cell is self._cell

    def __hash__(self) -> int:
        return id(self._cell)

    def __repr__(self) -> str:
        return f"<ActorContext {self._cell.path}>"
