"""Durable timers (``workflow_timers``): claiming the due ones of a replica's partitions.

The snapshot writer stores a parked instance's timers (absolute due times) with its snapshot and
deletes them with the snapshot that consumes them; this module only claims. A claim marks a
timer ``claimed_until`` (its due time plus ``claim_for``) so it is armed by one replica at a
time; a claim that outlives a crash runs out and the timer is claimed again. Only timers of
``waiting`` instances are claimed: a suspended instance keeps its timers until it resumes.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

import attrs

from workflow_orchestrator.storage._database import Database

__all__ = ["DueTimer", "claim_due_timers", "count_due_timers", "release_timer_claims"]

_CLAIM_SQL = """
WITH due AS (
    SELECT t.instance_id, t.timer_key
    FROM workflow_timers t
    JOIN workflow_instances w ON w.instance_id = t.instance_id AND w.status = 'waiting'
    WHERE t.partition = ANY($1::int[])
      AND t.due_at <= now() + make_interval(secs => $2)
      AND (t.claimed_until IS NULL OR t.claimed_until < now())
    ORDER BY t.due_at
    LIMIT $3
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE workflow_timers t
SET claimed_until = greatest(t.due_at, now()) + make_interval(secs => $4)
FROM due
WHERE t.instance_id = due.instance_id AND t.timer_key = due.timer_key
RETURNING t.instance_id, t.due_at
"""

_RELEASE_SQL = (
    "UPDATE workflow_timers SET claimed_until = NULL "
    "WHERE partition = ANY($1::int[]) AND claimed_until IS NOT NULL"
)

_PENDING_SQL = (
    "SELECT count(*) FROM workflow_timers WHERE partition = ANY($1::int[]) AND due_at <= now()"
)


@attrs.frozen(kw_only=True)
class DueTimer:
    """A claimed timer: the instance it wakes and its absolute due time."""

    instance_id: uuid.UUID
    due_at: datetime


async def claim_due_timers(
    database: Database,
    partitions: Collection[int],
    *,
    lookahead: float,
    limit: int,
    claim_for: float,
) -> list[DueTimer]:
    """Claim up to ``limit`` unclaimed (or expired-claim) timers of waiting instances of
    ``partitions`` due within ``lookahead`` seconds, earliest first, until ``claim_for`` seconds
    after their due time; one statement (``FOR UPDATE SKIP LOCKED``)."""
    rows = await database.fetch(_CLAIM_SQL, sorted(partitions), lookahead, limit, claim_for)
    return [DueTimer(instance_id=r["instance_id"], due_at=r["due_at"]) for r in rows]


async def release_timer_claims(database: Database, partitions: Collection[int]) -> None:
    """Clear every claim on the timers of ``partitions`` (they were granted anew: claims made
    under an earlier grant are stale); one statement."""
    await database.execute(_RELEASE_SQL, sorted(partitions))


async def count_due_timers(database: Database, partitions: Collection[int]) -> int:
    """How many timers of ``partitions`` are due now or overdue; one query."""
    count: int = await database.fetchval(_PENDING_SQL, sorted(partitions))
    return int(count)
