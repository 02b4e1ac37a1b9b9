"""The cap on live instance actors, and the bounded queue of activations waiting for a slot.

At most ``capacity`` instance actors live in this process (``workflows.maxActiveInstances``).
Every activation (an HTTP start, an event delivered, a wake-up, a resume, recovery) is offered
to the ``ActivationQueue``; the runtime's dispatcher takes them in arrival order while a slot
is free. A ``Slot`` is held from the actor's start until it stops for good (its restarts after
a crash keep it), so a crash-looping instance cannot make room for more actors.

The queue is bounded as well (``queue_limit`` instances, one entry per instance id). What does
not fit is not kept in memory: the queue records an overflow, and the runtime drains the
backlog from the database in pages (what recovery would run: pending and running instances
that no actor runs here, waiting ones with events in their inbox). Everything an activation
stands for is durable before it is offered (the instance row, the inbox row, the timer), so
dropping the in-memory hint loses nothing, and memory stays bounded whatever the number of
instances one event wakes. Only the first ``keep_loaded`` queued activations keep what was
loaded for them (snapshot, inbox); later ones are read again when their actor starts.

No I/O; the runtime performs what it decides.
"""

from __future__ import annotations

import math
import uuid

import attrs
import trio

from workflow_orchestrator.storage.instances import RecoverableInstance

__all__ = ["ActivationQueue", "Slot"]


@attrs.define(eq=False)
class Slot:
    """One live actor's place under the cap; ``release`` is idempotent (any arguments are
    ignored, so it can be a stop callback)."""

    _queue: ActivationQueue
    released: bool = False

    def release(self, *_: object) -> None:
        if not self.released:
            self.released = True
            self._queue.slot_freed()


@attrs.define(eq=False)
class ActivationQueue:
    """See the module docstring."""

    capacity: int
    queue_limit: int
    keep_loaded: int = 64
    _queue: dict[uuid.UUID, RecoverableInstance | None] = attrs.field(factory=dict, init=False)
    _loaded: int = attrs.field(default=0, init=False)
    active: int = attrs.field(default=0, init=False)
    peak_active: int = attrs.field(default=0, init=False)
    overflowed: trio.Event = attrs.field(factory=trio.Event, init=False)
    dropped_total: int = attrs.field(default=0, init=False)
    _changed: trio.Event = attrs.field(factory=trio.Event, init=False)

    def __attrs_post_init__(self) -> None:
        if self.capacity < 1 or self.queue_limit < 1:
            raise ValueError("capacity and queue_limit must be at least 1")

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._queue

    def offer(self, instance_id: uuid.UUID, activation: RecoverableInstance | None) -> bool:
        """Queue an activation without waiting; False (and an overflow, which the runtime
        drains from the database) when the queue is full."""
        if instance_id in self._queue:
            # Offered again while it waits: whatever was loaded may be stale now; read it
            # again when it starts.
            if self._queue[instance_id] is not None:
                self._queue[instance_id] = None
                self._loaded -= 1
            return True
        if len(self._queue) >= self.queue_limit:
            self.dropped_total += 1
            self.overflowed.set()
            return False
        if activation is not None and self._loaded >= self.keep_loaded:
            activation = None
        if activation is not None:
            self._loaded += 1
        self._queue[instance_id] = activation
        self._signal()
        return True

    async def put(
        self,
        instance_id: uuid.UUID,
        activation: RecoverableInstance | None,
        *,
        patience: float = math.inf,
    ) -> bool:
        """Queue an activation, waiting up to ``patience`` seconds for room (backpressure on
        the caller); then it overflows as ``offer`` does. Always a checkpoint."""
        await trio.lowlevel.checkpoint()
        with trio.move_on_after(patience):
            while len(self._queue) >= self.queue_limit and instance_id not in self._queue:
                await self._wait_change()
        return self.offer(instance_id, activation)

    async def take(self) -> tuple[uuid.UUID, RecoverableInstance | None, Slot]:
        """The oldest queued activation with a slot for its actor, once both exist."""
        while not (self._queue and self.active < self.capacity):
            await self._wait_change()
        instance_id = next(iter(self._queue))
        activation = self._queue.pop(instance_id)
        if activation is not None:
            self._loaded -= 1
        return instance_id, activation, self.reserve()

    def reserve(self) -> Slot:
        """A slot taken now, also beyond the cap (``take`` only reserves under it)."""
        self.active += 1
        self.peak_active = max(self.peak_active, self.active)
        self._signal()
        return Slot(self)

    def slot_freed(self) -> None:
        self.active -= 1
        self._signal()

    def clear_overflow(self) -> None:
        """A drain of the backlog starts: overflows from now on ask for another one."""
        self.overflowed = trio.Event()

    def _signal(self) -> None:
        self._changed.set()

    async def _wait_change(self) -> None:
        if self._changed.is_set():
            self._changed = trio.Event()
        await self._changed.wait()
