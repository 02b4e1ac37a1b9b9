"""The scheduler of one replica: durable timers always, schedules when enabled and elected.

``TimerService`` fires the timers of this replica's partitions (``wait``, timeouts, retry
delays of parked instances); it runs whatever ``scheduler.enabled`` says, because only the
partition's owner can wake its instances. ``scheduler.enabled: false`` turns off the firing of
schedules on this replica.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import attrs
import trio

from workflow_orchestrator.config import SchedulerSettings
from workflow_orchestrator.instances import InstanceRuntime
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.scheduler._timer_service import TimerService

__all__ = ["Scheduler"]

logger = logging.getLogger(__name__)


@attrs.define(eq=False)
class Scheduler:
    """See the module docstring; run with ``nursery.start(scheduler.run)``."""

    settings: SchedulerSettings
    runtime: InstanceRuntime
    owner_id: str
    metrics: ServiceMetrics | None = None
    timers: TimerService = attrs.field(init=False)
    last_tick_at: datetime | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self.timers = TimerService(
            runtime=self.runtime,
            poll_interval=self.settings.poll_interval,
            lookahead=self.lookahead_for(self.settings),
        )

    @staticmethod
    def lookahead_for(settings: SchedulerSettings) -> float:
        """How far ahead timers are held in memory: a few polls, at least 5 s."""
        return max(5.0, 3 * settings.poll_interval)

    async def run(
        self, *, task_status: trio.TaskStatus[Scheduler] = trio.TASK_STATUS_IGNORED
    ) -> None:
        metrics = self.metrics
        if metrics is not None:

            def fired(lateness: float) -> None:
                metrics.timers_fired.inc()
                metrics.timer_lateness.observe(max(lateness, 0.0))

            self.runtime.timers.on_fire = fired
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.timers.run)
                task_status.started(self)
        finally:
            self.runtime.timers.on_fire = None

    # -- health ---------------------------------------------------------------------------

    def is_leader(self) -> bool | None:
        """Whether this replica fires schedules now (None: schedules are disabled here)."""
        return None if not self.settings.enabled else False

    def last_execution(self) -> datetime | None:
        """The last timer fired or schedule tick started, whichever is later."""
        moments = [m for m in (self.runtime.timers.last_fired_at, self.last_tick_at) if m]
        return max(moments, default=None)

    async def report(self) -> dict[str, Any]:
        """The health details (one query)."""
        last = self.last_execution()
        return {
            "enabled": self.settings.enabled,
            "pendingTasks": await self.timers.pending_due(),
            "lastExecutionTime": last.isoformat() if last is not None else None,
            "leader": self.is_leader(),
            "armedTimers": self.runtime.timers.armed(),
            "timersFired": self.runtime.timers.fired_total,
        }
