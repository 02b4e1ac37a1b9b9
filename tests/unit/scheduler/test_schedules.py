"""The schedule loop's decisions without PostgreSQL: which ticks are due, which start."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from workflow_orchestrator.dsl.model import Duration, Schedule
from workflow_orchestrator.scheduler._schedules import DueTicks, plan_starts, schedule_due
from workflow_orchestrator.storage.scheduling import ScheduleRecord

UTC_TZ = ZoneInfo("UTC")
REGISTERED = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def record(
    *,
    last_tick: datetime | None = None,
    buffered_tick: datetime | None = None,
    status: str | None = None,
    completed_at: datetime | None = None,
) -> ScheduleRecord:
    return ScheduleRecord(
        definition_id="report",
        version="1.0.0",
        registered_at=REGISTERED,
        last_tick=last_tick,
        buffered_tick=buffered_tick,
        last_instance_id=uuid.uuid4() if status is not None else None,
        last_status=status,
        last_completed_at=completed_at,
    )


def due(schedule: Schedule, progress: ScheduleRecord, now: datetime) -> DueTicks:
    return schedule_due(schedule, progress, now=now, tz=UTC_TZ, catch_up="all", limit=100)


AFTER = Schedule(after=Duration(seconds=60))


def test_after_fires_at_registration_first() -> None:
    """An after schedule starts its first instance when registered."""
    assert due(AFTER, record(), REGISTERED + MINUTE) == DueTicks(
        fire=(REGISTERED,), watermark=REGISTERED
    )


def test_after_waits_while_the_previous_instance_runs() -> None:
    """Nothing is due, and no next tick is known, while the previous instance runs."""
    progress = record(last_tick=REGISTERED, status="running")
    assert due(AFTER, progress, REGISTERED + 10 * MINUTE) == DueTicks(fire=(), watermark=REGISTERED)


def test_after_is_due_its_delay_past_the_completion() -> None:
    """After completion the next tick is the delay later: upcoming before, due after."""
    done = REGISTERED + 5 * MINUTE
    progress = record(last_tick=REGISTERED, status="completed", completed_at=done)
    assert due(AFTER, progress, done) == DueTicks(
        fire=(), watermark=REGISTERED, following=done + MINUTE
    )
    assert due(AFTER, progress, done + 2 * MINUTE) == DueTicks(
        fire=(done + MINUTE,), watermark=done + MINUTE
    )


def test_every_fires_the_missed_ticks_and_names_the_next() -> None:
    """With catch-up all, every missed tick since the watermark is due; the next follows."""
    every = Schedule(every=Duration(seconds=60))
    now = REGISTERED + 3 * MINUTE + timedelta(seconds=30)
    found = due(every, record(last_tick=REGISTERED + MINUTE), now)
    assert found.fire == (REGISTERED + 2 * MINUTE, REGISTERED + 3 * MINUTE)
    assert found.watermark == REGISTERED + 3 * MINUTE
    assert found.following == REGISTERED + 4 * MINUTE


def test_allow_starts_every_tick() -> None:
    """allow starts each due tick even while the previous instance runs."""
    ticks = [REGISTERED, REGISTERED + MINUTE]
    planned = plan_starts("allow", record(status="running"), ticks, skipped=0)
    assert (planned.starts, planned.skipped, planned.buffered_count) == (tuple(ticks), 0, 0)


def test_skip_drops_ticks_while_the_previous_runs_and_counts_catch_up_skips() -> None:
    """skip starts nothing while the previous runs; catch-up skips add to the count."""
    planned = plan_starts("skip", record(status="running"), [REGISTERED], skipped=2)
    assert (planned.starts, planned.skipped, planned.buffered) == ((), 3, None)


def test_buffer_one_keeps_the_latest_tick_and_counts_the_replaced_one() -> None:
    """buffer-one keeps one tick while the previous runs; an older buffered one is dropped."""
    ticks = [REGISTERED, REGISTERED + MINUTE]
    planned = plan_starts("buffer-one", record(status="running"), ticks, skipped=0)
    assert planned.starts == ()
    assert planned.buffered == REGISTERED + MINUTE
    assert (planned.buffered_count, planned.skipped) == (2, 1)


def test_a_buffered_tick_starts_first_once_the_previous_ended() -> None:
    """The buffered tick starts when the previous instance ended, before the new ticks."""
    progress = record(buffered_tick=REGISTERED, status="completed", completed_at=REGISTERED)
    planned = plan_starts("buffer-one", progress, [REGISTERED + MINUTE], skipped=0)
    assert planned.starts == (REGISTERED,)
    assert planned.buffered == REGISTERED + MINUTE


def test_nothing_is_committed_when_nothing_moved() -> None:
    """No start and unchanged progress means no transaction; a moved watermark means one."""
    progress = record(last_tick=REGISTERED)
    planned = plan_starts("skip", progress, [], skipped=0)
    assert not planned.changes(progress, REGISTERED)
    assert planned.changes(progress, REGISTERED + MINUTE)
