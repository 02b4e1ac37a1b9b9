"""The outbox as the relay sees it: rows of some partitions in commit order, counted, deleted."""

from __future__ import annotations

import uuid

import pytest
import trio

from tests.support.database import open_test_database
from workflow_orchestrator.storage.events import (
    OutboxRow,
    count_outbox,
    delete_outbox_rows,
    read_outbox,
)

pytestmark = pytest.mark.integration

_INSERT = """
INSERT INTO outbox (partition, instance_id, exchange, routing_key, event_id, body)
SELECT p, $1::uuid, CASE WHEN p = 2 THEN 'system' ELSE 'business' END, 'order.' || n,
       'e' || n, '{"n":' || n || '}'
FROM unnest($2::int[]) WITH ORDINALITY AS r(p, n)
ORDER BY n
"""


async def test_the_relay_reads_its_partitions_in_order_and_deletes_what_it_published(
    database_url: str,
) -> None:
    """Only the given partitions' rows come back, oldest first, up to the limit."""
    with trio.fail_after(30):
        async with open_test_database(database_url) as database:
            await database.execute(_INSERT, uuid.uuid4(), [1, 2, 3, 1, 2, 3])
            rows = await read_outbox(database, {1, 2}, 3)
            assert [(r.exchange, r.routing_key, r.event_id, r.body) for r in rows] == [
                ("business", "order.1", "e1", '{"n":1}'),
                ("system", "order.2", "e2", '{"n":2}'),
                ("business", "order.4", "e4", '{"n":4}'),
            ]
            assert all(isinstance(r, OutboxRow) for r in rows)
            assert rows == sorted(rows, key=lambda r: r.outbox_seq)
            assert await count_outbox(database, {1, 2}) == 4
            assert await count_outbox(database) == 6
            await delete_outbox_rows(database, [r.outbox_seq for r in rows])
            assert [r.event_id for r in await read_outbox(database, {1, 2}, 10)] == ["e5"]
            assert await count_outbox(database, {1, 2}) == 1
            assert await count_outbox(database, set()) == 0
