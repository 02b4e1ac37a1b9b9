"""Group commit of instance snapshots: many actors' snapshots, one transaction, one crossing.

An actor calls ``await writer.write(snapshot)`` at a task boundary and continues only once the
snapshot and its history rows are committed. ``run`` commits one batch at a time: everything
that arrived while the previous batch was committing (plus, after one scheduling round, the
callers that batch just released), up to ``max_batch``, goes to PostgreSQL as ONE statement,
hence one transaction, through ONE bridge crossing. Under load batches grow by themselves.

``max_delay`` (default 0) adds a wait for more snapshots before committing, when the previous
batch held more than one. Measured with ``benchmarks/snapshot_writer.py`` (2-core box, PG 15,
closed-loop writers like actors awaiting each write, ranges over several runs): with 10
writers, 0 ms gave 4,100 snapshots/s at p50 1.8-2.3 ms while 2 ms gave 1,050-1,800/s at p50
5.5-8.7 ms; with 100 writers 8,400-10,600/s vs 7,000-8,300/s; at 1000 writers both about
11,500/s (batches of 500). Actors that await their write arrive together right after a
commit, so waiting longer only adds latency; raise it only for open-loop arrivals.

The statement passes the batch as arrays (``unnest``) and does everything in data-modifying
CTEs: share-lock the writer's lease rows (the fence), update the instances whose lease and epoch
match and whose stored ``snapshot_version`` is older, and insert the history rows of exactly the
instances updated, numbered from ``workflow_instances.history_seq``. No BEGIN/COMMIT round trips
are needed for a single statement. Measured for one batch of 500 snapshots with 2 history rows
each (``--compare-statements``, three runs): ``unnest`` 38-44 ms median against 46-66 ms for
``executemany`` (a ``SELECT ... FOR SHARE`` fence check, an ``executemany`` UPDATE and an
``executemany`` INSERT in a transaction), which executes row by row and needs the extra round
trip to learn which rows were fenced. About 27 ms of the ``unnest`` batch is server execution,
mostly index maintenance: every write changes the indexed ``updated_at``, so no update is HOT
(without ``workflow_instances_by_updated_at`` it drops to about 18 ms).

Outcome per snapshot:

- committed: ``write`` returns. A snapshot whose version equals the stored one is taken as
  already written (a retried write) and returns without touching anything.
- fenced: ``LeaseLost`` (this writer's owner no longer holds the partition, or holds it under a
  newer epoch than the snapshot's, or the lease expired).
- two snapshots of one instance in a batch: the higher ``snapshot_version`` is written, the
  history rows of both are inserted (in version order), and both callers get its outcome.
- database error or timeout: ``SnapshotWriteFailed`` for every snapshot of the batch.
- unknown instance: ``InstanceNotFound``; a version older than the stored one:
  ``SnapshotWriteFailed`` (versions must grow).

Shutdown: when ``run`` is cancelled, the batch in flight (interrupted, so perhaps committed,
perhaps not) and everything queued are committed again within ``shutdown_timeout``, in a
shielded scope. That is safe because writes are idempotent per ``snapshot_version``. Whatever
is still waiting after that fails with ``SnapshotWriteFailed``, so no caller hangs.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

from workflow_orchestrator.storage._database import Connection, Database
from workflow_orchestrator.storage._errors import (
    InstanceNotFound,
    LeaseLost,
    SnapshotWriteFailed,
)
from workflow_orchestrator.storage._instances import INSTANCE_STATUSES
from workflow_orchestrator.storage._leases import PartitionLeases

__all__ = [
    "HistoryRow",
    "InstanceSnapshot",
    "OutgoingEvent",
    "SnapshotWriter",
    "SnapshotWriterStatistics",
    "SubscriptionRow",
    "TimerRow",
]

logger = logging.getLogger(__name__)

_WRITE_SQL = """
WITH fence AS (
    SELECT partition, epoch FROM partition_leases
    WHERE owner_id = $1 AND partition = ANY($3::int[]) AND expires_at > now()
    FOR SHARE
), batch AS (
    SELECT * FROM unnest($2::uuid[], $3::int[], $4::bigint[], $5::bigint[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[],
                         $12::timestamptz[], $13::int[])
        AS b(instance_id, partition, epoch, snapshot_version, status, snapshot, output, error,
             context, started_at, completed_at, history_count)
), updated AS (
    UPDATE workflow_instances w
    SET status = b.status,
        snapshot = b.snapshot::jsonb,
        snapshot_version = b.snapshot_version,
        output = b.output::jsonb,
        error = b.error::jsonb,
        context = coalesce(b.context::jsonb, '{}'::jsonb),
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
    RETURNING w.instance_id, w.partition, w.history_seq - b.history_count AS seq_base
), history AS (
    INSERT INTO workflow_instance_history (instance_id, seq, task_ref, kind, at, details)
    SELECT h.instance_id,
           u.seq_base + row_number() OVER (PARTITION BY h.instance_id ORDER BY h.ord),
           h.task_ref, h.kind, h.at, h.details::jsonb
    FROM unnest($14::uuid[], $15::text[], $16::text[], $17::timestamptz[], $18::text[])
        WITH ORDINALITY AS h(instance_id, task_ref, kind, at, details, ord)
    JOIN updated u ON u.instance_id = h.instance_id
), subscriptions_gone AS (
    DELETE FROM event_subscriptions s
    USING updated u
    WHERE s.instance_id = u.instance_id AND u.instance_id = ANY($19::uuid[])
), subscriptions_new AS (
    INSERT INTO event_subscriptions (instance_id, partition, filter_index, task_ref, event_type,
                                     shape_id, corr_key, attributes)
    SELECT n.instance_id, u.partition, n.filter_index, n.task_ref, n.event_type, n.shape_id,
           n.corr_key, n.attributes::jsonb
    FROM unnest($20::uuid[], $21::int[], $22::text[], $23::text[], $24::int[], $25::text[],
                $26::text[])
        AS n(instance_id, filter_index, task_ref, event_type, shape_id, corr_key, attributes)
    JOIN updated u ON u.instance_id = n.instance_id
), inbox_consumed AS (
    DELETE FROM instance_inbox i
    USING unnest($27::uuid[], $28::bigint[]) AS d(instance_id, through), updated u
    WHERE u.instance_id = d.instance_id AND i.instance_id = d.instance_id
      AND i.inbox_seq <= d.through
), outgoing AS (
    SELECT o.*, u.partition
    FROM unnest($29::uuid[], $30::text[], $31::text[], $32::text[], $33::text[])
        WITH ORDINALITY AS o(instance_id, destination, routing_key, event_id, body, ord)
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
    FROM unnest($35::uuid[], $36::text[], $37::text[], $38::timestamptz[])
        AS n(instance_id, timer_key, kind, due_at)
    JOIN updated u ON u.instance_id = n.instance_id
    JOIN batch b ON b.instance_id = n.instance_id
), timers_gone AS (
    DELETE FROM workflow_timers t
    USING updated u
    WHERE t.instance_id = u.instance_id AND u.instance_id = ANY($34::uuid[])
      AND NOT EXISTS (SELECT 1 FROM timers n
                      WHERE n.instance_id = t.instance_id AND n.timer_key = t.timer_key)
), timers_new AS (
    INSERT INTO workflow_timers (instance_id, timer_key, partition, kind, due_at, lease_epoch)
    SELECT instance_id, timer_key, partition, kind, due_at, epoch FROM timers
    ON CONFLICT (instance_id, timer_key) DO UPDATE
    SET due_at = EXCLUDED.due_at, kind = EXCLUDED.kind, partition = EXCLUDED.partition,
        lease_epoch = EXCLUDED.lease_epoch, claimed_until = NULL
)
SELECT instance_id FROM updated
"""

_DIAGNOSE_SQL = """
SELECT w.instance_id, w.partition, w.snapshot_version, l.owner_id, l.epoch,
       coalesce(l.expires_at > now(), false) AS live
FROM workflow_instances w JOIN partition_leases l ON l.partition = w.partition
WHERE w.instance_id = ANY($1::uuid[])
"""


def _now() -> datetime:
    return datetime.now(UTC)


@attrs.frozen(kw_only=True)
class HistoryRow:
    """A history entry to write with a snapshot; its ``seq`` is assigned at commit."""

    kind: str
    task_ref: str = ""
    at: datetime = attrs.field(factory=_now)
    details: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class SubscriptionRow:
    """One filter an instance waits on (see ``event_subscriptions`` in migration V003)."""

    filter_index: int
    task_ref: str
    event_type: str  # '' = any type
    shape_id: int  # 0 = no correlation
    corr_key: str  # '' = any correlation value
    attributes: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class TimerRow:
    """One pending timer of a parked instance (see ``workflow_timers`` in migration V004)."""

    timer_key: str
    kind: str = attrs.field(validator=attrs.validators.in_(("wait", "timeout", "retry", "other")))
    due_at: datetime


@attrs.frozen(kw_only=True)
class OutgoingEvent:
    """An event to publish after the commit: ``destination`` is ``business`` (emitted) or
    ``system`` (lifecycle) for the outbox relay, or ``events`` for the database event source;
    ``body`` is the structured-mode CloudEvent JSON text."""

    destination: str = attrs.field(validator=attrs.validators.in_(("business", "system", "events")))
    routing_key: str
    event_id: str
    body: str


@attrs.frozen(kw_only=True)
class InstanceSnapshot:
    """The durable state of one instance at a task boundary.

    ``snapshot_version`` must grow with every write of the instance. ``output``, ``error`` and
    ``context`` replace the stored values (None output/error store SQL NULL); ``started_at``
    and ``completed_at`` are written only when not None. ``lease_epoch`` is the epoch under
    which the caller's actor was activated: pass it, so that an actor from before a lease
    change is fenced even if this replica holds the partition again; when None the writer's
    current epoch for ``partition`` is used.

    Event processing (written only when the snapshot is applied): ``subscriptions`` replaces
    the instance's listen subscriptions when not None (``()`` removes them); inbox rows up to
    ``inbox_through`` are deleted (consumed); ``outgoing`` events go to the outbox (or the
    ``events`` table), in order. ``timers`` likewise replaces the instance's durable timers
    when not None.
    """

    instance_id: uuid.UUID
    partition: int = attrs.field(validator=attrs.validators.ge(0))
    snapshot_version: int = attrs.field(validator=attrs.validators.ge(1))
    status: str = attrs.field(validator=attrs.validators.in_(INSTANCE_STATUSES))
    snapshot: dict[str, Any]
    output: Any = None
    error: Any = None
    context: Any = attrs.field(factory=dict)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    history: tuple[HistoryRow, ...] = ()
    lease_epoch: int | None = None
    subscriptions: tuple[SubscriptionRow, ...] | None = None
    inbox_through: int = 0
    outgoing: tuple[OutgoingEvent, ...] = ()
    timers: tuple[TimerRow, ...] | None = None


@attrs.frozen(kw_only=True)
class SnapshotWriterStatistics:
    """Counters since the writer was created. ``batches`` counts committed transactions."""

    snapshots: int
    batches: int
    largest_batch: int
    fenced: int
    failed: int
    queued: int


@attrs.define(eq=False)
class _Pending:
    snapshot: InstanceSnapshot
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None

    def finish(self, error: BaseException | None) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


@attrs.define
class _EventWrites:
    """The event-processing writes of one instance in a batch, merged in version order."""

    subscriptions: tuple[SubscriptionRow, ...] | None = None
    inbox_through: int = 0
    outgoing: list[OutgoingEvent] = attrs.field(factory=list)
    timers: tuple[TimerRow, ...] | None = None

    def add(self, snapshot: InstanceSnapshot) -> None:
        if snapshot.subscriptions is not None:
            self.subscriptions = snapshot.subscriptions
        if snapshot.timers is not None:
            self.timers = snapshot.timers
        self.inbox_through = max(self.inbox_through, snapshot.inbox_through)
        self.outgoing.extend(snapshot.outgoing)


def _clone(error: BaseException) -> BaseException:
    copy = type(error).__new__(type(error))
    copy.__dict__.update(error.__dict__)
    copy.args = error.args
    copy.__cause__ = error.__cause__
    return copy


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


@attrs.define(eq=False)
class SnapshotWriter:
    """The batching writer of one replica; start it with ``await nursery.start(writer.run)``."""

    database: Database
    leases: PartitionLeases
    max_delay: float = 0.0
    max_batch: int = 500
    max_queued: int = 10_000
    write_timeout: float = 10.0
    shutdown_timeout: float = 5.0
    # Called (synchronously) after a commit that added outbox rows: wakes the outbox relay.
    on_outbox: Callable[[], None] | None = None
    _send: trio.MemorySendChannel[_Pending] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[_Pending] = attrs.field(init=False)
    _state: str = attrs.field(init=False, default="new")
    _last_batch_size: int = attrs.field(init=False, default=0)
    _snapshots: int = attrs.field(init=False, default=0)
    _batches: int = attrs.field(init=False, default=0)
    _largest_batch: int = attrs.field(init=False, default=0)
    _fenced: int = attrs.field(init=False, default=0)
    _failed: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[_Pending](self.max_queued)

    def statistics(self) -> SnapshotWriterStatistics:
        """A frozen snapshot of the counters (no I/O)."""
        return SnapshotWriterStatistics(
            snapshots=self._snapshots,
            batches=self._batches,
            largest_batch=self._largest_batch,
            fenced=self._fenced,
            failed=self._failed,
            queued=self._receive.statistics().current_buffer_used,
        )

    async def write(self, snapshot: InstanceSnapshot) -> None:
        """Return once ``snapshot`` and its history are committed.

        Raises ``LeaseLost`` when fenced, ``InstanceNotFound`` when the instance does not
        exist, ``SnapshotWriteFailed`` on a database error or timeout, when the writer is not
        running, or when it stopped first. Waits (backpressure) while ``max_queued`` snapshots
        are queued. If the caller is cancelled while waiting, the snapshot may still commit.
        """
        if self._state != "running":
            raise SnapshotWriteFailed(
                f"cannot write the snapshot of workflow instance {snapshot.instance_id}: "
                + (
                    "the snapshot writer is not started; start it with nursery.start(writer.run)"
                    if self._state == "new"
                    else "the snapshot writer has stopped; recover the instance from its last "
                    "committed snapshot"
                ),
                instance_id=snapshot.instance_id,
            )
        pending = _Pending(snapshot)
        try:
            await self._send.send(pending)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise self._stopped_error(snapshot) from None
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Commit batches until cancelled, then drain (see the module docstring)."""
        if self._state != "new":
            raise RuntimeError("a SnapshotWriter can run only once; create a new one")
        self._state = "running"
        batch: list[_Pending] = []
        task_status.started()
        try:
            while True:
                await self._collect(batch)
                await self._commit(batch)
                batch = []
        finally:
            self._state = "stopped"
            await self._drain(batch)

    async def _collect(self, batch: list[_Pending]) -> None:
        batch.append(await self._receive.receive())
        self._take_ready(batch)
        # One scheduling round: callers released by the previous commit write again now.
        await trio.lowlevel.checkpoint()
        self._take_ready(batch)
        if self._last_batch_size <= 1 or self.max_delay <= 0:
            return
        with trio.move_on_after(self.max_delay):
            while len(batch) < self.max_batch:
                batch.append(await self._receive.receive())
                self._take_ready(batch)

    def _take_ready(self, batch: list[_Pending]) -> None:
        while len(batch) < self.max_batch:
            try:
                batch.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                return

    async def _drain(self, batch: list[_Pending]) -> None:
        # The batch in flight when cancelled may or may not have committed: committing it again
        # is safe, as a snapshot whose version is stored already counts as written (and its
        # history rows are inserted only with the UPDATE that stores the version).
        waiting = [p for p in batch if not p.done.is_set()]
        with trio.move_on_after(self.shutdown_timeout, shield=True) as scope:
            while True:
                self._take_all(waiting)
                if not waiting:
                    break
                chunk, waiting = waiting[: self.max_batch], waiting[self.max_batch :]
                try:
                    await self._commit(chunk)
                finally:
                    waiting[:0] = [p for p in chunk if not p.done.is_set()]
        # Take what is buffered before closing: closing drops buffered items, and senders still
        # blocked on a full buffer then get BrokenResourceError (turned into our error).
        self._take_all(waiting)
        self._receive.close()
        if scope.cancelled_caught or waiting:
            logger.warning("snapshot writer stopped with %d snapshots not committed", len(waiting))
        for pending in waiting:
            self._failed += 1
            pending.finish(self._stopped_error(pending.snapshot))

    def _take_all(self, into: list[_Pending]) -> None:
        while True:
            try:
                into.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.ClosedResourceError, trio.EndOfChannel):
                return

    def _stopped_error(self, snapshot: InstanceSnapshot) -> SnapshotWriteFailed:
        return SnapshotWriteFailed(
            f"the snapshot writer stopped before the snapshot of workflow instance "
            f"{snapshot.instance_id} (version {snapshot.snapshot_version}) was committed; "
            "recover the instance from its last committed snapshot",
            instance_id=snapshot.instance_id,
        )

    async def _commit(self, batch: list[_Pending]) -> None:
        """Write one batch and release its callers; never raises except Cancelled."""
        self._last_batch_size = len(batch)
        winners: dict[uuid.UUID, tuple[InstanceSnapshot, int]] = {}
        histories: dict[uuid.UUID, list[HistoryRow]] = {}
        extras: dict[uuid.UUID, _EventWrites] = {}
        for pending in sorted(batch, key=lambda p: p.snapshot.snapshot_version):
            snapshot = pending.snapshot
            epoch = snapshot.lease_epoch
            if epoch is None:
                epoch = self.leases.epoch_of(snapshot.partition)
            if epoch is None:
                self._fenced += 1
                pending.finish(self._lease_lost(snapshot, "this replica holds no lease on it"))
                continue
            winners[snapshot.instance_id] = (snapshot, epoch)
            histories.setdefault(snapshot.instance_id, []).extend(snapshot.history)
            events = extras.setdefault(snapshot.instance_id, _EventWrites())
            events.add(snapshot)
        if not winners:
            return
        try:
            with trio.fail_after(self.write_timeout):
                outcomes = await self.database.run(
                    lambda connection: self._write(connection, winners, histories, extras)
                )
        except trio.TooSlowError:
            outcomes = self._fail_all(winners, f"no commit within {self.write_timeout:g}s", None)
        except Exception as exc:  # any database or driver error fails the batch, not the writer
            outcomes = self._fail_all(winners, f"{type(exc).__name__}: {exc}", exc)
        else:
            self._batches += 1
            self._largest_batch = max(self._largest_batch, len(batch))
            if self.on_outbox is not None and any(
                o.destination != "events" for e in extras.values() for o in e.outgoing
            ):
                self.on_outbox()
        handed_out: set[uuid.UUID] = set()
        for pending in batch:
            if not pending.done.is_set():
                instance_id = pending.snapshot.instance_id
                outcome = outcomes.get(instance_id)
                if outcome is None:
                    self._snapshots += 1
                elif isinstance(outcome, LeaseLost):
                    self._fenced += 1
                else:
                    self._failed += 1
                if outcome is not None and instance_id in handed_out:
                    outcome = _clone(outcome)  # one exception object is raised in one task only
                handed_out.add(instance_id)
                pending.finish(outcome)

    def _fail_all(
        self,
        winners: dict[uuid.UUID, tuple[InstanceSnapshot, int]],
        reason: str,
        cause: BaseException | None,
    ) -> dict[uuid.UUID, BaseException | None]:
        logger.warning("snapshot batch of %d failed: %s", len(winners), reason)
        outcomes: dict[uuid.UUID, BaseException | None] = {}
        for instance_id in winners:
            error = SnapshotWriteFailed(
                f"the snapshot of workflow instance {instance_id} was not committed: {reason}; "
                "recover the instance from its last committed snapshot",
                instance_id=instance_id,
            )
            error.__cause__ = cause
            outcomes[instance_id] = error
        return outcomes

    def _lease_lost(self, snapshot: InstanceSnapshot, why: str) -> LeaseLost:
        return LeaseLost(
            f"the snapshot of workflow instance {snapshot.instance_id} was fenced: "
            f"{self.leases.owner_id!r} lost partition {snapshot.partition} ({why}); stop "
            "driving the instance, the partition's owner recovers it",
            instance_id=snapshot.instance_id,
            partition=snapshot.partition,
        )

    async def _write(
        self,
        connection: Connection,
        winners: dict[uuid.UUID, tuple[InstanceSnapshot, int]],
        histories: dict[uuid.UUID, list[HistoryRow]],
        extras: dict[uuid.UUID, _EventWrites],
    ) -> dict[uuid.UUID, BaseException | None]:
        """Runs on the asyncio side. The write is one statement, hence one transaction of its
        own (no BEGIN/COMMIT round trips); the rare follow-up query only explains misses."""
        snapshots = [s for s, _ in winners.values()]
        history = [(i, row) for i, rows in histories.items() for row in rows]
        replaced = [i for i, e in extras.items() if e.subscriptions is not None]
        subscriptions = [(i, r) for i, e in extras.items() for r in e.subscriptions or ()]
        consumed = [(i, e.inbox_through) for i, e in extras.items() if e.inbox_through > 0]
        outgoing = [(i, o) for i, e in extras.items() for o in e.outgoing]
        retimed = [i for i, e in extras.items() if e.timers is not None]
        timers = [(i, t) for i, e in extras.items() for t in e.timers or ()]
        rows = await connection.fetch(
            _WRITE_SQL,
            self.leases.owner_id,
            [s.instance_id for s in snapshots],
            [s.partition for s in snapshots],
            [epoch for _, epoch in winners.values()],
            [s.snapshot_version for s in snapshots],
            [s.status for s in snapshots],
            [_dumps(s.snapshot) for s in snapshots],
            [_dumps(s.output) for s in snapshots],
            [_dumps(s.error) for s in snapshots],
            [_dumps(s.context) for s in snapshots],
            [s.started_at for s in snapshots],
            [s.completed_at for s in snapshots],
            [len(histories.get(s.instance_id, ())) for s in snapshots],
            [i for i, _ in history],
            [row.task_ref for _, row in history],
            [row.kind for _, row in history],
            [row.at for _, row in history],
            [_dumps(row.details) for _, row in history],
            replaced,
            [i for i, _ in subscriptions],
            [r.filter_index for _, r in subscriptions],
            [r.task_ref for _, r in subscriptions],
            [r.event_type for _, r in subscriptions],
            [r.shape_id for _, r in subscriptions],
            [r.corr_key for _, r in subscriptions],
            [_dumps(r.attributes) for _, r in subscriptions],
            [i for i, _ in consumed],
            [through for _, through in consumed],
            [i for i, _ in outgoing],
            [o.destination for _, o in outgoing],
            [o.routing_key for _, o in outgoing],
            [o.event_id for _, o in outgoing],
            [o.body for _, o in outgoing],
            retimed,
            [i for i, _ in timers],
            [t.timer_key for _, t in timers],
            [t.kind for _, t in timers],
            [t.due_at for _, t in timers],
        )
        outcomes: dict[uuid.UUID, BaseException | None] = {r["instance_id"]: None for r in rows}
        missing = [i for i in winners if i not in outcomes]
        if missing:
            found = {r["instance_id"]: r for r in await connection.fetch(_DIAGNOSE_SQL, missing)}
            for instance_id in missing:
                snapshot, epoch = winners[instance_id]
                outcomes[instance_id] = self._diagnose(snapshot, epoch, found.get(instance_id))
        return outcomes

    def _diagnose(
        self, snapshot: InstanceSnapshot, epoch: int, row: Any | None
    ) -> BaseException | None:
        """Why a snapshot was not applied (None: it was written already)."""
        instance_id = snapshot.instance_id
        if row is None:
            return InstanceNotFound(
                f"workflow instance {instance_id} not found; its snapshot was not written",
                instance_id=instance_id,
            )
        if row["partition"] != snapshot.partition:
            return SnapshotWriteFailed(
                f"the snapshot of workflow instance {instance_id} names partition "
                f"{snapshot.partition} but the instance is in partition {row['partition']}",
                instance_id=instance_id,
            )
        if row["owner_id"] is None:
            return self._lease_lost(snapshot, "it has no owner now")
        if row["owner_id"] != self.leases.owner_id:
            return self._lease_lost(
                snapshot, f"{row['owner_id']!r} holds it now, at epoch {row['epoch']}"
            )
        if row["epoch"] != epoch:
            return self._lease_lost(
                snapshot, f"it is held at epoch {row['epoch']}, not at epoch {epoch}"
            )
        if not row["live"]:
            return self._lease_lost(snapshot, "the lease expired")
        if row["snapshot_version"] == snapshot.snapshot_version:
            return None  # a retried write of a committed snapshot
        if row["snapshot_version"] > snapshot.snapshot_version:
            return SnapshotWriteFailed(
                f"snapshot version {snapshot.snapshot_version} of workflow instance "
                f"{instance_id} is older than the stored version {row['snapshot_version']}; "
                "snapshot_version must grow with every write",
                instance_id=instance_id,
            )
        return SnapshotWriteFailed(
            f"the snapshot of workflow instance {instance_id} was not applied because its "
            "lease changed during the commit; recover the instance from its last committed "
            "snapshot",
            instance_id=instance_id,
        )
