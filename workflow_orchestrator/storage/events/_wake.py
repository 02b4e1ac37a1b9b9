"""Wake-ups across replicas on the ``workflow_wake`` channel, and the sweep that backs them up.

A transaction that gives work to an instance of another replica's partitions (an event in its
inbox, a start) announces its id with ``notify_wake``; PostgreSQL delivers the notification at
commit, so the owner never wakes an instance before its work is visible. Notifications are lost
while a listener is disconnected: ``instances_to_wake`` finds what such a loss left behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from workflow_orchestrator.storage._database import Connection, Database
from workflow_orchestrator.storage._notifications import notify_ids

__all__ = ["WAKE_CHANNEL", "instances_to_wake", "notify_wake"]

WAKE_CHANNEL = "workflow_wake"

_SWEEP_SQL = """
SELECT w.instance_id FROM workflow_instances w
WHERE w.partition = ANY($1::int[]) AND w.updated_at < now() - make_interval(secs => $2)
  AND ((w.status = 'waiting'
        AND EXISTS (SELECT 1 FROM instance_inbox i WHERE i.instance_id = w.instance_id))
       OR w.status = 'pending')
LIMIT 1000
"""


async def notify_wake(connection: Connection, instance_ids: Sequence[str]) -> None:
    """Tell the owners of ``instance_ids`` (other replicas) to activate them when the
    transaction commits (asyncio side, inside a unit of work)."""
    await notify_ids(connection, WAKE_CHANNEL, instance_ids)


async def instances_to_wake(
    database: Database, partitions: Collection[int], *, older_than: float
) -> list[uuid.UUID]:
    """Up to 1,000 instances of ``partitions`` that a lost wake-up may have left idle, untouched
    for ``older_than`` seconds: waiting ones with events in their inbox, and pending ones; one
    query."""
    rows = await database.fetch(_SWEEP_SQL, sorted(partitions), older_than)
    return [r["instance_id"] for r in rows]
