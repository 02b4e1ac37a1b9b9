"""The instances running in this process: one actor per instance id, while it runs.

An actor adds itself when it starts and removes itself when it stops (only itself: a newer
actor of the same instance may have replaced it). The runtime asks it whether an instance is
running here, to hand a command or a new run to the live actor instead of starting another.

It also counts the stops, so that what was read of an instance before one of its runs ended
can be recognised as stale: take a ``stamp()`` before reading instances from the database,
and ``stopped_since(instance_id, stamp)`` tells whether an actor of that instance stopped
since (its last commit may be newer than what was read). The stops of the last
``remembered`` instances are kept; for a stamp older than what was forgotten, every instance
counts as stopped since (a wasted read, never a stale run).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterator
from typing import Protocol

import attrs

from workflow_orchestrator.storage.instances import InstanceStatus

__all__ = ["LiveInstance", "LiveInstances"]


class LiveInstance(Protocol):
    """What the runtime asks of a running instance's actor (``InstanceActor``)."""

    def run_again(self) -> bool:
        """Run once more after the current run (False: too late, the actor is ending)."""
        ...

    async def wait_gone(self) -> None:
        """Wait until the actor has stopped."""
        ...

    async def interrupt(self, status: InstanceStatus, *, patience: float) -> bool:
        """Stop the run and commit ``status`` (cancelled or suspended); False when the run
        did not settle within ``patience`` seconds."""
        ...

    def abandon(self) -> None:
        """Cancel the run without committing (shutdown): the instance resumes from its last
        commit where it runs next."""
        ...


@attrs.define(eq=False)
class LiveInstances:
    """The live actors by instance id (no I/O)."""

    remembered: int = 65_536
    _actors: dict[uuid.UUID, LiveInstance] = attrs.field(factory=dict, init=False)
    _stops: int = attrs.field(default=0, init=False)
    # instance id -> the stop count when its last actor stopped, oldest first (bounded)
    _stopped: OrderedDict[uuid.UUID, int] = attrs.field(factory=OrderedDict, init=False)
    _forgotten: int = attrs.field(default=-1, init=False)  # the latest stop count evicted

    def add(self, instance_id: uuid.UUID, actor: LiveInstance) -> None:
        self._actors[instance_id] = actor

    def discard(self, instance_id: uuid.UUID, actor: LiveInstance) -> None:
        """Remove ``actor`` if it is still the one registered for ``instance_id`` (a stop)."""
        if self._actors.get(instance_id) is actor:
            del self._actors[instance_id]
            self._stopped[instance_id] = self._stops
            self._stopped.move_to_end(instance_id)
            self._stops += 1
            while len(self._stopped) > self.remembered:
                _, self._forgotten = self._stopped.popitem(last=False)

    def stamp(self) -> int:
        """The moment, in stops, before a read of instances (see ``stopped_since``)."""
        return self._stops

    def stopped_since(self, instance_id: uuid.UUID, stamp: int) -> bool:
        """Whether an actor of ``instance_id`` stopped after ``stamp`` was taken (True as
        well when that can no longer be told)."""
        return stamp <= self._forgotten or self._stopped.get(instance_id, -1) >= stamp

    def abandon_all(self) -> int:
        """Cancel every live run without committing (shutdown); returns how many."""
        actors = list(self._actors.values())
        for actor in actors:
            actor.abandon()
        return len(actors)

    def get(self, instance_id: uuid.UUID) -> LiveInstance | None:
        return self._actors.get(instance_id)

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._actors

    def __len__(self) -> int:
        return len(self._actors)

    def __iter__(self) -> Iterator[uuid.UUID]:
        return iter(self._actors)
