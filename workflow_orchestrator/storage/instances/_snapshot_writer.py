"""Group commit of instance snapshots: many actors' snapshots, one transaction, one crossing.

An actor calls ``await writer.write(snapshot)`` at a task boundary and continues only once the
snapshot and its history rows are committed. ``run`` commits one batch at a time: everything
that arrived while the previous batch was committing (plus, after one scheduling round, the
callers that batch just released), up to ``max_batch``, goes to PostgreSQL as ONE statement
(``_snapshot_statement``), hence one transaction, through ONE bridge crossing. Under load
batches grow by themselves.

``max_delay`` (default 0) adds a wait for more snapshots before committing, when the previous
batch held more than one. Measured with ``benchmarks/snapshot_writer.py`` (2-core box, PG 15,
closed-loop writers like actors awaiting each write, ranges over several runs): with 10
writers, 0 ms gave 4,100 snapshots/s at p50 1.8-2.3 ms while 2 ms gave 1,050-1,800/s at p50
5.5-8.7 ms; with 100 writers 8,400-10,600/s vs 7,000-8,300/s; at 1000 writers both about
11,500/s (batches of 500). Actors that await their write arrive together right after a
commit, so waiting longer only adds latency; raise it only for open-loop arrivals.

One statement against ``executemany``, measured for one batch of 500 snapshots with 2 history
rows each (``--compare-statements``, three runs): ``unnest`` 38-44 ms median against 46-66 ms
for ``executemany`` (a ``SELECT ... FOR SHARE`` fence check, an ``executemany`` UPDATE and an
``executemany`` INSERT in a transaction), which executes row by row and needs the extra round
trip to learn which rows were fenced. About 27 ms of the ``unnest`` batch is server execution,
mostly index maintenance: every write changes the indexed ``updated_at``, so no update is HOT
(without ``workflow_instances_by_updated_at`` it drops to about 18 ms).

Outcome per snapshot (the errors and messages of ``_snapshot_outcomes``):

- committed: ``write`` returns. A snapshot whose version equals the stored one is taken as
  already written (a retried write) and returns without touching anything.
- fenced: ``LeaseLost`` (this writer's owner no longer holds the partition, or holds it under a
  newer epoch than the snapshot's, or the lease expired).
- two snapshots of one instance in a batch: the higher ``snapshot_version`` is written, the
  history rows of both are inserted (in version order), and both callers get its outcome.
- a value PostgreSQL cannot store (checked by ``encode_snapshot`` before the snapshot joins a
  batch: NUL, lone surrogates, NaN and infinities, nesting too deep, non-JSON types):
  ``SnapshotUnstorable`` for that snapshot alone, naming the value and where it is.
- a batch that fails on a row's data anyway (``ROW_ERRORS``: a check missed something, a
  database-side limit) is committed again one instance at a time, in the same crossing: the
  innocent snapshots commit, the guilty one gets ``SnapshotUnstorable`` (reason ``database``).
- any other database error or timeout: ``SnapshotWriteFailed`` for every snapshot of the batch.
- unknown instance: ``InstanceNotFound``; an instance that ended (whatever the version), or a
  version older than the stored one (a command changed the instance since its run read it):
  ``SnapshotSuperseded`` for that snapshot alone (the statement skips its row, the others
  commit); the caller stops driving the instance, whose stored status stands.

After a commit that added outbox rows, ``on_outbox`` (given at construction) is called, so the
outbox relay publishes them without waiting for its poll.

Shutdown: when ``run`` is cancelled, the batch in flight (interrupted, so perhaps committed,
perhaps not) and everything queued are committed again within ``shutdown_timeout``, in a
shielded scope. That is safe because writes are idempotent per ``snapshot_version``. Whatever
is still waiting after that fails with ``SnapshotWriteFailed``, so no caller hangs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import trio

from workflow_orchestrator.storage._database import Connection, Database
from workflow_orchestrator.storage._errors import LeaseLost, SnapshotWriteFailed
from workflow_orchestrator.storage._leases import PartitionLeases
from workflow_orchestrator.storage._row_errors import ROW_ERRORS
from workflow_orchestrator.storage.instances._snapshot_check import (
    JsonTexts,
    encode_snapshot,
    refused_by_database,
)
from workflow_orchestrator.storage.instances._snapshot_outcomes import (
    diagnose,
    failed_write,
    lease_lost,
    not_running,
    stopped_before_commit,
)
from workflow_orchestrator.storage.instances._snapshot_rows import InstanceSnapshot
from workflow_orchestrator.storage.instances._snapshot_statement import (
    DIAGNOSE_SQL,
    WRITE_SQL,
    BatchPlan,
    plan_batch,
    split_plan,
    statement_arguments,
)

__all__ = ["SnapshotWriter", "SnapshotWriterStatistics"]

logger = logging.getLogger(__name__)


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
    texts: JsonTexts = attrs.field(factory=dict)
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None

    def finish(self, error: BaseException | None) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


def _clone(error: BaseException) -> BaseException:
    copy = type(error).__new__(type(error))
    copy.__dict__.update(error.__dict__)
    copy.args = error.args
    copy.__cause__ = error.__cause__
    return copy


@attrs.define(eq=False)
class SnapshotWriter:
    """The batching writer of one replica; start it with ``await nursery.start(writer.run)``.

    ``on_outbox`` is called (synchronously, on the Trio thread) after a commit that added
    outbox rows: the service passes the outbox relay's signal here.
    """

    database: Database
    leases: PartitionLeases
    max_delay: float = 0.0
    max_batch: int = 500
    max_queued: int = 10_000
    write_timeout: float = 10.0
    shutdown_timeout: float = 5.0
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
        exist, ``SnapshotUnstorable`` (at once, or after the batch) when PostgreSQL cannot
        store one of its values, ``SnapshotWriteFailed`` on a database error or timeout, when
        the writer is not running, or when it stopped first. Waits (backpressure) while
        ``max_queued`` snapshots are queued. If the caller is cancelled while waiting, the
        snapshot may still commit.
        """
        if self._state != "running":
            raise not_running(snapshot, started=self._state != "new")
        try:
            texts = encode_snapshot(snapshot)  # here: a poison value fails this write alone
        except SnapshotWriteFailed:
            self._failed += 1
            raise
        pending = _Pending(snapshot, texts)
        try:
            await self._send.send(pending)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise stopped_before_commit(snapshot) from None
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
            pending.finish(stopped_before_commit(pending.snapshot))

    def _take_all(self, into: list[_Pending]) -> None:
        while True:
            try:
                into.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.ClosedResourceError, trio.EndOfChannel):
                return

    async def _commit(self, batch: list[_Pending]) -> None:
        """Write one batch and release its callers; never raises except Cancelled."""
        self._last_batch_size = len(batch)
        plan = plan_batch((p.snapshot for p in batch), self.leases.epoch_of)
        if plan.unleased:
            unleased = {id(s) for s in plan.unleased}
            for pending in batch:
                if id(pending.snapshot) in unleased:
                    self._fenced += 1
                    pending.finish(
                        lease_lost(
                            pending.snapshot,
                            self.leases.owner_id,
                            "this replica holds no lease on it",
                        )
                    )
        if not plan.written:
            return
        texts: JsonTexts = {}
        for pending in batch:
            texts.update(pending.texts)
        try:
            with trio.fail_after(self.write_timeout):
                outcomes = await self.database.run(
                    lambda connection: self._write(connection, plan, texts)
                )
        except trio.TooSlowError:
            outcomes = self._fail_all(plan, f"no commit within {self.write_timeout:g}s", None)
        except Exception as exc:  # any database or driver error fails the batch, not the writer
            outcomes = self._fail_all(plan, f"{type(exc).__name__}: {exc}", exc)
        else:
            self._batches += 1
            self._largest_batch = max(self._largest_batch, len(batch))
            if self.on_outbox is not None and any(
                row.destination != "events" for _, row in plan.rows.outgoing
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
        self, plan: BatchPlan, reason: str, cause: BaseException | None
    ) -> dict[uuid.UUID, BaseException | None]:
        logger.warning("snapshot batch of %d failed: %s", len(plan.written), reason)
        outcomes: dict[uuid.UUID, BaseException | None] = {}
        for instance_id in plan.written:
            error = failed_write(instance_id, reason)
            error.__cause__ = cause
            outcomes[instance_id] = error
        return outcomes

    async def _write(
        self, connection: Connection, plan: BatchPlan, texts: JsonTexts
    ) -> dict[uuid.UUID, BaseException | None]:
        """Runs on the asyncio side: the batch's statement; when it fails on a row's data, the
        statement of each instance on its own, so only the guilty instance fails."""
        try:
            return await self._write_plan(connection, plan, texts)
        except ROW_ERRORS as exc:
            if len(plan.written) == 1:
                ((snapshot, _),) = plan.written.values()
                return {snapshot.instance_id: refused_by_database(snapshot, exc)}
            logger.warning(
                "snapshot batch of %d failed on one instance's data (%s: %s); committing its "
                "instances one at a time",
                len(plan.written),
                type(exc).__name__,
                " ".join(str(exc).split()),
            )
        outcomes: dict[uuid.UUID, BaseException | None] = {}
        for part in split_plan(plan):
            ((snapshot, _),) = part.written.values()
            try:
                outcomes.update(await self._write_plan(connection, part, texts))
            except ROW_ERRORS as exc:
                outcomes[snapshot.instance_id] = refused_by_database(snapshot, exc)
        return outcomes

    async def _write_plan(
        self, connection: Connection, plan: BatchPlan, texts: JsonTexts
    ) -> dict[uuid.UUID, BaseException | None]:
        """The write is one statement, hence one transaction of its own (no BEGIN/COMMIT round
        trips); the rare follow-up query only explains misses. The statement announces the
        instances it ended on `ENDED_CHANNEL`, for the long polls other replicas hold."""
        owner_id = self.leases.owner_id
        arguments = statement_arguments(owner_id, plan.rows, texts)
        rows = await connection.fetch(WRITE_SQL, *arguments)
        outcomes: dict[uuid.UUID, BaseException | None] = {r["instance_id"]: None for r in rows}
        missing = [i for i in plan.written if i not in outcomes]
        if missing:
            found: dict[uuid.UUID, Any] = {
                r["instance_id"]: r for r in await connection.fetch(DIAGNOSE_SQL, missing)
            }
            for instance_id in missing:
                snapshot, epoch = plan.written[instance_id]
                outcomes[instance_id] = diagnose(snapshot, epoch, owner_id, found.get(instance_id))
        return outcomes
