"""The scheduler: durable timers of parked instances, schedules (cron, every, after) and the
schedule-firing loop, which runs on one replica at a time (``LeaderLease``: leader election
through PostgreSQL with a lease and a fencing epoch)."""

from workflow_orchestrator.scheduler._leader import LeaderLease, Leadership, LeadershipLost
from workflow_orchestrator.scheduler._retention import RetentionSweeper
from workflow_orchestrator.scheduler._scheduler import Scheduler
from workflow_orchestrator.scheduler._schedules import ScheduleLoop
from workflow_orchestrator.scheduler._ticks import ScheduleError, validate_schedule
from workflow_orchestrator.scheduler._timer_service import TimerService

__all__ = [
    "LeaderLease",
    "Leadership",
    "LeadershipLost",
    "RetentionSweeper",
    "ScheduleError",
    "ScheduleLoop",
    "Scheduler",
    "TimerService",
    "validate_schedule",
]
