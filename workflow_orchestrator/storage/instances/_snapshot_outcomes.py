"""The outcome of one snapshot write, as the errors a caller gets (no I/O).

Every snapshot sink (the ``SnapshotWriter`` and the in-memory one of the tests) raises these,
with these messages, so callers and the shared contract tests see one behaviour:

- ``lease_lost``: the writer's owner no longer holds the partition (or holds it under another
  epoch than the snapshot's, or the lease expired);
- ``instance_missing``: no such instance;
- ``version_too_old``: a version older than the stored one (versions must grow);
- ``diagnose``: which of those (or none: a retried write of the stored version) explains a
  snapshot the statement did not apply, from the stored version and the partition's lease.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.storage._errors import (
    InstanceNotFound,
    LeaseLost,
    SnapshotWriteFailed,
)
from workflow_orchestrator.storage.instances._snapshot_rows import InstanceSnapshot

__all__ = [
    "diagnose",
    "failed_write",
    "instance_missing",
    "lease_lost",
    "not_running",
    "stopped_before_commit",
    "version_too_old",
]


def lease_lost(snapshot: InstanceSnapshot, owner_id: str, why: str) -> LeaseLost:
    """The snapshot was fenced: ``owner_id`` lost its partition (``why`` says how)."""
    return LeaseLost(
        f"the snapshot of workflow instance {snapshot.instance_id} was fenced: "
        f"{owner_id!r} lost partition {snapshot.partition} ({why}); stop "
        "driving the instance, the partition's owner recovers it",
        instance_id=snapshot.instance_id,
        partition=snapshot.partition,
    )


def instance_missing(snapshot: InstanceSnapshot) -> InstanceNotFound:
    return InstanceNotFound(
        f"workflow instance {snapshot.instance_id} not found; its snapshot was not written",
        instance_id=snapshot.instance_id,
    )


def version_too_old(snapshot: InstanceSnapshot, stored_version: int) -> SnapshotWriteFailed:
    return SnapshotWriteFailed(
        f"snapshot version {snapshot.snapshot_version} of workflow instance "
        f"{snapshot.instance_id} is older than the stored version {stored_version}; "
        "snapshot_version must grow with every write",
        instance_id=snapshot.instance_id,
    )


def failed_write(instance_id: Any, reason: str) -> SnapshotWriteFailed:
    """The batch holding the instance's snapshot failed (``reason``: the error or timeout)."""
    return SnapshotWriteFailed(
        f"the snapshot of workflow instance {instance_id} was not committed: {reason}; "
        "recover the instance from its last committed snapshot",
        instance_id=instance_id,
    )


def not_running(snapshot: InstanceSnapshot, *, started: bool) -> SnapshotWriteFailed:
    """A write to a sink that is not started yet (``started`` False) or has stopped."""
    return SnapshotWriteFailed(
        f"cannot write the snapshot of workflow instance {snapshot.instance_id}: "
        + (
            "the snapshot writer has stopped; recover the instance from its last committed snapshot"
            if started
            else "the snapshot writer is not started; start it with nursery.start(writer.run)"
        ),
        instance_id=snapshot.instance_id,
    )


def stopped_before_commit(snapshot: InstanceSnapshot) -> SnapshotWriteFailed:
    return SnapshotWriteFailed(
        f"the snapshot writer stopped before the snapshot of workflow instance "
        f"{snapshot.instance_id} (version {snapshot.snapshot_version}) was committed; "
        "recover the instance from its last committed snapshot",
        instance_id=snapshot.instance_id,
    )


def diagnose(
    snapshot: InstanceSnapshot, epoch: int, owner_id: str, row: Mapping[str, Any] | None
) -> BaseException | None:
    """Why ``snapshot`` (fenced with ``epoch``) was not applied, from ``row``: the stored
    ``partition``, ``snapshot_version`` and the partition lease's ``owner_id``, ``epoch`` and
    ``live`` (None: no such instance). None means it was written already (a retried write)."""
    instance_id = snapshot.instance_id
    if row is None:
        return instance_missing(snapshot)
    if row["partition"] != snapshot.partition:
        return SnapshotWriteFailed(
            f"the snapshot of workflow instance {instance_id} names partition "
            f"{snapshot.partition} but the instance is in partition {row['partition']}",
            instance_id=instance_id,
        )
    if row["owner_id"] is None:
        return lease_lost(snapshot, owner_id, "it has no owner now")
    if row["owner_id"] != owner_id:
        return lease_lost(
            snapshot, owner_id, f"{row['owner_id']!r} holds it now, at epoch {row['epoch']}"
        )
    if row["epoch"] != epoch:
        return lease_lost(
            snapshot, owner_id, f"it is held at epoch {row['epoch']}, not at epoch {epoch}"
        )
    if not row["live"]:
        return lease_lost(snapshot, owner_id, "the lease expired")
    if row["snapshot_version"] == snapshot.snapshot_version:
        return None  # a retried write of a committed snapshot
    if row["snapshot_version"] > snapshot.snapshot_version:
        return version_too_old(snapshot, row["snapshot_version"])
    return SnapshotWriteFailed(
        f"the snapshot of workflow instance {instance_id} was not applied because its "
        "lease changed during the commit; recover the instance from its last committed "
        "snapshot",
        instance_id=instance_id,
    )
