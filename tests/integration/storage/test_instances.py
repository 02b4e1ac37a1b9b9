"""The instances repository against the real PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

import pytest
import trio

from tests.integration.storage.helpers import open_storage, register_sample
from workflow_orchestrator.storage import InstanceNotFound, InvalidStatusTransition
from workflow_orchestrator.storage.definitions import InvalidCursor
from workflow_orchestrator.storage.instances import (
    InstanceRecord,
    create_instance,
    get_instance,
    instance_history,
    list_instances,
    partition_of,
    set_status,
)

pytestmark = pytest.mark.integration


async def test_concurrent_creates_with_one_key_make_one_instance(database_url: str) -> None:
    """50 concurrent creates with one idempotency key yield one instance, returned to all."""
    results: list[tuple[InstanceRecord, bool]] = []
    with trio.fail_after(60):
        async with open_storage(database_url, pool_size=20) as database:
            await register_sample(database)

            async def start() -> None:
                results.append(
                    await create_instance(
                        database,
                        definition_id="order_processing",
                        definition_version=None,
                        input={"orderId": "ORD-1"},
                        idempotency_key="key-1",
                    )
                )

            async with trio.open_nursery() as nursery:
                for _ in range(50):
                    nursery.start_soon(start)
            count = await database.fetchval("SELECT count(*) FROM workflow_instances")
    assert count == 1
    assert len(results) == 50
    assert sum(created for _, created in results) == 1
    assert len({record.instance_id for record, _ in results}) == 1


async def test_created_instance_fields(database_url: str) -> None:
    """A new instance is pending, on the latest version, in the partition its id hashes to."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            await register_sample(database, version="1.0.0")
            await register_sample(database, version="2.0.0")
            record, created = await create_instance(
                database,
                definition_id="order_processing",
                definition_version=None,
                input={"orderId": "ORD-7"},
                business_key="customer-42",
            )
            fetched = await get_instance(database, record.instance_id)
            with pytest.raises(InstanceNotFound) as missing:
                await get_instance(database, uuid.UUID(int=7))
    assert created and fetched == record
    assert record.status == "pending" and record.definition_version == "2.0.0"
    assert record.partition == partition_of(record.instance_id) < 64
    assert record.input == {"orderId": "ORD-7"} and record.context == {}
    assert str(missing.value) == "workflow instance 00000000-0000-0000-0000-000000000007 not found"


def test_partition_is_a_stable_hash() -> None:
    """The partition of an id never changes between processes (no salted hash())."""
    instance_id = uuid.UUID("6f1c2f0e-1d1e-4a5b-9c3e-2b8f6a7d9e01")
    assert partition_of(instance_id) == partition_of(instance_id, 64) == 33
    assert partition_of(instance_id, 8) == 1


async def test_filters_and_pagination(database_url: str) -> None:
    """Every filter narrows the list; cursor pages walk all matches once, newest first."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database:
            await register_sample(database, "billing")
            await register_sample(database, "order_processing")
            made: list[InstanceRecord] = []
            for i in range(12):
                record, _ = await create_instance(
                    database,
                    definition_id="order_processing" if i % 3 else "billing",
                    definition_version=None,
                    input={"orderId": f"ORD-{i}", "n": i},
                    business_key=f"customer-{i % 4}-x",
                )
                made.append(record)
            await set_status(database, made[1].instance_id, "cancelled", allowed_from={"pending"})

            pages: list[InstanceRecord] = []
            cursor = None
            while True:
                page = await list_instances(database, cursor=cursor, limit=5)
                pages.extend(page.items)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            by_definition = await list_instances(database, definition_id="billing")
            by_key = await list_instances(database, business_key_contains="tomer-3")
            by_input = await list_instances(database, input_contains={"orderId": "ORD-5"})
            by_status = await list_instances(database, status=["cancelled", "faulted"])
            none = await list_instances(database, context_contains={"missing": True})
            by_range = await list_instances(
                database,
                created_after=made[3].created_at,
                created_before=made[6].created_at,
            )
            by_updated = await list_instances(
                database, updated_after=made[-1].updated_at + timedelta(hours=1)
            )
            literal = await list_instances(database, business_key_contains="%")
            with pytest.raises(InvalidCursor) as bad:
                await list_instances(database, cursor="not-a-cursor")
    assert [r.instance_id for r in pages] == [r.instance_id for r in reversed(made)]
    assert by_definition.total_estimate == 4 and by_definition.total_exact
    assert {r.input["n"] for r in by_definition.items} == {0, 3, 6, 9}
    assert {r.business_key for r in by_key.items} == {"customer-3-x"}
    assert [r.input["n"] for r in by_input.items] == [5]
    assert [r.instance_id for r in by_status.items] == [made[1].instance_id]
    assert none.items == () and none.total_estimate == 0
    assert [r.input["n"] for r in by_range.items] == [5, 4, 3]
    assert by_updated.items == ()
    assert literal.items == ()  # % is a character to look for, not a wildcard
    assert str(bad.value).startswith("cursor 'not-a-cursor' is not one this service issued")


async def _plan(database: Any, sql: str, *args: Any) -> str:
    async def work(connection: Any) -> str:
        rows = await connection.fetch(f"EXPLAIN {sql}", *args)
        return "\n".join(r[0] for r in rows)

    result: str = await database.run(work)
    return result


async def test_searches_use_their_indexes(database_url: str) -> None:
    """On 20k instances, business-key search uses the trigram index and input its GIN index."""
    with trio.fail_after(120):
        async with open_storage(database_url) as database:
            await register_sample(database)
            await database.execute(
                """
                INSERT INTO workflow_instances (definition_id, definition_version, status,
                    business_key, input, context, partition)
                SELECT 'order_processing', '1.0.0', 'completed', 'customer-' || md5(g::text),
                       jsonb_build_object('orderId', 'ORD-' || g), '{}'::jsonb, g % 64
                FROM generate_series(1, 20000) AS g
                """
            )
            # As autovacuum would after a bulk load: flushes the GIN pending lists, which the
            # planner otherwise (rightly) costs as a scan of every pending entry.
            await database.execute("VACUUM ANALYZE workflow_instances")
            wanted = hashlib.md5(b"1234").hexdigest()[3:13]
            key_plan = await _plan(
                database,
                "SELECT * FROM workflow_instances WHERE business_key ILIKE $1",
                f"%{wanted.upper()}%",
            )
            input_plan = await _plan(
                database,
                "SELECT * FROM workflow_instances WHERE input @> $1::jsonb",
                {"orderId": "ORD-777"},
            )
            page = await list_instances(database, input_contains={"orderId": "ORD-777"})
            everything = await list_instances(database, limit=10)
            found = await list_instances(database, business_key_contains=wanted.upper())
    assert "workflow_instances_by_business_key" in key_plan, key_plan
    assert "workflow_instances_by_input" in input_plan, input_plan
    assert [r.input for r in page.items] == [{"orderId": "ORD-777"}]
    assert not everything.total_exact and 15_000 <= everything.total_estimate <= 25_000
    assert everything.next_cursor is not None and len(everything.items) == 10
    assert [r.business_key for r in found.items] == [f"customer-{hashlib.md5(b'1234').hexdigest()}"]


async def test_status_commands_and_history(database_url: str) -> None:
    """set_status checks the current status, records history, and terminal sets completed_at."""
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            await register_sample(database)
            record, _ = await create_instance(
                database, definition_id="order_processing", definition_version=None, input={}
            )
            suspended = await set_status(
                database,
                record.instance_id,
                "suspended",
                allowed_from={"pending", "running", "waiting"},
                history_kind="workflow.suspended",
            )
            cancelled = await set_status(
                database,
                record.instance_id,
                "cancelled",
                allowed_from={"pending", "running", "waiting", "suspended"},
                history_kind="workflow.cancelled",
                details={"reason": "user"},
            )
            with pytest.raises(InvalidStatusTransition) as refused:
                await set_status(
                    database, record.instance_id, "running", allowed_from={"suspended"}
                )
            history = await instance_history(database, record.instance_id)
            with pytest.raises(InstanceNotFound):
                await instance_history(database, uuid.UUID(int=1))
    assert suspended.status == "suspended" and suspended.completed_at is None
    assert cancelled.status == "cancelled" and cancelled.completed_at is not None
    assert str(refused.value) == (
        f"workflow instance {record.instance_id} is cancelled; it can become running only "
        "from: suspended"
    )
    assert (refused.value.status, refused.value.requested) == ("cancelled", "running")
    assert [(h.seq, h.kind, h.details) for h in history] == [
        (1, "workflow.suspended", {}),
        (2, "workflow.cancelled", {"reason": "user"}),
    ]
