"""Wake-ups across replicas: events delivered to (or instances started for) another replica's
partitions are announced by the routing transaction on ``workflow_wake``; the owner activates
them. A sweep catches what a lost notification (a dropped LISTEN connection) missed: waiting
instances of this replica's partitions with events in their inbox, and pending instances that
nobody runs, both older than ``sweep_after`` seconds. A ``*`` in a payload (a wake-up too large
to name every instance) makes the runtime drain its backlog from the database in pages.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Container

import attrs
import trio

from workflow_orchestrator.instances import InstanceRuntime
from workflow_orchestrator.storage import Database, NotificationListener, PartitionLeases
from workflow_orchestrator.storage.events import WAKE_CHANNEL, instances_to_wake
from workflow_orchestrator.storage.instances import partition_of

__all__ = ["DRAIN_ALL", "WakeListener", "wake_target"]

#: The payload item that asks every owner to drain its backlog of instances with events.
DRAIN_ALL = "*"

logger = logging.getLogger(__name__)


def wake_target(text: str, held: Container[int], live: Container[uuid.UUID]) -> uuid.UUID | None:
    """The instance to activate for one id of a wake-up payload: None when the text is not an
    instance id (a payload is untrusted), when another replica holds its partition, or when
    it runs here already."""
    try:
        instance_id = uuid.UUID(text)
    except ValueError:
        return None
    if partition_of(instance_id) in held and instance_id not in live:
        return instance_id
    return None


@attrs.define(eq=False)
class WakeListener:
    """LISTEN ``workflow_wake`` and activate this replica's instances (see module docstring)."""

    runtime: InstanceRuntime
    database: Database
    leases: PartitionLeases
    sweep_every: float = 5.0
    sweep_after: float = 5.0
    _send: trio.MemorySendChannel[str] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[str](100_000)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                NotificationListener(
                    database=self.database,
                    channel=WAKE_CHANNEL,
                    on_payload=self._push,
                    name="wake-ups",
                ).run
            )
            nursery.start_soon(self._sweep)
            task_status.started()
            async for payload in self._receive:
                await self._activate(payload.split(","))

    def _push(self, payload: str) -> None:
        with contextlib.suppress(trio.WouldBlock):  # full: the sweep finds them later
            self._send.send_nowait(payload)

    async def _activate(self, ids: list[str]) -> None:
        held = self.leases.current().partitions
        if DRAIN_ALL in ids:
            self.runtime.request_drain()  # more than a notification names: read them back
        for text in ids:
            # Asked per id: an activation makes the instance live, so a repeated id is skipped.
            instance_id = wake_target(text, held, self.runtime.live)
            if instance_id is not None:
                await self.runtime.activate(instance_id)

    async def _sweep(self) -> None:
        while True:
            await trio.sleep(self.sweep_every)
            held = self.leases.current().partitions
            if not held:
                continue
            try:
                found = await instances_to_wake(self.database, held, older_than=self.sweep_after)
            except Exception as exc:  # the database may be away: the next sweep retries
                logger.debug("wake sweep failed: %s", exc)
                continue
            await self._activate([str(instance_id) for instance_id in found])
