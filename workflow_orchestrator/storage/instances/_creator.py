"""Group commit of new instances: many starts, one INSERT statement, one bridge crossing.

``create_instance`` costs a crossing and two statements (the version check and the INSERT) per
instance. Under load, starts arrive together, so ``InstanceCreator`` inserts them in batches,
the way ``SnapshotWriter`` writes snapshots: ``run`` takes everything queued while the previous
batch was committing (plus one scheduling round), up to ``max_batch``, and inserts it with ONE
statement (arrays through ``unnest``), hence one transaction, through ONE crossing. Alone, a
start is one statement and one crossing instead of two statements.

Each start names a concrete definition version that the caller has already checked the input
against; ``latest=True`` says the caller took it as the latest live version, and the row is
inserted only if it still is (a version registered or deleted since makes it ``Retry``). With
``latest=False`` the version must exist and not be deleted. Outcomes per start:

- ``(record, True)``: inserted.
- ``(record, False)``: the idempotency key was used before (also by another start of the same
  batch); the existing instance, whatever the other arguments say, as ``create_instance``.
- ``Retry``: the version check failed (stale latest version, deleted or unknown definition);
  the caller falls back to ``create_instance``, which raises ``DefinitionNotFound`` with the
  usual message or creates the instance with the current latest version.
- an error the server reported for the batch (say, one input PostgreSQL rejects): ``Retry``
  for every start of the batch, so each gets its own outcome (and error) from
  ``create_instance``; nothing of the batch was inserted (the statement is its own
  transaction).
- ``Unstorable`` (a ``ValueError``, the client's mistake: answer 400) at once, before the start
  joins a batch, when the input, business key or idempotency key holds what PostgreSQL cannot
  store (the NUL character, a lone surrogate, NaN or an infinity, nesting too deep); the
  message names the field and where in it (``check_start``).
- ``DatabaseUnavailable`` when the connection failed or the batch timed out (it may or may not
  have been committed, as with an interrupted ``create_instance``), or the creator is not
  running.

A new instance's id is drawn so that its partition (a hash of the id) is one of
``local_partitions`` when the creator is given them (the partitions its replica holds): the
replica that accepted the start then runs the instance itself instead of notifying another
replica, which would read it back from the database. Up to ``ID_DRAWS`` ids are drawn (each a
random UUID: a few microseconds); a replica holding no partition takes the first.

Idempotency under concurrency is the INSERT's ``ON CONFLICT (idempotency_key) DO NOTHING``,
as in ``create_instance``: a conflicting row of another transaction is waited for, and the
losers are read back after the INSERT, in the same crossing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import attrs
import trio

from workflow_orchestrator.storage._database import Connection, Database
from workflow_orchestrator.storage._errors import DatabaseUnavailable
from workflow_orchestrator.storage._storable import check_storable, storable_json
from workflow_orchestrator.storage.instances._records import (
    DEFAULT_PARTITION_COUNT,
    INSTANCE_COLUMNS,
    InstanceRecord,
    instance_record,
    partition_of,
)
from workflow_orchestrator.storage.instances._status import InstanceStatus

__all__ = ["InstanceCreator", "NewInstance", "Retry", "check_start"]

_INSERT_SQL = f"""
WITH batch AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bool[], $5::text[],
                         $6::text[], $7::text[], $8::int[]) WITH ORDINALITY
        AS b(instance_id, definition_id, definition_version, latest, business_key,
             idempotency_key, input, partition, ord)
), checked AS (
    SELECT b.* FROM batch b
    WHERE CASE WHEN b.latest THEN b.definition_version = (
              SELECT d.version FROM workflow_definitions d
              WHERE d.definition_id = b.definition_id AND d.deleted_at IS NULL
              ORDER BY d.created_at DESC, d.version DESC LIMIT 1)
          ELSE EXISTS (
              SELECT 1 FROM workflow_definitions d
              WHERE d.definition_id = b.definition_id AND d.version = b.definition_version
                AND d.deleted_at IS NULL)
          END
)
INSERT INTO workflow_instances (instance_id, definition_id, definition_version, status,
    business_key, idempotency_key, input, partition)
SELECT instance_id, definition_id, definition_version, '{InstanceStatus.PENDING}',
       business_key, idempotency_key, input::jsonb, partition
FROM checked ORDER BY ord
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING {INSTANCE_COLUMNS}
"""

_BY_KEY_SQL = (
    f"SELECT {INSTANCE_COLUMNS} FROM workflow_instances WHERE idempotency_key = ANY($1::text[])"
)


class Retry:
    """The version check failed: create the instance with ``create_instance`` instead."""

    __slots__ = ()


RETRY = Retry()


@attrs.frozen(kw_only=True)
class NewInstance:
    """One start: ``definition_version`` is concrete; ``latest`` see the module docstring."""

    definition_id: str
    definition_version: str
    latest: bool
    input: Any
    business_key: str | None = None
    idempotency_key: str | None = None


def check_start(input: Any, business_key: str | None, idempotency_key: str | None) -> str | None:
    """The input's JSON text (None for no input); raises ``Unstorable`` naming the field when
    PostgreSQL cannot store the input, the business key or the idempotency key."""
    if business_key is not None:
        check_storable(business_key, what="the businessKey")
    if idempotency_key is not None:
        check_storable(idempotency_key, what="the idempotency key")
    return None if input is None else storable_json(input, what="the input")


Outcome = tuple[InstanceRecord, bool] | Retry
#: Random ids drawn at most for one in a local partition (holding half of them: 2 expected).
ID_DRAWS = 64


@attrs.define(eq=False)
class _Pending:
    item: NewInstance
    instance_id: uuid.UUID
    partition: int
    input: str | None
    done: trio.Event = attrs.field(factory=trio.Event)
    outcome: Outcome | None = None
    error: BaseException | None = None


@attrs.define(eq=False)
class InstanceCreator:
    """The batching creator of one replica; start it with ``await nursery.start(creator.run)``."""

    database: Database
    partition_count: int = DEFAULT_PARTITION_COUNT
    max_batch: int = 500
    create_timeout: float = 10.0
    #: The partitions the replica holds now (no I/O); None: any partition.
    local_partitions: Callable[[], frozenset[int]] | None = None
    _send: trio.MemorySendChannel[_Pending] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[_Pending] = attrs.field(init=False)
    _running: bool = attrs.field(init=False, default=False)
    batches: int = attrs.field(init=False, default=0)
    created: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[_Pending](10_000)

    @property
    def running(self) -> bool:
        return self._running

    def _new_id(self) -> uuid.UUID:
        """A random id, in a partition this replica holds when it holds any."""
        instance_id = uuid.uuid4()
        held = self.local_partitions() if self.local_partitions is not None else frozenset()
        if not held:
            return instance_id
        for _ in range(ID_DRAWS - 1):
            if partition_of(instance_id, self.partition_count) in held:
                break
            instance_id = uuid.uuid4()
        return instance_id

    async def create(self, item: NewInstance) -> Outcome:
        """Insert ``item`` with the next batch; see the module docstring for the outcomes.

        Raises ``Unstorable`` when PostgreSQL cannot store the input or a key (before the
        start joins a batch), ``DatabaseUnavailable`` when the creator is not running, or on a
        database error or timeout of the batch. If the caller is cancelled while waiting, the
        instance may still be created (without an idempotency key nobody finds it again,
        as with a cancelled ``create_instance``).
        """
        if not self._running:
            raise DatabaseUnavailable(
                "the instance creator is not running", database=self.database.location.display()
            )
        # Here, so that an input PostgreSQL cannot store fails only its own start.
        encoded = check_start(item.input, item.business_key, item.idempotency_key)
        instance_id = self._new_id()
        pending = _Pending(
            item, instance_id, partition_of(instance_id, self.partition_count), encoded
        )
        await self._send.send(pending)
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.outcome is not None
        return pending.outcome

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Insert batches until cancelled; then every unanswered start fails with
        ``DatabaseUnavailable`` (those of the batch in flight may have been inserted)."""
        self._running = True
        batch: list[_Pending] = []
        task_status.started()
        try:
            while True:
                batch = [await self._receive.receive()]
                self._take_ready(batch)
                await trio.lowlevel.checkpoint()  # starters released by the last batch
                self._take_ready(batch)
                await self._commit(batch)
                batch = []
        finally:
            self._running = False
            self._take_ready(batch, limit=None)
            for pending in batch:
                if not pending.done.is_set():
                    # The batch in flight may have committed; the queued ones did not.
                    pending.error = DatabaseUnavailable(
                        "the instance creator stopped (the service is shutting down or "
                        "restarting its runtime) before the start was confirmed",
                        database=self.database.location.display(),
                    )
                    pending.done.set()

    def _take_ready(self, batch: list[_Pending], limit: int | None = 0) -> None:
        cap = self.max_batch if limit == 0 else limit
        while cap is None or len(batch) < cap:
            try:
                batch.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.ClosedResourceError, trio.EndOfChannel):
                return

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            with trio.fail_after(self.create_timeout):
                outcomes = await self.database.run(lambda c: self._insert(c, batch))
        except trio.TooSlowError:
            self._fail(batch, f"no commit within {self.create_timeout:g}s", None)
        except asyncpg.PostgresError:
            # Nothing was inserted; each start finds its own outcome through create_instance.
            for pending in batch:
                pending.outcome = RETRY
                pending.done.set()
        except Exception as exc:  # the connection failed: perhaps committed, perhaps not
            self._fail(batch, f"{type(exc).__name__}: {exc}", exc)
        else:
            self.batches += 1
            for pending, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, tuple) and outcome[1]:
                    self.created += 1
                pending.outcome = outcome
                pending.done.set()

    def _fail(self, batch: list[_Pending], reason: str, cause: BaseException | None) -> None:
        for pending in batch:
            error = DatabaseUnavailable(
                f"the batch creating {len(batch)} workflow instances failed: {reason}",
                database=self.database.location.display(),
            )
            error.__cause__ = cause
            pending.error = error
            pending.done.set()

    async def _insert(self, connection: Connection, batch: list[_Pending]) -> list[Outcome]:
        """Runs on the asyncio side: the INSERT, then (rarely) the losers of a key conflict."""
        items = [p.item for p in batch]
        rows = await connection.fetch(
            _INSERT_SQL,
            [p.instance_id for p in batch],
            [i.definition_id for i in items],
            [i.definition_version for i in items],
            [i.latest for i in items],
            [i.business_key for i in items],
            [i.idempotency_key for i in items],
            [p.input for p in batch],
            [p.partition for p in batch],
        )
        inserted = {r["instance_id"]: instance_record(r) for r in rows}
        keys = [
            p.item.idempotency_key
            for p in batch
            if p.instance_id not in inserted and p.item.idempotency_key is not None
        ]
        existing: dict[str, InstanceRecord] = {}
        if keys:
            for row in await connection.fetch(_BY_KEY_SQL, keys):
                existing[row["idempotency_key"]] = instance_record(row)
        outcomes: list[Outcome] = []
        for pending in batch:
            record = inserted.get(pending.instance_id)
            if record is not None:
                outcomes.append((record, True))
                continue
            key = pending.item.idempotency_key
            found = existing.get(key) if key is not None else None
            outcomes.append((found, False) if found is not None else RETRY)
        return outcomes
