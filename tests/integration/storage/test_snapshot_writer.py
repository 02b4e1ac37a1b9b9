"""The group-commit snapshot writer against the real PostgreSQL: the snapshot sink contract
(shared with the in-memory store) and what only a batching writer does."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import pytest
import trio
import trio.testing
import trio_asyncio

from tests.integration.storage.helpers import open_storage, register_sample
from tests.support.snapshot_contract import OpenHarness, SnapshotSinkContract, Stored
from workflow_orchestrator.storage import (
    Database,
    PartitionLeases,
    SnapshotWriteFailed,
    acquire_partitions,
)
from workflow_orchestrator.storage.instances import (
    INSTANCE_STATUSES,
    HistoryRow,
    InstanceRecord,
    InstanceSnapshot,
    InstanceStatus,
    SnapshotWriter,
    create_instance,
    get_instance,
    instance_history,
    list_recoverable,
    set_status,
)

pytestmark = pytest.mark.integration

#: The statuses a command may change (every one that is not terminal).
NOT_ENDED = frozenset(s for s in INSTANCE_STATUSES if not s.terminal)


async def make_instances(database: Database, count: int) -> list[InstanceRecord]:
    await register_sample(database)
    made = []
    for _ in range(count):
        record, _ = await create_instance(
            database, definition_id="order_processing", definition_version=None, input={}
        )
        made.append(record)
    return made


def snapshot_of(record: InstanceRecord, version: int, **changes: Any) -> InstanceSnapshot:
    values: dict[str, Any] = {
        "instance_id": record.instance_id,
        "partition": record.partition,
        "snapshot_version": version,
        "status": "running",
        "snapshot": {"position": f"/do/{version}"},
        "history": (HistoryRow(kind="task.completed", task_ref=f"/do/{version}"),),
    }
    values.update(changes)
    return InstanceSnapshot(**values)


@asynccontextmanager
async def running_writer(
    database: Database, owner: str = "replica-a", **options: Any
) -> AsyncIterator[SnapshotWriter]:
    leases = PartitionLeases(database=database, owner_id=owner)
    await leases.acquire()
    writer = SnapshotWriter(database=database, leases=leases, **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        yield writer
        nursery.cancel_scope.cancel()


@attrs.define(eq=False)
class DatabaseHarness:
    """The contract's harness on a running ``SnapshotWriter`` and its database."""

    database: Database
    sink: SnapshotWriter
    registered: bool = False

    async def create(self) -> InstanceRecord:
        if not self.registered:
            await register_sample(self.database)
            self.registered = True
        record, _ = await create_instance(
            self.database, definition_id="order_processing", definition_version=None, input={}
        )
        return record

    async def stored(self, instance_id: uuid.UUID) -> Stored:
        database = self.database
        record = await get_instance(database, instance_id)
        history = await instance_history(database, instance_id)
        snapshot = await database.fetchval(
            "SELECT snapshot FROM workflow_instances WHERE instance_id = $1", instance_id
        )
        subscriptions = await database.fetch(
            "SELECT filter_index, task_ref, event_type, shape_id, corr_key, attributes "
            "FROM event_subscriptions WHERE instance_id = $1 ORDER BY filter_index",
            instance_id,
        )
        timers = await database.fetch(
            "SELECT timer_key, kind, due_at FROM workflow_timers WHERE instance_id = $1",
            instance_id,
        )
        inbox = await database.fetch(
            "SELECT inbox_seq FROM instance_inbox WHERE instance_id = $1 ORDER BY inbox_seq",
            instance_id,
        )
        outbox = await database.fetch(
            "SELECT exchange, routing_key, event_id FROM outbox WHERE instance_id = $1 "
            "ORDER BY outbox_seq",
            instance_id,
        )
        events = await database.fetch("SELECT event ->> 'id' AS id FROM events ORDER BY event_seq")
        return Stored(
            status=record.status,
            version=record.snapshot_version,
            snapshot=snapshot,
            output=record.output,
            context=record.context,
            started_at=record.started_at,
            completed_at=record.completed_at,
            lease_owner=record.lease_owner,
            lease_epoch=record.lease_epoch,
            history=[(h.seq, h.kind, h.task_ref) for h in history],
            subscriptions=[tuple(r) for r in subscriptions],  # type: ignore[misc]
            timers={r["timer_key"]: (r["kind"], r["due_at"]) for r in timers},
            inbox=[r["inbox_seq"] for r in inbox],
            outbox=[tuple(r) for r in outbox],  # type: ignore[misc]
            events=[r["id"] for r in events],
        )

    async def record(self, instance_id: uuid.UUID) -> InstanceRecord:
        return await get_instance(self.database, instance_id)

    async def inbox(self, instance_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.database.fetch(
            "SELECT event_key, event FROM instance_inbox WHERE instance_id = $1 ORDER BY inbox_seq",
            instance_id,
        )
        return [(r["event_key"], r["event"]) for r in rows]

    async def deliver(self, instance_id: uuid.UUID, event_id: str) -> int:
        event = {"id": event_id, "source": "s", "type": "t"}
        seq: int = await self.database.fetchval(
            "INSERT INTO instance_inbox (instance_id, event_key, event) VALUES ($1, $2, $3) "
            "RETURNING inbox_seq",
            instance_id,
            f"s#{event_id}",
            event,
        )
        return seq

    async def take_over(self, partition: int) -> None:
        await self.expire(partition)
        taken = await acquire_partitions(self.database, "replica-b", ttl=30, target=1)
        assert taken.partitions == {partition}

    async def reacquire(self) -> None:
        await self.database.execute(
            "UPDATE partition_leases SET expires_at = now() - interval '1 second'"
        )
        await self.sink.leases.acquire()

    async def expire(self, partition: int) -> None:
        await self.database.execute(
            "UPDATE partition_leases SET expires_at = now() - interval '1 second' "
            "WHERE partition = $1",
            partition,
        )

    async def command(self, instance_id: uuid.UUID, status: InstanceStatus) -> InstanceRecord:
        return await set_status(
            self.database,
            instance_id,
            status,
            allowed_from=NOT_ENDED,
            history_kind=f"workflow.{status}",
        )


@asynccontextmanager
async def open_database_harness(url: str) -> AsyncIterator[DatabaseHarness]:
    async with open_storage(url) as database, running_writer(database) as writer:
        yield DatabaseHarness(database=database, sink=writer)


@pytest.fixture
def open_harness(database_url: str) -> OpenHarness:
    """Opens a contract harness on the test's database with a running writer."""
    return partial(open_database_harness, database_url)


class TestSnapshotWriterContract(SnapshotSinkContract):
    """The snapshot sink contract on the ``SnapshotWriter`` and PostgreSQL."""


async def test_concurrent_writers_share_transactions(database_url: str) -> None:
    """200 concurrent writers are committed in far fewer transactions than snapshots."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database:
            made = await make_instances(database, 200)
            async with running_writer(database) as writer:
                for round_ in (1, 2, 3):
                    async with trio.open_nursery() as nursery:
                        for record in made:
                            nursery.start_soon(writer.write, snapshot_of(record, round_))
                stats = writer.statistics()
            versions = await database.fetch(
                "SELECT DISTINCT snapshot_version, history_seq FROM workflow_instances"
            )
            rows = await database.fetchval("SELECT count(*) FROM workflow_instance_history")
    assert stats.snapshots == 600
    assert stats.batches <= 30, stats  # typically 3-6: one or two per round
    assert stats.largest_batch >= 100
    assert [tuple(v) for v in versions] == [(3, 3)]
    assert rows == 600


async def test_same_instance_twice_in_one_batch(database_url: str) -> None:
    """Two snapshots of one instance in one batch: the later version wins, both return."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            (record,) = await make_instances(database, 1)
            async with running_writer(database) as writer:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(writer.write, snapshot_of(record, 2, status="waiting"))
                    nursery.start_soon(writer.write, snapshot_of(record, 1, status="running"))
                stats = writer.statistics()
            stored = await get_instance(database, record.instance_id)
            history = await instance_history(database, record.instance_id)
    assert stats.batches == 1 and stats.snapshots == 2
    assert stored.snapshot_version == 2 and stored.status == "waiting"
    assert [h.task_ref for h in history] == ["/do/1", "/do/2"]


async def test_write_before_start_and_after_stop_fails(database_url: str) -> None:
    """A writer that is not started or has stopped fails the write with what to do."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            (record,) = await make_instances(database, 1)
            idle = SnapshotWriter(database=database, leases=PartitionLeases(database, "x"))
            with pytest.raises(SnapshotWriteFailed) as early:
                await idle.write(snapshot_of(record, 1))
            async with running_writer(database) as writer:
                await writer.write(snapshot_of(record, 1))
            with pytest.raises(SnapshotWriteFailed) as stopped:
                await writer.write(snapshot_of(record, 2))
    assert str(stopped.value) == (
        f"cannot write the snapshot of workflow instance {record.instance_id}: the snapshot "
        "writer has stopped; recover the instance from its last committed snapshot"
    )
    assert str(early.value) == (
        f"cannot write the snapshot of workflow instance {record.instance_id}: the snapshot "
        "writer is not started; start it with nursery.start(writer.run)"
    )


async def test_shutdown_commits_queued_writes(database_url: str) -> None:
    """Cancelling run with writes queued commits them before stopping; nobody hangs."""
    outcomes: list[str] = []
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            made = await make_instances(database, 50)
            leases = PartitionLeases(database=database, owner_id="replica-a")
            await leases.acquire()
            writer = SnapshotWriter(database=database, leases=leases)

            async def write(record: InstanceRecord) -> None:
                await writer.write(snapshot_of(record, 1))
                outcomes.append("ok")

            async with trio.open_nursery() as writers, trio.open_nursery() as service:
                await service.start(writer.run)
                for record in made:
                    writers.start_soon(write, record)
                await trio.testing.wait_all_tasks_blocked()
                service.cancel_scope.cancel()
            written = await database.fetchval(
                "SELECT count(*) FROM workflow_instances WHERE snapshot_version = 1"
            )
    assert outcomes == ["ok"] * 50 and written == 50


async def test_shutdown_fails_writes_it_cannot_commit(database_url: str) -> None:
    """Writes stuck behind a lock at shutdown fail with a clear error after shutdown_timeout."""
    errors: list[str] = []
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            (record,) = await make_instances(database, 1)
            leases = PartitionLeases(database=database, owner_id="replica-a")
            await leases.acquire()
            writer = SnapshotWriter(database=database, leases=leases, shutdown_timeout=0.5)
            locked = trio.Event()
            failed = trio.Event()

            async def hold_row_lock() -> None:
                async def work(connection: Any) -> None:
                    async with connection.transaction():
                        await connection.execute(
                            "SELECT 1 FROM workflow_instances WHERE instance_id = $1 FOR UPDATE",
                            record.instance_id,
                        )
                        locked.set()
                        await trio_asyncio.trio_as_aio(trio.sleep)(3)

                await database.run(work)

            async def write() -> None:
                try:
                    await writer.write(snapshot_of(record, 1))
                except SnapshotWriteFailed as exc:
                    errors.append(str(exc))
                    failed.set()

            async with trio.open_nursery() as outer:
                outer.start_soon(hold_row_lock)
                await locked.wait()
                async with trio.open_nursery() as service:
                    await service.start(writer.run)
                    outer.start_soon(write)
                    await trio.sleep(0.3)  # the batch is now waiting for the row lock
                    stopping = trio.current_time()
                    service.cancel_scope.cancel()
                stopped = trio.current_time() - stopping
                await failed.wait()
    assert stopped < 2.0
    assert errors == [
        f"the snapshot writer stopped before the snapshot of workflow instance "
        f"{record.instance_id} (version 1) was committed; recover the instance from its last "
        "committed snapshot"
    ]


async def test_recovery_lists_active_instances_with_snapshots(database_url: str) -> None:
    """list_recoverable pages through non-terminal instances of a partition set with snapshots."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            made = await make_instances(database, 6)
            async with running_writer(database) as writer:
                await writer.write(snapshot_of(made[0], 1, status="waiting"))
                await writer.write(snapshot_of(made[1], 1, status="completed"))
            everything = frozenset(range(64))
            first = await list_recoverable(database, partitions=everything, limit=3)
            rest = await list_recoverable(
                database, partitions=everything, after=first[-1].record.instance_id, limit=3
            )
            one = await list_recoverable(database, partitions={made[0].partition})
    found = [r.record.instance_id for r in (*first, *rest)]
    assert sorted(found) == sorted(r.instance_id for r in made if r is not made[1])
    assert found == sorted(found) and len(first) == 3
    waiting = next(r for r in one if r.record.instance_id == made[0].instance_id)
    assert waiting.snapshot == {"position": "/do/1"} and waiting.record.status == "waiting"


async def test_failed_batch_reports_and_writer_survives(database_url: str) -> None:
    """A database error fails the batch with SnapshotWriteFailed; later batches still commit."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            (record,) = await make_instances(database, 1)
            async with running_writer(database) as writer:
                await database.execute(
                    "ALTER TABLE workflow_instance_history RENAME TO history_away"
                )
                with pytest.raises(SnapshotWriteFailed) as failed:
                    await writer.write(snapshot_of(record, 1))
                await database.execute(
                    "ALTER TABLE history_away RENAME TO workflow_instance_history"
                )
                await writer.write(snapshot_of(record, 1))
                stats = writer.statistics()
            stored = await get_instance(database, record.instance_id)
    assert str(failed.value) == (
        f"the snapshot of workflow instance {record.instance_id} was not committed: "
        'UndefinedTableError: relation "workflow_instance_history" does not exist; recover the '
        "instance from its last committed snapshot"
    )
    assert failed.value.instance_id == record.instance_id
    assert stats.failed == 1 and stats.snapshots == 1
    assert stored.snapshot_version == 1
