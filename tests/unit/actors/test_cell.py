"""ActorCell, the record of an actor child: start, stop, terminate and what it reports.

The cell is driven directly here, under ``ReportingParent``: the smallest implementation of
the ``Parent`` protocol, which runs tasks in a nursery and keeps what the cell reports
instead of deciding on restarts (the supervisor's decisions are tested in
``test_supervisor`` and ``test_otp_model``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import outcome
import pytest
import trio
import trio.testing

from workflow_orchestrator.actors import (
    Actor,
    ActorContext,
    ActorRef,
    ActorStopped,
    ActorSystem,
    AskFailed,
    LifecycleState,
    StopKind,
    StopReason,
)
from workflow_orchestrator.actors._cell import ActorCell
from workflow_orchestrator.actors._messages import Ask
from workflow_orchestrator.actors._record import ChildRecord
from workflow_orchestrator.supervision import ActorSpec

SHUTDOWN = StopReason(kind=StopKind.SHUTDOWN)


class ReportingParent:
    """A ``Parent`` that runs the cell's tasks and records its reports."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.path = "/test"
        self.system = ActorSystem()
        self.nursery = nursery
        self.exits: list[tuple[ChildRecord, int, Exception | None]] = []
        self.idle: list[ActorCell[Any]] = []

    def spawn_task(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        self.nursery.start_soon(fn, *args)

    def child_exited(self, record: ChildRecord, generation: int, error: Exception | None) -> None:
        self.exits.append((record, generation, error))

    def note_idle(self, cell: ActorCell[Any]) -> None:
        self.idle.append(cell)

    async def stop_record(self, record: ChildRecord) -> None:
        await record.stop(StopReason(kind=StopKind.NORMAL))
        record.mark_stopped(StopReason(kind=StopKind.NORMAL))


class Probe(Actor[Any]):
    """Logs its hooks; 'crash' raises, 'block' blocks, 'slow' takes a second."""

    def __init__(self, log: list[Any], gate: trio.Event | None = None) -> None:
        self.log = log
        self.gate = gate

    async def on_start(self, ctx: ActorContext[Any]) -> None:
        self.log.append(("start", ctx.path))
        if self.gate is not None:
            await self.gate.wait()

    async def receive(self, ctx: ActorContext[Any], message: Any) -> Any:
        self.log.append(("msg", message))
        if message == "crash":
            raise RuntimeError("crashed")
        if message == "block":
            await trio.sleep_forever()
        if message == "slow":
            await trio.sleep(1)
        return message

    async def on_stop(self, ctx: ActorContext[Any], reason: StopReason) -> None:
        self.log.append(("stop", reason.kind))


@pytest.fixture
async def parent() -> AsyncIterator[ReportingParent]:
    """A reporting parent whose nursery is cancelled when the test ends."""
    async with trio.open_nursery() as nursery:
        yield ReportingParent(nursery)
        nursery.cancel_scope.cancel()


def cell_of(parent: ReportingParent, log: list[Any], **kwargs: Any) -> ActorCell[Any]:
    gate = kwargs.pop("gate", None)
    spec = ActorSpec(name="probe", factory=lambda: Probe(log, gate), **kwargs)
    return ActorCell(parent, spec)


async def test_start_returns_a_ref_after_on_start(parent: ReportingParent) -> None:
    """start runs on_start, returns the actor's ref and then runs messages queued meanwhile."""
    log: list[Any] = []
    cell = cell_of(parent, log)
    assert (cell.kind, cell.path, cell.state) == ("actor", "/test/probe", LifecycleState.STARTING)
    cell.enqueue("early")
    ref = await cell.start()
    assert ref == ActorRef(cell) == cell.ref()
    assert cell.state is LifecycleState.RUNNING
    await trio.testing.wait_all_tasks_blocked()
    assert log == [("start", "/test/probe"), ("msg", "early")]
    assert parent.exits == []


async def test_crash_is_reported_with_its_generation(parent: ReportingParent) -> None:
    """A crash fails the pending ask, marks the cell restarting and reports to the parent."""
    cell = cell_of(parent, [])
    await cell.start()
    ask = Ask("crash")
    cell.enqueue(ask)
    await trio.testing.wait_all_tasks_blocked()
    assert cell.state is LifecycleState.RESTARTING
    [(record, generation, error)] = parent.exits
    assert (record, generation) == (cell, cell.generation)
    assert isinstance(error, RuntimeError)
    assert isinstance(ask.result, outcome.Error)
    assert isinstance(ask.result.error, AskFailed)


async def test_terminate_runs_on_stop_of_the_crashed_instance_once(
    parent: ReportingParent,
) -> None:
    """terminate runs on_stop of the instance that crashed, once; start makes a new one."""
    log: list[Any] = []
    cell = cell_of(parent, log)
    await cell.start()
    cell.enqueue("crash")
    await trio.testing.wait_all_tasks_blocked()
    failure = StopReason(kind=StopKind.FAILURE, error=RuntimeError("crashed"))
    await cell.terminate(failure)
    await cell.terminate(failure)
    assert log.count(("stop", StopKind.FAILURE)) == 1
    generation = cell.generation
    await cell.start()
    assert cell.generation == generation + 1
    assert log[-1] == ("start", "/test/probe")
    assert cell.state is LifecycleState.RUNNING


async def test_stop_is_graceful_then_forced(
    parent: ReportingParent, autojump_clock: trio.testing.MockClock
) -> None:
    """stop lets the current message run until shutdown_timeout, then cancels it."""
    log: list[Any] = []
    cell = cell_of(parent, log, shutdown_timeout=3)
    await cell.start()
    cell.enqueue("block")
    await trio.testing.wait_all_tasks_blocked()
    generation = cell.generation
    started = trio.current_time()
    await cell.stop(SHUTDOWN)
    assert trio.current_time() - started == pytest.approx(3)
    assert cell.state is LifecycleState.STOPPING
    assert cell.generation == generation + 1  # reports of the old incarnation are now stale
    assert log[-1] == ("stop", StopKind.SHUTDOWN)
    assert not cell.running


async def test_stop_waits_for_a_message_that_finishes_in_time(
    parent: ReportingParent, autojump_clock: trio.testing.MockClock
) -> None:
    """A message shorter than shutdown_timeout finishes before on_stop runs."""
    log: list[Any] = []
    cell = cell_of(parent, log, shutdown_timeout=5)
    await cell.start()
    cell.enqueue("slow")
    await trio.testing.wait_all_tasks_blocked()
    started = trio.current_time()
    await cell.stop(SHUTDOWN)
    assert trio.current_time() - started == pytest.approx(1)
    assert log[-2:] == [("msg", "slow"), ("stop", StopKind.SHUTDOWN)]


async def test_stop_during_on_start_stops_the_new_instance(parent: ReportingParent) -> None:
    """A stop while on_start runs leaves no actor behind: start runs its on_stop itself."""
    log: list[Any] = []
    gate = trio.Event()
    cell = cell_of(parent, log, gate=gate)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cell.start)
        await trio.testing.wait_all_tasks_blocked()
        await cell.stop(SHUTDOWN)
        gate.set()
    assert cell.actor is None
    assert log == [("start", "/test/probe"), ("stop", StopKind.SHUTDOWN)]


async def test_mark_stopped_fails_asks_and_tells_watchers(parent: ReportingParent) -> None:
    """The final transition fails queued asks with ActorStopped and notifies watchers."""
    cell = cell_of(parent, [])
    reasons: list[StopReason] = []
    cell.add_watcher(reasons.append)
    ask = Ask("never")
    cell.enqueue(ask)  # still starting: queued, not handled
    cell.mark_stopped(SHUTDOWN)
    assert cell.state is LifecycleState.STOPPED
    assert reasons == [SHUTDOWN]
    assert isinstance(ask.result, outcome.Error)
    assert isinstance(ask.result.error, ActorStopped)
    assert cell.leftovers() == []
    with pytest.raises(ActorStopped):
        cell.enqueue("late")


async def test_idle_actor_with_passivation_is_reported(parent: ReportingParent) -> None:
    """After its last message, an actor with passivate_after reports that it is idle."""
    cell = cell_of(parent, [], passivate_after=10)
    await cell.start()
    cell.enqueue("hello")
    await trio.testing.wait_all_tasks_blocked()
    assert parent.idle == [cell]
    assert cell.mailbox is None  # an idle actor keeps no deque


async def test_views_of_an_actor_record(parent: ReportingParent) -> None:
    """An actor record has a ref and mailbox figures, no nested supervisor; leftovers name
    what a stopped actor should not hold."""
    cell = cell_of(parent, [], mailbox_capacity=8)
    assert cell.nested is None
    assert cell.mailbox_figures() == (0, 8)
    cell.enqueue("queued")
    assert cell.mailbox_figures() == (1, 8)
    assert cell.leftovers() == [
        "/test/probe is starting, not stopped",
        "/test/probe has 1 queued messages",
    ]
    cell.mark_stopped(SHUTDOWN)
