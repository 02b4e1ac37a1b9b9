"""The outbox signal: commits that added outbox rows ring it, the outbox relay waits on it.

The composition root makes one per replica and hands ``notify`` to the ``SnapshotWriter`` (its
``on_outbox``) and the signal to ``EventProcessing``, whose relay (one per broker connection)
waits on it; so neither part rewires the other's callback, and a commit while no relay runs
(the broker is down) only leaves the signal set for the next relay.
"""

from __future__ import annotations

import attrs
import trio

__all__ = ["OutboxSignal"]


@attrs.define(eq=False)
class OutboxSignal:
    """A level-triggered wake-up: ``notify`` sets it, ``arm`` starts a new round."""

    _event: trio.Event = attrs.field(factory=trio.Event, init=False)

    def notify(self) -> None:
        """Rows were committed: wake the relay now. Cheap and idempotent; Trio thread only."""
        self._event.set()

    def arm(self) -> trio.Event:
        """Start a new round (before reading the outbox) and return the event the next
        ``notify`` sets, so a notification during the read is not lost."""
        self._event = trio.Event()
        return self._event
