"""What the instances repository reads and writes: records of instances, their inbox, starts.

An instance's partition is ``crc32(instance_id.bytes) % partition_count``: stable across
processes and releases (unlike ``hash()``), fixed at creation. ``INSTANCE_COLUMNS`` is the
column list every query of an ``InstanceRecord`` selects, and ``instance_record`` turns such a
row into the record.
"""

from __future__ import annotations

import uuid
import zlib
from datetime import datetime
from typing import Any

import attrs

from workflow_orchestrator.storage.instances._status import InstanceStatus

__all__ = [
    "DEFAULT_PARTITION_COUNT",
    "INSTANCE_COLUMNS",
    "InboxEvent",
    "InstancePage",
    "InstanceRecord",
    "InstanceStart",
    "RecoverableInstance",
    "instance_record",
    "partition_of",
]

DEFAULT_PARTITION_COUNT = 64

INSTANCE_COLUMNS = (
    "instance_id, definition_id, definition_version, status, business_key, idempotency_key, "
    "input, output, error, context, partition, lease_owner, lease_epoch, snapshot_version, "
    "created_at, updated_at, started_at, completed_at, parent_id, parent_awaits, subflow_depth"
)


@attrs.frozen(kw_only=True)
class InstanceRecord:
    """One workflow instance as stored (without its execution snapshot)."""

    instance_id: uuid.UUID
    definition_id: str
    definition_version: str
    status: InstanceStatus = attrs.field(converter=InstanceStatus)
    business_key: str | None
    idempotency_key: str | None
    input: Any
    output: Any
    error: Any
    context: Any
    partition: int
    lease_owner: str | None
    lease_epoch: int
    snapshot_version: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    # Subflows (``run.workflow``): the instance that started this one (None: top-level),
    # whether it waits for this one's end, and how many parents this one has.
    parent_id: uuid.UUID | None = None
    parent_awaits: bool = False
    subflow_depth: int = 0

    @property
    def terminal(self) -> bool:
        return self.status.terminal


@attrs.frozen(kw_only=True)
class InstancePage:
    """One page of instances, newest first; ``next_cursor`` is None on the last page.

    ``total_estimate`` counts every instance matching the filters (all pages); it is exact when
    ``total_exact`` is true, else the planner's estimate.
    """

    items: tuple[InstanceRecord, ...]
    next_cursor: str | None
    total_estimate: int
    total_exact: bool


@attrs.frozen(kw_only=True)
class InboxEvent:
    """An event delivered to an instance and not consumed yet (``instance_inbox``).

    ``key`` is the row's ``event_key``: ``source#id`` for a routed event, ``subflow:<id>``
    for the end of a child instance (a key no routed event can have: those always hold a
    ``#``)."""

    seq: int
    event: dict[str, Any]
    key: str = ""


@attrs.frozen(kw_only=True)
class RecoverableInstance:
    """A non-terminal instance with its last committed snapshot (None before the first).

    ``inbox`` holds the events delivered to it and not consumed yet, oldest first, when they
    were loaded; ``has_inbox`` says whether there are any (also when not loaded).
    """

    record: InstanceRecord
    snapshot: dict[str, Any] | None = attrs.field(repr=False)
    inbox: tuple[InboxEvent, ...] = attrs.field(default=(), repr=False)
    has_inbox: bool = False


@attrs.frozen(kw_only=True)
class InstanceStart:
    """An instance started by the service itself (``schedule.on`` events, schedule ticks):
    a concrete live version, its input, and the key that makes the start happen once."""

    definition_id: str
    definition_version: str
    input: Any
    idempotency_key: str


def partition_of(instance_id: uuid.UUID, partition_count: int = DEFAULT_PARTITION_COUNT) -> int:
    """The partition of an instance: a stable hash of its id modulo ``partition_count``."""
    return zlib.crc32(instance_id.bytes) % partition_count


def instance_record(row: Any) -> InstanceRecord:
    """The record of a row of exactly the ``INSTANCE_COLUMNS``."""
    return InstanceRecord(**dict(row.items()))
