"""In-memory wake-up timers of parked instances: the near-term part of the durable timers.

A parked instance's timers are rows of ``workflow_timers``, written with the snapshot that
parks it (the database is the truth). This heap holds the ones due soon, so that firing does
not wait for a poll: the instance arms its own wake-up when it parks (when due within
``lookahead``), and the scheduler's timer service arms the rows it claims as they come near.
An instance is armed once, at its earliest due time; arming again keeps the earlier one unless
``replace`` is asked.
"""

from __future__ import annotations

import heapq
import math
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import attrs
import trio

__all__ = ["WakeTimers", "due_within"]


def due_within(due: datetime, now: datetime, lookahead: float) -> bool:
    """Whether ``due`` is at most ``lookahead`` seconds after ``now`` (or already past): the
    instance arms its own wake-up then; later ones are armed by the timer service."""
    return (due - now).total_seconds() <= lookahead


@attrs.define(eq=False)
class WakeTimers:
    """Calls ``wake(instance_id)`` when an armed instance is due (at most once per arming).

    ``limiter`` bounds how many wake-ups are under way at once (``scheduler.threadPoolSize``; a
    wake-up holds its slot until ``wake`` returns, which the runtime makes happen once the
    instance's activation is queued: ``workflows.maxActiveInstances`` bounds the runs, so a
    burst of due timers queues instead of flooding the process); ``on_fire(lateness_seconds)``
    is told how late each one started.
    """

    wake: Callable[[uuid.UUID], Awaitable[None]]
    limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(10))
    on_fire: Callable[[float], None] | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    _heap: list[tuple[datetime, int, uuid.UUID]] = attrs.field(factory=list, init=False)
    _armed: dict[uuid.UUID, tuple[int, datetime]] = attrs.field(factory=dict, init=False)
    _counter: int = attrs.field(default=0, init=False)
    # Fired and not finished (waiting for a slot or running): arming them again is a no-op, so
    # a timer claimed again while its wake-up queues does not wake the instance twice.
    _firing: set[uuid.UUID] = attrs.field(factory=set, init=False)
    _changed: trio.Event = attrs.field(factory=trio.Event, init=False)
    fired_total: int = attrs.field(default=0, init=False)
    last_fired_at: datetime | None = attrs.field(default=None, init=False)

    def arm(self, instance_id: uuid.UUID, due: datetime | None, *, replace: bool = True) -> None:
        """Wake ``instance_id`` at ``due``; None disarms. Without ``replace`` an earlier
        arming of the instance wins."""
        if due is None:
            self.disarm(instance_id)
            return
        if instance_id in self._firing and not replace:
            return
        current = self._armed.get(instance_id)
        if current is not None and not replace and current[1] <= due:
            return
        self._counter += 1
        self._armed[instance_id] = (self._counter, due)
        heapq.heappush(self._heap, (due, self._counter, instance_id))
        self._changed.set()

    def disarm(self, instance_id: uuid.UUID) -> None:
        self._armed.pop(instance_id, None)

    def armed(self) -> int:
        """How many instances are armed (no I/O)."""
        return len(self._armed)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fire due timers until cancelled; each wake runs in its own task."""
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                self._changed = trio.Event()
                delay = math.inf
                while self._heap:
                    due, token, instance_id = self._heap[0]
                    armed = self._armed.get(instance_id)
                    if armed is None or armed[0] != token:
                        heapq.heappop(self._heap)  # disarmed or re-armed since
                        continue
                    now = self.now()
                    delay = (due - now).total_seconds()
                    if delay > 0:
                        break
                    heapq.heappop(self._heap)
                    del self._armed[instance_id]
                    self._firing.add(instance_id)
                    nursery.start_soon(self._fire, instance_id, due)
                    delay = math.inf
                with trio.move_on_after(delay):
                    await self._changed.wait()

    async def _fire(self, instance_id: uuid.UUID, due: datetime) -> None:
        try:
            async with self.limiter:
                # Lateness counts from the due time to the moment the wake-up really starts
                # (after waiting for a free slot), so an overloaded replica shows it.
                now = self.now()
                self.fired_total += 1
                self.last_fired_at = now
                if self.on_fire is not None:
                    self.on_fire((now - due).total_seconds())
                await self.wake(instance_id)
        finally:
            self._firing.discard(instance_id)
