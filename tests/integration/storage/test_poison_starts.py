"""A poison start fails alone: the batching creator and ``create_instance`` refuse an input or
key PostgreSQL cannot store before any statement, with an error the API answers 400."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.integration.storage.helpers import open_storage, register_sample
from tests.integration.storage.test_instance_creator import start, with_creator
from workflow_orchestrator.storage import Unstorable
from workflow_orchestrator.storage.instances import InstanceCreator, create_instance

pytestmark = pytest.mark.integration

NUL = (
    "holds the NUL character (\\u0000), which PostgreSQL cannot store; remove it or encode "
    "the value (for example base64)"
)


async def _outcome(creator: InstanceCreator, **fields: Any) -> Any:
    try:
        return await creator.create(start(**fields))
    except Unstorable as refused:
        return refused


async def test_poison_starts_fail_alone_beside_innocent_ones(database_url: str) -> None:
    """Concurrent starts with a NUL in the input, NaN in the input or a NUL in the business key
    are refused with the field and where; the 20 innocent starts beside them are created."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database, trio.open_nursery() as nursery:
            await register_sample(database)
            creator = await with_creator(database, nursery)
            poison: list[dict[str, Any]] = [
                {"input": {"note": ["ok", "a\x00b"]}},
                {"input": {"amount": float("nan")}},
                {"business_key": "order\x00-1"},
            ]
            plan = poison + [{"business_key": f"order-{n}"} for n in range(20)]
            outcomes: list[Any] = [None] * len(plan)

            async def one(index: int) -> None:
                outcomes[index] = await _outcome(creator, **plan[index])

            async with trio.open_nursery() as starts:
                for index in range(len(plan)):
                    starts.start_soon(one, index)
            count = await database.fetchval("SELECT count(*) FROM workflow_instances")
            nursery.cancel_scope.cancel()
    assert [str(o) for o in outcomes[:3]] == [
        f"the input {NUL} at /note/1",
        "the input holds nan, which JSON does not allow; use a number, null or a string at /amount",
        f"the businessKey {NUL}",
    ]
    assert all(isinstance(o, tuple) and o[1] for o in outcomes[3:])
    assert count == 20


async def test_create_instance_refuses_an_unstorable_idempotency_key(database_url: str) -> None:
    """The reading path's ``create_instance`` refuses a key PostgreSQL cannot store before any
    statement, naming the key."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database:
            await register_sample(database)
            with pytest.raises(Unstorable) as refused:
                await create_instance(
                    database,
                    definition_id="order_processing",
                    definition_version=None,
                    input={},
                    idempotency_key="key-\ud800",
                )
            count = await database.fetchval("SELECT count(*) FROM workflow_instances")
    assert str(refused.value) == (
        "the idempotency key holds a lone UTF-16 surrogate, which is not valid Unicode; send "
        "valid UTF-8 text"
    )
    assert refused.value.reason == "surrogate" and count == 0
