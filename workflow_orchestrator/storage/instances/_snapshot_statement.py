"""The one statement that commits a batch of snapshots, built from one row type per table.

A batch is planned without I/O (``plan_batch``): per instance, the snapshot with the highest
``snapshot_version`` is written, with the history rows of every snapshot of the batch (in
version order) and their event-processing writes merged in the same order; a snapshot whose
partition this replica holds no lease on is set aside (fenced) before the statement.

The statement passes the batch as arrays (``unnest``) and does everything in data-modifying
CTEs: share-lock the writer's lease rows (the fence), update the instances whose lease and epoch
match, whose stored ``snapshot_version`` is older and that have not ended (a completed,
faulted or cancelled instance never changes again, whatever version a snapshot carries: a
late write of an abandoned run cannot undo a command), and insert the history rows of exactly the
instances updated, numbered from ``workflow_instances.history_seq``; the subscriptions, inbox,
outbox, events and timers writes likewise join the updated instances. Subflows
(``_subflows``): the children a snapshot starts are inserted pending (``ON CONFLICT DO
NOTHING``: a re-run never makes a second one), and the terminal snapshot of a child its parent
awaits puts the child's end in the parent's inbox. No BEGIN/COMMIT round trips are needed for a
single statement.

Each table has one row type (``InstanceSnapshot`` for ``workflow_instances``, with the epoch
and history count the plan adds; ``HistoryRow``, ``SubscriptionRow``, ``TimerRow``,
``OutgoingEvent``, ``ChildRow``, and the inbox position) whose columns are declared once below:
the statement's ``unnest`` parameters, their numbers and SQL types, and the arrays passed for
them are all derived from those declarations, so the statement and its arguments cannot drift
apart.
"""

from __future__ import annotations

import json
import operator
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from workflow_orchestrator.storage.instances._snapshot_check import JsonTexts
from workflow_orchestrator.storage.instances._snapshot_rows import (
    ChildRow,
    HistoryRow,
    InstanceSnapshot,
    OutgoingEvent,
    SubscriptionRow,
    TimerRow,
)
from workflow_orchestrator.storage.instances._status import TERMINAL_SQL, InstanceStatus
from workflow_orchestrator.storage.instances._subflows import SUBFLOW_KEY_PREFIX, ended_event_sql

__all__ = [
    "DIAGNOSE_SQL",
    "ENDED_CHANNEL",
    "WRITE_SQL",
    "BatchPlan",
    "BatchRows",
    "plan_batch",
    "split_plan",
    "statement_arguments",
]


@attrs.frozen(kw_only=True)
class BatchRows:
    """Everything one batch writes, per table. ``instances`` are the snapshots written (one
    per instance) with, in the same order, the lease epoch each is fenced with and how many
    history rows the batch adds for it. Rows of the other tables are keyed by their instance
    id; ``*_replaced`` list the instances whose subscriptions or timers the batch replaces
    (with the rows given, possibly none)."""

    instances: Sequence[InstanceSnapshot]
    epochs: Sequence[int] = ()
    history_counts: Sequence[int] = ()
    history: Sequence[tuple[uuid.UUID, HistoryRow]] = ()
    subscriptions_replaced: Sequence[uuid.UUID] = ()
    subscriptions: Sequence[tuple[uuid.UUID, SubscriptionRow]] = ()
    inbox_consumed: Sequence[tuple[uuid.UUID, int]] = ()
    outgoing: Sequence[tuple[uuid.UUID, OutgoingEvent]] = ()
    timers_replaced: Sequence[uuid.UUID] = ()
    timers: Sequence[tuple[uuid.UUID, TimerRow]] = ()
    children: Sequence[tuple[uuid.UUID, ChildRow]] = ()


@attrs.frozen(kw_only=True)
class BatchPlan:
    """What a batch commits: ``written`` maps each instance to the snapshot written for it
    (its highest version) and the epoch it is fenced with; ``unleased`` are the snapshots of
    partitions this replica holds no lease on (fenced without a statement)."""

    written: dict[uuid.UUID, tuple[InstanceSnapshot, int]]
    unleased: tuple[InstanceSnapshot, ...]
    rows: BatchRows


# ``json.dumps(value, separators=(",", ":"))`` without building an encoder per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def _dumps(value: Any, texts: JsonTexts) -> str | None:
    """``value`` as JSON text: the text ``encode_snapshot`` made of this very object, else
    encoded now."""
    if value is None:
        return None
    known = texts.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    return _COMPACT.encode(value)


# -- columns ------------------------------------------------------------------------------------


@attrs.frozen
class _Column:
    """One array of a group: the column ``name`` of SQL type ``sql_type``, read from each
    row with ``get`` (and written as JSON text when ``json``)."""

    name: str
    sql_type: str
    get: Callable[[Any], Any]
    json: bool = False


def _column(name: str, sql_type: str) -> _Column:
    return _Column(name, sql_type, operator.attrgetter(name))


def _json_column(name: str) -> _Column:
    return _Column(name, "text", operator.attrgetter(name), json=True)


def _values(name: str, sql_type: str) -> _Column:
    """A column whose rows are the values themselves."""
    return _Column(name, sql_type, lambda value: value)


@attrs.frozen
class _Group:
    """Arrays of the statement read from one ``BatchRows`` field, in column order.

    ``keyed`` rows are ``(instance_id, row)`` pairs: the instance ids come first. A group
    without columns is one array of the field's values (instance ids unless ``sql_type``
    says otherwise)."""

    field: str
    columns: tuple[_Column, ...] = ()
    keyed: bool = True
    sql_type: str = "uuid"

    def sql_types(self) -> list[tuple[str, str]]:
        if not self.columns:
            return [(self.field, self.sql_type)]
        head = [("instance_id", "uuid")] if self.keyed else []
        return head + [(c.name, c.sql_type) for c in self.columns]

    def arrays(self, rows: Sequence[Any], texts: JsonTexts) -> list[list[Any]]:
        if not self.columns:
            return [list(rows)]
        arrays: list[list[Any]] = []
        items: Sequence[Any] = rows
        if self.keyed:
            arrays.append([instance_id for instance_id, _ in rows])
            items = [row for _, row in rows]
        for column in self.columns:
            values = map(column.get, items)
            arrays.append([_dumps(v, texts) for v in values] if column.json else list(values))
        return arrays


_GROUPS = (
    _Group(
        "instances",
        (
            _column("instance_id", "uuid"),
            _column("partition", "int"),
            _column("snapshot_version", "bigint"),
            _column("status", "text"),
            _json_column("snapshot"),
            _json_column("output"),
            _json_column("error"),
            _json_column("context"),
            _column("started_at", "timestamptz"),
            _column("completed_at", "timestamptz"),
        ),
        keyed=False,
    ),
    _Group("epochs", keyed=False, sql_type="bigint"),
    _Group("history_counts", keyed=False, sql_type="int"),
    _Group(
        "history",
        (
            _column("task_ref", "text"),
            _column("kind", "text"),
            _column("at", "timestamptz"),
            _json_column("details"),
        ),
    ),
    _Group("subscriptions_replaced"),
    _Group(
        "subscriptions",
        (
            _column("filter_index", "int"),
            _column("task_ref", "text"),
            _column("event_type", "text"),
            _column("shape_id", "int"),
            _column("corr_key", "text"),
            _json_column("attributes"),
        ),
    ),
    _Group("inbox_consumed", (_values("through", "bigint"),)),
    _Group(
        "outgoing",
        (
            _column("destination", "text"),
            _column("routing_key", "text"),
            _column("event_id", "text"),
            _column("body", "text"),
        ),
    ),
    _Group("timers_replaced"),
    _Group(
        "timers",
        (
            _column("timer_key", "text"),
            _column("kind", "text"),
            _column("due_at", "timestamptz"),
        ),
    ),
    _Group(
        "children",
        (
            _column("child_id", "uuid"),
            _column("partition", "int"),
            _column("definition_id", "text"),
            _column("definition_version", "text"),
            _json_column("input"),
            _column("awaited", "bool"),
            _column("depth", "int"),
        ),
    ),
)


@attrs.frozen
class _Placeholders:
    """The SQL text of one group: ``arrays`` (the unnest arguments), ``names`` (its column
    names) and, by column name, the parameter of one array (``group[partition]``)."""

    arrays: str
    names: str
    by_name: dict[str, str]

    def __getitem__(self, name: str) -> str:
        return self.by_name[name]


def _placeholders() -> dict[str, _Placeholders]:
    number = 2  # $1 is the owner id
    found = {}
    for group in _GROUPS:
        params = {}
        for name, sql_type in group.sql_types():
            params[name] = f"${number}::{sql_type}[]"
            number += 1
        found[group.field] = _Placeholders(
            arrays=", ".join(params.values()), names=", ".join(params), by_name=params
        )
    return found


#: Channel on which a commit announces the instances it ended (ids, comma-separated), for the
#: long polls other replicas hold.
ENDED_CHANNEL = "workflow_ended"


WRITE_SQL = """
WITH fence AS (
    SELECT partition, epoch FROM partition_leases
    WHERE owner_id = $1 AND partition = ANY({instances[partition]}) AND expires_at > now()
    FOR SHARE
), batch AS (
    SELECT * FROM unnest({instances.arrays}, {epochs.arrays}, {history_counts.arrays})
        AS b({instances.names}, epoch, history_count)
), updated AS (
    UPDATE workflow_instances w
    SET status = b.status,
        snapshot = b.snapshot::jsonb,
        snapshot_version = b.snapshot_version,
        output = b.output::jsonb,
        error = b.error::jsonb,
        context = coalesce(b.context::jsonb, '{{}}'::jsonb),
        started_at = coalesce(b.started_at, w.started_at),
        completed_at = coalesce(b.completed_at, w.completed_at),
        lease_owner = $1,
        lease_epoch = b.epoch,
        updated_at = now(),
        history_seq = w.history_seq + b.history_count
    FROM batch b JOIN fence f ON f.partition = b.partition AND f.epoch = b.epoch
    WHERE w.instance_id = b.instance_id
      AND w.partition = b.partition
      AND w.snapshot_version < b.snapshot_version
      AND w.status NOT IN {terminal}
    RETURNING w.instance_id, w.partition, w.history_seq - b.history_count AS seq_base,
              w.parent_id, w.parent_awaits
), history AS (
    INSERT INTO workflow_instance_history (instance_id, seq, task_ref, kind, at, details)
    SELECT h.instance_id,
           u.seq_base + row_number() OVER (PARTITION BY h.instance_id ORDER BY h.ord),
           h.task_ref, h.kind, h.at, h.details::jsonb
    FROM unnest({history.arrays}) WITH ORDINALITY AS h({history.names}, ord)
    JOIN updated u ON u.instance_id = h.instance_id
), subscriptions_gone AS (
    DELETE FROM event_subscriptions s
    USING updated u
    WHERE s.instance_id = u.instance_id AND u.instance_id = ANY({subscriptions_replaced.arrays})
), subscriptions_new AS (
    INSERT INTO event_subscriptions (instance_id, partition, filter_index, task_ref, event_type,
                                     shape_id, corr_key, attributes)
    SELECT n.instance_id, u.partition, n.filter_index, n.task_ref, n.event_type, n.shape_id,
           n.corr_key, n.attributes::jsonb
    FROM unnest({subscriptions.arrays}) AS n({subscriptions.names})
    JOIN updated u ON u.instance_id = n.instance_id
), inbox_consumed AS (
    DELETE FROM instance_inbox i
    USING unnest({inbox_consumed.arrays}) AS d({inbox_consumed.names}), updated u
    WHERE u.instance_id = d.instance_id AND i.instance_id = d.instance_id
      AND i.inbox_seq <= d.through
), outgoing AS (
    SELECT o.*, u.partition
    FROM unnest({outgoing.arrays}) WITH ORDINALITY AS o({outgoing.names}, ord)
    JOIN updated u ON u.instance_id = o.instance_id
), outbox_new AS (
    INSERT INTO outbox (partition, instance_id, exchange, routing_key, event_id, body)
    SELECT partition, instance_id, destination, routing_key, event_id, body
    FROM outgoing WHERE destination <> 'events' ORDER BY ord
), events_new AS (
    INSERT INTO events (event)
    SELECT body::jsonb FROM outgoing WHERE destination = 'events' ORDER BY ord
), timers AS (
    SELECT n.*, u.partition, b.epoch
    FROM unnest({timers.arrays}) AS n({timers.names})
    JOIN updated u ON u.instance_id = n.instance_id
    JOIN batch b ON b.instance_id = n.instance_id
), timers_gone AS (
    DELETE FROM workflow_timers t
    USING updated u
    WHERE t.instance_id = u.instance_id AND u.instance_id = ANY({timers_replaced.arrays})
      AND NOT EXISTS (SELECT 1 FROM timers n
                      WHERE n.instance_id = t.instance_id AND n.timer_key = t.timer_key)
), timers_new AS (
    INSERT INTO workflow_timers (instance_id, timer_key, partition, kind, due_at, lease_epoch)
    SELECT instance_id, timer_key, partition, kind, due_at, epoch FROM timers
    ON CONFLICT (instance_id, timer_key) DO UPDATE
    SET due_at = EXCLUDED.due_at, kind = EXCLUDED.kind, partition = EXCLUDED.partition,
        lease_epoch = EXCLUDED.lease_epoch, claimed_until = NULL
), children_new AS (
    INSERT INTO workflow_instances (instance_id, definition_id, definition_version, status,
                                    input, partition, parent_id, parent_awaits, subflow_depth)
    SELECT c.child_id, c.definition_id, c.definition_version, '{pending}', c.input::jsonb,
           c.partition, c.instance_id, c.awaited, c.depth
    FROM unnest({children.arrays}) WITH ORDINALITY AS c({children.names}, ord)
    JOIN updated u ON u.instance_id = c.instance_id
    ORDER BY c.ord
    ON CONFLICT (instance_id) DO NOTHING
), subflows_ended AS (
    -- The end of a child its parent awaits, in the parent's inbox; a parent that ended
    -- already gets nothing.
    INSERT INTO instance_inbox (instance_id, event_key, event)
    SELECT u.parent_id, '{subflow_key}' || u.instance_id::text, {ended_event}
    FROM updated u JOIN batch b ON b.instance_id = u.instance_id
    WHERE u.parent_awaits AND b.status IN {terminal}
      AND EXISTS (SELECT 1 FROM workflow_instances p
                  WHERE p.instance_id = u.parent_id AND p.status NOT IN {terminal})
    ON CONFLICT (instance_id, event_key) DO NOTHING
), ended AS (
    -- The instances this commit ends, announced at commit for the long polls of other
    -- replicas (150 ids per notification: the payload limit is 8000 bytes).
    SELECT count(pg_notify('{ended_channel}', c.ids)) AS notified
    FROM (
        SELECT string_agg(e.instance_id::text, ',') AS ids
        FROM (
            SELECT u.instance_id, (row_number() OVER ()) / 150 AS chunk
            FROM updated u JOIN batch b ON b.instance_id = u.instance_id
            WHERE b.status IN {terminal}
        ) e
        GROUP BY e.chunk
    ) c
)
SELECT u.instance_id FROM updated u CROSS JOIN ended
""".format(
    terminal=TERMINAL_SQL,
    ended_channel=ENDED_CHANNEL,
    pending=InstanceStatus.PENDING,
    subflow_key=SUBFLOW_KEY_PREFIX,
    ended_event=ended_event_sql(
        child_id="u.instance_id",
        status="b.status",
        output="b.output::jsonb",
        error="b.error::jsonb",
    ),
    **_placeholders(),
)

#: Why snapshots were not applied: the stored version and status and the partition's lease, per
#: instance.
DIAGNOSE_SQL = """
SELECT w.instance_id, w.partition, w.snapshot_version, w.status, l.owner_id, l.epoch,
       coalesce(l.expires_at > now(), false) AS live
FROM workflow_instances w JOIN partition_leases l ON l.partition = w.partition
WHERE w.instance_id = ANY($1::uuid[])
"""


def statement_arguments(
    owner_id: str, rows: BatchRows, texts: JsonTexts | None = None
) -> list[Any]:
    """The arguments of ``WRITE_SQL`` for ``rows`` (one array per column, in order);
    ``texts`` are JSON values encoded already (``encode_snapshot``), by id."""
    arguments: list[Any] = [owner_id]
    for group in _GROUPS:
        arguments.extend(group.arrays(getattr(rows, group.field), texts or {}))
    return arguments


# -- planning -----------------------------------------------------------------------------------


@attrs.define
class _Merged:
    """The writes of one instance in a batch, merged in version order."""

    history: list[HistoryRow] = attrs.field(factory=list)
    subscriptions: tuple[SubscriptionRow, ...] | None = None
    inbox_through: int = 0
    outgoing: list[OutgoingEvent] = attrs.field(factory=list)
    timers: tuple[TimerRow, ...] | None = None
    children: list[ChildRow] = attrs.field(factory=list)

    def add(self, snapshot: InstanceSnapshot) -> None:
        self.history.extend(snapshot.history)
        if snapshot.subscriptions is not None:
            self.subscriptions = snapshot.subscriptions
        if snapshot.timers is not None:
            self.timers = snapshot.timers
        self.inbox_through = max(self.inbox_through, snapshot.inbox_through)
        self.outgoing.extend(snapshot.outgoing)
        self.children.extend(snapshot.children)


def plan_batch(
    snapshots: Iterable[InstanceSnapshot], epoch_of: Callable[[int], int | None]
) -> BatchPlan:
    """What a batch writes (see the module docstring). ``epoch_of(partition)`` is the epoch
    under which this replica holds a partition now (None: not held); it is used for snapshots
    without their own ``lease_epoch``."""
    written: dict[uuid.UUID, tuple[InstanceSnapshot, int]] = {}
    merged: dict[uuid.UUID, _Merged] = {}
    unleased: list[InstanceSnapshot] = []
    for snapshot in sorted(snapshots, key=operator.attrgetter("snapshot_version")):
        epoch = snapshot.lease_epoch
        if epoch is None:
            epoch = epoch_of(snapshot.partition)
        if epoch is None:
            unleased.append(snapshot)
            continue
        written[snapshot.instance_id] = (snapshot, epoch)
        writes = merged.get(snapshot.instance_id)
        if writes is None:
            writes = merged[snapshot.instance_id] = _Merged()
        writes.add(snapshot)
    rows = BatchRows(
        instances=[snapshot for snapshot, _ in written.values()],
        epochs=[epoch for _, epoch in written.values()],
        history_counts=[len(m.history) for m in merged.values()],
        history=[(i, row) for i, m in merged.items() for row in m.history],
        subscriptions_replaced=[i for i, m in merged.items() if m.subscriptions is not None],
        subscriptions=[(i, row) for i, m in merged.items() for row in m.subscriptions or ()],
        inbox_consumed=[(i, m.inbox_through) for i, m in merged.items() if m.inbox_through > 0],
        outgoing=[(i, row) for i, m in merged.items() for row in m.outgoing],
        timers_replaced=[i for i, m in merged.items() if m.timers is not None],
        timers=[(i, row) for i, m in merged.items() for row in m.timers or ()],
        children=[(i, row) for i, m in merged.items() for row in m.children],
    )
    return BatchPlan(written=written, unleased=tuple(unleased), rows=rows)


def split_plan(plan: BatchPlan) -> list[BatchPlan]:
    """``plan`` as one plan per instance written (each with that instance's rows only), to
    commit the instances of a failed batch one at a time."""
    rows = plan.rows
    parts: dict[uuid.UUID, dict[str, list[Any]]] = {}
    for index, snapshot in enumerate(rows.instances):
        parts[snapshot.instance_id] = {
            "instances": [snapshot],
            "epochs": [rows.epochs[index]],
            "history_counts": [rows.history_counts[index]],
        }
    for field in ("history", "subscriptions", "inbox_consumed", "outgoing", "timers", "children"):
        for pair in getattr(rows, field):
            parts[pair[0]].setdefault(field, []).append(pair)
    for field in ("subscriptions_replaced", "timers_replaced"):
        for instance_id in getattr(rows, field):
            parts[instance_id].setdefault(field, []).append(instance_id)
    return [
        BatchPlan(
            written={instance_id: plan.written[instance_id]},
            unleased=(),
            rows=BatchRows(**fields),
        )
        for instance_id, fields in parts.items()
    ]
