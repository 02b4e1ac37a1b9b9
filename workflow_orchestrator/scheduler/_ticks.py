"""Pure arithmetic of the DSL ``schedule``: which ticks are due, and what to do when they overlap.

No I/O and no Trio: the leader loop passes the definition's `Schedule`, the moment the definition
was registered (``anchor``), the last tick it fired, the current time and the scheduler settings,
and gets back plain values. Every datetime in and out is time-zone aware; results are in UTC.
The configured time zone (``scheduler.timezone``) only matters for ``cron``.

Decisions
---------
``every``
    Ticks are ``anchor + k * interval`` for ``k >= 0``: the first instance starts at
    registration, then one per interval of elapsed time, whether or not the previous one is
    still running. The time zone is irrelevant, so ``every: P1D`` drifts by an hour of wall-clock
    time across a daylight-saving change; use ``cron`` for wall-clock schedules.
``cron``
    Five fields (``minute hour day-of-month month day-of-week``, standard Unix cron, numeric
    day-of-week ``0``/``7`` = Sunday), six fields with the SECONDS FIRST as in Quartz/Spring
    (``second minute hour day-of-month month day-of-week``, e.g. ``0 */5 * * * *``), or one of
    ``@yearly @annually @monthly @weekly @daily @midnight @hourly``. Seven fields (years),
    ``@reboot`` and Jenkins-style ``H`` hashes are rejected with a `ScheduleError`. Ticks are
    evaluated by croniter in the configured time zone, only at or after ``anchor``.
Daylight saving (cron)
    Spring forward: wall-clock times inside the gap do not exist. croniter moves an expression
    that names the missing hour to the end of the gap, where the missed occurrences collapse
    into a single tick (Europe/Paris ``30 2 * * *`` fires at 03:00 CEST = 01:00 UTC that day, so a
    daily job is not lost); with ``*`` in the hour field the missing hour simply has no ticks
    (``0 * * * *`` fires 23 times that local day). Fall back: as in Vixie cron, a "fixed-time"
    expression (its seconds, minute and hour fields do not start with ``*``) fires only on the
    FIRST occurrence of a repeated wall-clock time (``30 2 * * *`` fires once, at 02:30 CEST),
    while a wildcard expression fires on both, since they are distinct real instants
    (``0 * * * *`` fires 25 times that local day).
``after``
    Not periodic: the first instance starts at registration, each next one at the previous
    instance's completion time plus `after_delay` (see `next_after_completion`).
Several of ``every``/``cron``/``after`` in one schedule
    Rejected (`ScheduleError`): the DSL gives no meaning to their combination. ``on`` is handled
    by event correlation, not here.
Catch-up (`plan_ticks`, `due_ticks`)
    The due ticks are those in ``(last_tick, now]`` (``[anchor, now]`` before the first one).
    ``all`` fires the OLDEST ``limit`` of them, in order, and skips the rest; ``one`` fires only
    the latest; ``none`` fires the latest only if it is at most ``grace`` old (the loop is merely
    a little late), otherwise nothing: after downtime the missed ticks are dropped and the
    schedule resumes at the next future tick. In every case the returned watermark
    (`TickPlan.last_tick`) is the latest due tick, so skipped ticks are never fired later.
Overlap (`decide_overlap`)
    ``allow`` always starts; ``skip`` starts only if the previous scheduled instance is not
    running, else drops the tick; ``buffer-one`` keeps the tick as the single buffered one while
    the previous runs (replacing, and so dropping, an older buffered tick) and the caller starts
    it when the previous instance completes.
"""

from __future__ import annotations

import enum
import functools
import re
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Literal

import attrs
from croniter import (  # type: ignore[import-untyped]  # croniter 7 ships no hints
    CroniterBadDateError,
    CroniterError,
    croniter,
)

from workflow_orchestrator.dsl.model import Duration, Schedule
from workflow_orchestrator.errors import OrchestratorError

__all__ = [
    "DEFAULT_GRACE",
    "SKIP_COUNT_CAP",
    "CatchUp",
    "CronExpression",
    "OverlapAction",
    "OverlapDecision",
    "OverlapPolicy",
    "ScheduleError",
    "TickPlan",
    "after_delay",
    "decide_overlap",
    "due_ticks",
    "every_interval",
    "load_timezone",
    "next_after_completion",
    "next_tick",
    "parse_cron",
    "plan_ticks",
    "validate_schedule",
]

CatchUp = Literal["none", "one", "all"]
OverlapPolicy = Literal["allow", "skip", "buffer-one"]

DEFAULT_GRACE = timedelta(seconds=5)
"""How late a tick may fire under ``catch_up='none'``: a few poll intervals of loop latency."""

SKIP_COUNT_CAP = 10_000
"""Cron ticks are counted one by one: beyond this many, `TickPlan.skipped` reports this value."""

_CRON_FORMS = (
    "use 5 fields 'minute hour day-of-month month day-of-week' (e.g. '0 0 * * *'), "
    "6 fields with the seconds first (e.g. '0 */5 * * * *') or a macro such as @daily"
)
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)
_HASHED = re.compile(r"^[hH](?:$|[(/])")


class ScheduleError(OrchestratorError, ValueError):
    """A schedule or scheduler setting that cannot be evaluated; the message says how to fix it."""


def load_timezone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone ``name`` (``scheduler.timezone``), or a `ScheduleError` naming it."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {name!r}; use an IANA name such as UTC, Europe/Paris or "
            "America/New_York"
        ) from None


@attrs.frozen
class CronExpression:
    """A validated cron expression, normalised for croniter (seconds first when present)."""

    text: str
    """The expression as written in the definition."""
    normalized: str
    """Space-separated fields, macros expanded; 6 fields mean seconds first."""
    fixed_time: bool
    """No ``*`` at the start of the seconds, minute or hour field (Vixie cron's DST rule)."""

    def _iterator(self, start: datetime, tz: zoneinfo.ZoneInfo) -> croniter:
        return croniter(self.normalized, start.astimezone(tz), second_at_beginning=True)

    def _counts(self, utc: datetime, tz: zoneinfo.ZoneInfo) -> bool:
        """False for the second occurrence of a repeated wall-clock time in fixed-time mode."""
        return not (self.fixed_time and _is_repeated_wall_time(utc, tz))

    def ticks_after(self, moment: datetime, tz: zoneinfo.ZoneInfo) -> Iterator[datetime]:
        """The ticks strictly after ``moment``, in UTC, strictly increasing (may be endless)."""
        iterator = self._iterator(moment, tz)
        previous = moment.astimezone(UTC)
        while True:
            try:
                local: datetime = iterator.get_next(datetime)
            except CroniterBadDateError:
                return
            utc = local.astimezone(UTC)
            if utc <= previous:
                # Never seen with croniter 7; restart strictly after the last tick to be safe.
                iterator.set_current(previous.astimezone(tz), force=True)
                local = iterator.get_next(datetime)
                utc = local.astimezone(UTC)
                if utc <= previous:
                    return
            previous = utc
            if self._counts(utc, tz):
                yield utc

    def latest_at_or_before(
        self, moment: datetime, tz: zoneinfo.ZoneInfo, *, floor: datetime
    ) -> datetime | None:
        """The last tick at or before ``moment`` and at or after ``floor``, in UTC."""
        iterator = self._iterator(moment + timedelta(microseconds=1), tz)
        ceiling = moment.astimezone(UTC)
        while True:
            try:
                local: datetime = iterator.get_prev(datetime)
            except CroniterBadDateError:
                return None
            utc = local.astimezone(UTC)
            if utc < floor:
                return None
            if utc <= ceiling and self._counts(utc, tz):
                return utc


@functools.lru_cache(maxsize=256)
def parse_cron(text: str) -> CronExpression:
    """Validate ``text`` (5 fields, 6 with seconds first, or a macro) or raise `ScheduleError`."""
    stripped = text.strip()
    if stripped.startswith("@"):
        macro = _MACROS.get(stripped.lower())
        if macro is None:
            raise ScheduleError(f"cron expression {text!r}: unsupported macro; {_CRON_FORMS}")
        fields = macro.split()
    else:
        fields = stripped.split()
    if len(fields) not in (5, 6):
        raise ScheduleError(f"cron expression {text!r} has {len(fields)} fields; {_CRON_FORMS}")
    if any(_HASHED.match(field) for field in fields):
        # croniter reads H as a Jenkins hash, which needs a per-job seed we do not have.
        raise ScheduleError(f"cron expression {text!r}: hashed 'H' fields are not supported")
    normalized = " ".join(fields)
    try:
        iterator = croniter(normalized, _REFERENCE, second_at_beginning=True)
        iterator.get_next(datetime)
    except CroniterBadDateError:
        raise ScheduleError(
            f"cron expression {text!r} never fires (no matching date); check the day-of-month "
            "and month fields"
        ) from None
    except (CroniterError, ValueError, TypeError, KeyError) as error:
        raise ScheduleError(f"invalid cron expression {text!r}: {error}; {_CRON_FORMS}") from None
    time_fields = fields[:3] if len(fields) == 6 else fields[:2]
    return CronExpression(
        text=text,
        normalized=normalized,
        fixed_time=not any(field.startswith("*") for field in time_fields),
    )


def _is_repeated_wall_time(utc: datetime, tz: zoneinfo.ZoneInfo) -> bool:
    """Whether ``utc`` is the second occurrence of an ambiguous local time (fall back)."""
    local = utc.astimezone(tz)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def _fixed_seconds(field: str, value: Duration) -> float:
    if value.expression is not None:
        raise ScheduleError(
            f"schedule.{field} must be a fixed duration such as 'PT5M', not the runtime "
            f"expression {value.expression!r}"
        )
    return value.seconds


def every_interval(schedule: Schedule) -> timedelta | None:
    """The ``every`` interval (at least 1 µs), or None when the schedule has no ``every``."""
    if schedule.every is None:
        return None
    interval = timedelta(seconds=_fixed_seconds("every", schedule.every))
    if interval <= timedelta(0):
        raise ScheduleError("schedule.every must be a positive duration such as 'PT1M'")
    return interval


def after_delay(schedule: Schedule) -> float | None:
    """Seconds between an instance's completion and the next start, or None without ``after``.

    The first instance of an ``after`` schedule starts at registration; each following one at
    ``completed_at + after_delay(schedule)`` (see `next_after_completion`).
    """
    if schedule.after is None:
        return None
    seconds = _fixed_seconds("after", schedule.after)
    if seconds < 0:
        raise ScheduleError("schedule.after must not be negative; use a duration such as 'PT1M'")
    return seconds


def next_after_completion(schedule: Schedule, *, completed_at: datetime) -> datetime | None:
    """When to start the next instance of an ``after`` schedule, in UTC (None without ``after``)."""
    delay = after_delay(schedule)
    if delay is None:
        return None
    return _utc("completed_at", completed_at) + timedelta(seconds=delay)


def validate_schedule(schedule: Schedule) -> None:
    """Raise `ScheduleError` unless the periodic part of ``schedule`` can be evaluated."""
    present = [
        name
        for name, value in (
            ("every", schedule.every),
            ("cron", schedule.cron),
            ("after", schedule.after),
        )
        if value is not None
    ]
    if len(present) > 1:
        raise ScheduleError(
            f"schedule sets {' and '.join(present)}; set only one of every, cron and after"
        )
    every_interval(schedule)
    after_delay(schedule)
    if schedule.cron is not None:
        parse_cron(schedule.cron)


def _utc(name: str, moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a time-zone aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


def _every_index_after(anchor: datetime, interval: timedelta, moment: datetime) -> int:
    """The smallest k >= 0 with ``anchor + k * interval > moment``."""
    if moment < anchor:
        return 0
    return (moment - anchor) // interval + 1


def next_tick(
    schedule: Schedule,
    *,
    anchor: datetime,
    after: datetime | None,
    tz: zoneinfo.ZoneInfo,
) -> datetime | None:
    """The first ``every``/``cron`` tick strictly after ``after`` (None: at or after ``anchor``).

    Ticks are never before ``anchor``. Returns None for schedules without ``every`` or ``cron``
    (``after`` and ``on`` are not periodic) and for a cron expression with no further match.
    """
    validate_schedule(schedule)
    start = _utc("anchor", anchor)
    bound = None if after is None else _utc("after", after)
    interval = every_interval(schedule)
    if interval is not None:
        if bound is None or bound < start:
            return start
        return start + interval * _every_index_after(start, interval, bound)
    if schedule.cron is None:
        return None
    expression = parse_cron(schedule.cron)
    exclusive = start - timedelta(microseconds=1)
    if bound is not None and bound > exclusive:
        exclusive = bound
    return next(expression.ticks_after(exclusive, tz), None)


@attrs.frozen(kw_only=True)
class TickPlan:
    """What the leader loop should do now for one scheduled definition."""

    fire: tuple[datetime, ...]
    """Ticks to start instances for, oldest first (UTC)."""
    skipped: int
    """Due ticks dropped by the catch-up policy (cron: capped at SKIP_COUNT_CAP, a lower bound)."""
    last_tick: datetime | None
    """The new watermark to persist: the latest due tick, or the previous watermark."""
    next_tick: datetime | None
    """The first tick after ``now``: when to wake up next (None: never)."""


def plan_ticks(
    schedule: Schedule,
    *,
    anchor: datetime,
    last_tick: datetime | None,
    now: datetime,
    tz: zoneinfo.ZoneInfo,
    catch_up: CatchUp,
    limit: int,
    grace: timedelta = DEFAULT_GRACE,
) -> TickPlan:
    """The ticks in ``(last_tick, now]`` (``[anchor, now]`` at first) reduced per ``catch_up``.

    ``all``: the oldest ``limit`` due ticks, the rest skipped; ``one``: the latest only;
    ``none``: the latest only if ``now - tick <= grace``, else nothing. See the module docstring.
    """
    if catch_up not in ("none", "one", "all"):
        raise ScheduleError(f"unknown catch-up policy {catch_up!r}; use none, one or all")
    if limit < 1:
        raise ScheduleError(f"catch-up limit must be at least 1, got {limit}")
    validate_schedule(schedule)
    start = _utc("anchor", anchor)
    current = _utc("now", now)
    previous = None if last_tick is None else _utc("last_tick", last_tick)
    upcoming = next_tick(schedule, anchor=start, after=max(current, previous or current), tz=tz)
    interval = every_interval(schedule)
    if interval is not None:
        due = _every_due(start, interval, previous, current, catch_up=catch_up, limit=limit)
    elif schedule.cron is not None:
        due = _cron_due(
            parse_cron(schedule.cron), start, previous, current, tz, catch_up=catch_up, limit=limit
        )
    else:
        due = _Due(oldest=(), latest=None, count=0)
    if due.latest is None:
        return TickPlan(fire=(), skipped=0, last_tick=previous, next_tick=upcoming)
    if catch_up == "all":
        fire = due.oldest
    elif catch_up == "one" or current - due.latest <= grace:
        fire = (due.latest,)
    else:
        fire = ()
    skipped = SKIP_COUNT_CAP if due.capped else due.count - len(fire)
    return TickPlan(fire=fire, skipped=skipped, last_tick=due.latest, next_tick=upcoming)


def due_ticks(
    schedule: Schedule,
    *,
    anchor: datetime,
    last_tick: datetime | None,
    now: datetime,
    tz: zoneinfo.ZoneInfo,
    catch_up: CatchUp,
    limit: int,
    grace: timedelta = DEFAULT_GRACE,
) -> list[datetime]:
    """The ticks to fire now, oldest first: `plan_ticks` without the bookkeeping."""
    plan = plan_ticks(
        schedule,
        anchor=anchor,
        last_tick=last_tick,
        now=now,
        tz=tz,
        catch_up=catch_up,
        limit=limit,
        grace=grace,
    )
    return list(plan.fire)


@attrs.frozen
class _Due:
    oldest: tuple[datetime, ...]
    """The oldest ``limit`` due ticks (only filled for catch-up ``all``)."""
    latest: datetime | None
    count: int
    capped: bool = False
    """Counting stopped early: more than SKIP_COUNT_CAP due ticks beyond ``oldest``."""


def _every_due(
    anchor: datetime,
    interval: timedelta,
    previous: datetime | None,
    now: datetime,
    *,
    catch_up: CatchUp,
    limit: int,
) -> _Due:
    if now < anchor:
        return _Due(oldest=(), latest=None, count=0)
    first = 0 if previous is None else _every_index_after(anchor, interval, previous)
    last = (now - anchor) // interval
    if last < first:
        return _Due(oldest=(), latest=None, count=0)
    oldest: tuple[datetime, ...] = ()
    if catch_up == "all":
        oldest = tuple(
            anchor + interval * k for k in range(first, min(last, first + limit - 1) + 1)
        )
    return _Due(oldest=oldest, latest=anchor + interval * last, count=last - first + 1)


def _cron_due(
    expression: CronExpression,
    anchor: datetime,
    previous: datetime | None,
    now: datetime,
    tz: zoneinfo.ZoneInfo,
    *,
    catch_up: CatchUp,
    limit: int,
) -> _Due:
    exclusive = anchor - timedelta(microseconds=1)
    if previous is not None and previous > exclusive:
        exclusive = previous
    if now <= exclusive:
        return _Due(oldest=(), latest=None, count=0)
    latest = expression.latest_at_or_before(now, tz, floor=exclusive + timedelta(microseconds=1))
    if latest is None:
        return _Due(oldest=(), latest=None, count=0)
    wanted = limit if catch_up == "all" else 0
    oldest: list[datetime] = []
    count = 0
    for tick in expression.ticks_after(exclusive, tz):
        if tick > latest:
            break
        count += 1
        if len(oldest) < wanted:
            oldest.append(tick)
        elif count - len(oldest) > SKIP_COUNT_CAP:
            return _Due(oldest=tuple(oldest), latest=latest, count=count, capped=True)
    return _Due(oldest=tuple(oldest), latest=latest, count=count)


class OverlapAction(enum.Enum):
    """What to do with a tick given the overlap policy."""

    START = "start"
    SKIP = "skip"
    BUFFER = "buffer"


@attrs.frozen(kw_only=True)
class OverlapDecision:
    """The action for a tick, the buffered tick afterwards, and any tick dropped by it."""

    action: OverlapAction
    buffered: datetime | None
    """The single buffered tick after this decision (start it when the previous completes)."""
    dropped: datetime | None = None
    """The tick given up (the skipped tick, or an older buffered one replaced): count it."""


def decide_overlap(
    policy: OverlapPolicy,
    *,
    previous_running: bool,
    buffered: datetime | None,
    tick: datetime,
) -> OverlapDecision:
    """Whether ``tick`` starts now, is skipped or is buffered, given the previous instance.

    ``allow`` always starts (and leaves ``buffered`` alone). ``skip`` starts unless the previous
    scheduled instance is still running, in which case the tick is dropped. ``buffer-one``
    starts when nothing runs (a stale ``buffered`` tick, which should already have been started,
    is then dropped), otherwise keeps ``tick`` as the single buffered tick, dropping an older one.
    """
    if policy == "allow":
        return OverlapDecision(action=OverlapAction.START, buffered=buffered)
    if policy == "skip":
        if previous_running:
            return OverlapDecision(action=OverlapAction.SKIP, buffered=buffered, dropped=tick)
        return OverlapDecision(action=OverlapAction.START, buffered=buffered)
    if policy == "buffer-one":
        if previous_running:
            return OverlapDecision(action=OverlapAction.BUFFER, buffered=tick, dropped=buffered)
        return OverlapDecision(action=OverlapAction.START, buffered=None, dropped=buffered)
    raise ScheduleError(f"unknown overlap policy {policy!r}; use allow, skip or buffer-one")
