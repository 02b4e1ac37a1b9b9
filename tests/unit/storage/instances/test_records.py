"""Records of the instances repository (no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from workflow_orchestrator.storage.instances import (
    INSTANCE_COLUMNS,
    InstanceStatus,
    instance_record,
    partition_of,
)


def test_partition_is_a_stable_hash_of_the_id() -> None:
    """An instance's partition is crc32 of its id modulo the count: the same in every
    process and release (a change would strand every stored instance)."""
    instance_id = uuid.UUID("3f1c2a9e-8d4b-4c1e-9a51-2b7f6d0e4c11")
    assert partition_of(instance_id) == 15
    assert partition_of(instance_id, 8) == 15 % 8


def test_a_row_of_the_instance_columns_is_a_record() -> None:
    """A row with the instance columns becomes a record whose status is the enum."""
    now = datetime(2026, 3, 1, tzinfo=UTC)
    values = {
        "instance_id": uuid.UUID(int=3),
        "definition_id": "d",
        "definition_version": "1",
        "status": "waiting",
        "business_key": None,
        "idempotency_key": None,
        "input": {},
        "output": None,
        "error": None,
        "context": {},
        "partition": 2,
        "lease_owner": "a",
        "lease_epoch": 1,
        "snapshot_version": 4,
        "created_at": now,
        "updated_at": now,
        "started_at": now,
        "completed_at": None,
        "parent_id": uuid.UUID(int=9),
        "parent_awaits": True,
        "subflow_depth": 1,
    }
    assert list(values) == INSTANCE_COLUMNS.split(", ")
    record = instance_record(values)
    assert record.status is InstanceStatus.WAITING and not record.terminal
    assert (record.parent_id, record.parent_awaits, record.subflow_depth) == (
        uuid.UUID(int=9),
        True,
        1,
    )
