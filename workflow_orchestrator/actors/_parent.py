"""``Parent``: everything a child record may ask of the supervisor that owns it.

The actor core (``_record``, ``_cell``, ``_context``, ``_ref``) knows its supervisor only
through this protocol, never the ``Supervisor`` class: a child reports, the parent decides.
All methods are synchronous except ``stop_record``, so an exit report never waits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from workflow_orchestrator.actors._cell import ActorCell
    from workflow_orchestrator.actors._record import ChildRecord
    from workflow_orchestrator.actors._system import ActorSystem


class Parent(Protocol):
    """The owner of a child record (implemented by ``Supervisor``)."""

    @property
    def path(self) -> str:
        """The parent's path; a child's path is this plus ``/`` and its name."""
        ...

    @property
    def system(self) -> ActorSystem:
        """The actor system (for ``ActorContext.system`` and its drain deadline)."""
        ...

    def spawn_task(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Run ``fn(*args)`` in the parent's nursery (dropped when it is shutting down)."""
        ...

    def child_exited(self, record: ChildRecord, generation: int, error: Exception | None) -> None:
        """Report that incarnation ``generation`` of ``record`` ended (``error``: how)."""
        ...

    def note_idle(self, cell: ActorCell[Any]) -> None:
        """Schedule a passivation check for an actor that just went idle."""
        ...

    async def stop_record(self, record: ChildRecord) -> None:
        """Stop ``record`` gracefully and remove it (a normal stop, whatever its restart)."""
        ...
