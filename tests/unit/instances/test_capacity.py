"""Capacity and actors that misbehave, on the in-memory store under Trio's mock clock: the
cap on live actors (queued starts run later), recovery after readiness, the bounded queue's
overflow, a crash loop with a full mailbox that ends faulted, and commands that end whatever
the actor does."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

import attrs
import trio
import trio.testing

from tests.support.instances import WatchedStore, ok, open_runtime, trio_clock
from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse
from workflow_orchestrator.instances import MAX_ATTEMPTS, Command, StartRequest
from workflow_orchestrator.instances._actor import Run
from workflow_orchestrator.instances._admission import ActivationQueue
from workflow_orchestrator.storage.instances import InstanceStatus, RecoverableInstance

SLOW_CALL = """\
do:
  - slow:
      call: http
      with: {method: get, endpoint: 'http://example.test/slow'}
"""

SETTER = """\
do:
  - only:
      set: {done: true}
"""


@attrs.define(eq=False)
class Gate:
    """An HTTP responder that holds every call until ``open`` is set."""

    open: trio.Event = attrs.field(factory=trio.Event)
    calls: int = 0

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.calls += 1
        await self.open.wait()
        return await ok(request)


def test_queue_bounds_slots_and_entries() -> None:
    """Slots are taken up to the capacity and freed once; a full queue refuses an offer and
    records the overflow; a queued instance is kept once, read again when offered twice."""
    queue = ActivationQueue(capacity=1, queue_limit=2, keep_loaded=1)
    a, b, c = (uuid.UUID(int=i) for i in (1, 2, 3))
    assert queue.offer(a, None) and queue.offer(b, None)
    assert queue.offer(a, None) and len(queue) == 2
    assert not queue.offer(c, None)
    assert queue.overflowed.is_set() and queue.dropped_total == 1
    queue.clear_overflow()
    assert not queue.overflowed.is_set()
    slot = queue.reserve()
    slot.release()
    slot.release()
    assert (queue.active, queue.peak_active) == (0, 1)


async def test_cap_holds_starts_in_the_queue_until_slots_free(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With two slots, six started instances are all committed at once, two run while the
    others queue, and every one completes as slots free; never more than two are live."""
    async with open_runtime(max_active=2) as harness:
        harness.register("slow", SLOW_CALL)
        gate = Gate()
        harness.http.respond = gate
        records = [
            (await harness.runtime.start_instance(StartRequest(definition_id="slow")))[0]
            for _ in range(6)
        ]
        await trio.sleep(1)
        assert [r.status for r in records] == [InstanceStatus.PENDING] * 6
        assert (len(harness.runtime.live), gate.calls, len(harness.runtime.admission)) == (2, 2, 4)
        gate.open.set()
        for record in records:
            await harness.wait_status(record.instance_id, InstanceStatus.COMPLETED)
    assert gate.calls == 6
    assert harness.runtime.admission.peak_active == 2


async def test_overflow_is_drained_from_the_store(autojump_clock: trio.testing.MockClock) -> None:
    """Starts beyond the queue's room are not kept in memory; the drain reads them back from
    the store and every instance completes."""
    async with open_runtime(max_active=1, recovery_page=2) as harness:
        harness.register("slow", SLOW_CALL)
        gate = Gate()
        harness.http.respond = gate
        records = [
            (await harness.runtime.start_instance(StartRequest(definition_id="slow")))[0]
            for _ in range(5)
        ]
        assert harness.runtime.admission.dropped_total == 2  # one runs, two queue
        gate.open.set()
        for record in records:
            await harness.wait_status(record.instance_id, InstanceStatus.COMPLETED)
    assert gate.calls == 5


@attrs.define(eq=False)
class HeldRecovery(WatchedStore):
    """The in-memory store, whose recovery reads wait until ``release`` is set."""

    release: trio.Event = attrs.field(factory=trio.Event, init=False)

    async def list_recoverable(
        self, *, partitions: Collection[int], after: uuid.UUID | None = None, limit: int = 500
    ) -> Sequence[RecoverableInstance]:
        await self.release.wait()
        return await super().list_recoverable(partitions=partitions, after=after, limit=limit)


async def test_the_runtime_is_ready_before_recovery(autojump_clock: trio.testing.MockClock) -> None:
    """The runtime reports ready while recovery still reads (a slow database never delays
    the listeners); the recovered instances then run."""
    store = HeldRecovery(clock=trio_clock)
    with trio.fail_after(60):
        async with open_runtime(store) as harness:
            harness.register("setter", SETTER)
            pending = [store.create("setter").instance_id for _ in range(3)]
            assert not store.release.is_set()
            store.release.set()  # the background recovery reads them now
            for instance_id in pending:
                await harness.wait_status(instance_id, InstanceStatus.COMPLETED)


async def test_crash_loop_with_a_full_mailbox_ends_faulted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An actor that crashes with its mailbox full still receives its recovery at every
    restart: the run is tried MAX_ATTEMPTS times, then the instance is faulted naming the
    failure."""
    calls = 0
    release, called = trio.Event(), trio.Event()

    async def crash(request: HttpRequest) -> HttpResponse:
        nonlocal calls
        calls += 1
        called.set()
        await release.wait()
        raise RuntimeError("crash in the runtime")

    async with open_runtime() as harness:
        harness.register("slow", SLOW_CALL)
        harness.http.respond = crash
        record, _ = await harness.runtime.start_instance(StartRequest(definition_id="slow"))
        await called.wait()
        child = harness.runtime._supervisor.child(str(record.instance_id))
        assert child is not None
        ref = child.ref()
        assert ref is not None
        for _ in range(4):
            ref.tell_nowait(Run())
        assert ref.statistics().mailbox_depth == 4
        release.set()
        await harness.wait_status(record.instance_id, InstanceStatus.FAULTED)
        error = harness.store.stored(record.instance_id).record.error
    assert calls == MAX_ATTEMPTS
    assert error is not None
    assert error["detail"] == (
        f"the instance failed {MAX_ATTEMPTS} times in the runtime (RuntimeError: crash in the "
        "runtime); it is marked faulted instead of being retried again"
    )


async def test_cancel_of_a_crash_looping_instance_commits_and_stops_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancel during a crash loop commits cancelled and stops the actor; no later restart
    faults it or runs it again."""
    calls = 0
    called = trio.Event()

    async def crash(request: HttpRequest) -> HttpResponse:
        nonlocal calls
        calls += 1
        called.set()
        raise RuntimeError("crash in the runtime")

    async with open_runtime() as harness:
        harness.register("slow", SLOW_CALL)
        harness.http.respond = crash
        record, _ = await harness.runtime.start_instance(StartRequest(definition_id="slow"))
        await called.wait()
        with trio.fail_after(60):
            await harness.runtime.command(record.instance_id, Command.CANCEL)
        stored = harness.store.stored(record.instance_id).record
        calls_at_cancel = calls
        await trio.sleep(120)
        assert harness.runtime._supervisor.child(str(record.instance_id)) is None
        assert harness.store.stored(record.instance_id).record.status is InstanceStatus.CANCELLED
    assert stored.status is InstanceStatus.CANCELLED
    assert calls == calls_at_cancel < MAX_ATTEMPTS
    assert harness.history(record.instance_id)[-1] == "workflow.cancelled"


async def test_cancel_of_a_run_that_ignores_cancellation_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A run stuck in a wait that cannot be cancelled does not hold a cancel for ever: the
    actor is stopped and cancelled is committed within a bounded time."""
    entered = trio.Event()
    release = trio.Event()

    async def stuck(request: HttpRequest) -> HttpResponse:
        entered.set()
        with trio.CancelScope(shield=True):
            await release.wait()
        return await ok(request)

    async with open_runtime() as harness:
        harness.register("slow", SLOW_CALL)
        harness.http.respond = stuck
        record, _ = await harness.runtime.start_instance(StartRequest(definition_id="slow"))
        await entered.wait()
        with trio.fail_after(60):
            await harness.runtime.command(record.instance_id, Command.CANCEL)
        status = harness.store.stored(record.instance_id).record.status
        gone = record.instance_id not in harness.runtime.live
        release.set()
        await harness.wait_status(record.instance_id, InstanceStatus.CANCELLED)
    assert status is InstanceStatus.CANCELLED
    assert gone
