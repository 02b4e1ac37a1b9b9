"""The instances running in this process: one actor per instance id, while it runs.

An actor adds itself when it starts and removes itself when it stops (only itself: a newer
actor of the same instance may have replaced it). The runtime asks it whether an instance is
running here, to hand a command or a new run to the live actor instead of starting another.
"""

from __future__ import annotations

import uuid
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

    _actors: dict[uuid.UUID, LiveInstance] = attrs.field(factory=dict, init=False)

    def add(self, instance_id: uuid.UUID, actor: LiveInstance) -> None:
        self._actors[instance_id] = actor

    def discard(self, instance_id: uuid.UUID, actor: LiveInstance) -> None:
        """Remove ``actor`` if it is still the one registered for ``instance_id``."""
        if self._actors.get(instance_id) is actor:
            del self._actors[instance_id]

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
