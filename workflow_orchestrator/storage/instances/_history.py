"""An instance's history: the lifecycle steps its snapshots (and commands) wrote, in order.

Rows are appended by the ``SnapshotWriter`` (with the snapshot that produced them) and by
``set_status`` (a command's row); ``seq`` numbers them 1, 2, ... per instance.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from workflow_orchestrator.storage._database import Connection, Database
from workflow_orchestrator.storage.instances._queries import instance_not_found

__all__ = ["HistoryEntry", "instance_history"]


@attrs.frozen(kw_only=True)
class HistoryEntry:
    """One step of an instance's lifecycle; ``seq`` orders them (1, 2, ...)."""

    instance_id: uuid.UUID
    seq: int
    task_ref: str
    kind: str
    at: datetime
    details: dict[str, Any]


async def instance_history(
    database: Database, instance_id: uuid.UUID, *, after_seq: int = 0, limit: int | None = None
) -> Sequence[HistoryEntry]:
    """An instance's history in ``seq`` order (from ``after_seq + 1``); may read from a replica
    (a miss there is confirmed on the primary). Raises ``InstanceNotFound``."""

    async def work(connection: Connection) -> list[Any]:
        if not await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM workflow_instances WHERE instance_id = $1)", instance_id
        ):
            raise instance_not_found(instance_id)
        rows: list[Any] = await connection.fetch(
            "SELECT instance_id, seq, task_ref, kind, at, details FROM workflow_instance_history "
            "WHERE instance_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            instance_id,
            after_seq,
            limit,
        )
        return rows

    rows = await database.run(work, read_only=True)
    return tuple(HistoryEntry(**dict(r.items())) for r in rows)
