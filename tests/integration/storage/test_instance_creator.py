"""The batching InstanceCreator and the pool's session handling, against the real PostgreSQL."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import trio
import trio_asyncio

from tests.integration.storage.helpers import open_storage, register_sample
from workflow_orchestrator.storage import Database, DatabaseUnavailable
from workflow_orchestrator.storage.definitions import delete_definition
from workflow_orchestrator.storage.instances import (
    InstanceCreator,
    InstanceRecord,
    NewInstance,
    Retry,
    get_instance,
    partition_of,
)

pytestmark = pytest.mark.integration


def start(version: str = "1.0.0", *, latest: bool = True, **fields: Any) -> NewInstance:
    return NewInstance(
        definition_id="order_processing",
        definition_version=version,
        latest=latest,
        input=fields.pop("input", {"orderId": "ORD-1"}),
        **fields,
    )


async def create_all(creator: InstanceCreator, items: list[NewInstance]) -> list[Any]:
    """Create ``items`` concurrently; outcomes in the order of ``items``."""
    outcomes: list[Any] = [None] * len(items)

    async def one(index: int) -> None:
        outcomes[index] = await creator.create(items[index])

    async with trio.open_nursery() as nursery:
        for index in range(len(items)):
            nursery.start_soon(one, index)
    return outcomes


async def with_creator(database: Database, nursery: trio.Nursery) -> InstanceCreator:
    creator = InstanceCreator(database=database)
    await nursery.start(creator.run)
    return creator


async def test_concurrent_starts_share_statements(database_url: str) -> None:
    """100 concurrent starts are inserted in a few batches, each as create_instance would."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database, trio.open_nursery() as nursery:
            await register_sample(database)
            creator = await with_creator(database, nursery)
            outcomes = await create_all(
                creator,
                [start(input={"n": i}, business_key=f"bk-{i}") for i in range(100)],
            )
            stored = await get_instance(database, outcomes[7][0].instance_id)
            count = await database.fetchval("SELECT count(*) FROM workflow_instances")
            nursery.cancel_scope.cancel()
    assert count == 100
    assert all(created for _, created in outcomes)
    assert [record.input for record, _ in outcomes] == [{"n": i} for i in range(100)]
    assert creator.created == 100
    assert creator.batches < 10
    record: InstanceRecord = outcomes[7][0]
    assert stored == record
    assert (record.status, record.definition_version, record.business_key) == (
        "pending",
        "1.0.0",
        "bk-7",
    )
    assert record.partition == partition_of(record.instance_id)


async def test_one_idempotency_key_makes_one_instance(database_url: str) -> None:
    """Starts with one key, in one batch and in later ones, all get the one instance."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database, trio.open_nursery() as nursery:
            await register_sample(database)
            creator = await with_creator(database, nursery)
            first = await create_all(creator, [start(idempotency_key="k-1") for _ in range(20)])
            again = await creator.create(start(idempotency_key="k-1", input={"other": True}))
            count = await database.fetchval("SELECT count(*) FROM workflow_instances")
            nursery.cancel_scope.cancel()
    assert count == 1
    assert sum(created for _, created in first) == 1
    assert len({record.instance_id for record, _ in first}) == 1
    assert isinstance(again, tuple)
    assert again[0].instance_id == first[0][0].instance_id
    assert again[1] is False


async def test_version_checks(database_url: str) -> None:
    """``latest`` needs the version to be the latest live one; otherwise it must be live."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database, trio.open_nursery() as nursery:
            await register_sample(database, version="1.0.0")
            await register_sample(database, version="2.0.0")
            await register_sample(database, "gone", version="1.0.0")
            await delete_definition(database, "gone")
            creator = await with_creator(database, nursery)
            stale, pinned, latest, deleted, unknown_id = await create_all(
                creator,
                [
                    start("1.0.0", latest=True),
                    start("1.0.0", latest=False),
                    start("2.0.0", latest=True),
                    NewInstance(
                        definition_id="gone", definition_version="1.0.0", latest=False, input={}
                    ),
                    NewInstance(
                        definition_id="nope", definition_version="1", latest=True, input={}
                    ),
                ],
            )
            count = await database.fetchval("SELECT count(*) FROM workflow_instances")
            nursery.cancel_scope.cancel()
    assert isinstance(stale, Retry)
    assert isinstance(deleted, Retry)
    assert isinstance(unknown_id, Retry)
    assert pinned[1] and pinned[0].definition_version == "1.0.0"
    assert latest[1] and latest[0].definition_version == "2.0.0"
    assert count == 2


async def test_an_error_of_the_server_makes_every_start_retry(database_url: str) -> None:
    """A start PostgreSQL rejects (an idempotency key too large for its index; what the
    checks refuse before a batch is in test_poison_starts) fails no other start: all retry
    alone."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database, trio.open_nursery() as nursery:
            await register_sample(database)
            creator = await with_creator(database, nursery)
            outcomes = await create_all(
                creator, [start(idempotency_key=secrets.token_urlsafe(9_000)), start(), start()]
            )
            count = await database.fetchval("SELECT count(*) FROM workflow_instances")
            nursery.cancel_scope.cancel()
    assert all(isinstance(outcome, Retry) for outcome in outcomes)
    assert count == 0


async def test_not_running_is_an_error(database_url: str) -> None:
    with trio.fail_after(30):
        async with open_storage(database_url) as database:
            creator = InstanceCreator(database=database)
            with pytest.raises(DatabaseUnavailable, match="not running"):
                await creator.create(start())


async def test_session_state_does_not_leak_through_the_pool(database_url: str) -> None:
    """Releasing skips asyncpg's reset query, so work with session state resets its own."""
    query = (
        "SELECT current_setting('application_name') AS name, "
        "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
        "AND pid = pg_backend_pid()) AS locks, pg_backend_pid() AS pid"
    )

    async def dirty(connection: Any) -> int:
        await connection.execute("SET application_name = 'dirty'")
        await connection.execute("SELECT pg_advisory_lock(4242)")
        pid: int = await connection.fetchval("SELECT pg_backend_pid()")
        return pid

    with trio.fail_after(30):
        async with open_storage(database_url, pool_size=1) as database:
            pid = await database.run(dirty, session_state=True)
            after = await database.run(lambda c: c.fetchrow(query))
            async with database.dedicated() as connection:
                await trio_asyncio.aio_as_trio(dirty)(connection)
            after_dedicated = await database.run(lambda c: c.fetchrow(query))
    assert after["pid"] == pid  # the same pooled connection, reset
    assert (after["name"], after["locks"]) == ("workflow-orchestrator", 0)
    assert (after_dedicated["name"], after_dedicated["locks"]) == ("workflow-orchestrator", 0)
