"""The instance runtime's storage port: what it reads and writes besides snapshots.

``InstanceRuntime`` creates instances (batched by ``run_batching`` when it runs, or one by one),
reads the latest live version of a definition, loads instances, lists the recoverable ones of
its partitions in pages, changes the stored status of an instance at rest (cancelling one
cancels its descendants), tells other replicas to wake an instance, and hands its actors the
subscription shapes, retained events and what subflows read (``SubflowPort``). It does
all of that through an ``InstanceRepository``: ``DatabaseInstanceRepository`` in the service
(the storage functions, with the same statements and crossings, and the batching
``InstanceCreator`` as it is), ``instances.testing.InMemoryInstanceStore`` in tests. Both pass
the same contract tests (``tests/support/repository_contract.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

import attrs
import trio

from workflow_orchestrator.instances._listening import ShapeRegistry
from workflow_orchestrator.storage import Database, InstanceNotFound, LeaseSet
from workflow_orchestrator.storage.definitions import get_definition, resolve_workflow
from workflow_orchestrator.storage.events import fetch_retained_events, notify_wake
from workflow_orchestrator.storage.instances import (
    InstanceCreator,
    InstanceLoader,
    InstanceRecord,
    InstanceStatus,
    NewInstance,
    RecoverableInstance,
    Retry,
    cancel_descendants,
    cancel_instance,
    create_instance,
    get_instance,
    list_recoverable,
    set_status,
)

__all__ = ["DatabaseInstanceRepository", "InstanceRepository", "LeaseView"]


class LeaseView(Protocol):
    """The partitions this replica holds now, with their epochs (``PartitionLeases`` in the
    service, ``InMemoryInstanceStore`` in tests); no I/O."""

    def current(self) -> LeaseSet: ...

    def epoch_of(self, partition: int) -> int | None: ...


class InstanceRepository(Protocol):
    """The storage the runtime uses (see the module docstring).

    Errors are storage's: ``DefinitionNotFound``, ``InstanceNotFound``,
    ``InvalidStatusTransition`` (with the same messages in every implementation), and
    ``DatabaseUnavailable`` when the store cannot be reached.
    """

    @property
    def batching(self) -> bool:
        """Whether ``create_batched`` accepts starts now (``run_batching`` is running)."""
        ...

    async def run_batching(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Create the instances given to ``create_batched`` (and read the ones given to
        ``load``, where loads batch) in batches until cancelled."""
        ...

    async def create_batched(self, item: NewInstance) -> tuple[InstanceRecord, bool] | Retry:
        """Create ``item`` with the next batch: ``(record, created)``, or ``Retry`` when its
        version is not (or no longer) the one it must be (see ``InstanceCreator``)."""
        ...

    async def create_instance(
        self,
        *,
        definition_id: str,
        definition_version: str,
        input: Any,
        business_key: str | None,
        idempotency_key: str | None,
    ) -> tuple[InstanceRecord, bool]:
        """Create a pending instance of a live version, or return the one that has
        ``idempotency_key`` already (``created`` False), as ``storage.create_instance``."""
        ...

    async def latest_version(self, definition_id: str) -> str:
        """The latest live version of ``definition_id``; raises ``DefinitionNotFound``."""
        ...

    async def load(self, instance_id: uuid.UUID) -> RecoverableInstance:
        """The instance with its last committed snapshot and (unless terminal) its inbox."""
        ...

    async def list_recoverable(
        self, *, partitions: Collection[int], after: uuid.UUID | None, limit: int
    ) -> Sequence[RecoverableInstance]:
        """Up to ``limit`` non-terminal instances of ``partitions`` after ``after``, by id,
        with their snapshots and whether their inbox holds events (not the events)."""
        ...

    async def set_status(
        self,
        instance_id: uuid.UUID,
        status: InstanceStatus,
        *,
        allowed_from: Collection[InstanceStatus],
        history_kind: str | None = None,
    ) -> InstanceRecord:
        """Change the status of an instance at rest when it is one of ``allowed_from``, with
        a history row of ``history_kind``; a terminal status drops its timers,
        subscriptions and inbox. The change takes a version of its own (the stored one plus
        ``COMMAND_VERSION_STEP``), so a late snapshot of an interrupted run is refused. A
        terminal status of a child its parent awaits puts the child's end in the parent's
        inbox."""
        ...

    async def cancel_instance(
        self,
        instance_id: uuid.UUID,
        *,
        allowed_from: Collection[InstanceStatus],
        history_kind: str | None = None,
    ) -> tuple[InstanceRecord, tuple[InstanceRecord, ...]]:
        """``set_status(instance_id, CANCELLED, ...)`` and the cancel of every descendant
        that has not ended, at once; returns its record and the descendants cancelled."""
        ...

    async def cancel_descendants(
        self, *, parents: Sequence[uuid.UUID] = (), partitions: Collection[int] = ()
    ) -> tuple[InstanceRecord, ...]:
        """Cancel the descendants that have not ended of ``parents`` (cancelled already) and
        of the cancelled instances of ``partitions``; returns the instances cancelled."""
        ...

    async def resolve_workflow(
        self, namespace: str, name: str, version: str | None
    ) -> tuple[str, str] | None:
        """The ``(definition_id, version)`` of the live definition ``namespace/name`` at
        ``version`` (None: the one registered last), or None."""
        ...

    async def find(self, instance_id: uuid.UUID) -> InstanceRecord | None:
        """The stored instance (without its snapshot), None when there is none."""
        ...

    async def notify_wake(self, instance_ids: Sequence[uuid.UUID]) -> None:
        """Tell the replicas holding the partitions of ``instance_ids`` to activate them."""
        ...

    async def shape_id(self, event_type: str, correlate: tuple[tuple[str, str], ...]) -> int:
        """The id of a subscription shape, registered on first use (0: no correlation)."""
        ...

    async def retained_events(
        self, event_types: Collection[str], within: float
    ) -> Sequence[dict[str, Any]]:
        """Unmatched events of ``event_types`` retained for the last ``within`` seconds."""
        ...


@attrs.define(eq=False)
class DatabaseInstanceRepository:
    """The ``InstanceRepository`` (and the catalog's ``DefinitionSource``) on PostgreSQL:
    each method is one storage function, so one crossing, as the runtime called them before;
    while ``run_batching`` runs, ``load`` reads with the batching ``InstanceLoader`` (the loads
    of instances activated together share one crossing)."""

    database: Database
    #: The partitions this replica holds now: new instances get ids in them (``_creator``).
    local_partitions: Callable[[], frozenset[int]] | None = None
    _creator: InstanceCreator = attrs.field(init=False)
    _loader: InstanceLoader = attrs.field(init=False)
    _shapes: ShapeRegistry = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._creator = InstanceCreator(
            database=self.database, local_partitions=self.local_partitions
        )
        self._loader = InstanceLoader(database=self.database)
        self._shapes = ShapeRegistry(database=self.database)

    @property
    def batching(self) -> bool:
        return self._creator.running

    async def run_batching(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self._loader.run)
            await nursery.start(self._creator.run)
            task_status.started()

    async def create_batched(self, item: NewInstance) -> tuple[InstanceRecord, bool] | Retry:
        return await self._creator.create(item)

    async def create_instance(
        self,
        *,
        definition_id: str,
        definition_version: str,
        input: Any,
        business_key: str | None,
        idempotency_key: str | None,
    ) -> tuple[InstanceRecord, bool]:
        return await create_instance(
            self.database,
            definition_id=definition_id,
            definition_version=definition_version,
            input=input,
            business_key=business_key,
            idempotency_key=idempotency_key,
        )

    async def latest_version(self, definition_id: str) -> str:
        return (await get_definition(self.database, definition_id)).version

    async def definition_document(self, definition_id: str, version: str) -> dict[str, Any]:
        stored = await get_definition(self.database, definition_id, version, include_deleted=True)
        return stored.document

    async def load(self, instance_id: uuid.UUID) -> RecoverableInstance:
        return await self._loader.load(instance_id)

    async def list_recoverable(
        self, *, partitions: Collection[int], after: uuid.UUID | None, limit: int
    ) -> Sequence[RecoverableInstance]:
        return await list_recoverable(
            self.database, partitions=partitions, after=after, limit=limit
        )

    async def set_status(
        self,
        instance_id: uuid.UUID,
        status: InstanceStatus,
        *,
        allowed_from: Collection[InstanceStatus],
        history_kind: str | None = None,
    ) -> InstanceRecord:
        return await set_status(
            self.database,
            instance_id,
            status,
            allowed_from=allowed_from,
            history_kind=history_kind,
        )

    async def cancel_instance(
        self,
        instance_id: uuid.UUID,
        *,
        allowed_from: Collection[InstanceStatus],
        history_kind: str | None = None,
    ) -> tuple[InstanceRecord, tuple[InstanceRecord, ...]]:
        return await cancel_instance(
            self.database, instance_id, allowed_from=allowed_from, history_kind=history_kind
        )

    async def cancel_descendants(
        self, *, parents: Sequence[uuid.UUID] = (), partitions: Collection[int] = ()
    ) -> tuple[InstanceRecord, ...]:
        return await cancel_descendants(self.database, parents=parents, partitions=partitions)

    async def resolve_workflow(
        self, namespace: str, name: str, version: str | None
    ) -> tuple[str, str] | None:
        return await resolve_workflow(self.database, namespace, name, version)

    async def find(self, instance_id: uuid.UUID) -> InstanceRecord | None:
        try:
            return await get_instance(self.database, instance_id)
        except InstanceNotFound:
            return None

    async def notify_wake(self, instance_ids: Sequence[uuid.UUID]) -> None:
        ids = [str(i) for i in instance_ids]
        await self.database.run(lambda connection: notify_wake(connection, ids))

    async def shape_id(self, event_type: str, correlate: tuple[tuple[str, str], ...]) -> int:
        return await self._shapes.shape_id(event_type, correlate)

    async def retained_events(
        self, event_types: Collection[str], within: float
    ) -> Sequence[dict[str, Any]]:
        return await fetch_retained_events(self.database, event_types, within)
