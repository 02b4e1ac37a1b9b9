"""The schedule-firing loop: starts the instances of ``cron``/``every``/``after`` schedules.

On the replica that leads (``_leader``; every replica when ``distributed.enabled`` is false, the
tick keys then keep one instance per tick), each round loads the scheduled definitions (latest
live version, anchored at its registration) with their progress, works out the due ticks
(``_ticks``: catch-up policy, overlap policy) and commits, per definition, the started instances
and the new progress in one transaction fenced by the leader's epoch. A tick's instance has the
idempotency key of (definition, version, tick), so no tick starts twice, even across leaders.
Rounds run every ``poll_interval`` and at the next tick, whichever comes first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

from workflow_orchestrator.config import SchedulerSettings
from workflow_orchestrator.dsl.model import Schedule
from workflow_orchestrator.instances import InstanceRuntime, WorkflowCatalog
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.scheduler._leader import LeaderLease, Leadership
from workflow_orchestrator.scheduler._ticks import (
    CatchUp,
    OverlapAction,
    OverlapPolicy,
    ScheduleError,
    decide_overlap,
    load_timezone,
    next_after_completion,
    next_tick,
    plan_ticks,
)
from workflow_orchestrator.storage import Database, PartitionLeases
from workflow_orchestrator.storage.instances import RecoverableInstance
from workflow_orchestrator.storage.scheduling import (
    Fence,
    ScheduleRecord,
    commit_ticks,
    load_schedules,
)

__all__ = ["DueTicks", "ScheduleLoop", "TickStarts", "plan_starts", "schedule_due"]

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class DueTicks:
    """What a schedule owes now: the ticks to fire, the new watermark (``last_tick``), how
    many ticks catch-up skipped, and the next tick after now (None: none, or not known until
    the previous instance completes)."""

    fire: tuple[datetime, ...]
    watermark: datetime | None
    skipped: int = 0
    following: datetime | None = None


@attrs.frozen(kw_only=True)
class TickStarts:
    """The overlap policy applied to due ticks: the ticks that start instances, the buffered
    tick afterwards, and how many ticks were skipped (catch-up included) or buffered."""

    starts: tuple[datetime, ...]
    buffered: datetime | None
    skipped: int
    buffered_count: int

    def changes(self, record: ScheduleRecord, watermark: datetime | None) -> bool:
        """Whether there is anything to commit: a start, or progress that moved."""
        return bool(self.starts) or (
            watermark != record.last_tick or self.buffered != record.buffered_tick
        )


def schedule_due(
    schedule: Schedule,
    record: ScheduleRecord,
    *,
    now: datetime,
    tz: Any,
    catch_up: CatchUp,
    limit: int,
) -> DueTicks:
    """The ticks of ``schedule`` due at ``now`` given its progress ``record``. ``after``
    fires at registration, then ``after`` past the completion of the previous instance
    (nothing while it runs); ``cron``/``every`` follow ``plan_ticks`` (catch-up policy).
    Raises ``ScheduleError`` for a schedule that cannot be computed."""
    if schedule.after is not None:
        if record.last_instance_id is None:
            due = record.registered_at
        elif record.previous_running or record.last_completed_at is None:
            return DueTicks(fire=(), watermark=record.last_tick)
        else:
            found = next_after_completion(schedule, completed_at=record.last_completed_at)
            if found is None:
                return DueTicks(fire=(), watermark=record.last_tick)
            due = found
        if due > now:
            return DueTicks(fire=(), watermark=record.last_tick, following=due)
        return DueTicks(fire=(due,), watermark=due)
    plan = plan_ticks(
        schedule,
        anchor=record.registered_at,
        last_tick=record.last_tick,
        now=now,
        tz=tz,
        catch_up=catch_up,
        limit=limit,
    )
    following = plan.next_tick
    if following is None:
        following = next_tick(schedule, anchor=record.registered_at, after=now, tz=tz)
    return DueTicks(
        fire=tuple(plan.fire), watermark=plan.last_tick, skipped=plan.skipped, following=following
    )


def plan_starts(
    policy: OverlapPolicy, record: ScheduleRecord, ticks: Sequence[datetime], *, skipped: int
) -> TickStarts:
    """Apply the overlap ``policy`` to the due ``ticks``: a buffered tick starts first once
    the previous instance ended, then each tick starts, is buffered or is skipped
    (``decide_overlap``); ``skipped`` (by catch-up) is added to the skipped count."""
    running = record.previous_running
    buffered = record.buffered_tick
    starts: list[datetime] = []
    buffered_count = 0
    if buffered is not None and not running:
        starts.append(buffered)  # the buffered tick's turn: the previous one has ended
        buffered, running = None, True
    for tick in ticks:
        decision = decide_overlap(policy, previous_running=running, buffered=buffered, tick=tick)
        if decision.action is OverlapAction.START:
            starts.append(tick)
            running = True
        elif decision.action is OverlapAction.BUFFER:
            buffered_count += 1
        else:
            skipped += 1
        if decision.dropped is not None and decision.action is not OverlapAction.SKIP:
            skipped += 1
        buffered = decision.buffered
    return TickStarts(
        starts=tuple(starts), buffered=buffered, skipped=skipped, buffered_count=buffered_count
    )


@attrs.define(eq=False)
class ScheduleLoop:
    """See the module docstring; run with ``nursery.start(loop.run)``."""

    settings: SchedulerSettings
    runtime: InstanceRuntime
    database: Database
    leases: PartitionLeases
    catalog: WorkflowCatalog
    leader: LeaderLease | None = None  # None: this replica always fires (no election)
    metrics: ServiceMetrics | None = None
    last_tick_at: datetime | None = attrs.field(default=None, init=False)
    started_total: int = attrs.field(default=0, init=False)
    _invalid_logged: set[tuple[str, str]] = attrs.field(factory=set, init=False)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            wait = self.settings.poll_interval
            leadership = self.leader.current() if self.leader is not None else None
            if self.leader is None or leadership is not None:
                try:
                    upcoming = await self.fire_due(leadership)
                except Exception as exc:  # the database may be away: the next round retries
                    logger.warning("firing schedules failed: %s: %s", type(exc).__name__, exc)
                else:
                    if upcoming is not None:
                        until = (upcoming - datetime.now(UTC)).total_seconds()
                        wait = min(wait, max(until, 0.0))
            await trio.sleep(wait)

    async def fire_due(self, leadership: Leadership | None) -> datetime | None:
        """One round: start every due tick; returns the earliest upcoming tick (or None)."""
        tz = load_timezone(self.settings.timezone)
        upcoming: datetime | None = None
        for record in await load_schedules(self.database):
            schedule = await self._schedule_of(record)
            if schedule is None:
                continue
            now = datetime.now(UTC)
            try:
                due = schedule_due(
                    schedule,
                    record,
                    now=now,
                    tz=tz,
                    catch_up=self.settings.catch_up,  # type: ignore[arg-type]
                    limit=self.settings.catch_up_limit,
                )
            except ScheduleError as exc:
                self._log_invalid(record, exc)
                continue
            following = due.following
            if following is not None and (upcoming is None or following < upcoming):
                upcoming = following
            await self._start(record, due, leadership)
        return upcoming

    async def _start(
        self, record: ScheduleRecord, due: DueTicks, leadership: Leadership | None
    ) -> None:
        planned = plan_starts(
            self.settings.overlap_policy,  # type: ignore[arg-type]
            record,
            due.fire,
            skipped=due.skipped,
        )
        if not planned.changes(record, due.watermark):
            return
        starts = list(planned.starts)
        outcomes = {"skipped": planned.skipped, "buffered": planned.buffered_count}
        commit = await commit_ticks(
            self.database,
            record,
            starts=starts,
            last_tick=due.watermark,
            buffered_tick=planned.buffered,
            fence=self._fence(leadership),
            epoch=leadership.epoch if leadership is not None else 0,
            local_partitions=self.leases.current().partitions,
        )
        if commit.fenced:
            logger.warning(
                "schedule of %s not fired: this replica no longer leads (epoch %s)",
                record.definition_id,
                leadership.epoch if leadership is not None else None,
            )
            return
        held = self.leases.current().partitions
        for created in commit.created:
            if created.partition in held:
                await self.runtime.activate(
                    created.instance_id, RecoverableInstance(record=created, snapshot=None)
                )
        if commit.created:
            self.last_tick_at = datetime.now(UTC)
            self.started_total += len(commit.created)
            logger.info(
                "schedule of %s@%s started %d instance(s)",
                record.definition_id,
                record.version,
                len(commit.created),
            )
        metrics = self.metrics
        if metrics is not None:
            if commit.created:
                metrics.schedule_ticks.labels("started").inc(len(commit.created))
            for outcome, count in outcomes.items():
                if count:
                    metrics.schedule_ticks.labels(outcome).inc(count)

    def _fence(self, leadership: Leadership | None) -> Fence | None:
        """The tick transaction's first statement: the leader's epoch still holds the lease.
        A leader that stalls inside it loses its session after half a lease, so a takeover is
        not held back by its row lock."""
        if leadership is None or self.leader is None:
            return None
        idle = self.leader.ttl / 2
        return lambda connection: leadership.fence(connection, idle_timeout=idle)

    async def _schedule_of(self, record: ScheduleRecord) -> Schedule | None:
        try:
            interpreter = await self.catalog.interpreter(record.definition_id, record.version)
        except Exception as exc:  # a definition that no longer builds: logged once
            self._log_invalid(record, exc)
            return None
        return interpreter.workflow.schedule

    def _log_invalid(self, record: ScheduleRecord, exc: BaseException) -> None:
        key = (record.definition_id, record.version)
        if key not in self._invalid_logged:
            self._invalid_logged.add(key)
            logger.error(
                "the schedule of %s@%s cannot run: %s",
                record.definition_id,
                record.version,
                exc,
            )
