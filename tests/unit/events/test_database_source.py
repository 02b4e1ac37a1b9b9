"""The database source's decisions without PostgreSQL: what is routed, dead-lettered, lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from workflow_orchestrator.events._database_source import (
    ClaimLost,
    InvalidRow,
    check_claim,
    parse_claimed,
)
from workflow_orchestrator.storage.events import ClaimedEvent

RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def claimed(seq: int, payload: str) -> ClaimedEvent:
    return ClaimedEvent(seq=seq, event=payload, received_at=RECEIVED)


def valid(event_id: str) -> str:
    return json.dumps({"specversion": "1.0", "id": event_id, "source": "/s", "type": "t"})


def test_valid_rows_are_routed_and_invalid_ones_dead_lettered_in_order() -> None:
    """Rows split into events (with their seqs) and invalid rows, each in event_seq order."""
    batch = parse_claimed(
        [claimed(1, valid("a")), claimed(2, "{not json"), claimed(3, valid("b"))],
        max_size=65_536,
    )
    assert [event.attributes["id"] for event in batch.events] == ["a", "b"]
    assert batch.seqs == (1, 3)
    assert [(bad.seq, bad.payload, bad.received_at) for bad in batch.invalid] == [
        (2, "{not json", RECEIVED)
    ]
    assert batch.invalid[0].reason


def test_an_event_over_the_size_limit_is_dead_lettered() -> None:
    """A row larger than max_size is not routed."""
    batch = parse_claimed([claimed(5, valid("x" * 200))], max_size=100)
    assert batch.events == ()
    assert [bad.seq for bad in batch.invalid] == [5]
    assert isinstance(batch.invalid[0], InvalidRow)


def test_a_full_delete_keeps_the_claim() -> None:
    """Deleting every claimed row is the normal case: nothing is raised."""
    check_claim(3, [1, 2, 3], "replica-a")


def test_a_short_delete_means_the_claim_was_lost() -> None:
    """Fewer rows deleted than claimed raises ClaimLost naming the owner and the shortfall."""
    with pytest.raises(ClaimLost) as raised:
        check_claim(1, [1, 2, 3], "replica-a")
    assert str(raised.value) == (
        "2 of 3 claimed events are no longer claimed by 'replica-a' "
        "(the claim expired and another source took them)"
    )
    assert (raised.value.owner_id, raised.value.missing) == ("replica-a", 2)
