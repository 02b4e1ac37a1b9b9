"""The ``events`` table of the database event source: claims, deletes and dead letters.

Producers insert CloudEvents into ``events`` (``workflow_publish_event``, migration V003); a
statement trigger notifies ``EVENTS_CHANNEL`` on every insert. A source claims rows in
``event_seq`` order with ``FOR UPDATE SKIP LOCKED`` (``claim_events``) for ``claim_ttl``
seconds, so several replicas share the table without routing a row twice and the rows of a
replica that died are claimed again once its claim expires. Every delete and dead letter is
restricted to the rows still claimed by the caller: a caller whose claim was taken over touches
nothing and learns how many rows it still had.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from workflow_orchestrator.storage._database import Connection, Database

__all__ = [
    "EVENTS_CHANNEL",
    "ClaimedEvent",
    "DeadLetter",
    "claim_events",
    "dead_letter_events",
    "delete_claimed_events",
    "oldest_event_age",
]

EVENTS_CHANNEL = "workflow_events"
"""The channel the ``events`` insert trigger notifies."""

_CLAIM = """
UPDATE events
SET claimed_by = $1, claimed_until = now() + $2::float8 * interval '1 second'
WHERE event_seq IN (
    SELECT event_seq FROM events
    WHERE claimed_until IS NULL OR claimed_until < now() OR claimed_by = $1
    ORDER BY event_seq
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING event_seq, event::text AS event, received_at
"""

_DELETE_CLAIMED = "DELETE FROM events WHERE event_seq = ANY($1::bigint[]) AND claimed_by = $2"

_DEAD_LETTER = """
WITH gone AS (
    DELETE FROM events
    WHERE event_seq = ANY($1::bigint[]) AND claimed_by = $2
    RETURNING event_seq
), letters AS (
    INSERT INTO event_dead_letters (source_kind, reason, payload)
    SELECT $5, bad.reason, bad.payload
    FROM unnest($1::bigint[], $3::text[], $4::text[]) AS bad(seq, reason, payload)
    JOIN gone ON gone.event_seq = bad.seq
    ORDER BY bad.seq
)
SELECT event_seq FROM gone
"""

_OLDEST_AGE = """
SELECT greatest(extract(epoch FROM clock_timestamp() - received_at), 0)::float8
FROM events
ORDER BY event_seq
LIMIT 1
"""


@attrs.frozen(kw_only=True)
class ClaimedEvent:
    """One claimed row of ``events``: its sequence, the JSON text a producer wrote (not parsed
    or validated yet) and when it was received."""

    seq: int
    event: str
    received_at: datetime


@attrs.frozen(kw_only=True)
class DeadLetter:
    """A claimed row to move to ``event_dead_letters``, and why."""

    seq: int
    reason: str
    payload: str


async def claim_events(
    database: Database, *, owner_id: str, claim_ttl: float, limit: int
) -> list[ClaimedEvent]:
    """Claim up to ``limit`` rows for ``claim_ttl`` seconds under ``owner_id``, in
    ``event_seq`` order: rows nobody claims, rows whose claim expired and rows claimed under
    ``owner_id`` already (a retry of this owner takes its own rows back); one statement."""
    rows = await database.fetch(_CLAIM, owner_id, claim_ttl, limit)
    return sorted(
        (
            ClaimedEvent(seq=int(r["event_seq"]), event=r["event"], received_at=r["received_at"])
            for r in rows
        ),
        key=lambda claimed: claimed.seq,
    )


async def dead_letter_events(
    database: Database, letters: Sequence[DeadLetter], *, owner_id: str, source_kind: str
) -> set[int]:
    """Move the rows of ``letters`` still claimed by ``owner_id`` to ``event_dead_letters``
    (``source_kind``, reason, payload) in one statement; returns the sequences moved."""
    gone = await database.fetch(
        _DEAD_LETTER,
        [letter.seq for letter in letters],
        owner_id,
        [letter.reason for letter in letters],
        [letter.payload for letter in letters],
        source_kind,
    )
    return {int(row["event_seq"]) for row in gone}


async def delete_claimed_events(connection: Connection, seqs: Sequence[int], owner_id: str) -> int:
    """Delete the rows of ``seqs`` still claimed by ``owner_id``; returns how many were
    (asyncio side, inside the caller's transaction: the routing's ``consume``)."""
    status: str = await connection.execute(_DELETE_CLAIMED, seqs, owner_id)
    return int(status.rsplit(" ", 1)[-1])


async def oldest_event_age(database: Database) -> float | None:
    """Seconds since the first row of ``events`` (in ``event_seq`` order, the oldest unless a
    producer set ``received_at`` itself) was received; None when the table is empty. One
    indexed query."""
    age: float | None = await database.fetchval(_OLDEST_AGE)
    return age
