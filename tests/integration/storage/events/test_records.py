"""Housekeeping of the event tables: what ``purge_event_records`` deletes and what it keeps."""

from __future__ import annotations

import pytest
import trio

from tests.support.database import open_test_database
from workflow_orchestrator.storage.events import purge_event_records

pytestmark = pytest.mark.integration

_SETUP = """
INSERT INTO workflow_definitions (definition_id, version, namespace, name, document, source_text,
                                  content_hash)
VALUES ('d', '1', 'n', 'd', '{}', '{}', 'h');
INSERT INTO workflow_instances (instance_id, definition_id, definition_version, status, partition)
VALUES ('00000000-0000-0000-0000-000000000001', 'd', '1', 'completed', 0),
       ('00000000-0000-0000-0000-000000000002', 'd', '1', 'waiting', 0);
INSERT INTO instance_inbox (instance_id, event_key, event)
VALUES ('00000000-0000-0000-0000-000000000001', 's#1', '{}'),
       ('00000000-0000-0000-0000-000000000002', 's#2', '{}');
INSERT INTO processed_events (source, id, processed_at)
VALUES ('s', 'old', now() - interval '2 hours'), ('s', 'new', now());
INSERT INTO unmatched_events (event_key, event_type, event, received_at)
VALUES ('s#old', 't', '{}', now() - interval '10 minutes'), ('s#new', 't', '{}', now());
INSERT INTO event_start_progress (definition_id, definition_version, corr_key, events, updated_at)
VALUES ('d', '1', 'old', '[null]', now() - interval '2 hours'), ('d', '1', 'new', '[null]', now());
"""


async def test_purge_deletes_only_what_expired_or_ended(database_url: str) -> None:
    """Old dedup records, retained events and slot sets go; ended instances lose their inbox."""
    with trio.fail_after(30):
        async with open_test_database(database_url) as database:
            await database.execute(_SETUP)
            counts = await purge_event_records(
                database, deduplication_window=3600, keep_unmatched_for=300
            )
            assert counts == (1, 1, 1, 1)
            left = await database.fetch(
                "SELECT (SELECT array_agg(id) FROM processed_events) AS processed, "
                "(SELECT array_agg(event_key) FROM unmatched_events) AS unmatched, "
                "(SELECT array_agg(event_key) FROM instance_inbox) AS inbox, "
                "(SELECT array_agg(corr_key) FROM event_start_progress) AS slots"
            )
            assert dict(left[0]) == {
                "processed": ["new"],
                "unmatched": ["s#new"],
                "inbox": ["s#2"],
                "slots": ["new"],
            }
            assert await purge_event_records(
                database, deduplication_window=3600, keep_unmatched_for=300
            ) == (0, 0, 0, 0)
