"""The routing transaction of a batch of events, and the staleness check of its inputs.

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

Matching and delivering happen in the database (one statement): the matches never come to
Python, so an event that reaches every one of a million waiting instances costs one bounded
result. At most ``max_activations`` local instances are loaded and ids notified to other
replicas; beyond that the batch says ``backlog`` (this replica drains its instances with events
in their inbox from the database in pages) and the others are told ``*`` on
``workflow_wake`` (drain yours).

``load_event_starters`` reads the definitions whose ``schedule.on`` may start instances (the
router builds the batch's starts from them, and reloads them when ``RoutingStale`` says so).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import attrs

from workflow_orchestrator.storage._database import Connection, Database
from workflow_orchestrator.storage._errors import StorageError
from workflow_orchestrator.storage._row_errors import ROW_ERRORS
from workflow_orchestrator.storage.events._wake import notify_wake
from workflow_orchestrator.storage.instances import (
    INSTANCE_COLUMNS,
    InboxEvent,
    InstanceRecord,
    InstanceStart,
    RecoverableInstance,
    insert_started_instances,
)

__all__ = [
    "EventToRoute",
    "RoutedBatch",
    "RoutingRefused",
    "RoutingStale",
    "StartSlot",
    "StarterVersion",
    "definitions_stamp",
    "load_event_starters",
    "route_batch",
]


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


class RoutingRefused(StorageError, ValueError):
    """PostgreSQL refused a value of the batch (a data error or a limit tied to one event,
    such as an id too long for its index); nothing was committed. Route the events one at a
    time to find the one refused."""


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


# The latest live version of each definition, when it has a ``schedule.on``.
_STARTERS_SQL = """
SELECT definition_id, version FROM (
    SELECT DISTINCT ON (definition_id) definition_id, version, document
    FROM workflow_definitions WHERE deleted_at IS NULL
    ORDER BY definition_id, created_at DESC, version DESC
) latest
WHERE latest.document -> 'schedule' ? 'on'
"""


@attrs.frozen(kw_only=True)
class StarterVersion:
    """The latest live version of a definition whose ``schedule.on`` starts it from events."""

    definition_id: str
    version: str


async def load_event_starters(database: Database) -> tuple[StarterVersion, ...]:
    """Every definition whose latest live version has a ``schedule.on``; one crossing."""
    rows = await database.fetch(_STARTERS_SQL)
    return tuple(
        StarterVersion(definition_id=r["definition_id"], version=r["version"]) for r in rows
    )


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
    backlog: bool = False  # more local instances got events than ``activations`` holds


# Matches the fresh events' keys against the subscriptions, puts each event in the inbox of
# each matching instance once (in event order), and returns bounded figures: per event how
# many instances it reached, per side (local/remote) how many instances it touched, and the
# first ``$8`` instance ids of each side.
_DELIVER_SQL = """
WITH m AS MATERIALIZED (
    SELECT DISTINCT c.ev, s.instance_id, s.partition
    FROM unnest($1::int[], $2::text[], $3::int[], $4::text[])
        AS c(ev, event_type, shape_id, corr_key)
    JOIN event_subscriptions s
      ON s.event_type = c.event_type AND s.shape_id = c.shape_id AND s.corr_key = c.corr_key
    WHERE s.attributes = '{}'::jsonb OR ($5::text[])[c.ev + 1]::jsonb @> s.attributes
), inbox AS (
    INSERT INTO instance_inbox (instance_id, event_key, event)
    SELECT m.instance_id, ($6::text[])[m.ev + 1], ($5::text[])[m.ev + 1]::jsonb
    FROM m ORDER BY m.ev, m.instance_id
    ON CONFLICT (instance_id, event_key) DO NOTHING
), touched AS (
    SELECT DISTINCT instance_id, partition = ANY($7::int[]) AS local FROM m
)
SELECT 'delivered' AS kind, ev, count(*) AS n, NULL::uuid AS instance_id, NULL::bool AS local
FROM m GROUP BY ev
UNION ALL
SELECT 'touched', NULL, count(*), NULL, local FROM touched GROUP BY local
UNION ALL
SELECT 'id', NULL, NULL, instance_id, local FROM (
    SELECT instance_id, local,
           row_number() OVER (PARTITION BY local ORDER BY instance_id) AS rank
    FROM touched
) ranked WHERE rank <= $8
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


# ``json.dumps(value, separators=(",", ":"))`` without building an encoder per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def _dumps(value: Any) -> str:
    return _COMPACT.encode(value)


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
    max_activations: int = 500,
) -> RoutedBatch:
    """Route ``events`` in one transaction (see the module docstring).

    Raises ``RoutingStale`` when a shape newer than ``shapes_version`` exists or the
    definitions' stamp is not ``definitions_stamp``, ``RoutingRefused`` when PostgreSQL refused
    a value of the batch, and the driver's error on another database failure; either way
    nothing was committed.
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
            delivered = [0] * len(events)
            touched_total = {True: 0, False: 0}
            touched_ids: dict[bool, list[uuid.UUID]] = {True: [], False: []}
            if candidates:
                for row in await connection.fetch(
                    _DELIVER_SQL,
                    [i for i, _ in candidates],
                    [k[0] for _, k in candidates],
                    [k[1] for _, k in candidates],
                    [k[2] for _, k in candidates],
                    bodies,
                    [f"{e.source}#{e.id}" for e in events],
                    sorted(local),
                    max_activations,
                ):
                    if row["kind"] == "delivered":
                        delivered[row["ev"]] = row["n"]
                    elif row["kind"] == "touched":
                        touched_total[row["local"]] = row["n"]
                    else:
                        touched_ids[row["local"]].append(row["instance_id"])
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
            local_touched = touched_ids[True]
            if local_touched:
                rows = await connection.fetch(_ACTIVATIONS_SQL, local_touched)
                inboxes: dict[uuid.UUID, list[InboxEvent]] = {}
                for r in await connection.fetch(
                    "SELECT instance_id, inbox_seq, event, event_key FROM instance_inbox "
                    "WHERE instance_id = ANY($1::uuid[]) ORDER BY inbox_seq",
                    local_touched,
                ):
                    inboxes.setdefault(r["instance_id"], []).append(
                        InboxEvent(seq=r["inbox_seq"], event=r["event"], key=r["event_key"])
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
            remote = [str(i) for i in touched_ids[False]]
            if touched_total[False] > len(remote):
                remote.append("*")  # more than we name: each owner drains its backlog
            remote += [str(r.instance_id) for r in created if r.partition not in local]
            await notify_wake(connection, remote)
        return RoutedBatch(
            duplicate=tuple(i not in set(fresh) for i in range(len(events))),
            delivered=tuple(delivered),
            started=tuple(tuple(s) for s in started),
            activations=tuple(activations),
            unmatched_types=tuple(events[i].type for i in unmatched),
            backlog=touched_total[True] > len(local_touched),
        )

    try:
        return await database.run(work)
    except ROW_ERRORS as exc:
        what = "the event" if len(events) == 1 else f"a batch of {len(events)} events"
        raise RoutingRefused(
            f"PostgreSQL refused {what} ({type(exc).__name__}: {' '.join(str(exc).split())}); "
            "shorten or change the event"
        ) from exc


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
