"""The routing transaction of a batch of events, and the subscription shapes it keys on.

``route_batch`` does everything a batch of events causes in ONE transaction and ONE crossing:

1. check the caller's inputs are current: its subscription shapes and its view of the
   definitions (``definitions_stamp``); a new shape or a changed definition since raises
   ``RoutingStale``, and the caller reloads them and computes the batch again;
2. deduplicate by (``source``, ``id``) in ``processed_events``;
3. find the subscriptions the fresh events match, by index on (event_type, shape_id, corr_key)
   plus a containment check of the static attributes, and put each event in the inbox of each
   matching instance once;
4. create the instances that ``schedule.on`` starts (idempotency key per definition and event);
5. keep unmatched events for the retention window, when asked;
6. run the source's own statements (``consume``);
7. return, for the instances of this replica's partitions, what their activation needs (record,
   snapshot and inbox), and notify the owners of the others on ``workflow_wake``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import attrs

from workflow_orchestrator.storage._database import Connection, Database
from workflow_orchestrator.storage.instances import (
    INSTANCE_COLUMNS,
    InboxEvent,
    InstanceRecord,
    InstanceStart,
    RecoverableInstance,
    insert_started_instances,
)

__all__ = [
    "WAKE_CHANNEL",
    "EventToRoute",
    "RoutedBatch",
    "RoutingStale",
    "StartSlot",
    "SubscriptionShape",
    "definitions_stamp",
    "ensure_shape",
    "fetch_retained_events",
    "load_shapes",
    "notify_wake",
    "purge_event_records",
    "route_batch",
]

WAKE_CHANNEL = "workflow_wake"
_NOTIFY_CHUNK = 7000  # bytes of ids per notification (the payload limit is 8000)


class RoutingStale(Exception):
    """A subscription shape was added, or a definition registered or deleted, since the caller
    loaded them (nothing was written); ``shapes`` and ``definitions`` say which."""

    def __init__(self, *, shapes: bool, definitions: bool) -> None:
        super().__init__(
            "routing inputs changed: "
            + ("shapes " if shapes else "")
            + ("definitions" if definitions else "")
        )
        self.shapes = shapes
        self.definitions = definitions


# Changes whenever a definition is registered or deleted (the table is small).
_STALENESS_SQL = """
SELECT (SELECT coalesce(max(shape_id), 0) FROM subscription_shapes) AS newest_shape,
       (SELECT count(*)::text || '/' || coalesce(max(created_at)::text, '') || '/' ||
               coalesce(max(deleted_at)::text, '') FROM workflow_definitions) AS definitions
"""


async def definitions_stamp(database: Database) -> str:
    """A value that changes whenever a definition is registered or deleted; one crossing."""
    rows = await database.fetch(_STALENESS_SQL)
    stamp: str = rows[0]["definitions"]
    return stamp


@attrs.frozen(kw_only=True)
class SubscriptionShape:
    """A distinct (event type, correlation pairs) of listen filters."""

    shape_id: int
    event_type: str
    correlate: tuple[tuple[str, str], ...]


@attrs.frozen(kw_only=True)
class StartSlot:
    """An event filling slot ``index`` of ``slots`` for a ``schedule.on`` with ``all``: the
    instance starts (input: the events in filter order) once every slot of ``corr_key`` is
    filled; an event for a slot that is filled already is not kept."""

    definition_id: str
    definition_version: str
    corr_key: str
    index: int
    slots: int


@attrs.frozen(kw_only=True)
class EventToRoute:
    """One event, with the subscription keys it can match: ``(event_type, shape_id, corr_key)``
    triples (the router computes them from the shapes) and the starts it causes."""

    source: str
    id: str
    type: str
    event: dict[str, Any]
    keys: tuple[tuple[str, int, str], ...]
    starts: tuple[InstanceStart, ...] = ()
    slots: tuple[StartSlot, ...] = ()


@attrs.frozen(kw_only=True)
class RoutedBatch:
    """What a batch did: per event, whether it was a duplicate, how many instances it reached
    and which it started; the activations of this replica's instances; unmatched types."""

    duplicate: tuple[bool, ...]
    delivered: tuple[int, ...]
    started: tuple[tuple[uuid.UUID, ...], ...]
    activations: tuple[RecoverableInstance, ...]
    unmatched_types: tuple[str, ...]


def _canonical(pairs: Sequence[tuple[str, str]]) -> str:
    return json.dumps([list(p) for p in pairs], separators=(",", ":"))


async def ensure_shape(
    database: Database, event_type: str, correlate: Sequence[tuple[str, str]]
) -> int:
    """The id of the shape (created if new); one crossing."""
    text = _canonical(correlate)

    async def work(connection: Connection) -> int:
        await connection.execute(
            "INSERT INTO subscription_shapes (event_type, correlate) VALUES ($1, $2::text::jsonb) "
            "ON CONFLICT (event_type, correlate) DO NOTHING",
            event_type,
            text,
        )
        shape_id: int = await connection.fetchval(
            "SELECT shape_id FROM subscription_shapes "
            "WHERE event_type = $1 AND correlate = $2::text::jsonb",
            event_type,
            text,
        )
        return shape_id

    return await database.run(work)


async def load_shapes(database: Database) -> tuple[SubscriptionShape, ...]:
    """Every subscription shape; one crossing."""
    rows = await database.fetch(
        "SELECT shape_id, event_type, correlate FROM subscription_shapes ORDER BY shape_id"
    )
    return tuple(
        SubscriptionShape(
            shape_id=r["shape_id"],
            event_type=r["event_type"],
            correlate=tuple((str(n), str(f)) for n, f in r["correlate"]),
        )
        for r in rows
    )


_MATCH_SQL = """
SELECT DISTINCT c.ev, s.instance_id, s.partition
FROM unnest($1::int[], $2::text[], $3::int[], $4::text[]) AS c(ev, event_type, shape_id, corr_key)
JOIN event_subscriptions s
  ON s.event_type = c.event_type AND s.shape_id = c.shape_id AND s.corr_key = c.corr_key
WHERE s.attributes = '{}'::jsonb OR ($5::text[])[c.ev + 1]::jsonb @> s.attributes
"""

_INBOX_SQL = """
INSERT INTO instance_inbox (instance_id, event_key, event)
SELECT d.instance_id, d.event_key, d.body::jsonb
FROM unnest($1::uuid[], $2::text[], $3::text[])
    WITH ORDINALITY AS d(instance_id, event_key, body, ord)
ORDER BY d.ord
ON CONFLICT (instance_id, event_key) DO NOTHING
"""

_SLOT_SQL = """
INSERT INTO event_start_progress AS p (definition_id, definition_version, corr_key, events)
VALUES ($1, $2, $3, jsonb_set(
    (SELECT jsonb_agg(NULL::jsonb) FROM generate_series(1, $5::int)),
    ARRAY[$4::int::text], $6::text::jsonb))
ON CONFLICT (definition_id, definition_version, corr_key) DO UPDATE
SET events = CASE WHEN p.events -> $4::int = 'null'::jsonb
                  THEN jsonb_set(p.events, ARRAY[$4::int::text], $6::text::jsonb) ELSE p.events END,
    updated_at = now()
RETURNING events
"""

_ACTIVATIONS_SQL = f"""
SELECT {INSTANCE_COLUMNS}, snapshot FROM workflow_instances
WHERE instance_id = ANY($1::uuid[]) AND status NOT IN ('completed', 'cancelled', 'faulted')
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def route_batch(
    database: Database,
    events: Sequence[EventToRoute],
    *,
    shapes_version: int,
    definitions_stamp: str | None,
    local_partitions: Collection[int],
    keep_unmatched: bool,
    consume: Callable[[Connection], Awaitable[None]] | None = None,
    partition_count: int = 64,
) -> RoutedBatch:
    """Route ``events`` in one transaction (see the module docstring).

    Raises ``RoutingStale`` when a shape newer than ``shapes_version`` exists or the
    definitions' stamp is not ``definitions_stamp``, and the driver's error on a database
    failure; either way nothing was committed.
    """
    bodies = [_dumps(e.event) for e in events]
    local = set(local_partitions)

    async def work(connection: Connection) -> RoutedBatch:
        async with connection.transaction():
            current = await connection.fetchrow(_STALENESS_SQL)
            shapes = current["newest_shape"] > shapes_version
            definitions = current["definitions"] != definitions_stamp
            if shapes or definitions:
                raise RoutingStale(shapes=shapes, definitions=definitions)
            fresh_rows = await connection.fetch(
                "INSERT INTO processed_events (source, id) "
                "SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING "
                "RETURNING source, id",
                [e.source for e in events],
                [e.id for e in events],
            )
            fresh_keys = {(r["source"], r["id"]) for r in fresh_rows}
            fresh: list[int] = []
            seen: set[tuple[str, str]] = set()
            for index, e in enumerate(events):
                key = (e.source, e.id)
                if key in fresh_keys and key not in seen:
                    fresh.append(index)
                seen.add(key)
            candidates = [(i, k) for i in fresh for k in events[i].keys]
            matches = await connection.fetch(
                _MATCH_SQL,
                [i for i, _ in candidates],
                [k[0] for _, k in candidates],
                [k[1] for _, k in candidates],
                [k[2] for _, k in candidates],
                bodies,
            )
            delivered = [0] * len(events)
            touched: dict[uuid.UUID, int] = {}
            inbox: list[tuple[uuid.UUID, int]] = []
            for row in sorted(matches, key=lambda r: r["ev"]):
                delivered[row["ev"]] += 1
                touched[row["instance_id"]] = row["partition"]
                inbox.append((row["instance_id"], row["ev"]))
            if inbox:
                await connection.execute(
                    _INBOX_SQL,
                    [i for i, _ in inbox],
                    [f"{events[ev].source}#{events[ev].id}" for _, ev in inbox],
                    [bodies[ev] for _, ev in inbox],
                )
            starts = [(i, s, uuid.uuid4()) for i in fresh for s in events[i].starts]
            starts += await _fill_slots(connection, events, bodies, fresh)
            started: list[list[uuid.UUID]] = [[] for _ in events]
            created = await insert_started_instances(
                connection, [(new_id, s) for _, s, new_id in starts], partition_count
            )
            by_id = {r.instance_id for r in created}
            for index, _, new_id in starts:
                if new_id in by_id:
                    started[index].append(new_id)
            unmatched = [i for i in fresh if not delivered[i] and not started[i]]
            if keep_unmatched and unmatched:
                await connection.execute(
                    "INSERT INTO unmatched_events (event_key, event_type, event) "
                    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[]::jsonb[]) "
                    "ON CONFLICT DO NOTHING",
                    [f"{events[i].source}#{events[i].id}" for i in unmatched],
                    [events[i].type for i in unmatched],
                    [bodies[i] for i in unmatched],
                )
            if consume is not None:
                await consume(connection)
            activations: list[RecoverableInstance] = []
            local_touched = [i for i, p in touched.items() if p in local]
            if local_touched:
                rows = await connection.fetch(_ACTIVATIONS_SQL, local_touched)
                inboxes: dict[uuid.UUID, list[InboxEvent]] = {}
                for r in await connection.fetch(
                    "SELECT instance_id, inbox_seq, event FROM instance_inbox "
                    "WHERE instance_id = ANY($1::uuid[]) ORDER BY inbox_seq",
                    local_touched,
                ):
                    inboxes.setdefault(r["instance_id"], []).append(
                        InboxEvent(seq=r["inbox_seq"], event=r["event"])
                    )
                for r in rows:
                    record = InstanceRecord(**{k: v for k, v in r.items() if k != "snapshot"})
                    found = tuple(inboxes.get(record.instance_id, ()))
                    activations.append(
                        RecoverableInstance(
                            record=record,
                            snapshot=r["snapshot"],
                            inbox=found,
                            has_inbox=bool(found),
                        )
                    )
            activations.extend(
                RecoverableInstance(record=r, snapshot=None)
                for r in created
                if r.partition in local
            )
            remote = [str(i) for i, p in touched.items() if p not in local]
            remote += [str(r.instance_id) for r in created if r.partition not in local]
            await notify_wake(connection, remote)
        return RoutedBatch(
            duplicate=tuple(i not in set(fresh) for i in range(len(events))),
            delivered=tuple(delivered),
            started=tuple(tuple(s) for s in started),
            activations=tuple(activations),
            unmatched_types=tuple(events[i].type for i in unmatched),
        )

    return await database.run(work)


async def _fill_slots(
    connection: Connection, events: Sequence[EventToRoute], bodies: list[str], fresh: list[int]
) -> list[tuple[int, InstanceStart, uuid.UUID]]:
    """Put the fresh events in their ``schedule.on`` ``all`` slots (in event order); the starts
    of the slot sets they complete (their rows are deleted)."""
    starts = []
    for index in fresh:
        for slot in events[index].slots:
            filled = await connection.fetchval(
                _SLOT_SQL,
                slot.definition_id,
                slot.definition_version,
                slot.corr_key,
                slot.index,
                slot.slots,
                bodies[index],
            )
            if any(item is None for item in filled):
                continue
            await connection.execute(
                "DELETE FROM event_start_progress WHERE definition_id = $1 "
                "AND definition_version = $2 AND corr_key = $3",
                slot.definition_id,
                slot.definition_version,
                slot.corr_key,
            )
            keys = ",".join(f"{e.get('source')}#{e.get('id')}" for e in filled)
            starts.append(
                (
                    index,
                    InstanceStart(
                        definition_id=slot.definition_id,
                        definition_version=slot.definition_version,
                        input=filled,
                        idempotency_key="on:"
                        + slot.definition_id
                        + ":all:"
                        + str(uuid.uuid5(uuid.NAMESPACE_URL, keys)),
                    ),
                    uuid.uuid4(),
                )
            )
    return starts


async def fetch_retained_events(
    database: Database, event_types: Collection[str], within: float
) -> list[dict[str, Any]]:
    """Retained unmatched events of ``event_types`` ('' = any type) received in the last
    ``within`` seconds, oldest first; one crossing."""
    types = sorted(event_types)
    rows = await database.fetch(
        "SELECT event FROM unmatched_events "
        "WHERE ($1::text[] && ARRAY['']::text[] OR event_type = ANY($1::text[])) "
        "AND received_at > now() - make_interval(secs => $2) ORDER BY received_at",
        types,
        within,
    )
    return [r["event"] for r in rows]


_PURGE_SQL = (
    "DELETE FROM processed_events WHERE processed_at < now() - make_interval(secs => $1)",
    "DELETE FROM unmatched_events WHERE received_at < now() - make_interval(secs => $1)",
    "DELETE FROM instance_inbox i USING workflow_instances w WHERE w.instance_id = i.instance_id "
    "AND w.status IN ('completed', 'cancelled', 'faulted')",
    "DELETE FROM event_start_progress WHERE updated_at < now() - make_interval(secs => $1)",
)


async def purge_event_records(
    database: Database, *, deduplication_window: float, keep_unmatched_for: float
) -> tuple[int, int, int, int]:
    """Delete deduplication records older than ``deduplication_window`` seconds, retained
    unmatched events older than ``keep_unmatched_for``, inbox rows of instances that ended, and
    ``schedule.on`` ``all`` slot sets untouched for a deduplication window; one crossing.
    Returns how many rows of each were deleted."""

    async def work(connection: Connection) -> tuple[int, int, int, int]:
        counts = []
        for sql, args in zip(
            _PURGE_SQL,
            ((deduplication_window,), (keep_unmatched_for,), (), (deduplication_window,)),
            strict=True,
        ):
            status: str = await connection.execute(sql, *args)
            counts.append(int(status.rsplit(" ", 1)[-1]))
        return counts[0], counts[1], counts[2], counts[3]

    return await database.run(work)


async def notify_wake(connection: Connection, instance_ids: Sequence[str]) -> None:
    """Tell the owners of ``instance_ids`` (other replicas) to activate them when the
    transaction commits (asyncio side, inside a unit of work)."""
    chunk: list[str] = []
    size = 0
    for instance_id in instance_ids:
        if size + len(instance_id) + 1 > _NOTIFY_CHUNK:
            await connection.execute("SELECT pg_notify($1, $2)", WAKE_CHANNEL, ",".join(chunk))
            chunk, size = [], 0
        chunk.append(instance_id)
        size += len(instance_id) + 1
    if chunk:
        await connection.execute("SELECT pg_notify($1, $2)", WAKE_CHANNEL, ",".join(chunk))
