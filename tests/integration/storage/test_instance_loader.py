"""The batching InstanceLoader against the real PostgreSQL: each load reads what
``load_instance`` reads, loads asked together share a crossing."""

from __future__ import annotations

import uuid

import pytest
import trio

from tests.integration.storage.helpers import open_storage, register_sample
from workflow_orchestrator.storage import Database, InstanceNotFound
from workflow_orchestrator.storage.instances import (
    InstanceLoader,
    InstanceStatus,
    RecoverableInstance,
    create_instance,
    load_instance,
    set_status,
)

pytestmark = pytest.mark.integration


async def _instances(database: Database, count: int) -> list[uuid.UUID]:
    await register_sample(database)
    ids = []
    for n in range(count):
        record, _ = await create_instance(
            database,
            definition_id="order_processing",
            definition_version="1.0.0",
            input={"n": n, "big": 2**70},
            business_key=None,
            idempotency_key=None,
        )
        ids.append(record.instance_id)
    return ids


async def _deliver(database: Database, instance_id: uuid.UUID, key: str, data: object) -> None:
    await database.execute(
        "INSERT INTO instance_inbox (instance_id, event_key, event) VALUES ($1, $2, $3)",
        instance_id,
        key,
        {"type": "t", "data": data},
    )


async def _load_all(
    loader: InstanceLoader, ids: list[uuid.UUID]
) -> list[RecoverableInstance | BaseException]:
    results: list[RecoverableInstance | BaseException] = [RuntimeError()] * len(ids)

    async def one(index: int) -> None:
        try:
            results[index] = await loader.load(ids[index])
        except Exception as exc:
            results[index] = exc

    async with trio.open_nursery() as nursery:
        for index in range(len(ids)):
            nursery.start_soon(one, index)
    return results


async def test_concurrent_loads_read_as_load_instance_in_few_batches(database_url: str) -> None:
    """40 loads asked together (inboxes, an ended instance, a duplicate, a missing id) come
    back exactly as ``load_instance`` reads them, in far fewer batches than loads."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database, trio.open_nursery() as nursery:
            ids = await _instances(database, 38)
            await _deliver(database, ids[0], "b", {"second": 2})
            await _deliver(database, ids[0], "a", {"first": 1, "big": 2**80})
            await _deliver(database, ids[1], "x", "only")
            await _deliver(database, ids[2], "gone", "dropped when it ends")
            await set_status(
                database, ids[2], InstanceStatus.CANCELLED, allowed_from=[InstanceStatus.PENDING]
            )
            missing = uuid.uuid4()
            asked = [*ids, ids[5], missing]
            expected = [await load_instance(database, i) for i in ids]
            loader = InstanceLoader(database=database)
            await nursery.start(loader.run)
            results = await _load_all(loader, asked)
            nursery.cancel_scope.cancel()
    assert results[: len(ids)] == expected
    assert results[len(ids)] == expected[5]
    assert isinstance(results[-1], InstanceNotFound)
    first = results[0]
    assert isinstance(first, RecoverableInstance)
    assert [e.key for e in first.inbox] == ["b", "a"]  # in delivery order
    assert first.inbox[1].event["data"]["big"] == 2**80  # exact beyond 64 bits
    assert first.has_inbox and first.record.input["big"] == 2**70
    ended = results[2]
    assert isinstance(ended, RecoverableInstance)
    assert ended.record.status == InstanceStatus.CANCELLED and ended.inbox == ()
    assert loader.batches < 10
    assert loader.largest_batch > 1


async def test_a_load_sees_what_was_committed_before_it_was_asked(database_url: str) -> None:
    """Loads asked after a change read the change (a load never reuses an earlier read)."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database, trio.open_nursery() as nursery:
            (instance_id,) = await _instances(database, 1)
            loader = InstanceLoader(database=database)
            await nursery.start(loader.run)
            before = await loader.load(instance_id)
            await _deliver(database, instance_id, "k", 1)
            after = await loader.load(instance_id)
            nursery.cancel_scope.cancel()
    assert before.inbox == () and [e.key for e in after.inbox] == ["k"]


async def test_without_running_a_load_is_load_instance(database_url: str) -> None:
    """Before ``run`` and after it stopped, ``load`` reads on its own."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database:
            (instance_id,) = await _instances(database, 1)
            loader = InstanceLoader(database=database)
            alone = await loader.load(instance_id)
            async with trio.open_nursery() as nursery:
                await nursery.start(loader.run)
                nursery.cancel_scope.cancel()
            after_stop = await loader.load(instance_id)
            expected = await load_instance(database, instance_id)
            with pytest.raises(InstanceNotFound):
                await loader.load(uuid.uuid4())
    assert alone == expected == after_stop
    assert loader.batches == 0
