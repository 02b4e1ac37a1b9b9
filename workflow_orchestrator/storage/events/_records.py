"""The event tables' bookkeeping: retained unmatched events, housekeeping, subscription counts.

Unmatched events are kept for ``eventProcessing.unmatchedRetention`` so a ``listen`` that starts
a moment after its event can still consume it (``fetch_retained_events``). Deduplication
records, retained events, ``schedule.on`` ``all`` slot sets and the inbox rows of instances
that ended are deleted by ``purge_event_records``, which the router runs periodically.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from workflow_orchestrator.storage._database import Connection, Database

__all__ = ["count_subscribed_instances", "fetch_retained_events", "purge_event_records"]

_PURGE_SQL = (
    "DELETE FROM processed_events WHERE processed_at < now() - make_interval(secs => $1)",
    "DELETE FROM unmatched_events WHERE received_at < now() - make_interval(secs => $1)",
    "DELETE FROM instance_inbox i USING workflow_instances w WHERE w.instance_id = i.instance_id "
    "AND w.status IN ('completed', 'cancelled', 'faulted')",
    "DELETE FROM event_start_progress WHERE updated_at < now() - make_interval(secs => $1)",
)


async def fetch_retained_events(
    database: Database, event_types: Collection[str], within: float
) -> list[dict[str, Any]]:
    """Retained unmatched events of ``event_types`` ('' = any type) received in the last
    ``within`` seconds, oldest first; one crossing."""
    types = sorted(event_types)
    rows = await database.fetch(
        "SELECT event FROM unmatched_events "
        "WHERE ($1::text[] && ARRAY['']::text[] OR event_type = ANY($1::text[])) "
        "AND received_at > now() - make_interval(secs => $2) ORDER BY received_at",
        types,
        within,
    )
    return [r["event"] for r in rows]


async def purge_event_records(
    database: Database, *, deduplication_window: float, keep_unmatched_for: float
) -> tuple[int, int, int, int]:
    """Delete deduplication records older than ``deduplication_window`` seconds, retained
    unmatched events older than ``keep_unmatched_for``, inbox rows of instances that ended, and
    ``schedule.on`` ``all`` slot sets untouched for a deduplication window; one crossing.
    Returns how many rows of each were deleted."""

    async def work(connection: Connection) -> tuple[int, int, int, int]:
        counts = []
        for sql, args in zip(
            _PURGE_SQL,
            ((deduplication_window,), (keep_unmatched_for,), (), (deduplication_window,)),
            strict=True,
        ):
            status: str = await connection.execute(sql, *args)
            counts.append(int(status.rsplit(" ", 1)[-1]))
        return counts[0], counts[1], counts[2], counts[3]

    return await database.run(work)


async def count_subscribed_instances(database: Database) -> int:
    """How many instances have at least one event subscription (the health report's
    ``subscriptionCount``); one query."""
    count: int = await database.fetchval(
        "SELECT count(DISTINCT instance_id) FROM event_subscriptions"
    )
    return int(count)
