"""The snapshot sink contract: what every ``SnapshotSink`` does with a snapshot.

``SnapshotSinkContract`` holds the tests; a test module subclasses it (``TestXxx``) and
provides an ``open_harness`` fixture: a callable opening a ``SinkHarness`` (the sink, the
instances it writes to, and the levers to fence it). The real ``SnapshotWriter`` runs them
against PostgreSQL (``tests/integration/storage``), ``InMemoryInstanceStore`` in memory
(``tests/unit/instances``), so the in-memory store the durability unit tests rely on behaves
as the writer does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import attrs
import pytest
import trio

from workflow_orchestrator.instances import SnapshotSink
from workflow_orchestrator.storage import (
    InstanceNotFound,
    LeaseLost,
    SnapshotSuperseded,
    SnapshotWriteFailed,
)
from workflow_orchestrator.storage.instances import (
    SUBFLOW_ENDED_TYPE,
    ChildRow,
    HistoryRow,
    InstanceRecord,
    InstanceSnapshot,
    InstanceStatus,
    OutgoingEvent,
    SnapshotUnstorable,
    SubscriptionRow,
    TimerRow,
    partition_of,
    subflow_key,
)

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@attrs.frozen(kw_only=True)
class Stored:
    """One instance as a sink left it, in plain values."""

    status: InstanceStatus
    version: int
    snapshot: Any
    output: Any
    context: Any
    started_at: datetime | None
    completed_at: datetime | None
    lease_owner: str | None
    lease_epoch: int
    history: list[tuple[int, str, str]]  # seq, kind, task_ref
    subscriptions: list[tuple[int, str, str, int, str, Any]]
    timers: dict[str, tuple[str, datetime]]  # key -> kind, due_at
    inbox: list[int]  # seqs not consumed
    outbox: list[tuple[str, str, str]]  # exchange, routing_key, event_id (this instance's)
    events: list[str]  # ids in the events table (all)


class SinkHarness(Protocol):
    """A sink, what it writes to, and how to fence it; the writer's owner is ``replica-a``."""

    sink: SnapshotSink

    async def create(self) -> InstanceRecord:
        """A new pending instance."""
        ...

    async def stored(self, instance_id: uuid.UUID) -> Stored: ...

    async def record(self, instance_id: uuid.UUID) -> InstanceRecord:
        """The stored record of the instance."""
        ...

    async def inbox(self, instance_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
        """The instance's inbox rows: (event key, event), in order."""
        ...

    async def deliver(self, instance_id: uuid.UUID, event_id: str) -> int:
        """Put an event in the instance's inbox; returns its inbox seq."""
        ...

    async def take_over(self, partition: int) -> None:
        """``replica-b`` takes ``partition`` over (at the next epoch)."""
        ...

    async def reacquire(self) -> None:
        """The leases of ``replica-a`` expire and it gets them back at the next epoch."""
        ...

    async def expire(self, partition: int) -> None:
        """``partition``'s lease runs out."""
        ...

    async def command(self, instance_id: uuid.UUID, status: InstanceStatus) -> InstanceRecord:
        """A command commits ``status`` directly (``set_status`` from any status that is not
        terminal, with a ``workflow.<status>`` history row), as for an instance no live
        actor drives, or one whose actor did not stop in time."""
        ...


OpenHarness = Callable[[], AbstractAsyncContextManager[SinkHarness]]


def snapshot_of(record: InstanceRecord, version: int, **changes: Any) -> InstanceSnapshot:
    values: dict[str, Any] = {
        "instance_id": record.instance_id,
        "partition": record.partition,
        "snapshot_version": version,
        "status": InstanceStatus.RUNNING,
        "snapshot": {"position": f"/do/{version}"},
        "history": (HistoryRow(kind="task.completed", task_ref=f"/do/{version}", at=AT),),
    }
    values.update(changes)
    return InstanceSnapshot(**values)


def outgoing(destination: str, event_id: str) -> OutgoingEvent:
    body = json.dumps({"specversion": "1.0", "id": event_id, "source": "s", "type": "t"})
    return OutgoingEvent(destination=destination, routing_key="t", event_id=event_id, body=body)


def subscription(index: int, task_ref: str = "/do/0/hear") -> SubscriptionRow:
    return SubscriptionRow(
        filter_index=index,
        task_ref=task_ref,
        event_type="com.example.ping",
        shape_id=0,
        corr_key="",
        attributes={"source": "s"},
    )


def timer(key: str, minutes: int) -> TimerRow:
    return TimerRow(timer_key=key, kind="wait", due_at=AT + timedelta(minutes=minutes))


def child_of(parent: InstanceRecord, number: int, **changes: Any) -> ChildRow:
    """A child row of ``parent`` (of the parent's definition) with id ``number``."""
    child_id = uuid.UUID(int=number)
    values: dict[str, Any] = {
        "child_id": child_id,
        "partition": partition_of(child_id),
        "definition_id": parent.definition_id,
        "definition_version": parent.definition_version,
        "input": {"n": number},
    }
    values.update(changes)
    return ChildRow(**values)


class SnapshotSinkContract:
    """The contract tests (see the module docstring)."""

    async def test_commit_writes_the_snapshot_and_numbered_history(
        self, open_harness: OpenHarness
    ) -> None:
        """A returned write is committed: status, snapshot, output, context, times, the lease
        it was written under, and its history numbered after the earlier rows; a retried
        write of the stored version changes nothing."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                record = await harness.create()
                await harness.sink.write(
                    snapshot_of(
                        record,
                        1,
                        started_at=AT,
                        history=(
                            HistoryRow(kind="workflow.started", at=AT),
                            HistoryRow(kind="task.started", task_ref="/do/0/greet", at=AT),
                        ),
                    )
                )
                await harness.sink.write(
                    snapshot_of(
                        record,
                        2,
                        status=InstanceStatus.COMPLETED,
                        output={"hello": "world"},
                        context={"seen": 1},
                        completed_at=AT,
                        history=(HistoryRow(kind="task.completed", task_ref="/do/0/greet", at=AT),),
                    )
                )
                await harness.sink.write(snapshot_of(record, 2, status=InstanceStatus.RUNNING))
                stored = await harness.stored(record.instance_id)
        assert stored.status is InstanceStatus.COMPLETED and stored.version == 2
        assert stored.output == {"hello": "world"} and stored.context == {"seen": 1}
        assert stored.started_at == AT == stored.completed_at
        assert (stored.lease_owner, stored.lease_epoch) == ("replica-a", 1)
        assert stored.snapshot == {"position": "/do/2"}
        assert stored.history == [
            (1, "workflow.started", ""),
            (2, "task.started", "/do/0/greet"),
            (3, "task.completed", "/do/0/greet"),
        ]

    async def test_versions_must_grow_and_instances_exist(self, open_harness: OpenHarness) -> None:
        """An older version (``SnapshotSuperseded``) and an unknown instance are refused with
        errors naming them."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                record = await harness.create()
                await harness.sink.write(snapshot_of(record, 3))
                with pytest.raises(SnapshotWriteFailed) as stale:
                    await harness.sink.write(snapshot_of(record, 2))
                ghost = attrs.evolve(snapshot_of(record, 1), instance_id=uuid.UUID(int=9))
                with pytest.raises(InstanceNotFound) as missing:
                    await harness.sink.write(ghost)
                stored = await harness.stored(record.instance_id)
        assert isinstance(stale.value, SnapshotSuperseded)
        assert str(stale.value) == (
            f"snapshot version 2 of workflow instance {record.instance_id} is older than the "
            "stored version 3 (running): the instance changed since its run read it (a "
            "command, or another run); stop driving it, the stored state stands"
        )
        assert str(missing.value) == (
            "workflow instance 00000000-0000-0000-0000-000000000009 not found; its snapshot "
            "was not written"
        )
        assert stored.version == 3 and len(stored.history) == 1

    async def test_a_write_after_a_takeover_is_fenced(self, open_harness: OpenHarness) -> None:
        """Once another owner holds the partition, a write fails with LeaseLost and writes
        nothing of the snapshot: no history, no outbox row, no timer."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                record = await harness.create()
                await harness.sink.write(snapshot_of(record, 1))
                await harness.take_over(record.partition)
                with pytest.raises(LeaseLost) as lost:
                    await harness.sink.write(
                        snapshot_of(
                            record,
                            2,
                            status=InstanceStatus.COMPLETED,
                            outgoing=(outgoing("business", "e1"),),
                            timers=(timer("k", 5),),
                        )
                    )
                stored = await harness.stored(record.instance_id)
        assert str(lost.value) == (
            f"the snapshot of workflow instance {record.instance_id} was fenced: 'replica-a' "
            f"lost partition {record.partition} ('replica-b' holds it now, at epoch 2); stop "
            "driving the instance, the partition's owner recovers it"
        )
        assert (lost.value.instance_id, lost.value.partition) == (
            record.instance_id,
            record.partition,
        )
        assert stored.version == 1 and stored.status is InstanceStatus.RUNNING
        assert len(stored.history) == 1 and stored.outbox == [] and stored.timers == {}

    async def test_an_actor_of_an_older_epoch_is_fenced(self, open_harness: OpenHarness) -> None:
        """A write under the epoch an actor started with fails once the lease was granted
        again; the same write under the new epoch succeeds."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                record = await harness.create()
                await harness.reacquire()
                with pytest.raises(LeaseLost) as lost:
                    await harness.sink.write(snapshot_of(record, 1, lease_epoch=1))
                await harness.sink.write(snapshot_of(record, 1, lease_epoch=2))
                stored = await harness.stored(record.instance_id)
        assert str(lost.value).endswith(
            f"lost partition {record.partition} (it is held at epoch 2, not at epoch 1); stop "
            "driving the instance, the partition's owner recovers it"
        )
        assert stored.version == 1 and stored.lease_epoch == 2

    async def test_an_expired_lease_fences(self, open_harness: OpenHarness) -> None:
        """A write after the partition's lease ran out is fenced, saying so."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                record = await harness.create()
                await harness.expire(record.partition)
                with pytest.raises(LeaseLost, match=r"\(the lease expired\)"):
                    await harness.sink.write(snapshot_of(record, 1))
                stored = await harness.stored(record.instance_id)
        assert stored.version == 0

    @pytest.mark.parametrize("status", [InstanceStatus.CANCELLED, InstanceStatus.SUSPENDED])
    async def test_a_late_write_never_undoes_a_command(
        self, open_harness: OpenHarness, status: InstanceStatus
    ) -> None:
        """A command's status change takes a version of its own, so the snapshot a run was
        still committing (the next version it knows, from an actor abandoned or interrupted)
        is refused with ``SnapshotSuperseded``, writes nothing (no status, history, outbox
        row or timer) and the instance keeps the status the command committed."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                record = await harness.create()
                await harness.sink.write(snapshot_of(record, 1))
                commanded = await harness.command(record.instance_id, status)
                with pytest.raises(SnapshotSuperseded) as late:
                    await harness.sink.write(
                        snapshot_of(
                            record,
                            2,
                            status=InstanceStatus.COMPLETED,
                            output={"late": True},
                            completed_at=AT,
                            outgoing=(outgoing("business", "late"),),
                            timers=(timer("late", 5),),
                        )
                    )
                stored = await harness.stored(record.instance_id)
        assert commanded.status is status and commanded.snapshot_version == 3
        assert (late.value.status, late.value.stored_version) == (status, 3)
        assert late.value.instance_id == record.instance_id
        if status.terminal:
            assert str(late.value) == (
                f"workflow instance {record.instance_id} is cancelled already (stored version "
                "3); its snapshot version 2 was not written, as nothing changes an instance "
                "that ended: stop driving it"
            )
        else:
            assert str(late.value).startswith(
                f"snapshot version 2 of workflow instance {record.instance_id} is older than "
                "the stored version 3 (suspended): the instance changed since its run read it"
            )
        assert stored.status is status and stored.version == 3 and stored.output is None
        assert stored.history == [(1, "task.completed", "/do/1"), (2, f"workflow.{status}", "")]
        assert stored.outbox == [] and stored.timers == {}

    async def test_an_ended_instance_never_changes(self, open_harness: OpenHarness) -> None:
        """A snapshot of an instance that completed (or faulted, or was cancelled) is refused
        whatever version it carries; a retried write of the ending snapshot still returns."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                record = await harness.create()
                ending = snapshot_of(record, 1, status=InstanceStatus.COMPLETED, completed_at=AT)
                await harness.sink.write(ending)
                await harness.sink.write(ending)  # retried: already written
                with pytest.raises(SnapshotSuperseded) as late:
                    await harness.sink.write(
                        snapshot_of(record, 7, outgoing=(outgoing("business", "late"),))
                    )
                stored = await harness.stored(record.instance_id)
        assert str(late.value) == (
            f"workflow instance {record.instance_id} is completed already (stored version 1); "
            "its snapshot version 7 was not written, as nothing changes an instance that "
            "ended: stop driving it"
        )
        assert stored.status is InstanceStatus.COMPLETED and stored.version == 1
        assert stored.history == [(1, "task.completed", "/do/1")] and stored.outbox == []

    async def test_subscriptions_are_replaced_kept_or_removed(
        self, open_harness: OpenHarness
    ) -> None:
        """Given subscriptions replace the stored ones, None keeps them, () removes them."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                record = await harness.create()
                sink, instance_id = harness.sink, record.instance_id
                await sink.write(snapshot_of(record, 1, subscriptions=(subscription(0),)))
                await sink.write(
                    snapshot_of(record, 2, subscriptions=(subscription(0, "/b"), subscription(1)))
                )
                replaced = (await harness.stored(instance_id)).subscriptions
                await sink.write(snapshot_of(record, 3))
                kept = (await harness.stored(instance_id)).subscriptions
                await sink.write(snapshot_of(record, 4, subscriptions=()))
                removed = (await harness.stored(instance_id)).subscriptions
        assert replaced == [
            (0, "/b", "com.example.ping", 0, "", {"source": "s"}),
            (1, "/do/0/hear", "com.example.ping", 0, "", {"source": "s"}),
        ]
        assert kept == replaced and removed == []

    async def test_timers_are_replaced_or_kept(self, open_harness: OpenHarness) -> None:
        """Given timers replace the stored ones (a key kept gets its new due time), None keeps
        them, () removes them."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                record = await harness.create()
                sink, instance_id = harness.sink, record.instance_id
                await sink.write(snapshot_of(record, 1, timers=(timer("a", 1), timer("b", 2))))
                await sink.write(snapshot_of(record, 2, timers=(timer("b", 5), timer("c", 6))))
                replaced = (await harness.stored(instance_id)).timers
                await sink.write(snapshot_of(record, 3))
                kept = (await harness.stored(instance_id)).timers
                await sink.write(snapshot_of(record, 4, timers=()))
                removed = (await harness.stored(instance_id)).timers
        assert replaced == {
            "b": ("wait", AT + timedelta(minutes=5)),
            "c": ("wait", AT + timedelta(minutes=6)),
        }
        assert kept == replaced and removed == {}

    async def test_inbox_is_consumed_up_to_the_position(self, open_harness: OpenHarness) -> None:
        """Inbox rows up to ``inbox_through`` are consumed, later ones stay."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                record = await harness.create()
                seqs = [await harness.deliver(record.instance_id, f"e{n}") for n in range(3)]
                await harness.sink.write(snapshot_of(record, 1, inbox_through=seqs[1]))
                stored = await harness.stored(record.instance_id)
        assert stored.inbox == seqs[2:]

    async def test_outgoing_events_go_to_the_outbox_or_events_in_order(
        self, open_harness: OpenHarness
    ) -> None:
        """Business and system events become outbox rows in order; ``events`` ones go to the
        events table (the database event source)."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                record = await harness.create()
                await harness.sink.write(
                    snapshot_of(
                        record,
                        1,
                        outgoing=(
                            outgoing("business", "b1"),
                            outgoing("events", "v1"),
                            outgoing("system", "s1"),
                        ),
                    )
                )
                await harness.sink.write(
                    snapshot_of(record, 2, outgoing=(outgoing("business", "b2"),))
                )
                stored = await harness.stored(record.instance_id)
        assert stored.outbox == [
            ("business", "t", "b1"),
            ("system", "t", "s1"),
            ("business", "t", "b2"),
        ]
        assert stored.events == ["v1"]

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            (
                {"snapshot": {"state": {"frames": {"a": {"n": "a\x00b"}}}}},
                "the workflow data at /frames/a/n holds the NUL character (\\u0000), which "
                "PostgreSQL cannot store; remove it or encode the value (for example base64)",
            ),
            (
                {"output": {"ratio": float("nan")}},
                "the workflow output at /ratio holds nan, which JSON does not allow; use a "
                "number, null or a string",
            ),
            (
                {"history": (HistoryRow(kind="task.completed", details={"x": ["\ud800"]}),)},
                "the history entry task.completed at /x/0 holds a lone UTF-16 surrogate, which "
                "is not valid Unicode; send valid UTF-8 text",
            ),
            (
                {"subscriptions": (attrs.evolve(subscription(0), corr_key="k\x00"),)},
                "the correlation key of the listen of /do/0/hear holds the NUL character "
                "(\\u0000), which PostgreSQL cannot store; remove it or encode the value (for "
                "example base64)",
            ),
        ],
        ids=["nul-in-state", "nan-in-output", "surrogate-in-history", "nul-in-corr-key"],
    )
    async def test_an_unstorable_value_fails_its_snapshot_alone(
        self, open_harness: OpenHarness, changes: dict[str, Any], message: str
    ) -> None:
        """A snapshot holding a value PostgreSQL cannot store is refused with
        ``SnapshotUnstorable`` naming the value and where it is; nothing of it is written,
        and the instance's next (storable) snapshot commits."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                record = await harness.create()
                with pytest.raises(SnapshotUnstorable) as refused:
                    await harness.sink.write(snapshot_of(record, 1, **changes))
                refused_state = await harness.stored(record.instance_id)
                await harness.sink.write(snapshot_of(record, 1))
                stored = await harness.stored(record.instance_id)
        assert refused.value.problem == message
        assert str(refused.value) == (
            f"the snapshot of workflow instance {record.instance_id} was not written: {message}"
        )
        assert refused_state.version == 0 and refused_state.history == []
        assert stored.version == 1 and stored.history == [(1, "task.completed", "/do/1")]

    async def test_children_are_created_once_with_their_parent(
        self, open_harness: OpenHarness
    ) -> None:
        """A snapshot's children are created pending, naming their parent; the same child in a
        later snapshot (a re-run) leaves the first one as it is; a refused snapshot creates
        none."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                parent = await harness.create()
                first = child_of(parent, 101, awaited=True, depth=2)
                other = child_of(parent, 102, awaited=False)
                await harness.sink.write(snapshot_of(parent, 1, children=(first, other)))
                await harness.sink.write(
                    snapshot_of(parent, 2, children=(child_of(parent, 101, input={"n": 0}),))
                )
                await harness.sink.write(
                    snapshot_of(parent, 3, status=InstanceStatus.COMPLETED, completed_at=AT)
                )
                with pytest.raises(SnapshotSuperseded):
                    await harness.sink.write(
                        snapshot_of(parent, 4, children=(child_of(parent, 103),))
                    )
                created = await harness.record(first.child_id)
                unawaited = await harness.record(other.child_id)
                with pytest.raises(InstanceNotFound):
                    await harness.record(uuid.UUID(int=103))
        assert created.status is InstanceStatus.PENDING and created.snapshot_version == 0
        assert (created.parent_id, created.parent_awaits, created.subflow_depth) == (
            parent.instance_id,
            True,
            2,
        )
        assert created.input == {"n": 101} and created.partition == first.partition
        assert (created.definition_id, created.definition_version) == (
            parent.definition_id,
            parent.definition_version,
        )
        assert (unawaited.parent_id, unawaited.parent_awaits) == (parent.instance_id, False)

    async def test_the_end_of_an_awaited_child_goes_to_its_parent(
        self, open_harness: OpenHarness
    ) -> None:
        """A terminal snapshot of a child its parent awaits puts one subflow-ended event in
        the parent's inbox, keyed by the child; a child not awaited, or one whose parent
        ended, puts none."""
        with trio.fail_after(30):
            async with open_harness() as harness:
                parent = await harness.create()
                awaited = child_of(parent, 201)
                unawaited = child_of(parent, 202, awaited=False)
                await harness.sink.write(snapshot_of(parent, 1, children=(awaited, unawaited)))
                for child, number in ((awaited, 1), (unawaited, 2)):
                    record = await harness.record(child.child_id)
                    await harness.sink.write(
                        snapshot_of(
                            record,
                            1,
                            status=InstanceStatus.COMPLETED,
                            output={"child": number},
                            completed_at=AT,
                        )
                    )
                delivered = await harness.inbox(parent.instance_id)
                orphan_parent = await harness.create()
                late = child_of(orphan_parent, 203)
                await harness.sink.write(snapshot_of(orphan_parent, 1, children=(late,)))
                await harness.command(orphan_parent.instance_id, InstanceStatus.CANCELLED)
                late_record = await harness.record(late.child_id)
                await harness.sink.write(
                    snapshot_of(late_record, 1, status=InstanceStatus.FAULTED, error={"x": 1})
                )
                orphaned = await harness.inbox(orphan_parent.instance_id)
        ((key, event),) = delivered
        assert key == subflow_key(awaited.child_id)
        assert event["type"] == SUBFLOW_ENDED_TYPE and event["id"] == str(awaited.child_id)
        assert event["data"] == {
            "childId": str(awaited.child_id),
            "status": "completed",
            "output": {"child": 1},
            "error": None,
        }
        assert datetime.fromisoformat(event["time"]).tzinfo is not None
        assert orphaned == []
