"""``plan_commit``: what one commit writes, decided without I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workflow_orchestrator.instances import CommitAsk, CommitTarget, Pending, plan_commit
from workflow_orchestrator.instances._commit import ALL_INBOX, PLAIN_COMMIT
from workflow_orchestrator.storage.instances import (
    ChildRow,
    HistoryRow,
    InstanceStatus,
    OutgoingEvent,
    SubscriptionRow,
    TimerRow,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TARGET = CommitTarget(instance_id=uuid.UUID(int=7), partition=3, lease_epoch=2)
TIMER = TimerRow(timer_key="/do/1/pause/!wait", kind="wait", due_at=NOW + timedelta(minutes=5))
SUBSCRIPTION = SubscriptionRow(
    filter_index=0, task_ref="/do/0/hear", event_type="ping", shape_id=0, corr_key=""
)


def state(status: str = "running", **extra: Any) -> dict[str, Any]:
    return {"status": status, "startedAt": "2026-03-01T11:59:00+00:00", "context": {}, **extra}


def pending(**changes: Any) -> Pending:
    values: dict[str, Any] = {"state": state(), "status": "running", "changed": True}
    values.update(changes)
    return Pending(**values)


def test_nothing_pending_commits_nothing() -> None:
    """No new checkpoint, history, outgoing event, status or park: no snapshot at all."""
    assert plan_commit(TARGET, 4, pending(changed=False), PLAIN_COMMIT, NOW) is None


def test_commit_before_the_first_checkpoint_is_a_bug() -> None:
    """Something to commit but no checkpoint yet is refused (the interpreter's contract)."""
    with pytest.raises(RuntimeError, match="commit before the first checkpoint"):
        plan_commit(TARGET, 0, pending(state=None), PLAIN_COMMIT, NOW)


def test_a_running_commit_carries_the_pending_rows() -> None:
    """The next version, the checkpoint's status, its context and start time, the pending
    history and outgoing rows and the inbox position, stamped with the activation's epoch;
    stored subscriptions and timers are left alone when none can exist."""
    history = (HistoryRow(kind="task.completed", task_ref="/do/0/a", at=NOW),)
    outgoing = (OutgoingEvent(destination="events", routing_key="t", event_id="e", body="{}"),)
    snapshot = plan_commit(
        TARGET,
        4,
        pending(history=history, outgoing=outgoing, inbox_through=9),
        PLAIN_COMMIT,
        NOW,
    )
    assert snapshot is not None
    assert (snapshot.instance_id, snapshot.partition, snapshot.lease_epoch) == (
        TARGET.instance_id,
        3,
        2,
    )
    assert snapshot.snapshot_version == 5 and snapshot.status is InstanceStatus.RUNNING
    assert snapshot.snapshot == {"state": state(), "wakeAt": None}
    assert snapshot.started_at == datetime(2026, 3, 1, 11, 59, tzinfo=UTC)
    assert snapshot.completed_at is None and snapshot.output is None and snapshot.error is None
    assert snapshot.history == history and snapshot.outgoing == outgoing
    assert snapshot.inbox_through == 9
    assert snapshot.subscriptions is None and snapshot.timers is None


@pytest.mark.parametrize(
    "status", [InstanceStatus.COMPLETED, InstanceStatus.FAULTED, InstanceStatus.CANCELLED]
)
def test_terminal_commit_ends_everything(status: InstanceStatus) -> None:
    """A terminal status sets completed_at, drops subscriptions and timers (also sleeping
    ones) and consumes the whole inbox; output only for completed, error only for faulted."""
    final = state(status, output={"ok": 1}, error={"title": "E"})
    snapshot = plan_commit(
        TARGET,
        1,
        pending(state=final, status=status, sleepers=(TIMER,)),
        PLAIN_COMMIT,
        NOW,
    )
    assert snapshot is not None
    assert snapshot.completed_at == NOW
    assert snapshot.subscriptions == () and snapshot.timers == ()
    assert snapshot.inbox_through == ALL_INBOX
    assert snapshot.output == ({"ok": 1} if status is InstanceStatus.COMPLETED else None)
    assert snapshot.error == ({"title": "E"} if status is InstanceStatus.FAULTED else None)


def test_a_park_replaces_subscriptions_and_timers() -> None:
    """A park commits its subscriptions and timers and the wake-up time in the snapshot."""
    ask = CommitAsk(wake_at=TIMER.due_at, subscriptions=(SUBSCRIPTION,), timers=(TIMER,))
    snapshot = plan_commit(TARGET, 1, pending(status="waiting"), ask, NOW)
    assert snapshot is not None
    assert snapshot.status is InstanceStatus.WAITING
    assert snapshot.subscriptions == (SUBSCRIPTION,) and snapshot.timers == (TIMER,)
    assert snapshot.snapshot["wakeAt"] == TIMER.due_at.isoformat()


def test_waking_consumes_what_the_last_park_left() -> None:
    """After a park (subscriptions and timers held), the next commit removes both."""
    snapshot = plan_commit(
        TARGET,
        2,
        pending(subscriptions_held=True, timers_held=True),
        PLAIN_COMMIT,
        NOW,
    )
    assert snapshot is not None
    assert snapshot.subscriptions == () and snapshot.timers == ()


def test_a_listen_running_its_iterations_keeps_its_subscriptions() -> None:
    """A listen that took an event stores its subscriptions with the next commit (replacing
    what the park left), then leaves them alone; the snapshot names it. A terminal commit
    drops them all the same."""
    taking = plan_commit(
        TARGET,
        2,
        pending(subscriptions=(SUBSCRIPTION,), listening="/do/0/hear"),
        PLAIN_COMMIT,
        NOW,
    )
    running = plan_commit(TARGET, 3, pending(listening="/do/0/hear"), PLAIN_COMMIT, NOW)
    ended = plan_commit(
        TARGET,
        4,
        pending(state=state("completed"), status="completed", listening="/do/0/hear"),
        PLAIN_COMMIT,
        NOW,
    )
    assert taking is not None and running is not None and ended is not None
    assert taking.subscriptions == (SUBSCRIPTION,)
    assert taking.snapshot["listening"] == running.snapshot["listening"] == "/do/0/hear"
    assert running.subscriptions is None
    assert ended.subscriptions == () and "listening" not in ended.snapshot


def test_sleeping_tasks_make_their_timers_durable() -> None:
    """Tasks sleeping in memory have their timers written with every commit (a crash while
    waiting still wakes the instance)."""
    snapshot = plan_commit(
        TARGET, 2, pending(sleepers=(TIMER,), timers_held=True), PLAIN_COMMIT, NOW
    )
    assert snapshot is not None and snapshot.timers == (TIMER,)


def test_a_status_decided_outside_the_interpreter_with_its_note() -> None:
    """A command's status wins over the checkpoint's and adds its ``workflow.<note>`` row."""
    ask = CommitAsk(status=InstanceStatus.SUSPENDED, note="suspended")
    snapshot = plan_commit(TARGET, 2, pending(changed=False), ask, NOW)
    assert snapshot is not None
    assert snapshot.status is InstanceStatus.SUSPENDED
    assert [(h.kind, h.at) for h in snapshot.history] == [("workflow.suspended", NOW)]
    assert snapshot.completed_at is None and snapshot.subscriptions is None


def test_the_children_started_go_with_the_commit() -> None:
    """The child instances ``run.workflow`` tasks started are created with the commit, also
    with a park (the parent awaits them)."""
    child = ChildRow(
        child_id=uuid.UUID(int=9), partition=1, definition_id="c", definition_version="1", input={}
    )
    plain = plan_commit(TARGET, 4, pending(children=(child,)), PLAIN_COMMIT, NOW)
    parked = plan_commit(
        TARGET,
        4,
        pending(children=(child,), status="waiting"),
        CommitAsk(subscriptions=(), timers=()),
        NOW,
    )
    assert plain is not None and plain.children == (child,)
    assert parked is not None and parked.children == (child,) and parked.subscriptions == ()
    assert parked.status is InstanceStatus.WAITING
