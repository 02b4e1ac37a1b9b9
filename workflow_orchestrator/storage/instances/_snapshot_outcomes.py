"""The outcome of one snapshot write, as the errors a caller gets (no I/O).

Every snapshot sink (the ``SnapshotWriter`` and the in-memory one of the tests) raises these,
with these messages, so callers and the shared contract tests see one behaviour:

- ``lease_lost``: the writer's owner no longer holds the partition (or holds it under another
  epoch than the snapshot's, or the lease expired);
- ``instance_missing``: no such instance;
- ``superseded``: the stored instance is newer than the snapshot's run: it ended (nothing
  changes an instance that is completed, faulted or cancelled, whatever version a snapshot
  carries) or its stored version is newer (a command's status change takes a version of its
  own); the caller stops driving the instance, quietly;
- ``diagnose``: which of those (or none: a retried write of the stored version) explains a
  snapshot the statement did not apply, from the stored version and status and the
  partition's lease.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.storage._errors import (
    InstanceNotFound,
    LeaseLost,
    SnapshotSuperseded,
    SnapshotWriteFailed,
)
from workflow_orchestrator.storage.instances._snapshot_rows import InstanceSnapshot
from workflow_orchestrator.storage.instances._status import InstanceStatus

__all__ = [
    "diagnose",
    "failed_write",
    "instance_missing",
    "lease_lost",
    "not_running",
    "stopped_before_commit",
    "superseded",
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


def superseded(
    snapshot: InstanceSnapshot, stored_version: int, stored_status: str
) -> SnapshotSuperseded:
    """The stored instance (``stored_status`` at ``stored_version``) is newer than the run that
    wrote ``snapshot``: it ended, or a command (or another run) changed it since."""
    instance_id = snapshot.instance_id
    status = InstanceStatus(stored_status)
    if status.terminal:
        message = (
            f"workflow instance {instance_id} is {status} already (stored version "
            f"{stored_version}); its snapshot version {snapshot.snapshot_version} was not "
            "written, as nothing changes an instance that ended: stop driving it"
        )
    else:
        message = (
            f"snapshot version {snapshot.snapshot_version} of workflow instance {instance_id} "
            f"is older than the stored version {stored_version} ({status}): the instance "
            "changed since its run read it (a command, or another run); stop driving it, the "
            "stored state stands"
        )
    return SnapshotSuperseded(
        message, instance_id=instance_id, status=status, stored_version=stored_version
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
    ``partition``, ``snapshot_version``, ``status`` and the partition lease's ``owner_id``,
    ``epoch`` and ``live`` (None: no such instance). None means it was written already (a
    retried write: a command's version is never one a run writes, see ``set_status``)."""
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
    if (
        row["snapshot_version"] > snapshot.snapshot_version
        or InstanceStatus(row["status"]).terminal
    ):
        return superseded(snapshot, row["snapshot_version"], row["status"])
    return SnapshotWriteFailed(
        f"the snapshot of workflow instance {instance_id} was not applied because its "
        "lease changed during the commit; recover the instance from its last committed "
        "snapshot",
        instance_id=instance_id,
    )
