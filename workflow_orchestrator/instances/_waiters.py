"""Long polls on instances: ``wait_terminal`` returns when an instance has ended.

A commit of a terminal status in this process wakes the waiters of that instance at once;
they poll the database every second too, as another replica (or a command there) may end the
instance without telling this one.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import attrs
import trio

from workflow_orchestrator.storage.instances import InstanceRecord

__all__ = ["TerminalWaiters"]

_POLL = 1.0


@attrs.define(eq=False)
class TerminalWaiters:
    """The instances long-polled in this process (no I/O of its own)."""

    _events: dict[uuid.UUID, trio.Event] = attrs.field(factory=dict, init=False)

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
        with trio.move_on_after(seconds):
            while True:
                record = await read()
                if record.terminal:
                    return record
                event = self._events.setdefault(instance_id, trio.Event())
                with trio.move_on_after(_POLL):
                    await event.wait()
        return await read()
