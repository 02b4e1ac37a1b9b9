"""Nothing a command committed is lost to a late snapshot: the group-commit writer against the
real PostgreSQL with the late writes of commanded instances beside innocent snapshots."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.integration.storage.helpers import open_storage
from tests.integration.storage.test_snapshot_writer import (
    NOT_ENDED,
    make_instances,
    running_writer,
    snapshot_of,
)
from workflow_orchestrator.storage import SnapshotSuperseded, SnapshotWriteFailed
from workflow_orchestrator.storage.instances import (
    InstanceSnapshot,
    InstanceStatus,
    SnapshotWriter,
    get_instance,
    instance_history,
    set_status,
)

pytestmark = pytest.mark.integration


async def test_late_writes_of_commanded_instances_fail_alone_in_their_batch(
    database_url: str,
) -> None:
    """Snapshots of instances a command cancelled or suspended after their run's last commit,
    written concurrently with innocent snapshots, are refused one by one with
    ``SnapshotSuperseded``: the innocent ones commit, the commanded instances keep the
    command's status, version and history, and the writer counts the refused as failed."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database:
            made = await make_instances(database, 12)
            commanded = {
                made[0].instance_id: InstanceStatus.CANCELLED,
                made[5].instance_id: InstanceStatus.SUSPENDED,
                made[11].instance_id: InstanceStatus.CANCELLED,
            }
            outcomes: dict[Any, BaseException | None] = {}

            async def write(writer: SnapshotWriter, snapshot: InstanceSnapshot) -> None:
                try:
                    await writer.write(snapshot)
                except SnapshotWriteFailed as error:
                    outcomes[snapshot.instance_id] = error
                else:
                    outcomes[snapshot.instance_id] = None

            async with running_writer(database) as writer:
                async with trio.open_nursery() as nursery:
                    for record in made:
                        nursery.start_soon(write, writer, snapshot_of(record, 1))
                for instance_id, status in commanded.items():
                    await set_status(
                        database,
                        instance_id,
                        status,
                        allowed_from=NOT_ENDED,
                        history_kind=f"workflow.{status}",
                    )
                before = writer.statistics()
                async with trio.open_nursery() as nursery:
                    for record in made:
                        late = snapshot_of(record, 2, status=InstanceStatus.COMPLETED)
                        nursery.start_soon(write, writer, late)
                after = writer.statistics()
            stored = {r.instance_id: await get_instance(database, r.instance_id) for r in made}
            histories = {
                i: [h.kind for h in await instance_history(database, i)] for i in commanded
            }
    refused = {i: outcomes[i] for i in commanded}
    assert all(isinstance(e, SnapshotSuperseded) for e in refused.values()), refused
    assert {i: getattr(e, "status", None) for i, e in refused.items()} == commanded
    innocent = [r.instance_id for r in made if r.instance_id not in commanded]
    assert [outcomes[i] for i in innocent] == [None] * 9
    assert all(stored[i].status is InstanceStatus.COMPLETED for i in innocent)
    assert all(stored[i].snapshot_version == 2 for i in innocent)
    assert {i: stored[i].status for i in commanded} == commanded
    assert all(stored[i].snapshot_version == 3 for i in commanded)
    assert all(h == ["task.completed", f"workflow.{commanded[i]}"] for i, h in histories.items())
    assert (after.snapshots - before.snapshots, after.failed - before.failed) == (9, 3)
