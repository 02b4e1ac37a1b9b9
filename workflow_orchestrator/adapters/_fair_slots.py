"""Fair sharing of a few slots (the sandbox's worker processes) between owners.

``FairSlots(capacity, per_owner)`` hands out ``capacity`` slots. A caller names its owner (a
definition id); while slots are busy, callers wait in their owner's lane, and each freed slot
goes to the next lane in turn (round-robin between owners, first come first served within one
owner). So an owner with a hundred slow evaluations queued gets one slot in turn like an owner
with one fast evaluation, and the fast one keeps its throughput.

Each owner may have at most ``per_owner`` callers *admitted* (waiting in its lane or holding a
slot); further callers of that owner wait for room before they join the lane, in arrival order.
That is backpressure: the memory the sandbox holds for an owner (encoded inputs of admitted
evaluations) is bounded, and the caller, not a queue, absorbs the wait.

Lanes exist only while someone uses them, so owners come and go without growing a table.
A cancelled caller leaves its lane, and a slot handed to a caller that was cancelled at that
moment is passed on; nothing leaks.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

__all__ = ["FairSlots"]


@attrs.define(eq=False)
class _Waiter:
    granted: bool = False
    event: trio.Event = attrs.field(factory=trio.Event)


@attrs.define(eq=False)
class _Lane:
    room: trio.Semaphore
    users: int = 0
    waiting: collections.deque[_Waiter] = attrs.field(factory=collections.deque)


class FairSlots:
    """``capacity`` slots shared round-robin between owners; see the module docstring."""

    def __init__(self, capacity: int, per_owner: int) -> None:
        if capacity < 1 or per_owner < 1:
            raise ValueError(f"capacity ({capacity}) and per_owner ({per_owner}) must be >= 1")
        self._free = capacity
        self._per_owner = per_owner
        self._lanes: dict[str, _Lane] = {}
        # Owners with waiters, in the order they are served next (an insertion-ordered dict).
        self._turns: dict[str, _Lane] = {}

    def waiting(self, owner: str) -> int:
        """How many callers of ``owner`` wait for a slot (not for room)."""
        lane = self._lanes.get(owner)
        return len(lane.waiting) if lane is not None else 0

    @asynccontextmanager
    async def admitted(self, owner: str) -> AsyncIterator[None]:
        """Hold one of ``owner``'s admissions (see the module docstring) for the block."""
        lane = self._lanes.get(owner)
        if lane is None:
            lane = self._lanes[owner] = _Lane(room=trio.Semaphore(self._per_owner))
        lane.users += 1
        try:
            async with lane.room:
                yield
        finally:
            lane.users -= 1
            if lane.users == 0:
                del self._lanes[owner]

    @asynccontextmanager
    async def slot(self, owner: str) -> AsyncIterator[None]:
        """Hold a slot for the block, waiting in ``owner``'s turn; call it inside
        ``admitted(owner)``."""
        await self._acquire(owner)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, owner: str) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._free > 0 and not self._turns:
            self._free -= 1
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        lane = self._lanes[owner]
        waiter = _Waiter()
        lane.waiting.append(waiter)
        self._turns.setdefault(owner, lane)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self._release()  # handed a slot as we were cancelled: pass it on
            else:
                lane.waiting.remove(waiter)
                if not lane.waiting:
                    self._turns.pop(owner, None)
            raise

    def _release(self) -> None:
        if not self._turns:
            self._free += 1
            return
        owner, lane = next(iter(self._turns.items()))
        del self._turns[owner]
        waiter = lane.waiting.popleft()
        if lane.waiting:
            self._turns[owner] = lane  # its next waiter goes to the back of the line
        waiter.granted = True
        waiter.event.set()
