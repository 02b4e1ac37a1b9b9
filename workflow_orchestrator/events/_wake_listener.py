"""Wake-ups across replicas: events delivered to (or instances started for) another replica's
partitions are announced by the routing transaction on ``workflow_wake``; the owner activates
them. A sweep catches what a lost notification (a dropped LISTEN connection) missed: waiting
instances of this replica's partitions with events in their inbox, and pending instances that
nobody runs, both older than ``sweep_after`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any

import attrs
import trio
import trio_asyncio

from workflow_orchestrator.instances import InstanceRuntime
from workflow_orchestrator.storage import WAKE_CHANNEL, partition_of

__all__ = ["WakeListener"]

logger = logging.getLogger(__name__)

_SWEEP_SQL = """
SELECT w.instance_id FROM workflow_instances w
WHERE w.partition = ANY($1::int[]) AND w.updated_at < now() - make_interval(secs => $2)
  AND ((w.status = 'waiting'
        AND EXISTS (SELECT 1 FROM instance_inbox i WHERE i.instance_id = w.instance_id))
       OR w.status = 'pending')
LIMIT 1000
"""


@attrs.define(eq=False)
class WakeListener:
    """LISTEN ``workflow_wake`` and activate this replica's instances (see module docstring)."""

    runtime: InstanceRuntime
    sweep_every: float = 5.0
    sweep_after: float = 5.0
    _send: trio.MemorySendChannel[str] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[str](100_000)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self._listen)
            nursery.start_soon(self._sweep)
            task_status.started()
            async for payload in self._receive:
                await self._activate(payload.split(","))

    async def _activate(self, ids: list[str]) -> None:
        held = self.runtime.leases.current().partitions
        for text in ids:
            try:
                instance_id = uuid.UUID(text)
            except ValueError:
                continue
            if partition_of(instance_id) in held and instance_id not in self.runtime.live:
                await self.runtime.activate(instance_id)

    async def _sweep(self) -> None:
        while True:
            await trio.sleep(self.sweep_every)
            held = sorted(self.runtime.leases.current().partitions)
            if not held:
                continue
            try:
                rows = await self.runtime.database.fetch(_SWEEP_SQL, held, self.sweep_after)
            except Exception as exc:  # the database may be away: the next sweep retries
                logger.debug("wake sweep failed: %s", exc)
                continue
            await self._activate([str(r["instance_id"]) for r in rows])

    async def _listen(self, *, task_status: trio.TaskStatus[None]) -> None:
        token = trio.lowlevel.current_trio_token()
        send = self._send

        def push(payload: str) -> None:
            with contextlib.suppress(trio.WouldBlock):  # full: the sweep finds them later
                send.send_nowait(payload)

        def notified(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(push, payload)

        reported = False
        while True:
            try:
                async with self.runtime.database.dedicated() as connection:
                    await trio_asyncio.aio_as_trio(connection.add_listener)(WAKE_CHANNEL, notified)
                    if not reported:
                        task_status.started()
                        reported = True
                    while not connection.is_closed():
                        await trio.sleep(5.0)
                        with trio.fail_after(10.0):
                            await trio_asyncio.aio_as_trio(connection.fetchval)("SELECT 1")
            except Exception as exc:  # the connection dropped: the sweep covers the gap
                logger.warning("LISTEN %s failed (%s); retrying", WAKE_CHANNEL, exc)
                if not reported:
                    task_status.started()
                    reported = True
                await trio.sleep(2.0)
