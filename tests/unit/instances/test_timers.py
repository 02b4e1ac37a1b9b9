"""The in-memory part of the durable timers (``WakeTimers``) under Trio's mock clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import trio
import trio.testing

from workflow_orchestrator.instances import WakeTimers


class Recorder:
    """Records wake-ups with the virtual time they happened at."""

    def __init__(self) -> None:
        self.woken: list[tuple[uuid.UUID, float]] = []

    async def wake(self, instance_id: uuid.UUID) -> None:
        self.woken.append((instance_id, trio.current_time()))


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """A mock clock that jumps ahead when every task is blocked."""
    return trio.testing.MockClock(autojump_threshold=0)


def at(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def test_fires_once_at_the_due_time_and_reports_lateness(
    clock: trio.testing.MockClock,
) -> None:
    """An armed instance is woken once; lateness is what ``on_fire`` is told."""
    recorder = Recorder()
    late: list[float] = []
    timers = WakeTimers(wake=recorder.wake, on_fire=late.append)
    first, second = uuid.uuid4(), uuid.uuid4()
    async with trio.open_nursery() as nursery:
        await nursery.start(timers.run)
        timers.arm(first, at(-1))  # overdue: fires at once
        timers.arm(second, at(-0.5))
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    # Both are due: they fire in one pass (their wake-up tasks may run in either order).
    assert {i for i, _ in recorder.woken} == {first, second}
    assert sorted(late)[0] >= 0.49 and sorted(late)[1] >= 0.99
    assert timers.fired_total == 2 and timers.armed() == 0


async def test_future_timers_fire_in_order_at_their_virtual_due_times(
    clock: trio.testing.MockClock,
) -> None:
    """Timers armed for later fire at their due time on the clock, earliest first."""
    recorder = Recorder()
    base = datetime(2026, 1, 1, tzinfo=UTC)

    def now() -> datetime:
        return base + timedelta(seconds=trio.current_time())

    timers = WakeTimers(wake=recorder.wake, now=now)
    late, early = uuid.uuid4(), uuid.uuid4()
    start = trio.current_time()
    timers.arm(late, now() + timedelta(seconds=120))
    timers.arm(early, now() + timedelta(seconds=10))
    async with trio.open_nursery() as nursery:
        await nursery.start(timers.run)
        await trio.sleep(200)
        nursery.cancel_scope.cancel()
    assert [i for i, _ in recorder.woken] == [early, late]
    assert [round(t - start) for _, t in recorder.woken] == [10, 120]


async def test_earlier_arming_wins_without_replace_and_disarm_cancels(
    clock: trio.testing.MockClock,
) -> None:
    """``replace=False`` keeps the earlier due time; a disarmed instance never fires."""
    recorder = Recorder()
    timers = WakeTimers(wake=recorder.wake)
    kept, dropped = uuid.uuid4(), uuid.uuid4()
    timers.arm(kept, at(-2))
    timers.arm(kept, at(3600), replace=False)
    timers.arm(dropped, at(-2))
    timers.disarm(dropped)
    async with trio.open_nursery() as nursery:
        await nursery.start(timers.run)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert [i for i, _ in recorder.woken] == [kept]


async def test_replacing_moves_the_wake_up(clock: trio.testing.MockClock) -> None:
    """Arming again (replace) supersedes the first arming: one wake-up, at the new time."""
    recorder = Recorder()
    timers = WakeTimers(wake=recorder.wake)
    instance = uuid.uuid4()
    timers.arm(instance, at(-1))
    timers.arm(instance, at(3600))
    assert timers.armed() == 1
    timers.disarm(instance)
    async with trio.open_nursery() as nursery:
        await nursery.start(timers.run)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert recorder.woken == []


async def test_limiter_bounds_concurrent_wake_ups(clock: trio.testing.MockClock) -> None:
    """No more than the limiter's tokens wake-ups run at once."""
    running = 0
    peak = 0
    finished = 0
    all_done = trio.Event()

    async def slow_wake(_: uuid.UUID) -> None:
        nonlocal running, peak, finished
        running += 1
        peak = max(peak, running)
        await trio.sleep(1)
        running -= 1
        finished += 1
        if finished == 10:
            all_done.set()

    timers = WakeTimers(wake=slow_wake, limiter=trio.CapacityLimiter(3))
    for _ in range(10):
        timers.arm(uuid.uuid4(), at(-1))
    async with trio.open_nursery() as nursery:
        await nursery.start(timers.run)
        with trio.fail_after(60):
            await all_done.wait()
        nursery.cancel_scope.cancel()
    assert peak == 3


async def test_arming_again_while_the_wake_up_queues_does_not_wake_twice(
    clock: trio.testing.MockClock,
) -> None:
    """A timer claimed again while its wake-up waits for a slot is not fired a second time."""
    woken: list[uuid.UUID] = []
    release = trio.Event()

    async def blocked_wake(instance_id: uuid.UUID) -> None:
        woken.append(instance_id)
        await release.wait()

    timers = WakeTimers(wake=blocked_wake, limiter=trio.CapacityLimiter(1))
    busy, queued = uuid.uuid4(), uuid.uuid4()
    async with trio.open_nursery() as nursery:
        await nursery.start(timers.run)
        timers.arm(busy, at(-2))
        timers.arm(queued, at(-1))
        await trio.testing.wait_all_tasks_blocked()
        timers.arm(queued, at(-1), replace=False)  # claimed again: already on its way
        release.set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert sorted(map(str, woken)) == sorted([str(busy), str(queued)])
