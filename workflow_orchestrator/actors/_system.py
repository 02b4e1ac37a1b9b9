"""``ActorSystem``: the root of the supervision tree, path lookup and shutdown.

``open_actor_system`` owns the guardian supervisor (``/user`` by default) in its nursery.
Leaving the ``async with`` block drains: the guardian stops its children in reverse start
order, each within its ``shutdown_timeout``, all within the system's ``shutdown_timeout``;
whatever is left is then cancelled.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import trio

from workflow_orchestrator.actors._errors import ActorNotFound, ChildStartFailed
from workflow_orchestrator.actors._ref import ActorRef
from workflow_orchestrator.actors._snapshot import snapshot_of
from workflow_orchestrator.actors._spec import SupervisorSpec
from workflow_orchestrator.actors._supervisor import Supervisor

if TYPE_CHECKING:
    from workflow_orchestrator.actors._record import ChildRecord
    from workflow_orchestrator.actors._snapshot import ChildSnapshot
    from workflow_orchestrator.actors._spec import ActorSpec, ChildSpec

M = TypeVar("M")


@attrs.define(eq=False)
class ActorSystem:
    """Handle on a running tree of supervisors and actors. Made by ``open_actor_system``."""

    guardian: Supervisor = attrs.field(init=False)
    # Every child record created, when a leak check asked for it (see ``actors.testing``).
    tracked: list[ChildRecord] | None = attrs.field(default=None, repr=False)
    # Set when the system starts draining; shielded per-child cleanups never wait past it.
    drain_deadline: float = math.inf

    def find_supervisor(self, path: str) -> Supervisor | None:
        """The running supervisor at ``path``, or None."""
        try:
            return self.lookup_supervisor(path)
        except ActorNotFound:
            return None

    def lookup_supervisor(self, path: str) -> Supervisor:
        """The running supervisor at ``path`` (e.g. ``/user/instances``)."""
        if path.rstrip("/") == self.guardian.path:
            return self.guardian
        nested = self._resolve(path).nested
        if nested is None:
            raise ActorNotFound(path, [])
        return nested

    def lookup(self, path: str) -> ActorRef[Any]:
        """The actor at ``path`` (e.g. ``/user/instances/42``); raises ``ActorNotFound``.

        Passivated actors are found too: sending to them re-activates them.
        """
        ref = self._resolve(path).ref()
        if ref is None:
            raise ActorNotFound(path, [])
        return ref

    def _resolve(self, path: str) -> ChildRecord:
        segments = [segment for segment in path.split("/") if segment]
        guardian = self.guardian
        if not segments or segments[0] != guardian.spec.name:
            raise ActorNotFound(path, [guardian.spec.name])
        supervisor: Supervisor = guardian
        record: ChildRecord | None = None
        for index, segment in enumerate(segments[1:]):
            record = supervisor.child(segment)
            if record is None:
                raise ActorNotFound(path, [child.name for child in supervisor.child_records()])
            if index < len(segments) - 2:
                nested = record.nested
                if nested is None:
                    raise ActorNotFound(path, [])
                supervisor = nested
        if record is None:
            raise ActorNotFound(path, [])
        return record

    async def spawn(self, spec: ActorSpec[M], *, parent: str | None = None) -> ActorRef[M]:
        """Start an actor under the supervisor at ``parent`` (default: the guardian).

        Returns once ``on_start`` has returned; its failure raises ``ChildStartFailed``.
        """
        supervisor = self.lookup_supervisor(parent) if parent else self.guardian
        return await supervisor.start_child(spec)

    async def start_child(self, spec: ChildSpec, *, parent: str | None = None) -> Any:
        """Start any child (actor, service, supervisor) under ``parent``; see
        ``Supervisor.start_child`` for what it returns."""
        supervisor = self.lookup_supervisor(parent) if parent else self.guardian
        return await supervisor.start_child(spec)

    async def stop(self, target: ActorRef[Any] | str) -> None:
        """Stop the actor (or any child, by path) gracefully and remove it from its parent."""
        if isinstance(target, ActorRef):
            await target.stop()
            return
        record = self._resolve(target)
        await record.parent.stop_record(record)

    def watch(self, target: ActorRef[Any], watcher: ActorRef[Any]) -> None:
        """Deliver ``Terminated(path, reason)`` to ``watcher`` when ``target`` stops for good."""
        watcher._cell.watch(target._cell)

    def statistics(
        self,
        path: str | None = None,
        *,
        depth: int | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> ChildSnapshot:
        """A frozen snapshot of the tree at ``path`` (default: the whole tree).

        ``depth`` bounds expansion (0: the node and its per-state child counts only);
        ``offset``/``limit`` page the node's children. Raises ``ActorNotFound``.
        """
        if path is None or path.rstrip("/") in ("", self.guardian.path):
            return self.guardian.statistics(depth=depth, offset=offset, limit=limit)
        return snapshot_of(self._resolve(path), depth=depth, offset=offset, limit=limit)


@contextlib.asynccontextmanager
async def open_actor_system(
    *,
    guardian: SupervisorSpec | None = None,
    shutdown_timeout: float = 30.0,
    seed: int | None = None,
) -> AsyncIterator[ActorSystem]:
    """Run an actor system for the duration of the ``async with`` block.

    ``guardian`` configures the root supervisor (default: ``SupervisorSpec(name="user")``,
    one_for_one). Its initial children start before the block is entered; a start failure
    raises ``ChildStartFailed`` from here (not in a group).

    Leaving the block, also by cancellation or an error, drains the tree: children stop in
    reverse start order within ``shutdown_timeout`` seconds in total, then the rest is
    cancelled. If the guardian gives up (``RestartIntensityExceeded``) the block is
    cancelled and the error propagates inside an ``ExceptionGroup``. ``seed`` makes backoff
    jitter reproducible.
    """
    spec = guardian if guardian is not None else SupervisorSpec(name="user")
    system = ActorSystem()
    supervisor = Supervisor(spec=spec, path=f"/{spec.name}", system=system, rng=random.Random(seed))
    system.guardian = supervisor
    # The guardian is shielded from cancellation of the block that owns the system, so that
    # leaving it (also by cancellation or an error) drains the tree; the drain is bounded by a
    # deadline set on this scope, after which whatever is left is cancelled.
    guardian_scope = trio.CancelScope(shield=True)

    async def run_guardian(*, task_status: trio.TaskStatus[Supervisor]) -> None:
        with guardian_scope:
            await supervisor.run(task_status=task_status)

    start_failure: ChildStartFailed | None = None
    async with trio.open_nursery() as nursery:
        try:
            await nursery.start(run_guardian)
        except ChildStartFailed as exc:
            start_failure = exc  # raised below, outside the nursery, so not in a group
        else:
            try:
                yield system
            finally:
                supervisor.request_stop()
                system.drain_deadline = trio.current_time() + shutdown_timeout
                guardian_scope.deadline = system.drain_deadline
    if start_failure is not None:
        raise start_failure
