"""Group load of instances: many activations' reads, two statements, one bridge crossing.

``load_instance`` costs a crossing and two statements (the row with its snapshot, then its
inbox) per instance. When many instances are activated at once (timers falling due, events
delivered beyond the router's page, recovery), their actors load together, so
``InstanceLoader`` reads them in batches, the way ``InstanceCreator`` inserts starts: ``run``
takes every load queued while the previous batch was reading (plus one scheduling round), up
to ``max_batch``, and reads them with ONE statement for the rows (``instance_id = ANY($1)``)
and ONE for the inboxes of those that have not ended, through ONE crossing. Alone, a load is
the same two statements and one crossing as ``load_instance``.

Each caller gets exactly what ``load_instance`` would return: the record, the last committed
snapshot and, unless the instance ended, its unconsumed events in order; or
``InstanceNotFound``. A batch starts after every load in it was asked for, so a load sees
every commit that completed before it was asked (a load asked while a batch reads waits for
the next one). A database error fails the loads of its batch with that error (each caller
gets its own copy), as it would have failed each ``load_instance``. Loads of one instance in
one batch share one read (the same record and snapshot objects: callers treat them as
read-only, as the runtime does). When the loader is not running, ``load`` is
``load_instance``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import attrs
import trio

from workflow_orchestrator.storage._database import Connection, Database
from workflow_orchestrator.storage.instances._queries import instance_not_found, load_instance
from workflow_orchestrator.storage.instances._records import (
    INSTANCE_COLUMNS,
    InboxEvent,
    InstanceRecord,
    RecoverableInstance,
)
from workflow_orchestrator.storage.instances._status import TERMINAL_STATUSES

__all__ = ["InstanceLoader", "load_instances_in"]

_ROWS_SQL = (
    f"SELECT {INSTANCE_COLUMNS}, snapshot FROM workflow_instances "
    "WHERE instance_id = ANY($1::uuid[])"
)
_INBOXES_SQL = (
    "SELECT instance_id, inbox_seq, event, event_key FROM instance_inbox "
    "WHERE instance_id = ANY($1::uuid[]) ORDER BY instance_id, inbox_seq"
)


async def load_instances_in(
    connection: Connection, instance_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, RecoverableInstance]:
    """The instances of ``instance_ids`` that exist, as ``load_instance`` reads each (asyncio
    side, inside the caller's unit of work): two statements whatever their number."""
    rows = await connection.fetch(_ROWS_SQL, list(instance_ids))
    open_ids = [r["instance_id"] for r in rows if r["status"] not in TERMINAL_STATUSES]
    inboxes: dict[uuid.UUID, list[InboxEvent]] = {}
    if open_ids:
        for r in await connection.fetch(_INBOXES_SQL, open_ids):
            inboxes.setdefault(r["instance_id"], []).append(
                InboxEvent(seq=r["inbox_seq"], event=r["event"], key=r["event_key"])
            )
    loaded: dict[uuid.UUID, RecoverableInstance] = {}
    for row in rows:
        instance_id = row["instance_id"]
        inbox = tuple(inboxes.get(instance_id, ()))
        loaded[instance_id] = RecoverableInstance(
            record=InstanceRecord(**{k: v for k, v in row.items() if k != "snapshot"}),
            snapshot=row["snapshot"],
            inbox=inbox,
            has_inbox=bool(inbox),
        )
    return loaded


def _clone(error: BaseException) -> BaseException:
    """A copy of ``error`` for one caller (one exception object is raised in one task)."""
    clone = type(error).__new__(type(error))
    clone.__dict__.update(error.__dict__)
    clone.args = error.args
    clone.__cause__ = error.__cause__
    return clone


@attrs.define(eq=False)
class _Load:
    instance_id: uuid.UUID
    done: trio.Event = attrs.field(factory=trio.Event)
    result: RecoverableInstance | None = None
    error: BaseException | None = None

    def finish(self, result: RecoverableInstance | None, error: BaseException | None) -> None:
        if not self.done.is_set():
            self.result, self.error = result, error
            self.done.set()


@attrs.define(eq=False)
class InstanceLoader:
    """The batching loader of one replica; start it with ``await nursery.start(loader.run)``
    (see the module docstring)."""

    database: Database
    max_batch: int = 500
    max_queued: int = 10_000
    _send: trio.MemorySendChannel[_Load] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[_Load] = attrs.field(init=False)
    running: bool = attrs.field(default=False, init=False)
    batches: int = attrs.field(default=0, init=False)
    largest_batch: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[_Load](self.max_queued)

    async def load(self, instance_id: uuid.UUID) -> RecoverableInstance:
        """What ``load_instance(database, instance_id)`` returns, read with the next batch;
        raises ``InstanceNotFound`` and the database's errors as it does."""
        if not self.running:
            return await load_instance(self.database, instance_id)
        request = _Load(instance_id)
        try:
            await self._send.send(request)
        except (trio.BrokenResourceError, trio.ClosedResourceError):  # it stopped meanwhile
            return await load_instance(self.database, instance_id)
        await request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read batches until cancelled; loads still queued then are read one by one by their
        callers (``load`` falls back to ``load_instance`` once the loader stopped)."""
        if self.running:
            raise RuntimeError("this InstanceLoader runs already")
        self.running = True
        task_status.started()
        batch: list[_Load] = []
        try:
            while True:
                batch = [await self._receive.receive()]
                self._take_ready(batch)
                # One scheduling round: actors started together ask together.
                await trio.lowlevel.checkpoint()
                self._take_ready(batch)
                await self._load(batch)
                batch = []
        finally:
            self.running = False
            self._take_ready(batch, limit=None)
            self._receive.close()  # later loads (and blocked senders) read on their own
            for request in batch:
                if not request.done.is_set():
                    with trio.CancelScope(shield=True):
                        request.finish(*await self._alone(request.instance_id))

    def _take_ready(self, batch: list[_Load], limit: int | None = -1) -> None:
        bound = self.max_batch if limit == -1 else limit
        while bound is None or len(batch) < bound:
            try:
                batch.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return

    async def _alone(
        self, instance_id: uuid.UUID
    ) -> tuple[RecoverableInstance | None, BaseException | None]:
        with trio.move_on_after(5.0):
            try:
                return await load_instance(self.database, instance_id), None
            except Exception as exc:  # the caller gets it, as from load_instance
                return None, exc
        return None, trio.TooSlowError(f"workflow instance {instance_id} was not loaded")

    async def _load(self, batch: list[_Load]) -> None:
        """Read one batch and release its callers; never raises except Cancelled."""
        ids = list(dict.fromkeys(request.instance_id for request in batch))
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(ids))
        try:
            loaded = await self.database.run(lambda c: load_instances_in(c, ids))
        except Exception as exc:  # every caller gets the error load_instance would raise
            for request in batch:
                request.finish(None, _clone(exc))
            return
        for request in batch:
            found = loaded.get(request.instance_id)
            if found is None:
                request.finish(None, instance_not_found(request.instance_id))
            else:
                request.finish(found, None)
