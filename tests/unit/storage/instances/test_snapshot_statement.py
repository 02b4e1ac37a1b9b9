"""The snapshot statement and its batch plan, without a database."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from workflow_orchestrator.storage.instances import (
    HistoryRow,
    InstanceSnapshot,
    InstanceStatus,
    OutgoingEvent,
    SubscriptionRow,
    TimerRow,
)
from workflow_orchestrator.storage.instances._snapshot_statement import (
    WRITE_SQL,
    BatchRows,
    plan_batch,
    statement_arguments,
)

AT = datetime(2026, 3, 1, tzinfo=UTC)
A, B = uuid.UUID(int=1), uuid.UUID(int=2)


def snapshot(instance_id: uuid.UUID, version: int, **changes: object) -> InstanceSnapshot:
    values: dict[str, object] = {
        "instance_id": instance_id,
        "partition": 3,
        "snapshot_version": version,
        "status": "running",
        "snapshot": {"v": version},
        "history": (HistoryRow(kind="task.completed", task_ref=f"/do/{version}", at=AT),),
    }
    values.update(changes)
    return InstanceSnapshot(**values)  # type: ignore[arg-type]


def test_statement_parameters_match_the_arguments() -> None:
    """The statement's numbered parameters are exactly the arrays passed for them, in order,
    with one owner id first: 38 in all as before the row types, and 8 for child instances."""
    numbers = sorted({int(n) for n in re.findall(r"\$(\d+)", WRITE_SQL)})
    arguments = statement_arguments("replica-a", BatchRows(instances=[]))
    assert numbers == list(range(1, len(arguments) + 1)) and len(arguments) == 46
    assert arguments[0] == "replica-a" and all(a == [] for a in arguments[1:])
    assert "$3::int[]" in WRITE_SQL.split("batch AS")[0]  # the fence reads the partitions


def test_higher_version_wins_and_histories_merge_in_version_order() -> None:
    """Two snapshots of one instance: the higher version is written with both histories (in
    version order); later event writes replace earlier ones, outgoing rows accumulate."""
    first = snapshot(
        A,
        1,
        subscriptions=(
            SubscriptionRow(filter_index=0, task_ref="/a", event_type="t", shape_id=0, corr_key=""),
        ),
        outgoing=(OutgoingEvent(destination="business", routing_key="r", event_id="1", body="{}"),),
        inbox_through=4,
    )
    second = snapshot(
        A,
        2,
        subscriptions=(),
        timers=(TimerRow(timer_key="k", kind="wait", due_at=AT),),
        outgoing=(OutgoingEvent(destination="events", routing_key="r", event_id="2", body="{}"),),
        inbox_through=2,
    )
    plan = plan_batch([second, first], lambda partition: 7)
    rows = plan.rows
    assert plan.written == {A: (second, 7)} and plan.unleased == ()
    assert rows.instances == [second] and rows.epochs == [7] and rows.history_counts == [2]
    assert [row.task_ref for _, row in rows.history] == ["/do/1", "/do/2"]
    assert rows.subscriptions_replaced == [A] and rows.subscriptions == []
    assert rows.timers_replaced == [A] and [t.timer_key for _, t in rows.timers] == ["k"]
    assert rows.inbox_consumed == [(A, 4)]
    assert [o.event_id for _, o in rows.outgoing] == ["1", "2"]


def test_snapshots_without_a_lease_are_set_aside() -> None:
    """A snapshot of a partition this replica holds no lease on is not planned; one with its
    own epoch is written under that epoch whatever the current lease says."""
    own = snapshot(B, 1, lease_epoch=3)
    unleased = snapshot(A, 1)
    plan = plan_batch([own, unleased], lambda partition: None)
    assert plan.unleased == (unleased,) and list(plan.written) == [B]
    assert plan.rows.epochs == [3]
    assert plan.rows.subscriptions_replaced == [] and plan.rows.timers_replaced == []


def test_arguments_are_one_array_per_column() -> None:
    """Every array of a table has one entry per row (keyed rows lead with instance ids)."""
    plan = plan_batch(
        [
            snapshot(A, 1, status=InstanceStatus.COMPLETED, output={"x": 1}),
            snapshot(B, 5, history=()),
        ],
        lambda partition: 1,
    )
    arguments = statement_arguments("o", plan.rows)
    instances, history = arguments[1:13], arguments[13:18]
    assert instances[0] == [A, B] and instances[3] == ["completed", "running"]
    assert instances[4] == ['{"v":1}', '{"v":5}'] and instances[5] == ['{"x":1}', None]
    assert instances[7] == ["{}", "{}"]  # context
    assert instances[10:] == [[1, 1], [1, 0]]  # epochs, history counts
    assert history[0] == [A] and history[4] == ["{}"]
