"""The retention sweep: finished instances older than their retention age are deleted.

One replica at a time sweeps: the sweeper campaigns for the ``retention`` role with the same
``LeaderLease`` as the schedule loop (lease ``scheduler.distributed.leaderElectionInterval``),
and every batch starts with the lease's fence, so a replica that lost the role deletes nothing
more. Every ``retention.sweepInterval`` the leader deletes batches of
``retention.batchSize`` instances until one comes back short, then logs one line. The age is
``retention.completedInstances`` (0: keep for ever), or a definition version's own
``document.metadata.retention`` (``7d``, ``12h``, ``0`` for ever); an override that is not a
duration is ignored with a warning. Deleted rows are counted by table in
``workflow_retention_deleted_total``. Audit-log rows older than ``security.audit.retention``
go in the same sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import attrs
import trio
import trio.lowlevel

from workflow_orchestrator.config import RetentionSettings
from workflow_orchestrator.config._convert import parse_duration
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.scheduler._leader import LeaderLease, Leadership, LeadershipLost
from workflow_orchestrator.storage import Database, delete_audit_entries_before
from workflow_orchestrator.storage.instances import (
    RetentionOverride,
    delete_expired_instances,
    retention_overrides,
)

__all__ = ["RETENTION_ROLE", "RetentionSweeper", "override_ages"]

logger = logging.getLogger(__name__)

RETENTION_ROLE = "retention"


def override_ages(
    overrides: Sequence[RetentionOverride],
) -> tuple[list[tuple[str, str, float]], list[RetentionOverride]]:
    """The overrides as ``(definition_id, version, seconds)``, and those that are not a
    duration (ignored)."""
    ages: list[tuple[str, str, float]] = []
    invalid: list[RetentionOverride] = []
    for override in overrides:
        seconds = parse_duration(override.raw)
        if seconds is None or seconds < 0:
            invalid.append(override)
        else:
            ages.append((override.definition_id, override.version, seconds))
    return ages, invalid


@attrs.define(eq=False, kw_only=True)
class RetentionSweeper:
    """See the module docstring; run with ``nursery.start(sweeper.run)``."""

    database: Database
    settings: RetentionSettings
    candidate_id: str
    lease_ttl: float
    metrics: ServiceMetrics | None = None
    # security.audit.retention: audit_log rows older than this are deleted (0: kept for ever).
    audit_retention: float = 0.0
    leader: LeaderLease = attrs.field(init=False)
    deleted_total: dict[str, int] = attrs.field(factory=dict, init=False)
    _warned: set[tuple[str, str]] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        self.leader = LeaderLease(
            database=self.database,
            role=RETENTION_ROLE,
            candidate_id=self.candidate_id,
            ttl=self.lease_ttl,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Campaign, and sweep every ``sweepInterval`` while leading, until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.leader.run)
            task_status.started()
            while True:
                leadership = await self.leader.wait_leadership()
                try:
                    await self.sweep(leadership)
                except LeadershipLost:
                    logger.info("retention sweep stopped: %s no longer leads it", self.candidate_id)
                except Exception as exc:  # the database may be away: the next sweep retries
                    logger.warning("retention sweep failed: %s", exc)
                await trio.sleep(self.settings.sweep_interval)

    async def sweep(self, leadership: Leadership) -> dict[str, int]:
        """Delete every expired finished instance, batch by batch; returns rows by table."""
        overrides, invalid = override_ages(await retention_overrides(self.database))
        self._warn(invalid)
        batch_size = self.settings.batch_size
        totals: dict[str, int] = {}
        while True:
            batch = await delete_expired_instances(
                self.database,
                default_age=self.settings.completed_instances,
                overrides=overrides,
                batch_size=batch_size,
                fence=leadership.require_fence,
            )
            for table, count in batch.deleted.items():
                totals[table] = totals.get(table, 0) + count
                self.deleted_total[table] = self.deleted_total.get(table, 0) + count
                if self.metrics is not None and count:
                    self.metrics.retention_deleted.labels(table).inc(count)
            if batch.instances < batch_size:
                break
            await trio.lowlevel.checkpoint()  # other work runs between batches
        if self.audit_retention > 0:
            cutoff = datetime.now(UTC) - timedelta(seconds=self.audit_retention)
            while True:
                count = await delete_audit_entries_before(self.database, cutoff, batch_size)
                totals["audit_log"] = totals.get("audit_log", 0) + count
                self.deleted_total["audit_log"] = self.deleted_total.get("audit_log", 0) + count
                if self.metrics is not None and count:
                    self.metrics.retention_deleted.labels("audit_log").inc(count)
                if count < batch_size:
                    break
                await trio.lowlevel.checkpoint()
        logger.info(
            "retention sweep deleted %d finished instances (%s)",
            totals.get("workflow_instances", 0),
            ", ".join(f"{table}: {count}" for table, count in sorted(totals.items())) or "none",
        )
        return totals

    def _warn(self, invalid: Sequence[RetentionOverride]) -> None:
        for override in invalid:
            key = (override.definition_id, override.version)
            if key not in self._warned:
                self._warned.add(key)
                logger.warning(
                    "definition %r version %r: document.metadata.retention %r is not a duration "
                    "such as 7d; its instances are kept for retention.completedInstances",
                    override.definition_id,
                    override.version,
                    override.raw,
                )
