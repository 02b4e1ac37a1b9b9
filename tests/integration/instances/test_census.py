"""The census of unfinished instances against the real PostgreSQL: counts by definition and
status of the partitions held, finished ones left out, the plan on the partial index."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from tests.integration.storage.helpers import open_storage, register_sample
from workflow_orchestrator.instances import InstanceCensus
from workflow_orchestrator.instances.testing import InMemoryInstanceStore
from workflow_orchestrator.storage.instances import (
    InstanceStatus,
    count_unfinished_instances,
    create_instance,
    partition_of,
    set_status,
)
from workflow_orchestrator.storage.instances._counts import _COUNT_SQL

pytestmark = pytest.mark.integration

ANY = frozenset(InstanceStatus)
STATUSES = {
    ("orders", 1): InstanceStatus.WAITING,
    ("orders", 2): InstanceStatus.COMPLETED,
    ("orders", 4): InstanceStatus.FAULTED,
    ("billing", 0): InstanceStatus.SUSPENDED,
}


def explain(partitions: list[int]) -> Callable[[Any], Awaitable[Any]]:
    """The plan of the census query (the statement of ``count_unfinished_instances``)."""

    async def work(connection: Any) -> Any:
        await connection.execute("SET LOCAL enable_seqscan = off")
        return await connection.fetchval(f"EXPLAIN (FORMAT JSON) {_COUNT_SQL}", partitions)

    return work


async def test_census_counts_unfinished_instances_of_the_partitions_held(
    database_url: str,
) -> None:
    """Pending, waiting and suspended instances are counted by definition and status; ended
    ones are not, nor those of a partition this replica does not hold; a count that fails
    leaves no old numbers behind."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database:
            await register_sample(database, "orders")
            await register_sample(database, "billing")
            created = {}
            for name, count in (("orders", 5), ("billing", 2)):
                for index in range(count):
                    record, _ = await create_instance(
                        database, definition_id=name, definition_version=None, input={}
                    )
                    created[(name, index)] = record.instance_id
            for key, status in STATUSES.items():
                await set_status(database, created[key], status, allowed_from=ANY)
            leases = InMemoryInstanceStore()
            elsewhere = partition_of(created[("orders", 3)])
            leases.release(elsewhere)
            census = InstanceCensus(
                count=lambda partitions: count_unfinished_instances(database, partitions),
                leases=leases,
            )
            await census.refresh()
            counts = dict(census.counts())
            plan = await database.run_in_transaction(explain(sorted(leases.current().partitions)))
            assert await count_unfinished_instances(database, []) == []
            # The table is away (as after a botched manual change): the next count fails.
            await database.execute("ALTER TABLE workflow_instances RENAME TO instances_away")
            await census.refresh()
    expected = Counter(
        (name, str(STATUSES.get((name, index), InstanceStatus.PENDING)))
        for (name, index), instance_id in created.items()
        if partition_of(instance_id) != elsewhere
        and not STATUSES.get((name, index), InstanceStatus.PENDING).terminal
    )
    assert counts == dict(expected)
    assert counts[("orders", "waiting")] == 1 and counts[("billing", "suspended")] == 1
    # The predicate matches the partial indexes' (of unfinished instances), so the planner can
    # use one (a table this small is read whole unless sequential scans are discouraged).
    used = json.dumps(plan)
    assert any(f"workflow_instances_active_by_{key}" in used for key in ("partition", "id")), used
    assert census.counts() == {}
