"""The transactional ``outbox``: rows the snapshot writer inserted, read and deleted by the relay.

Each row is a structured-mode CloudEvent (``body``, JSON text) bound for the ``business`` or
``system`` exchange kind, in the partition of the instance that emitted it. Rows are read in
``outbox_seq`` order per set of partitions, so one relay per partition publishes an instance's
events in the order they were committed, and deleted only once published.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import attrs

from workflow_orchestrator.storage._database import Database

__all__ = [
    "OutboxRow",
    "count_outbox",
    "dead_letter_outbox_rows",
    "delete_outbox_rows",
    "read_outbox",
]

_READ = """
SELECT outbox_seq, instance_id, exchange, routing_key, event_id, body
FROM outbox
WHERE partition = ANY($1::integer[])
ORDER BY outbox_seq
LIMIT $2
"""
_DELETE = "DELETE FROM outbox WHERE outbox_seq = ANY($1::bigint[])"
_DEAD_LETTER = """
WITH moved AS (
    DELETE FROM outbox WHERE outbox_seq = ANY($1::bigint[]) RETURNING outbox_seq, body
)
INSERT INTO event_dead_letters (source_kind, reason, payload)
SELECT 'outbox', r.reason, m.body
FROM moved m JOIN unnest($1::bigint[], $2::text[]) AS r(seq, reason) ON r.seq = m.outbox_seq
"""
_COUNT = "SELECT count(*) FROM outbox WHERE partition = ANY($1::integer[])"
_COUNT_ALL = "SELECT count(*) FROM outbox"


@attrs.frozen(kw_only=True)
class OutboxRow:
    """One outbox row: ``exchange`` is the exchange kind (``business`` or ``system``, a CHECK
    constraint), ``event_id`` the CloudEvent's stable ``id``, ``body`` its JSON text,
    ``instance_id`` the instance that produced it (the Kafka record key)."""

    outbox_seq: int
    instance_id: str = ""
    exchange: str
    routing_key: str
    event_id: str
    body: str


async def read_outbox(
    database: Database, partitions: Collection[int], limit: int
) -> list[OutboxRow]:
    """The first ``limit`` rows of ``partitions`` in ``outbox_seq`` order; one query."""
    rows = await database.fetch(_READ, sorted(partitions), limit)
    return [
        OutboxRow(
            outbox_seq=r["outbox_seq"],
            instance_id=str(r["instance_id"]),
            exchange=r["exchange"],
            routing_key=r["routing_key"],
            event_id=r["event_id"],
            body=r["body"],
        )
        for r in rows
    ]


async def delete_outbox_rows(database: Database, seqs: Sequence[int]) -> None:
    """Delete the rows of ``seqs`` (published); one statement."""
    await database.execute(_DELETE, seqs)


async def dead_letter_outbox_rows(database: Database, refused: Sequence[tuple[int, str]]) -> None:
    """Move the rows ``refused`` (``outbox_seq``, reason) that the broker refuses for good to
    ``event_dead_letters`` (``source_kind`` ``'outbox'``, the event as payload); one statement."""
    await database.execute(_DEAD_LETTER, [seq for seq, _ in refused], [r for _, r in refused])


async def count_outbox(database: Database, partitions: Collection[int] | None = None) -> int:
    """How many rows ``partitions`` have (every partition's when None); one query."""
    if partitions is None:
        count: int = await database.fetchval(_COUNT_ALL)
    else:
        count = await database.fetchval(_COUNT, sorted(partitions))
    return int(count)
