"""The family of an instance (subflows): its children, and the cancel cascade.

Cancelling an instance cancels its descendants that have not ended (children, their children,
...), whatever they wait for: ``cancel_instance`` does both in one transaction (an instance at
rest, or one whose actor was stopped); ``cancel_descendants`` cancels the descendants of
instances that were cancelled already (by their own actor's commit), and, given partitions,
those of every cancelled instance of those partitions that still has a child that has not ended
(recovery: a cascade that a crash interrupted). A cancelled descendant takes a version of its
own (``COMMAND_VERSION_STEP``), so the next snapshot of an actor still running it is refused
(``SnapshotSuperseded``) and nothing it did since its last commit is kept; its timers,
subscriptions and inbox are dropped and a ``workflow.cancelled`` history row names the
ancestor that was cancelled. The recursion walks ``workflow_instances_by_parent``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

import attrs

from workflow_orchestrator.storage._database import Connection, Database
from workflow_orchestrator.storage.instances._queries import (
    COMMAND_VERSION_STEP,
    load_instance_in,
    set_status_in,
)
from workflow_orchestrator.storage.instances._records import (
    INSTANCE_COLUMNS,
    InstanceRecord,
    RecoverableInstance,
    instance_record,
)
from workflow_orchestrator.storage.instances._status import TERMINAL_SQL, InstanceStatus

__all__ = [
    "InstanceChild",
    "cancel_descendants",
    "cancel_instance",
    "instance_children",
    "load_instance_family",
]


@attrs.frozen(kw_only=True)
class InstanceChild:
    """One child of an instance, as the API lists it."""

    instance_id: uuid.UUID
    definition_id: str
    definition_version: str
    status: InstanceStatus = attrs.field(converter=InstanceStatus)
    created_at: datetime


# Roots: $1 and, for the partitions $2, the cancelled instances there that still have a child
# that has not ended. Every descendant that has not ended becomes cancelled.
_CASCADE_SQL = f"""
WITH RECURSIVE roots AS (
    SELECT unnest($1::uuid[]) AS instance_id
    UNION
    SELECT c.parent_id
    FROM workflow_instances c JOIN workflow_instances p ON p.instance_id = c.parent_id
    WHERE cardinality($2::int[]) > 0 AND c.parent_id IS NOT NULL
      AND c.status NOT IN {TERMINAL_SQL}
      AND p.status = '{InstanceStatus.CANCELLED}' AND p.partition = ANY($2::int[])
), tree AS (
    SELECT c.instance_id AS member
    FROM workflow_instances c JOIN roots r ON c.parent_id = r.instance_id
    UNION
    SELECT c.instance_id
    FROM workflow_instances c JOIN tree t ON c.parent_id = t.member
), cancelled AS (
    UPDATE workflow_instances w
    SET status = '{InstanceStatus.CANCELLED}', updated_at = now(), completed_at = now(),
        snapshot_version = w.snapshot_version + {COMMAND_VERSION_STEP},
        history_seq = w.history_seq + 1
    FROM tree t
    WHERE w.instance_id = t.member AND w.status NOT IN {TERMINAL_SQL}
    RETURNING {INSTANCE_COLUMNS}, history_seq
), history AS (
    INSERT INTO workflow_instance_history (instance_id, seq, kind, details)
    SELECT instance_id, history_seq, 'workflow.cancelled',
           jsonb_build_object('reason', 'its parent workflow instance was cancelled',
                              'parentId', parent_id::text)
    FROM cancelled
), timers_gone AS (
    DELETE FROM workflow_timers x USING cancelled c WHERE x.instance_id = c.instance_id
), subscriptions_gone AS (
    DELETE FROM event_subscriptions x USING cancelled c WHERE x.instance_id = c.instance_id
), inbox_gone AS (
    DELETE FROM instance_inbox x USING cancelled c WHERE x.instance_id = c.instance_id
)
SELECT {INSTANCE_COLUMNS} FROM cancelled ORDER BY instance_id
"""


async def _cascade(
    connection: Connection, roots: Sequence[uuid.UUID], partitions: Collection[int]
) -> tuple[InstanceRecord, ...]:
    rows = await connection.fetch(_CASCADE_SQL, list(roots), sorted(partitions))
    return tuple(instance_record(r) for r in rows)


async def cancel_instance(
    database: Database,
    instance_id: uuid.UUID,
    *,
    allowed_from: Collection[InstanceStatus],
    history_kind: str | None = None,
) -> tuple[InstanceRecord, tuple[InstanceRecord, ...]]:
    """``set_status(instance_id, CANCELLED, ...)`` and the cancel of its descendants that have
    not ended, in one transaction (one crossing); returns its record and those of the
    descendants cancelled. Raises as ``set_status`` (then nothing changed)."""

    async def work(connection: Connection) -> tuple[InstanceRecord, tuple[InstanceRecord, ...]]:
        async with connection.transaction():
            record = await set_status_in(
                connection,
                instance_id,
                InstanceStatus.CANCELLED,
                allowed_from=allowed_from,
                history_kind=history_kind,
            )
            return record, await _cascade(connection, [instance_id], ())

    return await database.run(work)


async def cancel_descendants(
    database: Database,
    *,
    parents: Sequence[uuid.UUID] = (),
    partitions: Collection[int] = (),
) -> tuple[InstanceRecord, ...]:
    """Cancel the descendants that have not ended of ``parents`` (cancelled already) and of the
    cancelled instances of ``partitions`` (see the module docstring), in one transaction (one
    crossing); returns the records of the instances cancelled."""
    if not parents and not partitions:
        return ()

    async def work(connection: Connection) -> tuple[InstanceRecord, ...]:
        async with connection.transaction():
            return await _cascade(connection, parents, partitions)

    return await database.run(work)


async def _children_in(
    connection: Connection, instance_id: uuid.UUID, limit: int
) -> tuple[InstanceChild, ...]:
    rows = await connection.fetch(
        "SELECT instance_id, definition_id, definition_version, status, created_at "
        "FROM workflow_instances WHERE parent_id = $1 "
        "ORDER BY created_at, instance_id LIMIT $2",
        instance_id,
        limit,
    )
    return tuple(InstanceChild(**dict(r.items())) for r in rows)


async def instance_children(
    database: Database, instance_id: uuid.UUID, *, limit: int = 100, read_only: bool = False
) -> tuple[InstanceChild, ...]:
    """The first ``limit`` children of ``instance_id``, oldest first (one crossing; with
    ``read_only`` it may read from a replica)."""
    return await database.run(
        lambda connection: _children_in(connection, instance_id, limit), read_only=read_only
    )


async def load_instance_family(
    database: Database, instance_id: uuid.UUID, *, limit: int = 100, read_only: bool = False
) -> tuple[RecoverableInstance, tuple[InstanceChild, ...]]:
    """``load_instance`` and the first ``limit`` children of the instance, in one crossing
    (the API's read of one instance). Raises ``InstanceNotFound``."""

    async def work(
        connection: Connection,
    ) -> tuple[RecoverableInstance, tuple[InstanceChild, ...]]:
        loaded = await load_instance_in(connection, instance_id)
        return loaded, await _children_in(connection, instance_id, limit)

    return await database.run(work, read_only=read_only)
