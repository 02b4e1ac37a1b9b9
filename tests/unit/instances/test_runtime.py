"""The instance runtime without a database: its decisions (commands, recovery, wake-ups,
long polls, the live registry, the start request), and the runtime itself on the in-memory
store with the real catalog, supervisor and actors, under Trio's mock clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import attrs
import pytest
import trio
import trio.testing

from tests.support.instances import WAITER, WatchedStore, ok, open_runtime, trio_clock
from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse
from workflow_orchestrator.instances import Command, InputInvalid, LiveInstances, StartRequest
from workflow_orchestrator.instances._commands import command_transition
from workflow_orchestrator.instances._live import LiveInstance
from workflow_orchestrator.instances._recovery import RecoveryRun, recovery_run
from workflow_orchestrator.instances._timers import due_within
from workflow_orchestrator.instances._waiters import TerminalWaiters
from workflow_orchestrator.storage import DefinitionNotFound, InvalidStatusTransition
from workflow_orchestrator.storage.instances import (
    INSTANCE_STATUSES,
    InboxEvent,
    InstanceRecord,
    InstanceStatus,
    RecoverableInstance,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def record(status: InstanceStatus) -> InstanceRecord:
    return InstanceRecord(
        instance_id=uuid.UUID(int=5),
        definition_id="d",
        definition_version="1",
        status=status,
        business_key=None,
        idempotency_key=None,
        input={},
        output=None,
        error=None,
        context={},
        partition=1,
        lease_owner=None,
        lease_epoch=0,
        snapshot_version=0,
        created_at=NOW,
        updated_at=NOW,
        started_at=None,
        completed_at=None,
    )


def test_command_transitions() -> None:
    """Cancel ends any live instance, suspend pauses one not suspended, resume only a
    suspended one; each leaves its history row."""
    cancel, suspend, resume = (command_transition(c) for c in Command)
    live = set(INSTANCE_STATUSES) - {
        InstanceStatus.CANCELLED,
        InstanceStatus.FAULTED,
        InstanceStatus.COMPLETED,
    }
    assert (cancel.status, cancel.allowed_from) == (InstanceStatus.CANCELLED, live)
    assert suspend.allowed_from == live - {InstanceStatus.SUSPENDED}
    assert (resume.status, resume.allowed_from) == (
        InstanceStatus.RUNNING,
        {InstanceStatus.SUSPENDED},
    )
    assert [t.history_kind for t in (cancel, suspend, resume)] == [
        "workflow.cancelled",
        "workflow.suspended",
        "workflow.resumed",
    ]
    with pytest.raises(ValueError, match="'restart' is not a valid Command"):
        Command("restart")


@pytest.mark.parametrize(
    ("status", "inbox", "expected"),
    [
        (InstanceStatus.PENDING, False, "item"),
        (InstanceStatus.RUNNING, False, "item"),
        (InstanceStatus.WAITING, True, "reload"),
        (InstanceStatus.WAITING, False, None),
        (InstanceStatus.SUSPENDED, True, None),
    ],
)
def test_recovery_runs_what_was_running_or_has_events(
    status: InstanceStatus, inbox: bool, expected: str | None
) -> None:
    """Recovery resumes pending and running instances from the recovered item, reloads a
    waiting one whose inbox has events, and leaves the others to their timers or commands."""
    item = RecoverableInstance(record=record(status), snapshot=None, has_inbox=inbox)
    run = recovery_run(item)
    if expected is None:
        assert run is None
    else:
        assert run == RecoveryRun(activation=item if expected == "item" else None)


def test_parked_instances_due_soon_arm_themselves() -> None:
    """An instance parked until within the lookahead arms its own wake-up; later ones wait
    for the timer service."""
    assert due_within(NOW + timedelta(seconds=5), NOW, 5.0)
    assert due_within(NOW - timedelta(seconds=1), NOW, 5.0)
    assert not due_within(NOW + timedelta(seconds=5.5), NOW, 5.0)


async def test_long_poll_returns_when_the_instance_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A waiter returns as soon as the instance's terminal commit is announced, without
    waiting for its next poll."""
    waiters = TerminalWaiters()
    current = record(InstanceStatus.RUNNING)
    reads = 0

    async def read() -> InstanceRecord:
        nonlocal reads
        reads += 1
        return current

    returned: list[tuple[InstanceRecord, float]] = []

    async def wait() -> None:
        returned.append(
            (await waiters.wait_terminal(current.instance_id, 30, read), trio.current_time())
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.sleep(0.25)
        current = attrs.evolve(current, status=InstanceStatus.COMPLETED)
        waiters.ended(current.instance_id)
    ((result, at),) = returned
    assert result.status is InstanceStatus.COMPLETED
    assert at == pytest.approx(0.25) and reads == 2


async def test_long_poll_gives_up_after_its_time(autojump_clock: trio.testing.MockClock) -> None:
    """A waiter whose instance does not end returns it as it is after ``seconds``, having
    re-read it every ``recheck`` seconds meanwhile (another replica may end it), and leaves
    nothing behind."""
    waiters = TerminalWaiters(recheck=1.0)
    reads = 0

    async def read() -> InstanceRecord:
        nonlocal reads
        reads += 1
        return record(InstanceStatus.WAITING)

    started = trio.current_time()
    result = await waiters.wait_terminal(uuid.UUID(int=5), 3.5, read)
    assert result.status is InstanceStatus.WAITING
    assert trio.current_time() - started == pytest.approx(3.5)
    assert reads == 5  # at 0, 1, 2, 3 and the final read
    assert waiters.waiting() == 0


class Actor:
    """A stand-in for a live instance actor (the registry only stores and compares it)."""

    def run_again(self) -> bool:
        return True

    async def wait_gone(self) -> None:
        return None

    async def interrupt(self, status: InstanceStatus) -> None:
        return None


def test_live_registry_removes_only_the_actor_it_holds() -> None:
    """An old actor stopping after a new one registered does not remove the new one."""
    live = LiveInstances()
    old, new = Actor(), Actor()
    instance_id = uuid.UUID(int=1)
    live.add(instance_id, old)
    live.add(instance_id, new)
    live.discard(instance_id, old)
    assert live.get(instance_id) is new and instance_id in live and len(live) == 1
    live.discard(instance_id, new)
    assert instance_id not in live and list(live) == []


def test_live_registry_tells_which_instances_stopped_since_a_stamp() -> None:
    """A stop after the stamp is seen, one before is not; once stops were forgotten, an
    older stamp counts every instance as stopped (a read again, never a stale run)."""
    live = LiveInstances(remembered=2)
    first, second, third = (uuid.UUID(int=n) for n in (1, 2, 3))

    def run_once(instance_id: uuid.UUID) -> None:
        actor = cast(LiveInstance, Actor())
        live.add(instance_id, actor)
        live.discard(instance_id, actor)

    run_once(first)
    stamp = live.stamp()
    assert not live.stopped_since(first, stamp)
    run_once(second)
    assert live.stopped_since(second, stamp) and not live.stopped_since(third, stamp)
    later = live.stamp()
    run_once(third)
    # first was forgotten (two remembered): stamps up to its stop cannot tell any more
    assert live.stopped_since(third, later) and not live.stopped_since(first, later)
    assert live.stopped_since(first, 0)


FILTERED_LISTENER = """\
do:
  - hear:
      listen:
        to:
          any:
            - with: {type: com.example.reading, data: '${ .value > 10 }'}
"""


async def test_an_activation_read_before_a_run_ended_is_read_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The router reads an activation (snapshot and inbox) before a run of the instance
    commits: activated with the stamp taken before that read, the instance is read again and
    consumes the event, instead of running from the superseded snapshot (whose commit of the
    same version would be taken for a retried write and lost)."""
    low = {"specversion": "1.0", "id": "1", "source": "t", "type": "com.example.reading"}
    with trio.fail_after(60):
        async with open_runtime() as harness:
            harness.register("hear", FILTERED_LISTENER)
            record, _ = await harness.runtime.start_instance(StartRequest(definition_id="hear"))
            instance_id = record.instance_id
            await harness.wait_status(instance_id, InstanceStatus.WAITING)
            harness.store.deliver(instance_id, {**low, "data": {"value": 3}})
            harness.store.deliver(instance_id, {**low, "id": "2", "data": {"value": 12}})
            read_at = harness.runtime.activation_stamp()
            stale = await harness.store.load(instance_id)  # both events, the parked snapshot
            # A run that took only the first event (rejected) commits and parks again.
            first = attrs.evolve(stale, inbox=stale.inbox[:1])
            await harness.runtime.activate(instance_id, first)
            while harness.store.stored(instance_id).record.snapshot_version == (
                stale.record.snapshot_version
            ):
                await harness.store.changed.wait()
            await harness.wait_status(instance_id, InstanceStatus.WAITING)
            await harness.runtime.activate(instance_id, stale, read_at=read_at)
            await harness.wait_status(instance_id, InstanceStatus.COMPLETED)
            done = harness.store.stored(instance_id).record
    assert done.output == [{"value": 12}]


def test_input_invalid_names_the_first_problem() -> None:
    """The start error names the definition, version and the first problem's pointer."""
    problems: list[dict[str, Any]] = [
        {"pointer": "/orderId", "message": "'orderId' is a required property", "rule": "schema"}
    ]
    error = InputInvalid("orders", "1.0.0", problems)
    assert str(error) == (
        "the input does not match the input.schema of definition 'orders' version '1.0.0': "
        "/orderId: 'orderId' is a required property"
    )
    assert isinstance(error, ValueError) and error.problems == problems
    assert StartRequest(definition_id="orders").input == {}


def test_inbox_events_are_values() -> None:
    """Inbox events compare by value (activation records may be compared and logged)."""
    assert InboxEvent(seq=1, event={"id": "a"}) == InboxEvent(seq=1, event={"id": "a"})


# -- the runtime on the in-memory store, with the real catalog, supervisor and actors ------

SETTER = """\
do:
  - only:
      set: {done: true}
"""

GATED_CALL = """\
do:
  - slow:
      call: http
      with: {method: get, endpoint: 'http://example.test/slow'}
"""

CALL_THEN_LISTEN = """\
do:
  - slow:
      call: http
      with: {method: get, endpoint: 'http://example.test/slow'}
  - hear:
      listen:
        to:
          one:
            with: {type: com.example.ping}
  - after:
      set: {heard: true}
"""

PING = {"specversion": "1.0", "id": "p1", "source": "test", "type": "com.example.ping"}


@attrs.define(eq=False)
class Gate:
    """An HTTP responder that holds every call until ``open`` is set."""

    open: trio.Event = attrs.field(factory=trio.Event)
    entered: trio.Event = attrs.field(factory=trio.Event)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.entered.set()
        await self.open.wait()
        return await ok(request)


async def test_start_runs_the_instance_and_a_used_key_returns_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A start creates and runs the instance; a start with a used idempotency key returns the
    same instance without creating or running another, whatever its input."""
    async with open_runtime() as harness:
        harness.register("setter", SETTER)
        request = StartRequest(definition_id="setter", input={"n": 1}, idempotency_key="k1")
        record, created = await harness.runtime.start_instance(request)
        assert created and record.status is InstanceStatus.PENDING
        ended = await harness.runtime.wait_terminal(record.instance_id, 30)
        again, created_again = await harness.runtime.start_instance(
            attrs.evolve(request, input={"n": 2})
        )
        other, created_other = await harness.runtime.start_instance(
            StartRequest(definition_id="setter")
        )
        await harness.wait_status(other.instance_id, InstanceStatus.COMPLETED)
    assert ended.status is InstanceStatus.COMPLETED and ended.output == {"done": True}
    assert (again.instance_id, created_again) == (record.instance_id, False)
    assert again.input == {"n": 1}
    assert created_other and other.instance_id != record.instance_id
    assert len(harness.store.instances) == 2 and harness.store.wakes == []


async def test_start_of_a_missing_definition_names_the_registered_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A start of an unknown definition fails with the registered ids and creates nothing."""
    async with open_runtime() as harness:
        harness.register("setter", SETTER)
        with pytest.raises(DefinitionNotFound) as caught:
            await harness.runtime.start_instance(StartRequest(definition_id="settr"))
    assert str(caught.value) == "definition 'settr' not found; registered: ['setter']"
    assert harness.store.instances == {}


async def test_start_in_a_partition_held_elsewhere_notifies_its_owner(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An instance whose partition this replica does not hold is created and announced to
    the other replicas, not run here."""
    store = WatchedStore(clock=trio_clock)
    for partition in range(store.partition_count):
        store.release(partition)
    async with open_runtime(store) as harness:
        harness.register("setter", SETTER)
        record, created = await harness.runtime.start_instance(StartRequest(definition_id="setter"))
        await trio.testing.wait_all_tasks_blocked()
    assert created and store.wakes == [record.instance_id]
    assert store.stored(record.instance_id).record.status is InstanceStatus.PENDING
    assert record.instance_id not in harness.runtime.live and store.writes == []


@pytest.mark.parametrize("action", [Command.CANCEL, Command.SUSPEND])
async def test_command_on_a_live_instance_goes_to_its_actor(
    autojump_clock: trio.testing.MockClock, action: Command
) -> None:
    """Cancel or suspend of a running instance stops its run in the middle of a call and
    commits the status when the command returns; a suspended one resumes and completes."""
    async with open_runtime() as harness:
        harness.register("slow", GATED_CALL)
        gate = Gate()
        harness.http.respond = gate
        record, _ = await harness.runtime.start_instance(StartRequest(definition_id="slow"))
        await gate.entered.wait()
        await harness.runtime.command(record.instance_id, action)
        status = harness.store.stored(record.instance_id).record.status
        if action is Command.SUSPEND:
            gate.open.set()
            await harness.runtime.command(record.instance_id, Command.RESUME)
            await harness.wait_status(record.instance_id, InstanceStatus.COMPLETED)
    expected = command_transition(action).status
    assert status is expected
    assert command_transition(action).history_kind in harness.history(record.instance_id)
    if action is Command.SUSPEND:
        assert harness.history(record.instance_id)[-1] == "workflow.completed"


async def test_commands_on_a_resting_instance_change_the_stored_status(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A parked instance is suspended and cancelled in storage (its timer disarmed), resume
    runs it again from its snapshot, and a refused transition names the allowed ones."""
    async with open_runtime(timer_lookahead=3600.0) as harness:
        harness.register("waiter", WAITER)
        record, _ = await harness.runtime.start_instance(StartRequest(definition_id="waiter"))
        instance_id = record.instance_id
        await harness.wait_status(instance_id, InstanceStatus.WAITING)
        armed = harness.runtime.timers.armed()
        await harness.runtime.command(instance_id, Command.SUSPEND)
        disarmed = harness.runtime.timers.armed()
        await harness.runtime.command(instance_id, Command.RESUME)
        await harness.wait_status(instance_id, InstanceStatus.WAITING)
        await harness.runtime.command(instance_id, Command.CANCEL)
        with pytest.raises(InvalidStatusTransition) as caught:
            await harness.runtime.command(instance_id, Command.RESUME)
        stored = harness.store.stored(instance_id)
    assert (armed, disarmed) == (1, 0)
    assert stored.record.status is InstanceStatus.CANCELLED and stored.timers == {}
    assert [k for k in harness.history(instance_id) if k.startswith("workflow.")][-3:] == [
        "workflow.suspended",
        "workflow.resumed",
        "workflow.cancelled",
    ]
    assert harness.store.stored(instance_id).record.snapshot_version >= 2
    assert str(caught.value) == (
        f"workflow instance {instance_id} is cancelled; it can become running only from: suspended"
    )


async def test_command_before_an_activation_makes_it_read_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An activation carrying what was read before a command does not run on it: it reads
    the instance again, finds it cancelled and runs nothing."""
    async with open_runtime() as harness:
        harness.register("slow", GATED_CALL)
        record = harness.store.create("slow")
        stale = RecoverableInstance(record=record, snapshot=None)
        await harness.runtime.command(record.instance_id, Command.CANCEL)
        await harness.runtime.activate(record.instance_id, stale)
        await harness.wait_status(record.instance_id, InstanceStatus.CANCELLED)
    assert harness.http.called.is_set() is False
    assert harness.history(record.instance_id) == ["workflow.cancelled"]


async def test_recovery_resumes_pending_running_and_waiting_with_events_in_pages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A restarted runtime, reading two instances a page, runs the pending and running
    instances, the waiting one whose inbox got an event, and leaves the other waiting and
    the suspended instances as they are."""
    store = WatchedStore(clock=trio_clock)
    async with open_runtime(store) as first:
        first.register("setter", SETTER)
        first.register("listener", CALL_THEN_LISTEN)
        listeners = []
        for _ in range(2):
            record, _ = await first.runtime.start_instance(StartRequest(definition_id="listener"))
            listeners.append(record.instance_id)
        for instance_id in listeners:
            await first.wait_status(instance_id, InstanceStatus.WAITING)
    heard, deaf = listeners
    store.deliver(heard, PING)
    pending = store.create("setter")
    running = store.create("setter")
    suspended = store.create("setter")
    store.stored(running.instance_id).record = attrs.evolve(running, status=InstanceStatus.RUNNING)
    store.stored(suspended.instance_id).record = attrs.evolve(
        suspended, status=InstanceStatus.SUSPENDED
    )
    async with (
        open_runtime(store, run=False, recovery_page=2) as second,
        trio.open_nursery() as nursery,
    ):
        # Recovery only queues the runs; the running runtime's dispatcher starts them.
        found = await second.runtime.recover(frozenset(range(store.partition_count)))
        await nursery.start(second.runtime.run)
        for instance_id in (heard, pending.instance_id, running.instance_id):
            await second.wait_status(instance_id, InstanceStatus.COMPLETED)
        nursery.cancel_scope.cancel()
    assert found == 5
    assert store.stored(heard).record.output == {"heard": True}
    assert store.stored(deaf).record.status is InstanceStatus.WAITING
    assert store.stored(suspended.instance_id).record.status is InstanceStatus.SUSPENDED


async def test_wake_runs_a_parked_instance_when_its_partition_is_held(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A due wake-up runs the parked instance from its snapshot to the end; a wake-up of an
    instance whose partition this replica gave up does nothing."""
    async with open_runtime() as harness:
        harness.register("waiter", WAITER)
        records: list[InstanceRecord] = []
        # Two instances in different partitions (ids are random: the second may share the
        # first's partition, whose release would then hold back the wake-up this test expects).
        while len({r.partition for r in records}) < 2:
            record, _ = await harness.runtime.start_instance(StartRequest(definition_id="waiter"))
            await harness.wait_status(record.instance_id, InstanceStatus.WAITING)
            if record.partition not in {r.partition for r in records}:
                records.append(record)
        woken, given_up = records
        harness.store.release(given_up.partition)
        await trio.sleep(600)
        await harness.runtime.wake(woken.instance_id)
        await harness.runtime.wake(given_up.instance_id)
        await harness.wait_status(woken.instance_id, InstanceStatus.COMPLETED)
    assert harness.store.stored(woken.instance_id).record.output == {"step": 2, "done": True}
    assert harness.store.stored(given_up.instance_id).record.status is InstanceStatus.WAITING


WAIT_THEN_CALL = """\
do:
  - pause:
      wait: {minutes: 10}
  - slow:
      call: http
      with: {method: get, endpoint: 'http://example.test/slow'}
"""


async def test_wake_returns_once_the_activation_is_queued(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A wake-up (and its ``scheduler.threadPoolSize`` slot) ends once the instance's run is
    queued, not when the run ends: a run held by a slow call does not hold the wake-up."""
    async with open_runtime() as harness:
        harness.register("napper", WAIT_THEN_CALL)
        gate = Gate()
        harness.http.respond = gate
        record, _ = await harness.runtime.start_instance(StartRequest(definition_id="napper"))
        await harness.wait_status(record.instance_id, InstanceStatus.WAITING)
        await trio.sleep(600)
        with trio.fail_after(1):
            await harness.runtime.wake(record.instance_id)
        await gate.entered.wait()  # the run is in its call, after wake returned
        running = harness.store.stored(record.instance_id).record.status
        gate.open.set()
        await harness.wait_status(record.instance_id, InstanceStatus.COMPLETED)
    assert running is not InstanceStatus.COMPLETED


async def test_wait_terminal_returns_on_the_commit(autojump_clock: trio.testing.MockClock) -> None:
    """A long poll returns as soon as the instance's terminal status is committed here, not
    at its next poll."""
    async with open_runtime() as harness:
        harness.register("slow", GATED_CALL)
        gate = Gate()
        harness.http.respond = gate
        record, _ = await harness.runtime.start_instance(StartRequest(definition_id="slow"))
        await gate.entered.wait()
        returned: list[tuple[InstanceStatus, float]] = []

        async def poll() -> None:
            ended = await harness.runtime.wait_terminal(record.instance_id, 30)
            returned.append((ended.status, trio.current_time()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            await trio.sleep(0.5)
            released_at = trio.current_time()
            gate.open.set()
    ((status, at),) = returned
    assert status is InstanceStatus.COMPLETED and at == pytest.approx(released_at)


async def test_activation_while_running_runs_once_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An event delivered while the instance runs (after it could read its inbox) is not
    lost: the activation makes the live actor run once more, and the listen takes it."""
    async with open_runtime() as harness:
        harness.register("listener", CALL_THEN_LISTEN)
        gate = Gate()
        harness.http.respond = gate
        record, _ = await harness.runtime.start_instance(StartRequest(definition_id="listener"))
        await gate.entered.wait()
        harness.store.deliver(record.instance_id, PING)
        await harness.runtime.activate(record.instance_id)
        gate.open.set()
        await harness.wait_status(record.instance_id, InstanceStatus.COMPLETED)
    assert harness.store.stored(record.instance_id).record.output == {"heard": True}
    assert harness.store.stored(record.instance_id).inbox == []
