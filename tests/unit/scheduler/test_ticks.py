"""Pure schedule arithmetic: every/cron ticks, daylight saving, catch-up and overlap."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow_orchestrator.dsl.model import Duration, Schedule
from workflow_orchestrator.scheduler import _ticks as ticks_module
from workflow_orchestrator.scheduler._ticks import (
    DEFAULT_GRACE,
    OverlapAction,
    OverlapDecision,
    ScheduleError,
    after_delay,
    decide_overlap,
    due_ticks,
    every_interval,
    load_timezone,
    next_after_completion,
    next_tick,
    parse_cron,
    plan_ticks,
    validate_schedule,
)

UTC_TZ = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
ANCHOR = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


def every(seconds: float) -> Schedule:
    """A schedule with a fixed ``every`` interval."""
    return Schedule(every=Duration(seconds=seconds))


def cron(expression: str) -> Schedule:
    """A schedule with a cron expression."""
    return Schedule(cron=expression)


def ticks_between(
    schedule: Schedule, start: datetime, end: datetime, tz: ZoneInfo
) -> list[datetime]:
    """All ticks in [start, end) by repeated next_tick calls, anchored at start."""
    found: list[datetime] = []
    tick = next_tick(schedule, anchor=start, after=None, tz=tz)
    while tick is not None and tick < end:
        found.append(tick)
        tick = next_tick(schedule, anchor=start, after=tick, tz=tz)
    return found


def local_day_counts(ticks: list[datetime], tz: ZoneInfo) -> Counter[str]:
    """Number of ticks per local calendar day."""
    return Counter(tick.astimezone(tz).date().isoformat() for tick in ticks)


# --- every -------------------------------------------------------------------------------------


def test_every_first_tick_is_the_anchor() -> None:
    """The first instance of an every schedule starts at registration (k = 0)."""
    assert next_tick(every(60), anchor=ANCHOR, after=None, tz=UTC_TZ) == ANCHOR


def test_every_next_tick_strictly_after() -> None:
    """next_tick returns anchor + k*interval strictly after `after`."""
    schedule = every(60)
    on_tick = ANCHOR + timedelta(minutes=3)
    assert next_tick(schedule, anchor=ANCHOR, after=on_tick, tz=UTC_TZ) == ANCHOR + timedelta(
        minutes=4
    )
    between = ANCHOR + timedelta(minutes=3, seconds=1)
    assert next_tick(schedule, anchor=ANCHOR, after=between, tz=UTC_TZ) == ANCHOR + timedelta(
        minutes=4
    )
    before = ANCHOR - timedelta(hours=1)
    assert next_tick(schedule, anchor=ANCHOR, after=before, tz=UTC_TZ) == ANCHOR


def test_every_results_are_utc_whatever_the_input_zone() -> None:
    """Aware inputs in any zone give UTC outputs."""
    anchor = ANCHOR.astimezone(PARIS)
    tick = next_tick(every(30), anchor=anchor, after=anchor, tz=PARIS)
    assert tick == ANCHOR + timedelta(seconds=30)
    assert tick is not None and tick.tzinfo is UTC


@settings(max_examples=60, deadline=None)
@given(
    interval_ms=st.integers(min_value=1, max_value=10 * 86_400_000),
    offset_s=st.integers(min_value=-86_400, max_value=10 * 86_400),
)
def test_every_ticks_are_evenly_spaced_and_increasing(interval_ms: int, offset_s: int) -> None:
    """Successive every ticks are strictly increasing, exactly one interval apart."""
    schedule = every(interval_ms / 1000)
    interval = timedelta(milliseconds=interval_ms)
    tick = next_tick(schedule, anchor=ANCHOR, after=ANCHOR + timedelta(seconds=offset_s), tz=UTC_TZ)
    assert tick is not None and tick >= ANCHOR
    assert (tick - ANCHOR) % interval == timedelta(0)
    for _ in range(5):
        following = next_tick(schedule, anchor=ANCHOR, after=tick, tz=UTC_TZ)
        assert following == tick + interval
        tick = following


def test_every_rejects_expressions_and_non_positive() -> None:
    """every must be a positive fixed duration."""
    with pytest.raises(ScheduleError, match=r"schedule\.every must be a fixed duration"):
        every_interval(Schedule(every=Duration(expression="${ .x }")))
    with pytest.raises(ScheduleError, match="positive duration"):
        every_interval(every(0))


# --- after -------------------------------------------------------------------------------------


def test_after_is_not_periodic() -> None:
    """An after schedule has no periodic tick; the next start is completion plus the delay."""
    schedule = Schedule(after=Duration(seconds=90))
    assert after_delay(schedule) == 90
    assert next_tick(schedule, anchor=ANCHOR, after=None, tz=UTC_TZ) is None
    completed = datetime(2024, 1, 1, 13, 0, tzinfo=PARIS)
    assert next_after_completion(schedule, completed_at=completed) == datetime(
        2024, 1, 1, 12, 1, 30, tzinfo=UTC
    )
    assert after_delay(every(5)) is None
    assert next_after_completion(every(5), completed_at=completed) is None


def test_after_rejects_negative_and_expressions() -> None:
    """after must be a non-negative fixed duration."""
    with pytest.raises(ScheduleError, match="must not be negative"):
        after_delay(Schedule(after=Duration(seconds=-1)))
    with pytest.raises(ScheduleError, match=r"schedule\.after must be a fixed duration"):
        after_delay(Schedule(after=Duration(expression="${ .d }")))


def test_several_triggers_are_rejected() -> None:
    """every, cron and after are mutually exclusive."""
    with pytest.raises(ScheduleError, match="schedule sets every and cron; set only one"):
        validate_schedule(Schedule(every=Duration(seconds=1), cron="* * * * *"))
    with pytest.raises(ScheduleError, match="schedule sets cron and after"):
        next_tick(
            Schedule(cron="* * * * *", after=Duration(seconds=1)),
            anchor=ANCHOR,
            after=None,
            tz=UTC_TZ,
        )


def test_no_periodic_trigger_means_no_tick() -> None:
    """An event-only (or empty) schedule has no ticks and nothing due."""
    assert next_tick(Schedule(), anchor=ANCHOR, after=None, tz=UTC_TZ) is None
    plan = plan_ticks(
        Schedule(),
        anchor=ANCHOR,
        last_tick=None,
        now=ANCHOR + timedelta(days=1),
        tz=UTC_TZ,
        catch_up="all",
        limit=10,
    )
    assert (plan.fire, plan.skipped, plan.last_tick, plan.next_tick) == ((), 0, None, None)


def test_naive_datetimes_are_refused() -> None:
    """Naive datetimes are a programming error."""
    with pytest.raises(ValueError, match="anchor must be a time-zone aware datetime"):
        next_tick(every(1), anchor=datetime(2024, 1, 1), after=None, tz=UTC_TZ)


# --- cron --------------------------------------------------------------------------------------


def test_cron_five_fields() -> None:
    """A standard 5-field expression ticks at the matching minutes, in UTC by default."""
    schedule = cron("0 0 * * *")
    assert next_tick(schedule, anchor=ANCHOR, after=None, tz=UTC_TZ) == datetime(
        2024, 1, 2, tzinfo=UTC
    )
    assert ticks_between(cron("*/15 12 * * *"), ANCHOR, ANCHOR + timedelta(hours=1), UTC_TZ) == [
        ANCHOR + timedelta(minutes=m) for m in (0, 15, 30, 45)
    ]


def test_cron_anchor_on_a_tick_fires_it() -> None:
    """A tick equal to the anchor is the first tick; after excludes its own instant."""
    schedule = cron("0 12 * * *")
    assert next_tick(schedule, anchor=ANCHOR, after=None, tz=UTC_TZ) == ANCHOR
    assert next_tick(schedule, anchor=ANCHOR, after=ANCHOR, tz=UTC_TZ) == ANCHOR + timedelta(days=1)
    late = ANCHOR + timedelta(microseconds=1)
    assert next_tick(schedule, anchor=late, after=None, tz=UTC_TZ) == ANCHOR + timedelta(days=1)


def test_cron_six_fields_seconds_first() -> None:
    """Six fields put the seconds first, Quartz/Spring style."""
    schedule = cron("30 */5 * * * *")
    assert ticks_between(schedule, ANCHOR, ANCHOR + timedelta(minutes=11), UTC_TZ) == [
        ANCHOR + timedelta(minutes=m, seconds=30) for m in (0, 5, 10)
    ]
    assert parse_cron("0 */5 * * * *").normalized == "0 */5 * * * *"


def test_cron_uses_the_configured_time_zone() -> None:
    """Midnight in Paris is 23:00 UTC in winter."""
    tick = next_tick(cron("0 0 * * *"), anchor=ANCHOR, after=None, tz=PARIS)
    assert tick == datetime(2024, 1, 1, 23, 0, tzinfo=UTC)


def test_cron_macros() -> None:
    """@hourly and friends are the usual 5-field expressions."""
    assert next_tick(cron("@hourly"), anchor=ANCHOR, after=ANCHOR, tz=UTC_TZ) == (
        ANCHOR + timedelta(hours=1)
    )
    assert parse_cron("@daily").normalized == "0 0 * * *"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", r"cron expression '\* \* \* \*' has 4 fields; use 5 fields"),
        ("0 0 0 * * * 2030", r"has 7 fields; use 5 fields .* 6 fields with the seconds first"),
        ("61 * * * *", r"invalid cron expression '61 \* \* \* \*': .*out of range; use 5 fields"),
        ("every minute", r"has 2 fields"),
        ("a b c d e", r"invalid cron expression 'a b c d e'"),
        ("@reboot", r"cron expression '@reboot': unsupported macro; use 5 fields"),
        ("H * * * *", r"hashed 'H' fields are not supported"),
        ("0 0 31 2 *", r"cron expression '0 0 31 2 \*' never fires"),
    ],
)
def test_invalid_cron_expressions(expression: str, message: str) -> None:
    """Bad cron expressions raise ScheduleError naming the expression and the accepted forms."""
    with pytest.raises(ScheduleError, match=message):
        parse_cron(expression)
    with pytest.raises(ScheduleError, match=message):
        next_tick(cron(expression), anchor=ANCHOR, after=None, tz=UTC_TZ)


def test_schedule_error_is_a_value_error() -> None:
    """ScheduleError can be caught as ValueError."""
    assert issubclass(ScheduleError, ValueError)


def test_unknown_time_zone() -> None:
    """An unknown IANA name raises ScheduleError with the accepted form."""
    assert load_timezone("Europe/Paris") == PARIS
    with pytest.raises(
        ScheduleError,
        match=r"unknown time zone 'Mars/Olympus'; use an IANA name such as UTC, Europe/Paris",
    ):
        load_timezone("Mars/Olympus")
    with pytest.raises(ScheduleError, match=r"unknown time zone '\.\./etc'"):
        load_timezone("../etc")


# --- daylight saving ---------------------------------------------------------------------------


def test_paris_spring_forward_fixed_time_moves_to_end_of_gap() -> None:
    """On 2024-03-31 02:30 does not exist in Paris: croniter fires once at 03:00 CEST."""
    start = datetime(2024, 3, 29, tzinfo=UTC)
    ticks = ticks_between(cron("30 2 * * *"), start, start + timedelta(days=4), PARIS)
    assert ticks == [
        datetime(2024, 3, 29, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2024, 3, 30, 1, 30, tzinfo=UTC),
        datetime(2024, 3, 31, 1, 0, tzinfo=UTC),  # 03:00 CEST, end of the gap
        datetime(2024, 4, 1, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]


def test_paris_fall_back_fixed_time_fires_once() -> None:
    """On 2024-10-27 02:30 happens twice in Paris: only the first (CEST) occurrence fires."""
    start = datetime(2024, 10, 25, tzinfo=UTC)
    ticks = ticks_between(cron("30 2 * * *"), start, start + timedelta(days=4), PARIS)
    assert ticks == [
        datetime(2024, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2024, 10, 26, 0, 30, tzinfo=UTC),
        datetime(2024, 10, 27, 0, 30, tzinfo=UTC),  # 02:30 CEST; not 02:30 CET again
        datetime(2024, 10, 28, 1, 30, tzinfo=UTC),
    ]
    assert parse_cron("30 2 * * *").fixed_time


def test_fall_back_six_field_fixed_time_fires_once() -> None:
    """Seconds-first expressions follow the same fall-back rule."""
    start = datetime(2024, 10, 26, 12, tzinfo=UTC)
    ticks = ticks_between(cron("0 0 2 * * *"), start, start + timedelta(days=1), PARIS)
    assert ticks == [datetime(2024, 10, 27, 0, 0, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("tz", "spring", "fall"),
    [
        (PARIS, "2024-03-31", "2024-10-27"),
        (NEW_YORK, "2024-03-10", "2024-11-03"),
    ],
)
def test_hourly_cron_across_both_transitions(tz: ZoneInfo, spring: str, fall: str) -> None:
    """Hourly ticks: 23 on the spring-forward local day, 25 on the fall-back one, 24 per UTC day."""
    local_year = ticks_between(
        cron("0 * * * *"),
        datetime(2024, 1, 1, tzinfo=tz),
        datetime(2025, 1, 1, tzinfo=tz),
        tz,
    )
    per_local_day = local_day_counts(local_year, tz)
    assert per_local_day[spring] == 23
    assert per_local_day[fall] == 25
    assert {n for day, n in per_local_day.items() if day not in (spring, fall)} == {24}
    assert len(per_local_day) == 366
    utc_year = ticks_between(
        cron("0 * * * *"), datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC), tz
    )
    assert set(Counter(tick.date() for tick in utc_year).values()) == {24}
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(utc_year))


def test_new_york_fixed_times_across_transitions() -> None:
    """New York: 02:30 on 2024-03-10 fires at 03:00 EDT; 01:30 on 2024-11-03 fires once."""
    spring = ticks_between(
        cron("30 2 * * *"),
        datetime(2024, 3, 9, 12, tzinfo=UTC),
        datetime(2024, 3, 11, 12, tzinfo=UTC),
        NEW_YORK,
    )
    assert spring == [
        datetime(2024, 3, 10, 7, 0, tzinfo=UTC),
        datetime(2024, 3, 11, 6, 30, tzinfo=UTC),
    ]
    fall = ticks_between(
        cron("0,30 1 * * *"),
        datetime(2024, 11, 3, tzinfo=UTC),
        datetime(2024, 11, 4, tzinfo=UTC),
        NEW_YORK,
    )
    assert fall == [
        datetime(2024, 11, 3, 5, 0, tzinfo=UTC),
        datetime(2024, 11, 3, 5, 30, tzinfo=UTC),
    ]


def test_wildcard_minutes_fire_in_both_repeated_hours() -> None:
    """A wildcard expression fires in both copies of the repeated hour: they are real instants."""
    assert not parse_cron("*/30 * * * *").fixed_time
    ticks = ticks_between(
        cron("*/30 * * * *"),
        datetime(2024, 10, 26, 22, tzinfo=UTC),
        datetime(2024, 10, 27, 23, tzinfo=UTC),
        PARIS,
    )
    assert local_day_counts(ticks, PARIS)["2024-10-27"] == 50


# --- catch-up ----------------------------------------------------------------------------------


def test_catch_up_all_fires_the_oldest_up_to_the_limit() -> None:
    """all: oldest first, at most limit; the rest are skipped and the watermark moves past them."""
    last = ANCHOR + timedelta(minutes=2)
    now = ANCHOR + timedelta(minutes=12, seconds=30)
    plan = plan_ticks(
        every(60), anchor=ANCHOR, last_tick=last, now=now, tz=UTC_TZ, catch_up="all", limit=3
    )
    assert plan.fire == tuple(ANCHOR + timedelta(minutes=m) for m in (3, 4, 5))
    assert plan.skipped == 7
    assert plan.last_tick == ANCHOR + timedelta(minutes=12)
    assert plan.next_tick == ANCHOR + timedelta(minutes=13)
    everything = plan_ticks(
        every(60), anchor=ANCHOR, last_tick=last, now=now, tz=UTC_TZ, catch_up="all", limit=100
    )
    assert len(everything.fire) == 10 and everything.skipped == 0


def test_catch_up_one_fires_the_latest() -> None:
    """one: only the latest due tick fires."""
    now = ANCHOR + timedelta(hours=5, minutes=10)
    plan = plan_ticks(
        cron("0 * * * *"),
        anchor=ANCHOR,
        last_tick=None,
        now=now,
        tz=UTC_TZ,
        catch_up="one",
        limit=3,
    )
    assert plan.fire == (ANCHOR + timedelta(hours=5),)
    assert plan.skipped == 5  # 12:00 (the anchor) to 16:00
    assert plan.last_tick == ANCHOR + timedelta(hours=5)
    assert plan.next_tick == ANCHOR + timedelta(hours=6)


def test_catch_up_none_fires_only_on_time_ticks() -> None:
    """none: the latest tick fires only within the grace window; otherwise all are dropped."""
    schedule = cron("0 * * * *")
    last = ANCHOR
    on_time = ANCHOR + timedelta(hours=3, seconds=2)
    plan = plan_ticks(
        schedule, anchor=ANCHOR, last_tick=last, now=on_time, tz=UTC_TZ, catch_up="none", limit=5
    )
    assert plan.fire == (ANCHOR + timedelta(hours=3),)
    assert plan.skipped == 2
    late = ANCHOR + timedelta(hours=3, minutes=1)
    plan = plan_ticks(
        schedule, anchor=ANCHOR, last_tick=last, now=late, tz=UTC_TZ, catch_up="none", limit=5
    )
    assert plan.fire == ()
    assert plan.skipped == 3
    assert plan.last_tick == ANCHOR + timedelta(hours=3)
    assert plan.next_tick == ANCHOR + timedelta(hours=4)
    generous = due_ticks(
        schedule,
        anchor=ANCHOR,
        last_tick=last,
        now=late,
        tz=UTC_TZ,
        catch_up="none",
        limit=5,
        grace=timedelta(minutes=2),
    )
    assert generous == [ANCHOR + timedelta(hours=3)]


def test_first_call_includes_the_anchor_tick() -> None:
    """Before any tick, the anchor itself is due for an every schedule."""
    assert due_ticks(
        every(3600), anchor=ANCHOR, last_tick=None, now=ANCHOR, tz=UTC_TZ, catch_up="none", limit=1
    ) == [ANCHOR]


def test_nothing_due_keeps_the_watermark() -> None:
    """Between ticks nothing fires and the watermark is unchanged."""
    last = ANCHOR + timedelta(hours=1)
    plan = plan_ticks(
        cron("0 * * * *"),
        anchor=ANCHOR,
        last_tick=last,
        now=last + timedelta(minutes=30),
        tz=UTC_TZ,
        catch_up="all",
        limit=10,
    )
    assert (plan.fire, plan.skipped, plan.last_tick) == ((), 0, last)
    assert plan.next_tick == last + timedelta(hours=1)
    before_anchor = plan_ticks(
        every(60),
        anchor=ANCHOR,
        last_tick=None,
        now=ANCHOR - timedelta(seconds=1),
        tz=UTC_TZ,
        catch_up="all",
        limit=10,
    )
    assert (before_anchor.fire, before_anchor.last_tick, before_anchor.next_tick) == (
        (),
        None,
        ANCHOR,
    )


def test_cron_catch_up_across_fall_back_counts_repeats_once() -> None:
    """A night of downtime over fall-back yields one 02:30 tick for a fixed-time cron."""
    plan = plan_ticks(
        cron("30 2 * * *"),
        anchor=datetime(2024, 10, 1, tzinfo=UTC),
        last_tick=datetime(2024, 10, 26, 0, 30, tzinfo=UTC),
        now=datetime(2024, 10, 27, 12, tzinfo=UTC),
        tz=PARIS,
        catch_up="all",
        limit=10,
    )
    assert plan.fire == (datetime(2024, 10, 27, 0, 30, tzinfo=UTC),)
    assert plan.skipped == 0


@settings(max_examples=40, deadline=None)
@given(
    expression=st.sampled_from(["0 * * * *", "*/20 1-3 * * *", "30 2 * * *", "0 0 2 * * *"]),
    zone=st.sampled_from([PARIS, NEW_YORK, UTC_TZ]),
    start_h=st.integers(min_value=0, max_value=24 * 400),
    span_h=st.integers(min_value=0, max_value=72),
    limit=st.integers(min_value=1, max_value=100),
    minutes=st.sampled_from([13, 53]),
)
def test_cron_plan_matches_brute_force(
    expression: str, zone: ZoneInfo, start_h: int, span_h: int, limit: int, minutes: int
) -> None:
    """plan_ticks agrees with walking next_tick, for every catch-up policy."""
    anchor = datetime(2024, 1, 1, tzinfo=UTC)
    last = anchor + timedelta(hours=start_h, minutes=7)
    now = last + timedelta(hours=span_h, minutes=minutes)
    schedule = cron(expression)
    expected: list[datetime] = []
    tick = next_tick(schedule, anchor=anchor, after=last, tz=zone)
    while tick is not None and tick <= now:
        expected.append(tick)
        tick = next_tick(schedule, anchor=anchor, after=tick, tz=zone)
    on_time = expected[-1:] if expected and now - expected[-1] <= DEFAULT_GRACE else []
    for policy in ("all", "one", "none"):
        plan = plan_ticks(
            schedule, anchor=anchor, last_tick=last, now=now, tz=zone, catch_up=policy, limit=limit
        )
        assert plan.last_tick == (expected[-1] if expected else last)
        if policy == "all":
            assert list(plan.fire) == expected[:limit]
        elif policy == "one":
            assert list(plan.fire) == expected[-1:]
        else:
            assert list(plan.fire) == on_time
        assert plan.skipped + len(plan.fire) == len(expected)
        assert plan.next_tick == next_tick(schedule, anchor=anchor, after=now, tz=zone)


def test_bad_catch_up_arguments() -> None:
    """Unknown policies and a non-positive limit are refused."""
    unknown: Any = "some"
    with pytest.raises(ScheduleError, match="unknown catch-up policy 'some'"):
        plan_ticks(
            every(1),
            anchor=ANCHOR,
            last_tick=None,
            now=ANCHOR,
            tz=UTC_TZ,
            catch_up=unknown,
            limit=1,
        )
    with pytest.raises(ScheduleError, match="catch-up limit must be at least 1, got 0"):
        plan_ticks(
            every(1), anchor=ANCHOR, last_tick=None, now=ANCHOR, tz=UTC_TZ, catch_up="all", limit=0
        )


# --- overlap -----------------------------------------------------------------------------------

TICK = ANCHOR + timedelta(minutes=5)
OLDER = ANCHOR + timedelta(minutes=4)


def test_overlap_allow_always_starts() -> None:
    """allow starts even when the previous instance runs."""
    assert decide_overlap("allow", previous_running=True, buffered=None, tick=TICK) == (
        OverlapDecision(action=OverlapAction.START, buffered=None)
    )


def test_overlap_skip() -> None:
    """skip starts when idle and drops the tick while the previous instance runs."""
    assert decide_overlap("skip", previous_running=False, buffered=None, tick=TICK) == (
        OverlapDecision(action=OverlapAction.START, buffered=None)
    )
    assert decide_overlap("skip", previous_running=True, buffered=None, tick=TICK) == (
        OverlapDecision(action=OverlapAction.SKIP, buffered=None, dropped=TICK)
    )


def test_overlap_buffer_one() -> None:
    """buffer-one keeps only the newest tick while running, replacing an older buffered one."""
    assert decide_overlap("buffer-one", previous_running=False, buffered=None, tick=TICK) == (
        OverlapDecision(action=OverlapAction.START, buffered=None)
    )
    assert decide_overlap("buffer-one", previous_running=True, buffered=None, tick=TICK) == (
        OverlapDecision(action=OverlapAction.BUFFER, buffered=TICK)
    )
    assert decide_overlap("buffer-one", previous_running=True, buffered=OLDER, tick=TICK) == (
        OverlapDecision(action=OverlapAction.BUFFER, buffered=TICK, dropped=OLDER)
    )


def test_overlap_unknown_policy() -> None:
    """An unknown overlap policy is refused with the accepted values."""
    with pytest.raises(
        ScheduleError, match="unknown overlap policy 'queue'; use allow, skip or buffer-one"
    ):
        decide_overlap("queue", previous_running=True, buffered=None, tick=TICK)  # type: ignore[arg-type]


def test_cron_skip_count_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting skipped cron ticks stops at SKIP_COUNT_CAP; the latest tick is still exact."""
    monkeypatch.setattr(ticks_module, "SKIP_COUNT_CAP", 5)
    now = ANCHOR + timedelta(hours=1, seconds=30)
    plan = plan_ticks(
        cron("* * * * *"),
        anchor=ANCHOR,
        last_tick=None,
        now=now,
        tz=UTC_TZ,
        catch_up="one",
        limit=1,
    )
    assert plan.fire == (ANCHOR + timedelta(hours=1),)
    assert plan.skipped == 5
    assert plan.last_tick == ANCHOR + timedelta(hours=1)
