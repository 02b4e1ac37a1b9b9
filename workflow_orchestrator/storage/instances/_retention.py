"""Retention: finished instances (completed, faulted, cancelled) and their rows are deleted
once they are older than their retention age, in small batches.

An instance's age is counted from its last update (when it ended). The default age applies to
every definition version without an override; an age of 0 keeps those instances for ever.
``delete_expired_instances`` deletes one batch in one transaction (one crossing): it picks up to
``batch_size`` expired instances with ``FOR UPDATE SKIP LOCKED`` (never blocking a writer), skips
those whose outbox rows are not published yet, and deletes their history, inbox,
subscriptions and timers, then the instances themselves. The caller repeats it until a batch
comes back short.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import attrs

from workflow_orchestrator.storage._database import Connection, Database

__all__ = [
    "RetentionBatch",
    "RetentionOverride",
    "delete_expired_instances",
    "retention_overrides",
]

_OVERRIDES = """
SELECT definition_id, version, document -> 'document' -> 'metadata' -> 'retention' AS retention
FROM workflow_definitions
WHERE jsonb_typeof(document -> 'document' -> 'metadata') = 'object'
  AND document -> 'document' -> 'metadata' ? 'retention'
"""

_PICK = """
WITH overrides AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::float8[]) AS o(definition_id, version, seconds)
)
SELECT w.instance_id
FROM workflow_instances w
LEFT JOIN overrides o
  ON o.definition_id = w.definition_id AND o.version = w.definition_version
WHERE w.status IN ('completed', 'faulted', 'cancelled')
  AND w.updated_at < now() - make_interval(secs => $5)
  AND COALESCE(o.seconds, $4) > 0
  AND w.updated_at < now() - make_interval(secs => COALESCE(o.seconds, $4))
  AND NOT EXISTS (SELECT 1 FROM outbox x WHERE x.instance_id = w.instance_id)
ORDER BY w.updated_at
LIMIT $6
FOR UPDATE OF w SKIP LOCKED
"""

# Leftovers first (no foreign key ties them to the instance), history explicitly so that it is
# counted, the instances last.
_DELETES = (
    (
        "workflow_instance_history",
        "DELETE FROM workflow_instance_history WHERE instance_id = ANY($1)",
    ),
    ("instance_inbox", "DELETE FROM instance_inbox WHERE instance_id = ANY($1)"),
    ("event_subscriptions", "DELETE FROM event_subscriptions WHERE instance_id = ANY($1)"),
    ("workflow_timers", "DELETE FROM workflow_timers WHERE instance_id = ANY($1)"),
    ("workflow_instances", "DELETE FROM workflow_instances WHERE instance_id = ANY($1)"),
)


@attrs.frozen(kw_only=True)
class RetentionOverride:
    """A definition version's own retention: ``raw`` as written in ``document.metadata``."""

    definition_id: str
    version: str
    raw: object


@attrs.frozen(kw_only=True)
class RetentionBatch:
    """What one batch deleted: rows by table (``workflow_instances`` is the instances)."""

    deleted: dict[str, int]

    @property
    def instances(self) -> int:
        return self.deleted.get("workflow_instances", 0)


async def retention_overrides(database: Database) -> list[RetentionOverride]:
    """Every definition version whose ``document.metadata`` has a ``retention`` (one query)."""
    rows = await database.fetch(_OVERRIDES)
    return [
        RetentionOverride(
            definition_id=r["definition_id"], version=r["version"], raw=r["retention"]
        )
        for r in rows
    ]


def _count(tag: str) -> int:
    """The row count of a ``DELETE n`` status tag."""
    return int(tag.rsplit(" ", 1)[-1])


async def delete_expired_instances(
    database: Database,
    *,
    default_age: float,
    overrides: Sequence[tuple[str, str, float]] = (),
    batch_size: int = 500,
    fence: Callable[[Connection], Awaitable[None]] | None = None,
) -> RetentionBatch:
    """Delete one batch of expired finished instances and their rows (one transaction).

    ``default_age`` and each override's age (``(definition_id, version, seconds)``) are in
    seconds; 0 keeps for ever. ``fence`` runs first in the transaction (the elected sweeper's
    leadership check; it raises to roll back).
    """
    ages = [age for age in (default_age, *(o[2] for o in overrides)) if age > 0]
    if not ages:
        return RetentionBatch(deleted={})
    youngest = min(ages)

    async def work(connection: Connection) -> RetentionBatch:
        if fence is not None:
            await fence(connection)
        rows = await connection.fetch(
            _PICK,
            [o[0] for o in overrides],
            [o[1] for o in overrides],
            [o[2] for o in overrides],
            default_age,
            youngest,
            batch_size,
        )
        ids = [r["instance_id"] for r in rows]
        if not ids:
            return RetentionBatch(deleted={})
        deleted = {table: _count(await connection.execute(sql, ids)) for table, sql in _DELETES}
        return RetentionBatch(deleted=deleted)

    return await database.run_in_transaction(work)
