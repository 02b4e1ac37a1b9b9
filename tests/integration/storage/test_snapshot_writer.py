"""The group-commit snapshot writer against the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import trio
import trio.testing
import trio_asyncio

from tests.integration.storage.helpers import open_storage, register_sample
from workflow_orchestrator.storage import (
    Database,
    HistoryRow,
    InstanceNotFound,
    InstanceRecord,
    InstanceSnapshot,
    LeaseLost,
    PartitionLeases,
    SnapshotWriteFailed,
    SnapshotWriter,
    acquire_partitions,
    create_instance,
    get_instance,
    instance_history,
    list_recoverable,
)

pytestmark = pytest.mark.integration


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


async def test_write_commits_snapshot_and_history(database_url: str) -> None:
    """A returned write is committed: status, snapshot, output, times and numbered history."""
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            (record,) = await make_instances(database, 1)
            async with running_writer(database) as writer:
                await writer.write(
                    snapshot_of(
                        record,
                        1,
                        started_at=started,
                        history=(
                            HistoryRow(kind="workflow.started"),
                            HistoryRow(kind="task.started", task_ref="/do/0/greet"),
                        ),
                    )
                )
                await writer.write(
                    snapshot_of(
                        record,
                        2,
                        status="completed",
                        output={"hello": "world"},
                        context={"seen": 1},
                        completed_at=started,
                        history=(HistoryRow(kind="task.completed", task_ref="/do/0/greet"),),
                    )
                )
                # A retried write of a committed version is accepted and changes nothing.
                await writer.write(snapshot_of(record, 2, status="running"))
                stats = writer.statistics()
            stored = await get_instance(database, record.instance_id)
            history = await instance_history(database, record.instance_id)
            snapshot = await database.fetchval(
                "SELECT snapshot FROM workflow_instances WHERE instance_id = $1",
                record.instance_id,
            )
    assert stored.status == "completed" and stored.snapshot_version == 2
    assert stored.output == {"hello": "world"} and stored.context == {"seen": 1}
    assert stored.started_at == started == stored.completed_at
    assert stored.lease_owner == "replica-a" and stored.lease_epoch == 1
    assert snapshot == {"position": "/do/2"}
    assert [(h.seq, h.kind, h.task_ref) for h in history] == [
        (1, "workflow.started", ""),
        (2, "task.started", "/do/0/greet"),
        (3, "task.completed", "/do/0/greet"),
    ]
    assert stats.snapshots == 3 and stats.fenced == stats.failed == 0


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


async def test_fenced_write_raises_lease_lost(database_url: str) -> None:
    """A write after another owner took the partition fails with LeaseLost, changing nothing."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            (record,) = await make_instances(database, 1)
            async with running_writer(database) as writer:
                await writer.write(snapshot_of(record, 1))
                await database.execute(
                    "UPDATE partition_leases SET expires_at = now() - interval '1 second' "
                    "WHERE partition = $1",
                    record.partition,
                )
                taken = await acquire_partitions(database, "replica-b", ttl=30, target=1)
                with pytest.raises(LeaseLost) as lost:
                    await writer.write(snapshot_of(record, 2, status="completed"))
                stats = writer.statistics()
            stored = await get_instance(database, record.instance_id)
            history = await instance_history(database, record.instance_id)
    assert taken.partitions == {record.partition}
    assert str(lost.value) == (
        f"the snapshot of workflow instance {record.instance_id} was fenced: 'replica-a' lost "
        f"partition {record.partition} ('replica-b' holds it now, at epoch 2); stop driving the "
        "instance, the partition's owner recovers it"
    )
    assert (lost.value.instance_id, lost.value.partition) == (record.instance_id, record.partition)
    assert stored.snapshot_version == 1 and stored.status == "running"
    assert len(history) == 1 and stats.fenced == 1


async def test_stale_epoch_is_fenced_after_reacquire(database_url: str) -> None:
    """An actor's write under the epoch it started with fails once the lease was re-granted."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            (record,) = await make_instances(database, 1)
            async with running_writer(database) as writer:
                await database.execute(
                    "UPDATE partition_leases SET expires_at = now() - interval '1 second'"
                )
                await writer.leases.acquire()  # same owner, new epoch 2
                with pytest.raises(LeaseLost) as lost:
                    await writer.write(snapshot_of(record, 1, lease_epoch=1))
                await writer.write(snapshot_of(record, 1, lease_epoch=2))
            stored = await get_instance(database, record.instance_id)
    assert str(lost.value).endswith(
        f"lost partition {record.partition} (it is held at epoch 2, not at epoch 1); stop "
        "driving the instance, the partition's owner recovers it"
    )
    assert stored.snapshot_version == 1 and stored.lease_epoch == 2


async def test_write_errors_name_the_instance(database_url: str) -> None:
    """Unknown instances, stale versions and a stopped writer give errors naming the instance."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            (record,) = await make_instances(database, 1)
            ghost = InstanceSnapshot(
                instance_id=uuid.UUID(int=9),
                partition=0,
                snapshot_version=1,
                status="running",
                snapshot={},
            )
            idle = SnapshotWriter(database=database, leases=PartitionLeases(database, "x"))
            with pytest.raises(SnapshotWriteFailed) as early:
                await idle.write(snapshot_of(record, 1))
            async with running_writer(database) as writer:
                with pytest.raises(InstanceNotFound) as missing:
                    await writer.write(ghost)
                await writer.write(snapshot_of(record, 3))
                with pytest.raises(SnapshotWriteFailed) as stale:
                    await writer.write(snapshot_of(record, 2))
            with pytest.raises(SnapshotWriteFailed) as stopped:
                await writer.write(snapshot_of(record, 4))
    assert str(missing.value) == (
        "workflow instance 00000000-0000-0000-0000-000000000009 not found; its snapshot was "
        "not written"
    )
    assert str(stale.value) == (
        f"snapshot version 2 of workflow instance {record.instance_id} is older than the "
        "stored version 3; snapshot_version must grow with every write"
    )
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
