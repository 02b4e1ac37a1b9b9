"""Passivation timing: one sweeper task per supervisor instead of a timer per actor.

Idle actors are kept in a heap ordered by the time they become due. Entries are lazy: an
actor that was busy since it was queued is re-queued with its new due time (or dropped while
it runs; it queues itself again when it goes idle). Each actor has at most one entry.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from workflow_orchestrator.actors._lifecycle import LifecycleState

if TYPE_CHECKING:
    from workflow_orchestrator.actors._cell import ActorCell


class PassivationSweeper:
    """Passivates the idle actors of one supervisor when their timeout expires."""

    def __init__(self, spawn: Callable[..., None]) -> None:
        self._spawn = spawn
        self._heap: list[tuple[float, int, ActorCell[Any]]] = []
        self._seq = itertools.count().__next__
        self._wakeup: trio.Event | None = None

    def note_idle(self, cell: ActorCell[Any]) -> None:
        """Queue ``cell``, idle since ``cell.last_active``, for a passivation check."""
        passivate_after = cell.spec.passivate_after
        if cell.in_heap or passivate_after is None:
            return
        heapq.heappush(self._heap, (cell.last_active + passivate_after, self._seq(), cell))
        cell.in_heap = True
        if self._heap[0][2] is cell and self._wakeup is not None:
            self._wakeup.set()  # due earlier than whatever the sweeper sleeps towards

    async def run(self) -> None:
        """Sleep until the earliest due time, passivate what is due, repeat; forever."""
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, cell = heapq.heappop(heap)
                cell.in_heap = False
                if cell.state is not LifecycleState.RUNNING or cell.running:
                    continue
                passivate_after = cell.spec.passivate_after
                assert passivate_after is not None
                due = cell.last_active + passivate_after
                if due <= now:
                    self._spawn(cell.passivate_now)
                else:
                    heapq.heappush(heap, (due, self._seq(), cell))
                    cell.in_heap = True
            self._wakeup = wakeup = trio.Event()
            with trio.move_on_at(heap[0][0] if heap else math.inf):
                await wakeup.wait()
