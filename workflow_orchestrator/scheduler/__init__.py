"""The scheduler: durable timers of parked instances, schedules (cron, every, after) and the
schedule-firing loop, which runs on one replica at a time (``_leader``: leader election through
PostgreSQL with a lease and a fencing epoch)."""

from workflow_orchestrator.scheduler._scheduler import Scheduler
from workflow_orchestrator.scheduler._timer_service import TimerService

__all__ = ["Scheduler", "TimerService"]
