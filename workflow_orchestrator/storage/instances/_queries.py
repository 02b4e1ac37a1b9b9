"""The instances repository: create (idempotently), read, list, recover and command instances.

Invariants:

- One instance per idempotency key, also under concurrent creates: the INSERT uses
  ``ON CONFLICT (idempotency_key) DO NOTHING`` and the loser reads the winner's row in the same
  crossing (the INSERT waits for the winner's transaction, so the row is there to read).
- Lists are newest first, paged by the keyset ``(created_at, instance_id)`` in an opaque cursor.
  Only the filters given appear in the SQL, so the planner can use the matching index: the
  ``pg_trgm`` GIN index for ``business_key_contains`` (``ILIKE``, three characters or more) and
  the ``jsonb_path_ops`` GIN indexes for ``input_contains``/``context_contains`` (``@>``).
- ``total_estimate`` is exact when the whole result fits in the first page, or when the
  planner expects at most 10,000 matches (then they are counted); otherwise it is the
  planner's row estimate for the filtered query (``EXPLAIN``, no execution), which is cheap at
  any table size and as good as the table's statistics (``ANALYZE``/autovacuum).
- History ``seq`` numbers come from ``workflow_instances.history_seq``, bumped in the UPDATE that
  locks the instance row, so writers never race for a number.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from workflow_orchestrator.storage._database import Connection, Database
from workflow_orchestrator.storage._errors import InstanceNotFound, InvalidStatusTransition
from workflow_orchestrator.storage.definitions._repository import (
    InvalidCursor,
    definition_not_found,
)
from workflow_orchestrator.storage.instances._creator import check_start
from workflow_orchestrator.storage.instances._records import (
    DEFAULT_PARTITION_COUNT,
    INSTANCE_COLUMNS,
    InboxEvent,
    InstancePage,
    InstanceRecord,
    InstanceStart,
    RecoverableInstance,
    instance_record,
    partition_of,
)
from workflow_orchestrator.storage.instances._status import (
    INSTANCE_STATUSES,
    TERMINAL_SQL,
    TERMINAL_STATUSES,
    InstanceStatus,
)
from workflow_orchestrator.storage.instances._subflows import SUBFLOW_KEY_PREFIX, ended_event_sql

__all__ = [
    "create_instance",
    "fetch_inbox",
    "get_instance",
    "insert_started_instances",
    "instance_not_found",
    "list_instances",
    "list_recoverable",
    "load_instance",
    "load_instance_in",
    "set_status",
    "set_status_in",
]

#: How far a command's status change (``set_status``) moves ``snapshot_version``: past the
#: next version a run of the instance writes (the stored one plus one), so that write is
#: refused as older, never taken for a retried write of the command's version.
COMMAND_VERSION_STEP = 2

#: Puts the end of each of the children ``$1`` (terminal now) in the inbox of the parent that
#: awaits it, unless that parent ended (see ``_subflows``).
NOTICE_PARENTS_SQL = f"""
INSERT INTO instance_inbox (instance_id, event_key, event)
SELECT w.parent_id, '{SUBFLOW_KEY_PREFIX}' || w.instance_id::text,
       {
    ended_event_sql(child_id="w.instance_id", status="w.status", output="w.output", error="w.error")
}
FROM workflow_instances w
WHERE w.instance_id = ANY($1::uuid[]) AND w.parent_awaits AND w.status IN {TERMINAL_SQL}
  AND EXISTS (SELECT 1 FROM workflow_instances p
              WHERE p.instance_id = w.parent_id AND p.status NOT IN {TERMINAL_SQL})
ON CONFLICT (instance_id, event_key) DO NOTHING
"""

_INSERT_STARTED_SQL = f"""
INSERT INTO workflow_instances (instance_id, definition_id, definition_version, status,
    idempotency_key, input, partition)
SELECT s.instance_id, s.definition_id, s.definition_version, '{InstanceStatus.PENDING}',
       s.idempotency_key, s.input::jsonb, s.partition
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[])
    WITH ORDINALITY AS s(instance_id, definition_id, definition_version, idempotency_key, input,
                         partition, ord)
WHERE EXISTS (SELECT 1 FROM workflow_definitions d
              WHERE d.definition_id = s.definition_id AND d.version = s.definition_version
                AND d.deleted_at IS NULL)
ORDER BY s.ord
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING {INSTANCE_COLUMNS}
"""


async def insert_started_instances(
    connection: Connection,
    starts: Sequence[tuple[uuid.UUID, InstanceStart]],
    partition_count: int = DEFAULT_PARTITION_COUNT,
) -> list[InstanceRecord]:
    """Insert pending instances with the given ids in one statement (asyncio side, inside the
    caller's transaction); returns the records created. A start whose key was used before, or
    whose version is no longer live, creates nothing."""
    if not starts:
        return []
    rows = await connection.fetch(
        _INSERT_STARTED_SQL,
        [i for i, _ in starts],
        [s.definition_id for _, s in starts],
        [s.definition_version for _, s in starts],
        [s.idempotency_key for _, s in starts],
        [json.dumps(s.input, separators=(",", ":")) for _, s in starts],
        [partition_of(i, partition_count) for i, _ in starts],
    )
    return [instance_record(r) for r in rows]


_INBOX_SQL = (
    "SELECT inbox_seq, event, event_key FROM instance_inbox WHERE instance_id = $1 "
    "ORDER BY inbox_seq"
)


async def fetch_inbox(connection: Connection, instance_id: uuid.UUID) -> tuple[InboxEvent, ...]:
    """The unconsumed events of ``instance_id`` (asyncio side, inside a unit of work)."""
    rows = await connection.fetch(_INBOX_SQL, instance_id)
    return tuple(InboxEvent(seq=r["inbox_seq"], event=r["event"], key=r["event_key"]) for r in rows)


_EXACT_COUNT_BELOW = 10_000


def _encode_cursor(record: InstanceRecord) -> str:
    raw = f"{record.created_at.isoformat()}|{record.instance_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        created, instance = raw.decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(instance)
    except ValueError:  # covers binascii.Error and UnicodeDecodeError
        raise InvalidCursor(
            f"cursor {cursor!r} is not one this service issued; use the nextCursor of a "
            "previous page, or omit it for the first page"
        ) from None


def instance_not_found(instance_id: uuid.UUID) -> InstanceNotFound:
    """The error for an instance id that is not stored."""
    return InstanceNotFound(f"workflow instance {instance_id} not found", instance_id=instance_id)


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def create_instance(
    database: Database,
    *,
    definition_id: str,
    definition_version: str | None,
    input: Any,
    business_key: str | None = None,
    idempotency_key: str | None = None,
    partition_count: int = DEFAULT_PARTITION_COUNT,
) -> tuple[InstanceRecord, bool]:
    """Create a pending instance, or return the one that already has ``idempotency_key``.

    Returns ``(record, created)``. ``definition_version=None`` starts the latest live version.
    A key that was used before returns the existing instance whatever the other arguments say
    (the caller may compare them) and even if its definition was deleted since. Raises
    ``DefinitionNotFound`` when the definition (version) is missing or deleted, and
    ``Unstorable`` (before any I/O) when PostgreSQL cannot store the input or a key. One
    crossing.
    """
    check_start(input, business_key, idempotency_key)
    instance_id = uuid.uuid4()
    partition = partition_of(instance_id, partition_count)

    async def existing(connection: Connection) -> InstanceRecord | None:
        row = await connection.fetchrow(
            f"SELECT {INSTANCE_COLUMNS} FROM workflow_instances WHERE idempotency_key = $1",
            idempotency_key,
        )
        return None if row is None else instance_record(row)

    async def work(connection: Connection) -> tuple[InstanceRecord, bool]:
        if idempotency_key is not None:
            found = await existing(connection)
            if found is not None:
                return found, False
        version = await connection.fetchval(
            "SELECT version FROM workflow_definitions "
            "WHERE definition_id = $1 AND ($2::text IS NULL OR version = $2) "
            "AND deleted_at IS NULL ORDER BY created_at DESC, version DESC LIMIT 1",
            definition_id,
            definition_version,
        )
        if version is None:
            raise await definition_not_found(connection, definition_id, definition_version)
        row = await connection.fetchrow(
            f"""
            INSERT INTO workflow_instances (instance_id, definition_id, definition_version, status,
                business_key, idempotency_key, input, partition)
            VALUES ($1, $2, $3, '{InstanceStatus.PENDING}', $4, $5, $6, $7)
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING {INSTANCE_COLUMNS}
            """,
            instance_id,
            definition_id,
            version,
            business_key,
            idempotency_key,
            input,
            partition,
        )
        if row is not None:
            return instance_record(row), True
        # A concurrent create with the same key won; its transaction has ended (ON CONFLICT
        # waited for it), so this new statement sees its row.
        found = await existing(connection)
        assert found is not None, "idempotency key conflict without a committed row"
        return found, False

    return await database.run(work)


async def get_instance(database: Database, instance_id: uuid.UUID) -> InstanceRecord:
    """One instance. Raises ``InstanceNotFound``."""
    row = await database.run(
        lambda c: c.fetchrow(
            f"SELECT {INSTANCE_COLUMNS} FROM workflow_instances WHERE instance_id = $1", instance_id
        )
    )
    if row is None:
        raise InstanceNotFound(
            f"workflow instance {instance_id} not found", instance_id=instance_id
        )
    return instance_record(row)


async def list_instances(
    database: Database,
    *,
    definition_id: str | None = None,
    version: str | None = None,
    status: str | Collection[str] | None = None,
    business_key_contains: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    input_contains: dict[str, Any] | None = None,
    context_contains: dict[str, Any] | None = None,
    namespaces: Collection[str] | None = None,
    parent_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> InstancePage:
    """A page of instances matching every given filter, newest first; one crossing, which may
    read from a replica.

    Ranges are half-open: ``created_after <= created_at < created_before``. ``*_contains`` on
    JSON is containment (``{"orderId": "ORD-1"}`` matches inputs having that member). Raises
    ``InvalidCursor`` for a cursor this service did not issue. ``namespaces`` (None: all) keeps
    the instances of definitions in those namespaces (what a principal may see);
    ``parent_id`` the children of that instance.
    """
    clauses: list[str] = []
    args: list[Any] = []

    def add(template: str, value: Any) -> None:
        args.append(value)
        clauses.append(template.format(f"${len(args)}"))

    if definition_id is not None:
        add("definition_id = {}", definition_id)
    if version is not None:
        add("definition_version = {}", version)
    if status is not None:
        add("status = ANY({}::text[])", [status] if isinstance(status, str) else list(status))
    if business_key_contains:
        add("business_key ILIKE {}", _like_pattern(business_key_contains))
    if created_after is not None:
        add("created_at >= {}", created_after)
    if created_before is not None:
        add("created_at < {}", created_before)
    if updated_after is not None:
        add("updated_at >= {}", updated_after)
    if updated_before is not None:
        add("updated_at < {}", updated_before)
    if input_contains is not None:
        add("input @> {}::jsonb", input_contains)
    if context_contains is not None:
        add("context @> {}::jsonb", context_contains)
    if parent_id is not None:
        add("parent_id = {}", parent_id)
    if namespaces is not None:
        add(
            "(definition_id, definition_version) IN (SELECT d.definition_id, d.version "
            "FROM workflow_definitions d WHERE d.namespace = ANY({}::text[]))",
            sorted(namespaces),
        )
    filters = " AND ".join(clauses) or "TRUE"
    filter_args = tuple(args)
    if cursor:
        created, after_id = _decode_cursor(cursor)
        args.extend([created, after_id])
        clauses.append(f"(created_at, instance_id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    where = " AND ".join(clauses) or "TRUE"
    query = (
        f"SELECT {INSTANCE_COLUMNS} FROM workflow_instances WHERE {where} "
        f"ORDER BY created_at DESC, instance_id DESC LIMIT ${len(args)}"
    )

    async def work(connection: Connection) -> tuple[list[Any], int, bool]:
        rows = await connection.fetch(query, *args)
        if not cursor and len(rows) <= limit:
            return rows, len(rows), True
        plan = await connection.fetchval(
            f"EXPLAIN (FORMAT JSON) SELECT 1 FROM workflow_instances WHERE {filters}",
            *filter_args,
        )
        plan = json.loads(plan) if isinstance(plan, str) else plan
        estimate = int(plan[0]["Plan"]["Plan Rows"])
        if estimate > _EXACT_COUNT_BELOW:
            return rows, estimate, False
        # Few matches expected: count them (the count stops early if the estimate was low).
        counted = int(
            await connection.fetchval(
                f"SELECT count(*) FROM (SELECT 1 FROM workflow_instances WHERE {filters} "
                f"LIMIT {_EXACT_COUNT_BELOW + 1}) AS matching",
                *filter_args,
            )
        )
        return rows, counted, counted <= _EXACT_COUNT_BELOW

    rows, total, exact = await database.run(work, read_only=True)
    items = tuple(instance_record(r) for r in rows[:limit])
    more = len(rows) > limit
    return InstancePage(
        items=items,
        next_cursor=_encode_cursor(items[-1]) if more and items else None,
        total_estimate=max(total, len(items)),
        total_exact=exact,
    )


async def set_status(
    database: Database,
    instance_id: uuid.UUID,
    status: InstanceStatus,
    *,
    allowed_from: Collection[InstanceStatus],
    history_kind: str | None = None,
    details: dict[str, Any] | None = None,
) -> InstanceRecord:
    """Change an instance's status if its current status is in ``allowed_from``; one crossing.

    For commands (cancel, suspend, resume) on an instance that no live actor is driving
    (pending or passivated): a live actor owns its status, so route commands for live
    instances through the actor. The change takes a version of its own, ``snapshot_version +
    COMMAND_VERSION_STEP``: the snapshot a run may still be committing (the stored version
    plus one, from an actor that was abandoned or interrupted) is then older than the stored
    one and refused with ``SnapshotSuperseded``, never taken for a retried write, so no late
    write undoes a command. A terminal status sets ``completed_at`` and, for a child its
    parent awaits, puts the child's end in the parent's inbox. With ``history_kind`` one
    history row is appended in the same transaction. Raises ``InstanceNotFound`` or
    ``InvalidStatusTransition``.
    """
    if status not in INSTANCE_STATUSES:
        raise ValueError(
            f"unknown instance status {status!r}; expected one of "
            f"{[str(s) for s in INSTANCE_STATUSES]}"
        )

    async def work(connection: Connection) -> InstanceRecord:
        async with connection.transaction():
            return await set_status_in(
                connection,
                instance_id,
                status,
                allowed_from=allowed_from,
                history_kind=history_kind,
                details=details,
            )

    return await database.run(work)


async def set_status_in(
    connection: Connection,
    instance_id: uuid.UUID,
    status: InstanceStatus,
    *,
    allowed_from: Collection[InstanceStatus],
    history_kind: str | None = None,
    details: dict[str, Any] | None = None,
) -> InstanceRecord:
    """``set_status`` inside the caller's transaction (asyncio side). A terminal status of a
    child its parent awaits also puts the child's end in the parent's inbox (``_subflows``)."""
    current = await connection.fetchval(
        "SELECT status FROM workflow_instances WHERE instance_id = $1 FOR UPDATE",
        instance_id,
    )
    if current is None:
        raise instance_not_found(instance_id)
    if current not in allowed_from:
        allowed = ", ".join(s for s in INSTANCE_STATUSES if s in allowed_from)
        raise InvalidStatusTransition(
            f"workflow instance {instance_id} is {current}; it can become {status} only "
            f"from: {allowed}",
            instance_id=instance_id,
            status=current,
            requested=status,
        )
    row = await connection.fetchrow(
        f"""
        UPDATE workflow_instances
        SET status = $2, updated_at = now(),
            snapshot_version = snapshot_version + {COMMAND_VERSION_STEP},
            completed_at = CASE WHEN $3 THEN now() ELSE completed_at END,
            history_seq = history_seq + $4
        WHERE instance_id = $1
        RETURNING {INSTANCE_COLUMNS}, history_seq
        """,
        instance_id,
        status,
        status in TERMINAL_STATUSES,
        0 if history_kind is None else 1,
    )
    if status in TERMINAL_STATUSES:
        # Nothing wakes an instance that ended: drop its timers, subscriptions, inbox.
        for table in ("workflow_timers", "event_subscriptions", "instance_inbox"):
            await connection.execute(f"DELETE FROM {table} WHERE instance_id = $1", instance_id)
        if row["parent_awaits"]:
            await connection.execute(NOTICE_PARENTS_SQL, [instance_id])
    if history_kind is not None:
        await connection.execute(
            "INSERT INTO workflow_instance_history (instance_id, seq, kind, details) "
            "VALUES ($1, $2, $3, $4)",
            instance_id,
            row["history_seq"],
            history_kind,
            details or {},
        )
    return InstanceRecord(**{k: v for k, v in row.items() if k != "history_seq"})


async def list_recoverable(
    database: Database,
    *,
    partitions: Collection[int],
    after: uuid.UUID | None = None,
    limit: int = 500,
) -> tuple[RecoverableInstance, ...]:
    """Non-terminal instances of ``partitions`` with their snapshots, by ``instance_id``.

    For recovery after acquiring partitions: page with ``after`` = the last id of the previous
    page until a page is shorter than ``limit``. Served by the partial index of active instances.
    """

    async def work(connection: Connection) -> list[Any]:
        rows: list[Any] = await connection.fetch(
            f"""
            SELECT {INSTANCE_COLUMNS}, snapshot,
                   EXISTS (SELECT 1 FROM instance_inbox i
                           WHERE i.instance_id = workflow_instances.instance_id) AS has_inbox
            FROM workflow_instances
            WHERE partition = ANY($1::int[])
              AND status NOT IN {TERMINAL_SQL}
              AND ($2::uuid IS NULL OR instance_id > $2)
            ORDER BY instance_id
            LIMIT $3
            """,
            sorted(partitions),
            after,
            limit,
        )
        return rows

    rows = await database.run(work)
    return tuple(
        RecoverableInstance(
            record=InstanceRecord(
                **{k: v for k, v in r.items() if k not in ("snapshot", "has_inbox")}
            ),
            snapshot=r["snapshot"],
            has_inbox=r["has_inbox"],
        )
        for r in rows
    )


async def load_instance(
    database: Database, instance_id: uuid.UUID, *, read_only: bool = False
) -> RecoverableInstance:
    """One instance with its last committed snapshot and, when it is not terminal, its
    unconsumed events (to re-activate it); one crossing. ``read_only=True`` may read from a
    replica (the API's reads of an instance; a miss there is confirmed on the primary): the
    runtime keeps the default, the primary. Raises ``InstanceNotFound``.
    """

    return await database.run(
        lambda connection: load_instance_in(connection, instance_id), read_only=read_only
    )


async def load_instance_in(connection: Connection, instance_id: uuid.UUID) -> RecoverableInstance:
    """``load_instance`` inside the caller's unit of work (asyncio side)."""
    row = await connection.fetchrow(
        f"SELECT {INSTANCE_COLUMNS}, snapshot FROM workflow_instances WHERE instance_id = $1",
        instance_id,
    )
    if row is None:
        raise instance_not_found(instance_id)
    inbox = () if row["status"] in TERMINAL_STATUSES else await fetch_inbox(connection, instance_id)
    return RecoverableInstance(
        record=InstanceRecord(**{k: v for k, v in row.items() if k != "snapshot"}),
        snapshot=row["snapshot"],
        inbox=inbox,
        has_inbox=bool(inbox),
    )
