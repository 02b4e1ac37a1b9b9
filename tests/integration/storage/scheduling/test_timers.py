"""Durable timers as the timer service sees them: claims of waiting instances' due timers."""

from __future__ import annotations

import uuid

import pytest
import trio

from tests.support.database import open_test_database
from workflow_orchestrator.storage.scheduling import (
    DueTimer,
    claim_due_timers,
    count_due_timers,
    release_timer_claims,
)

pytestmark = pytest.mark.integration

WAITING = uuid.UUID(int=1)
SUSPENDED = uuid.UUID(int=2)
ELSEWHERE = uuid.UUID(int=3)

_SETUP = f"""
INSERT INTO workflow_definitions (definition_id, version, namespace, name, document, source_text,
                                  content_hash)
VALUES ('d', '1', 'n', 'd', '{{}}', '{{}}', 'h');
INSERT INTO workflow_instances (instance_id, definition_id, definition_version, status, partition)
VALUES ('{WAITING}', 'd', '1', 'waiting', 1), ('{SUSPENDED}', 'd', '1', 'suspended', 1),
       ('{ELSEWHERE}', 'd', '1', 'waiting', 2);
INSERT INTO workflow_timers (instance_id, timer_key, partition, kind, due_at)
VALUES ('{WAITING}', 'overdue', 1, 'wait', now() - interval '1 minute'),
       ('{WAITING}', 'soon', 1, 'timeout', now() + interval '1 minute'),
       ('{WAITING}', 'later', 1, 'retry', now() + interval '1 hour'),
       ('{SUSPENDED}', 'overdue', 1, 'wait', now() - interval '1 minute'),
       ('{ELSEWHERE}', 'overdue', 2, 'wait', now() - interval '1 minute');
"""


async def test_claims_take_due_timers_of_waiting_instances_once(database_url: str) -> None:
    """Due (or soon due) timers of waiting instances of the partitions, earliest first, once."""
    with trio.fail_after(30):
        async with open_test_database(database_url) as database:
            await database.execute(_SETUP)
            claimed = await claim_due_timers(database, {1}, lookahead=120, limit=10, claim_for=30)
            assert [type(t) for t in claimed] == [DueTimer, DueTimer]
            assert [t.instance_id for t in claimed] == [WAITING, WAITING]
            assert claimed[0].due_at < claimed[1].due_at
            assert (
                await claim_due_timers(database, {1}, lookahead=120, limit=10, claim_for=30) == []
            )
            await release_timer_claims(database, {1})
            first = await claim_due_timers(database, {1}, lookahead=120, limit=1, claim_for=30)
            assert [t.due_at for t in first] == [claimed[0].due_at]


async def test_the_due_count_ignores_claims_and_statuses(database_url: str) -> None:
    """Every timer of the partitions due by now counts, claimed or not, whatever the status."""
    with trio.fail_after(30):
        async with open_test_database(database_url) as database:
            await database.execute(_SETUP)
            assert await count_due_timers(database, {1}) == 2
            await claim_due_timers(database, {1, 2}, lookahead=0, limit=10, claim_for=30)
            assert await count_due_timers(database, {1, 2}) == 3
            assert await count_due_timers(database, {7}) == 0
