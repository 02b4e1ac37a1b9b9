"""Storage for the scheduling audience: everything ``scheduler/`` reads and writes in PostgreSQL.

- durable timers: ``claim_due_timers``, ``release_timer_claims``, ``count_due_timers``;
- schedules (``cron``/``every``/``after``): ``load_schedules`` and ``commit_ticks`` (one
  fenced transaction per definition's due ticks), ``tick_idempotency_key``;
- leader leases: ``acquire_leadership``, ``renew_leadership``, ``release_leadership`` and
  ``check_fence``, the first statement of every write of a leader.

Every function crosses the asyncio bridge once and returns attrs records or plain values;
functions taking a ``connection`` run on the asyncio side, inside the caller's unit of work.
"""

from workflow_orchestrator.storage.scheduling._leader_leases import (
    Fence,
    LeaderGrant,
    LeaderObservation,
    acquire_leadership,
    check_fence,
    release_leadership,
    renew_leadership,
)
from workflow_orchestrator.storage.scheduling._schedules import (
    ScheduleRecord,
    TickCommit,
    commit_ticks,
    load_schedules,
    tick_idempotency_key,
)
from workflow_orchestrator.storage.scheduling._timers import (
    DueTimer,
    claim_due_timers,
    count_due_timers,
    release_timer_claims,
)

__all__ = [
    "DueTimer",
    "Fence",
    "LeaderGrant",
    "LeaderObservation",
    "ScheduleRecord",
    "TickCommit",
    "acquire_leadership",
    "check_fence",
    "claim_due_timers",
    "commit_ticks",
    "count_due_timers",
    "load_schedules",
    "release_leadership",
    "release_timer_claims",
    "renew_leadership",
    "tick_idempotency_key",
]
