"""``InstanceStatus``: the stored values, terminal statuses, and where values are checked."""

from __future__ import annotations

import json
import uuid

import pytest

from workflow_orchestrator.storage.instances import (
    INSTANCE_STATUSES,
    TERMINAL_STATUSES,
    InstanceSnapshot,
    InstanceStatus,
)
from workflow_orchestrator.storage.instances._status import TERMINAL_SQL


def test_values_are_the_stored_and_shown_words() -> None:
    """The values stored in the database and shown by the API never change, and a member
    is its value (JSON, comparisons with database rows)."""
    assert [str(s) for s in INSTANCE_STATUSES] == [
        "pending",
        "running",
        "waiting",
        "suspended",
        "cancelled",
        "faulted",
        "completed",
    ]
    assert InstanceStatus.WAITING == "waiting" and json.dumps(InstanceStatus.FAULTED) == '"faulted"'
    assert InstanceStatus("completed") is InstanceStatus.COMPLETED


def test_terminal_statuses() -> None:
    """Completed, faulted and cancelled are terminal; the SQL list matches the partial index."""
    assert {s for s in InstanceStatus if s.terminal} == TERMINAL_STATUSES
    assert "completed" in TERMINAL_STATUSES and "waiting" not in TERMINAL_STATUSES
    assert TERMINAL_SQL == "('completed', 'cancelled', 'faulted')"


def test_snapshot_status_is_checked_where_it_enters() -> None:
    """An unknown status is refused when the snapshot is made, not by the batch's commit."""
    with pytest.raises(ValueError, match="'done' is not a valid InstanceStatus"):
        InstanceSnapshot(
            instance_id=uuid.UUID(int=1),
            partition=0,
            snapshot_version=1,
            status="done",
            snapshot={},
        )
