"""The scheduler of one replica: durable timers always, schedules when enabled and elected.

``TimerService`` fires the timers of this replica's partitions (``wait``, timeouts, retry
delays of parked instances); it runs whatever ``scheduler.enabled`` says, because only the
partition's owner can wake its instances. ``scheduler.enabled: false`` turns off the firing of
schedules on this replica. With ``scheduler.distributed.enabled`` the replicas elect the one
that fires schedules (``LeaderLease``, lease ``leaderElectionInterval``); without it every
enabled replica fires them, and the tick keys still start one instance per tick. With
``retention`` settings, one elected replica also deletes finished instances past their
retention age (``RetentionSweeper``), whatever ``scheduler.enabled`` says.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs
import trio

from workflow_orchestrator.config import RetentionSettings, SchedulerSettings
from workflow_orchestrator.instances import InstanceRuntime, WakeTimers, WorkflowCatalog
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.scheduler._leader import LeaderLease
from workflow_orchestrator.scheduler._retention import RetentionSweeper
from workflow_orchestrator.scheduler._schedules import ScheduleLoop
from workflow_orchestrator.scheduler._timer_service import TimerService
from workflow_orchestrator.storage import Database, PartitionLeases

__all__ = ["Scheduler"]

logger = logging.getLogger(__name__)


@attrs.define(eq=False)
class Scheduler:
    """See the module docstring; run with ``nursery.start(scheduler.run)``.

    ``runtime`` activates the instances schedules start; ``wake_timers`` are the runtime's
    in-memory wake-ups, which the timer service arms; ``leases`` are this replica's
    partitions and ``catalog`` the definitions' interpreters.
    """

    settings: SchedulerSettings
    runtime: InstanceRuntime
    database: Database
    leases: PartitionLeases
    catalog: WorkflowCatalog
    wake_timers: WakeTimers
    owner_id: str
    metrics: ServiceMetrics | None = None
    retention: RetentionSettings | None = None
    audit_retention: float = 0.0
    timers: TimerService = attrs.field(init=False)
    sweeper: RetentionSweeper | None = attrs.field(default=None, init=False)
    leader: LeaderLease | None = attrs.field(default=None, init=False)
    schedules: ScheduleLoop | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self.timers = TimerService(
            database=self.database,
            leases=self.leases,
            wake_timers=self.wake_timers,
            poll_interval=self.settings.poll_interval,
            lookahead=self.lookahead_for(self.settings),
        )
        if self.retention is not None:
            self.sweeper = RetentionSweeper(
                database=self.database,
                settings=self.retention,
                candidate_id=self.owner_id,
                lease_ttl=self.settings.distributed.leader_election_interval,
                metrics=self.metrics,
                audit_retention=self.audit_retention,
            )
        if not self.settings.enabled:
            return
        distributed = self.settings.distributed
        if distributed.enabled:
            metrics = self.metrics

            def changed(leading: bool) -> None:
                logger.info(
                    "%s %s the schedule leader",
                    self.owner_id,
                    "is now" if leading else "is no longer",
                )
                if metrics is not None:
                    metrics.leadership_changes.inc()

            self.leader = LeaderLease(
                database=self.database,
                candidate_id=self.owner_id,
                ttl=distributed.leader_election_interval,
                on_change=changed,
            )
        self.schedules = ScheduleLoop(
            settings=self.settings,
            runtime=self.runtime,
            database=self.database,
            leases=self.leases,
            catalog=self.catalog,
            leader=self.leader,
            metrics=self.metrics,
        )

    @staticmethod
    def lookahead_for(settings: SchedulerSettings) -> float:
        """How far ahead timers are held in memory: a few polls, at least 5 s."""
        return max(5.0, 3 * settings.poll_interval)

    @staticmethod
    def on_timer_fired(metrics: ServiceMetrics) -> Callable[[float], None]:
        """What the runtime's wake-up timers report each firing to (its lateness in
        seconds): the timer metrics. Given to the runtime when it is built."""

        def fired(lateness: float) -> None:
            metrics.timers_fired.inc()
            metrics.timer_lateness.observe(max(lateness, 0.0))

        return fired

    async def run(
        self, *, task_status: trio.TaskStatus[Scheduler] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.timers.run)
            if self.sweeper is not None:
                await nursery.start(self.sweeper.run)
            if self.leader is not None:
                await nursery.start(self.leader.run)
            if self.schedules is not None:
                await nursery.start(self.schedules.run)
            task_status.started(self)

    # -- health ---------------------------------------------------------------------------

    def is_leader(self) -> bool | None:
        """Whether this replica fires schedules now (None: schedules are disabled here)."""
        if self.schedules is None:
            return None
        return self.leader.is_leader if self.leader is not None else True

    def last_execution(self) -> datetime | None:
        """The last timer fired or schedule tick started, whichever is later."""
        tick = self.schedules.last_tick_at if self.schedules is not None else None
        moments = [m for m in (self.wake_timers.last_fired_at, tick) if m]
        return max(moments, default=None)

    async def report(self) -> dict[str, Any]:
        """The health details (one query); times are ``datetime`` values, which the health
        document writes in its own format."""
        return {
            "enabled": self.settings.enabled,
            "pendingTasks": await self.timers.pending_due(),
            "lastExecutionTime": self.last_execution(),
            "leader": self.is_leader(),
            "armedTimers": self.wake_timers.armed(),
            "timersFired": self.wake_timers.fired_total,
            "scheduledInstancesStarted": (
                self.schedules.started_total if self.schedules is not None else 0
            ),
            "leaderEpoch": (
                leadership.epoch
                if self.leader is not None and (leadership := self.leader.current())
                else None
            ),
        }
