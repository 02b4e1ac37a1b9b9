"""The durable timers of this replica's partitions: claimed from PostgreSQL, fired from memory.

Every ``poll_interval`` the service claims the timers of its partitions that are due within
``lookahead`` (waiting instances only: a suspended one keeps its timers and fires when resumed,
at the same absolute time; ``storage.scheduling.claim_due_timers`` skips the ones another
replica is claiming), marks them claimed for ``claim_for`` seconds after their due time, and
arms the runtime's in-memory wake-ups (``WakeTimers``), which activate the instance at its
earliest due time. The instance's next snapshot deletes its timers (consumed); a wake-up that
got lost (a crash between claim and firing) is claimed again once the claim runs out. When this
replica is granted partitions (new ones, or its own again under a new epoch), their earlier
claims are cleared first, so a restart or a takeover fires overdue timers at once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

import attrs
import trio

from workflow_orchestrator.instances import WakeTimers
from workflow_orchestrator.storage import Database, PartitionLeases
from workflow_orchestrator.storage.scheduling import (
    DueTimer,
    claim_due_timers,
    count_due_timers,
    release_timer_claims,
)

__all__ = ["TimerService", "earliest_due", "gained_partitions"]

logger = logging.getLogger(__name__)


def gained_partitions(previous: Mapping[int, int], held: Mapping[int, int]) -> list[int]:
    """The partitions of ``held`` (partition -> lease epoch) granted since ``previous``: new
    ones, and ones held again under another epoch (lost and regained meanwhile, or this
    replica restarted). Their timer claims are stale and must be released."""
    return [p for p, epoch in held.items() if previous.get(p) != epoch]


def earliest_due(timers: Iterable[DueTimer]) -> dict[uuid.UUID, datetime]:
    """Per instance, the earliest due time among ``timers`` (one wake-up per instance)."""
    earliest: dict[uuid.UUID, datetime] = {}
    for timer in timers:
        instance_id, due = timer.instance_id, timer.due_at
        if instance_id not in earliest or due < earliest[instance_id]:
            earliest[instance_id] = due
    return earliest


@attrs.define(eq=False)
class TimerService:
    """See the module docstring; run with ``nursery.start(service.run)``."""

    database: Database
    leases: PartitionLeases
    wake_timers: WakeTimers
    poll_interval: float = 1.0
    lookahead: float = 5.0
    claim_for: float = 30.0
    batch_size: int = 10_000
    claimed_total: int = attrs.field(default=0, init=False)
    _held: dict[int, int] = attrs.field(factory=dict, init=False)  # partition -> epoch

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Claim and arm until cancelled (the first round runs before reporting started)."""
        await self._round_logged()
        task_status.started()
        while True:
            await trio.sleep(self.poll_interval)
            await self._round_logged()

    async def _round_logged(self) -> None:
        try:
            while await self.claim_round() >= self.batch_size:
                pass  # a backlog: claim the next batch at once
        except Exception as exc:  # the database may be away: the next round retries
            logger.warning("claiming due timers failed: %s: %s", type(exc).__name__, exc)

    async def claim_round(self) -> int:
        """One claim (after clearing stale claims of newly held partitions); returns how many
        timers were claimed."""
        leases = self.leases.current().leases
        held = {p: lease.epoch for p, lease in leases.items()}
        gained = gained_partitions(self._held, held)
        if gained:  # granted anew (also back to this replica): earlier claims are stale
            await release_timer_claims(self.database, gained)
        self._held = held
        if not held:
            return 0
        claimed = await claim_due_timers(
            self.database,
            held,
            lookahead=self.lookahead,
            limit=self.batch_size,
            claim_for=self.claim_for,
        )
        for instance_id, due in earliest_due(claimed).items():
            self.wake_timers.arm(instance_id, due, replace=False)
        self.claimed_total += len(claimed)
        return len(claimed)

    async def pending_due(self, partitions: Collection[int] | None = None) -> int:
        """How many timers of this replica's partitions are due now or overdue (one query)."""
        held = partitions if partitions is not None else self._held.keys()
        if not held:
            return 0
        return await count_due_timers(self.database, held)
