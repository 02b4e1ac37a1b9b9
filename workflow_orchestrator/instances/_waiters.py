"""Long polls on instances: ``wait_terminal`` returns when an instance has ended.

A commit of a terminal status in this process (the runtime's ``committed`` callback) wakes the
waiters of that instance at once. Between wake-ups a waiter reads nothing: it re-checks the
instance only every ``recheck`` seconds (``server.longPollRecheckInterval``), for an instance
that another replica (or a command there) ends without telling this one. So a thousand open
long polls cost a thousand parked tasks, not a thousand reads a second.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import attrs
import trio

from workflow_orchestrator.storage.instances import InstanceRecord

__all__ = ["DEFAULT_RECHECK", "TerminalWaiters"]

DEFAULT_RECHECK = 10.0


@attrs.define(eq=False)
class TerminalWaiters:
    """The instances long-polled in this process (no I/O of its own)."""

    recheck: float = DEFAULT_RECHECK
    _events: dict[uuid.UUID, trio.Event] = attrs.field(factory=dict, init=False)
    # How many waiters each instance has: its event goes when the last one leaves, so an
    # instance that never ends leaves nothing behind.
    _counts: dict[uuid.UUID, int] = attrs.field(factory=dict, init=False)

    def ended(self, instance_id: uuid.UUID) -> None:
        """``instance_id`` committed a terminal status: wake its waiters."""
        event = self._events.pop(instance_id, None)
        if event is not None:
            event.set()

    async def wait_terminal(
        self,
        instance_id: uuid.UUID,
        seconds: float,
        read: Callable[[], Awaitable[InstanceRecord]],
    ) -> InstanceRecord:
        """The instance (``read`` reads it) once terminal, or as it is after ``seconds``."""
        self._counts[instance_id] = self._counts.get(instance_id, 0) + 1
        try:
            with trio.move_on_after(seconds):
                while True:
                    # Taken before the read: a commit during the read sets it, not missed.
                    event = self._events.setdefault(instance_id, trio.Event())
                    record = await read()
                    if record.terminal:
                        return record
                    with trio.move_on_after(self.recheck):
                        await event.wait()
            return await read()
        finally:
            left = self._counts.pop(instance_id) - 1
            if left:
                self._counts[instance_id] = left
            else:
                self._events.pop(instance_id, None)

    def waiting(self) -> int:
        """How many instances are long-polled now (no I/O)."""
        return len(self._events)
