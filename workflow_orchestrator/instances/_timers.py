"""In-memory wake-up timers of parked instances.

A parked instance's due time is in its committed snapshot (``wakeAt``), so this heap is only a
cache: after a restart, recovery re-arms every waiting instance from the database.
TODO(issue 7): durable timers in PostgreSQL, shared by the replicas, replace this.
"""

from __future__ import annotations

import heapq
import math
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import attrs
import trio

__all__ = ["WakeTimers"]


@attrs.define(eq=False)
class WakeTimers:
    """Calls ``wake(instance_id)`` when an armed instance is due (at most once per arming)."""

    wake: Callable[[uuid.UUID], Awaitable[None]]
    _heap: list[tuple[datetime, int, uuid.UUID]] = attrs.field(factory=list, init=False)
    _armed: dict[uuid.UUID, int] = attrs.field(factory=dict, init=False)
    _counter: int = attrs.field(default=0, init=False)
    _changed: trio.Event = attrs.field(factory=trio.Event, init=False)

    def arm(self, instance_id: uuid.UUID, due: datetime | None) -> None:
        """Wake ``instance_id`` at ``due`` (replacing an earlier arming); None disarms."""
        if due is None:
            self.disarm(instance_id)
            return
        self._counter += 1
        self._armed[instance_id] = self._counter
        heapq.heappush(self._heap, (due, self._counter, instance_id))
        self._changed.set()

    def disarm(self, instance_id: uuid.UUID) -> None:
        self._armed.pop(instance_id, None)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fire due timers until cancelled; each wake runs in its own task."""
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                self._changed = trio.Event()
                delay = math.inf
                while self._heap:
                    due, token, instance_id = self._heap[0]
                    if self._armed.get(instance_id) != token:
                        heapq.heappop(self._heap)  # disarmed or re-armed since
                        continue
                    delay = (due - datetime.now(UTC)).total_seconds()
                    if delay > 0:
                        break
                    heapq.heappop(self._heap)
                    del self._armed[instance_id]
                    nursery.start_soon(self.wake, instance_id)
                    delay = math.inf
                with trio.move_on_after(delay):
                    await self._changed.wait()
