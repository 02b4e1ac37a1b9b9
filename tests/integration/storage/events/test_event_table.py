"""The database source's ``events`` table: claims are exclusive, and only a claim's owner deletes
or dead-letters its rows."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.support.database import open_test_database
from workflow_orchestrator.storage import Database
from workflow_orchestrator.storage.events import (
    DeadLetter,
    claim_events,
    dead_letter_events,
    delete_claimed_events,
    oldest_event_age,
)

pytestmark = pytest.mark.integration


async def insert_events(database: Database, count: int) -> list[int]:
    """``count`` rows (``{"n": i}``), as a producer inserting directly would; their sequences."""
    rows = await database.fetch(
        "INSERT INTO events (event) SELECT jsonb_build_object('n', i) "
        "FROM generate_series(1, $1::int) i RETURNING event_seq",
        count,
    )
    return sorted(int(r["event_seq"]) for r in rows)


async def delete_in_transaction(database: Database, seqs: list[int], owner_id: str) -> int:
    async def work(connection: Any) -> int:
        async with connection.transaction():
            return await delete_claimed_events(connection, seqs, owner_id)

    return await database.run(work)


async def test_claims_are_exclusive_ordered_and_taken_back_by_their_owner(
    database_url: str,
) -> None:
    """A claim takes unclaimed rows in event_seq order, skips another owner's, and retakes its own."""
    with trio.fail_after(30):
        async with open_test_database(database_url) as database:
            seqs = await insert_events(database, 5)
            first = await claim_events(database, owner_id="a", claim_ttl=30, limit=3)
            assert [c.seq for c in first] == seqs[:3]
            assert [c.event for c in first] == ['{"n": 1}', '{"n": 2}', '{"n": 3}']
            second = await claim_events(database, owner_id="b", claim_ttl=30, limit=10)
            assert [c.seq for c in second] == seqs[3:]
            assert await claim_events(database, owner_id="c", claim_ttl=30, limit=10) == []
            again = await claim_events(database, owner_id="a", claim_ttl=30, limit=10)
            assert [c.seq for c in again] == seqs[:3]


async def test_an_expired_claim_goes_to_the_next_claimant(database_url: str) -> None:
    """Rows whose claim ran out are claimed by another owner, who then owns their delete."""
    with trio.fail_after(30):
        async with open_test_database(database_url) as database:
            seqs = await insert_events(database, 2)
            await claim_events(database, owner_id="a", claim_ttl=30, limit=10)
            await database.execute("UPDATE events SET claimed_until = now() - interval '1 second'")
            taken = await claim_events(database, owner_id="b", claim_ttl=30, limit=10)
            assert [c.seq for c in taken] == seqs
            assert await delete_in_transaction(database, seqs, "a") == 0
            assert await delete_in_transaction(database, seqs, "b") == 2


async def test_deletes_and_dead_letters_touch_only_the_owners_rows(database_url: str) -> None:
    """Of a mixed list, only the caller's claimed rows are deleted or moved to dead letters."""
    with trio.fail_after(30):
        async with open_test_database(database_url) as database:
            seqs = await insert_events(database, 4)
            await claim_events(database, owner_id="a", claim_ttl=30, limit=2)
            await claim_events(database, owner_id="b", claim_ttl=30, limit=2)
            assert await delete_in_transaction(database, [seqs[0], seqs[2]], "a") == 1
            letters = [
                DeadLetter(seq=seqs[1], reason="not a CloudEvent", payload="{}"),
                DeadLetter(seq=seqs[3], reason="someone else's", payload="[]"),
            ]
            moved = await dead_letter_events(
                database, letters, owner_id="a", source_kind="database"
            )
            assert moved == {seqs[1]}
            rows = await database.fetch(
                "SELECT source_kind, reason, payload FROM event_dead_letters"
            )
            assert [dict(r) for r in rows] == [
                {"source_kind": "database", "reason": "not a CloudEvent", "payload": "{}"}
            ]
            left = await database.fetch("SELECT event_seq FROM events ORDER BY event_seq")
            assert [r["event_seq"] for r in left] == seqs[2:]


async def test_the_oldest_age_is_none_on_an_empty_table(database_url: str) -> None:
    """The age is the first row's time since receipt, None once the table is empty."""
    with trio.fail_after(30):
        async with open_test_database(database_url) as database:
            assert await oldest_event_age(database) is None
            await insert_events(database, 1)
            await database.execute("UPDATE events SET received_at = now() - interval '1 minute'")
            age = await oldest_event_age(database)
            assert age is not None and 60 <= age < 3600
