"""How many instances of some partitions are not finished, by definition and status.

One statement on the partial index of active instances (migration V001: its predicate is
repeated word for word, so the planner uses it): the work grows with the unfinished instances
of those partitions, never with the finished ones kept for history.
"""

from __future__ import annotations

from collections.abc import Collection

import attrs

from workflow_orchestrator.storage._database import Database
from workflow_orchestrator.storage.instances._status import TERMINAL_SQL, InstanceStatus

__all__ = ["InstanceCount", "count_unfinished_instances"]

_COUNT_SQL = f"""
SELECT definition_id, status, count(*) AS instances
FROM workflow_instances
WHERE partition = ANY($1::int[]) AND status NOT IN {TERMINAL_SQL}
GROUP BY definition_id, status
"""


@attrs.frozen(kw_only=True)
class InstanceCount:
    """``instances`` unfinished instances of ``definition_id`` in ``status``."""

    definition_id: str
    status: InstanceStatus
    instances: int


async def count_unfinished_instances(
    database: Database, partitions: Collection[int]
) -> list[InstanceCount]:
    """The unfinished (pending, running, waiting, suspended) instances of ``partitions`` by
    definition and status; nothing is read when ``partitions`` is empty."""
    if not partitions:
        return []
    rows = await database.fetch(_COUNT_SQL, sorted(partitions))
    return [
        InstanceCount(
            definition_id=row["definition_id"],
            status=InstanceStatus(row["status"]),
            instances=row["instances"],
        )
        for row in rows
    ]
