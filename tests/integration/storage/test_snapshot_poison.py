"""A poison value hurts only its instance: the group-commit writer against the real PostgreSQL
with snapshots that PostgreSQL cannot store beside innocent ones."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import trio

from tests.integration.storage.helpers import open_storage
from tests.integration.storage.test_snapshot_writer import (
    make_instances,
    running_writer,
    snapshot_of,
)
from workflow_orchestrator.storage import SnapshotWriteFailed
from workflow_orchestrator.storage.instances import (
    InstanceSnapshot,
    SnapshotUnstorable,
    SnapshotWriter,
    SubscriptionRow,
    get_instance,
)

pytestmark = pytest.mark.integration


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _huge_key_listen() -> tuple[SubscriptionRow, ...]:
    # Passes every check, but PostgreSQL refuses it: the key is too large for the btree index
    # on (event_type, shape_id, corr_key) and does not compress (random text).
    return (
        SubscriptionRow(
            filter_index=0,
            task_ref="/do/0/hear",
            event_type="com.example.ping",
            shape_id=0,
            corr_key=secrets.token_urlsafe(9_000),
        ),
    )


async def _outcome(writer: SnapshotWriter, snapshot: InstanceSnapshot) -> BaseException | None:
    try:
        await writer.write(snapshot)
    except SnapshotWriteFailed as error:
        return error
    return None


async def test_poison_snapshots_fail_alone_and_the_batch_commits(database_url: str) -> None:
    """In one batch beside innocent snapshots, a NUL, a NaN and too deep nesting are refused
    before the batch (naming the value and where) and a value only PostgreSQL refuses fails
    its own instance after the batch is retried one instance at a time; every innocent
    snapshot commits, and the refused instances keep their last committed state."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database:
            made = await make_instances(database, 24)
            poison = {
                made[0].instance_id: {"snapshot": {"state": {"data": {"n": "a\x00b"}}}},
                made[1].instance_id: {"output": {"n": float("inf")}},
                made[2].instance_id: {"context": {"deep": _nested(1_200)}},
                made[3].instance_id: {"subscriptions": _huge_key_listen()},
            }
            outcomes: dict[Any, BaseException | None] = {}

            async def write(snapshot: InstanceSnapshot) -> None:
                outcomes[snapshot.instance_id] = await _outcome(writer, snapshot)

            async with running_writer(database) as writer:
                async with trio.open_nursery() as nursery:
                    for record in made:
                        changes = poison.get(record.instance_id, {})
                        nursery.start_soon(write, snapshot_of(record, 1, **changes))
                stats = writer.statistics()
            stored = {r.instance_id: await get_instance(database, r.instance_id) for r in made}
    refused = {i: outcomes[i] for i in poison}
    assert all(isinstance(e, SnapshotUnstorable) for e in refused.values()), refused
    problems = [e.problem for e in refused.values() if isinstance(e, SnapshotUnstorable)]
    assert problems[:3] == [
        "the workflow data at /data/n holds the NUL character (\\u0000), which PostgreSQL "
        "cannot store; remove it or encode the value (for example base64)",
        "the workflow output at /n holds inf, which JSON does not allow; use a number, null "
        "or a string",
        # a pointer is cut at 200 characters in messages
        "the workflow context at " + ("/deep" + "/0" * 255)[:197] + "... nests deeper than "
        "256 levels; flatten the data",
    ]
    assert problems[3].startswith(
        "PostgreSQL refused a value of the instance (ProgramLimitExceededError: index row "
    )
    assert [e.reason for e in refused.values() if isinstance(e, SnapshotUnstorable)] == [
        "nul",
        "non-finite",
        "depth",
        "database",
    ]
    innocent = [r.instance_id for r in made if r.instance_id not in poison]
    assert [outcomes[i] for i in innocent] == [None] * 20
    assert all(stored[i].snapshot_version == 1 for i in innocent)
    assert all(stored[i].snapshot_version == 0 for i in poison)
    assert stats.snapshots == 20 and stats.failed == 4


async def test_a_lone_snapshot_refused_by_postgres_fails_with_the_reason(
    database_url: str,
) -> None:
    """A batch of one snapshot PostgreSQL refuses fails that snapshot with the database's
    reason (never retried as a batch), and the writer goes on committing."""
    with trio.fail_after(60):
        async with open_storage(database_url) as database:
            bad, good = await make_instances(database, 2)
            async with running_writer(database) as writer:
                refused = await _outcome(
                    writer, snapshot_of(bad, 1, subscriptions=_huge_key_listen())
                )
                committed = await _outcome(writer, snapshot_of(good, 1))
            stored = await get_instance(database, good.instance_id)
    assert isinstance(refused, SnapshotUnstorable) and refused.reason == "database"
    assert str(refused).startswith(
        f"the snapshot of workflow instance {bad.instance_id} was not written: PostgreSQL "
        "refused a value of the instance (ProgramLimitExceededError: index row"
    )
    assert refused.problem.endswith(
        "; change the data the workflow keeps, or encode it (for example base64)"
    )
    assert committed is None and stored.snapshot_version == 1
