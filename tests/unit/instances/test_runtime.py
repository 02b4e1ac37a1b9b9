"""The instance runtime's decisions, without a database: commands, recovery, wake-ups,
long polls, the live registry and the start request."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from workflow_orchestrator.instances import Command, InputInvalid, LiveInstances, StartRequest
from workflow_orchestrator.instances._commands import command_transition
from workflow_orchestrator.instances._recovery import RecoveryRun, recovery_run
from workflow_orchestrator.instances._timers import due_within
from workflow_orchestrator.instances._waiters import TerminalWaiters
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
    polled every second meanwhile (another replica may end it)."""
    waiters = TerminalWaiters()
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
