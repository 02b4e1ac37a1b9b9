"""Why a snapshot was not applied, and the errors a writer raises (no I/O)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from workflow_orchestrator.storage import (
    InstanceNotFound,
    LeaseLost,
    SnapshotSuperseded,
    SnapshotWriteFailed,
)
from workflow_orchestrator.storage.instances import InstanceSnapshot
from workflow_orchestrator.storage.instances._snapshot_outcomes import diagnose, not_running

INSTANCE = uuid.UUID(int=9)
SNAPSHOT = InstanceSnapshot(
    instance_id=INSTANCE, partition=4, snapshot_version=3, status="running", snapshot={}
)


def row(**changes: Any) -> dict[str, Any]:
    values = {
        "partition": 4,
        "snapshot_version": 2,
        "status": "running",
        "owner_id": "a",
        "epoch": 1,
        "live": True,
    }
    values.update(changes)
    return values


@pytest.mark.parametrize(
    ("stored", "error", "message"),
    [
        (
            None,
            InstanceNotFound,
            f"workflow instance {INSTANCE} not found; its snapshot was not written",
        ),
        (row(owner_id=None), LeaseLost, "(it has no owner now)"),
        (row(owner_id="b", epoch=2), LeaseLost, "('b' holds it now, at epoch 2)"),
        (row(epoch=2), LeaseLost, "(it is held at epoch 2, not at epoch 1)"),
        (row(live=False), LeaseLost, "(the lease expired)"),
        (row(snapshot_version=5), SnapshotSuperseded, "older than the stored version 5 (running)"),
        (
            row(status="cancelled"),
            SnapshotSuperseded,
            f"workflow instance {INSTANCE} is cancelled already (stored version 2)",
        ),
        (
            row(partition=5),
            SnapshotWriteFailed,
            "names partition 4 but the instance is in partition 5",
        ),
        (row(), SnapshotWriteFailed, "its lease changed during the commit"),
    ],
)
def test_diagnose_names_the_reason(stored: Any, error: type[Exception], message: str) -> None:
    """Each reason a statement skipped a snapshot gives its own error, naming the instance."""
    found = diagnose(SNAPSHOT, 1, "a", stored)
    assert isinstance(found, error) and message in str(found)
    assert getattr(found, "instance_id", None) == INSTANCE


def test_a_retried_write_of_the_stored_version_is_no_error() -> None:
    """A snapshot whose version is the stored one was written before: no error, also when it
    ended the instance."""
    assert diagnose(SNAPSHOT, 1, "a", row(snapshot_version=3)) is None
    assert diagnose(SNAPSHOT, 1, "a", row(snapshot_version=3, status="completed")) is None


def test_fenced_message_says_what_to_do() -> None:
    """A fenced write tells the caller to stop driving the instance."""
    found = diagnose(SNAPSHOT, 1, "a", row(owner_id="b", epoch=2))
    assert str(found) == (
        f"the snapshot of workflow instance {INSTANCE} was fenced: 'a' lost partition 4 ('b' "
        "holds it now, at epoch 2); stop driving the instance, the partition's owner recovers it"
    )
    assert isinstance(found, LeaseLost) and found.partition == 4


def test_not_running_says_how_to_start() -> None:
    """A write to a writer that was never started says how to start it."""
    assert str(not_running(SNAPSHOT, started=False)).endswith(
        "the snapshot writer is not started; start it with nursery.start(writer.run)"
    )
