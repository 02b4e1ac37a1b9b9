"""The unfinished instances of this replica's partitions, counted now and then for the gauge.

Parked instances have no actor, so how many wait is known only to the database: every
``interval`` seconds the census counts the unfinished instances of the partitions this replica
holds, by definition and status (one statement on the partial index of active instances), and
keeps the result for ``/metrics`` to read without I/O. Summed over the replicas, each partition
is counted once. The pause after a count is at least ``1 / max_share`` times as long as the
count took, so the census never spends more than ``max_share`` of the database's time however
many instances wait. A count that fails empties the result (the gauge shows no value rather
than an old one) and is retried after the next pause.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping

import attrs
import trio

from workflow_orchestrator.instances._repository import LeaseView
from workflow_orchestrator.storage.instances import InstanceCount

__all__ = ["InstanceCensus"]

logger = logging.getLogger(__name__)

#: ``count(partitions)``: the unfinished instances of ``partitions`` by definition and status.
Count = Callable[[Collection[int]], Awaitable[list[InstanceCount]]]


@attrs.define(eq=False)
class InstanceCensus:
    """See the module docstring; run with ``nursery.start(census.run)``."""

    count: Count
    leases: LeaseView
    interval: float = 15.0
    max_share: float = 0.01
    _counts: dict[tuple[str, str], int] = attrs.field(factory=dict, init=False)
    _failing: bool = attrs.field(default=False, init=False)

    def counts(self) -> Mapping[tuple[str, str], int]:
        """The last count: instances by (definition id, status); no I/O."""
        return self._counts

    async def refresh(self) -> float:
        """Count now; returns how long the count took, in seconds."""
        started = time.perf_counter()
        try:
            found = await self.count(self.leases.current().partitions)
        except Exception as exc:  # the database may be away: the next round counts again
            self._counts = {}
            if not self._failing:
                logger.warning(
                    "counting the unfinished instances failed: %s: %s", type(exc).__name__, exc
                )
            self._failing = True
        else:
            self._counts = {(c.definition_id, str(c.status)): c.instances for c in found}
            self._failing = False
        return time.perf_counter() - started

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Count, report started, then count again after each pause until cancelled."""
        took = await self.refresh()
        task_status.started()
        while True:
            await trio.sleep(max(self.interval, took / self.max_share))
            took = await self.refresh()
