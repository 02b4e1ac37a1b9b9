"""Test helpers for code built on the instances part (as ``trio.testing`` is for Trio).

``InMemoryInstanceStore`` is an instance store in memory: a snapshot sink that applies a
snapshot exactly as the ``SnapshotWriter``'s statement does (fencing by partition lease and
epoch, versions that must grow, an instance that ended never changes, history numbered per
instance, subscriptions, timers, inbox, outbox and events tables), with the same errors and
messages; it passes the same contract tests (``tests/support/snapshot_contract.py``). It also
loads instances (with their inbox) and registers subscription shapes, so an ``InstancePorts``
made with it runs instances with no database. And it is an ``InstanceRepository``
(definitions, creation by idempotency key, recovery pages, status changes of instances at
rest, the cancel cascade, wake-ups of other replicas, what subflows read), a
``DefinitionSource`` and a ``LeaseView``, passing the repository contract tests
(``tests/support/repository_contract.py``), so an ``InstanceRuntime`` runs on it too.
Subflows behave as in the database: a snapshot's children are created unless they exist, and
the terminal status of a child its parent awaits puts its end in the parent's inbox.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

from workflow_orchestrator.instances._ports import utc_now
from workflow_orchestrator.storage import (
    DatabaseUnavailable,
    InstanceNotFound,
    InvalidStatusTransition,
    Lease,
    LeaseSet,
)
from workflow_orchestrator.storage.definitions._repository import missing_definition
from workflow_orchestrator.storage.instances import (
    COMMAND_VERSION_STEP,
    DEFAULT_PARTITION_COUNT,
    INSTANCE_STATUSES,
    HistoryEntry,
    InboxEvent,
    InstanceRecord,
    InstanceSnapshot,
    InstanceStatus,
    NewInstance,
    OutgoingEvent,
    RecoverableInstance,
    Retry,
    SubscriptionRow,
    TimerRow,
    check_snapshot,
    partition_of,
    subflow_ended_event,
    subflow_key,
)
from workflow_orchestrator.storage.instances._snapshot_outcomes import diagnose, lease_lost

__all__ = ["InMemoryInstanceStore", "StoredInstance"]


def _copy(value: Any) -> Any:
    """``value`` as the database gives it back: through JSON (which also refuses what the
    database would)."""
    return None if value is None else json.loads(json.dumps(value, separators=(",", ":")))


_FOREVER = datetime.max.replace(tzinfo=UTC)
_RETRY = Retry()


@attrs.frozen(kw_only=True)
class _Definition:
    document: dict[str, Any]
    deleted: bool = False


@attrs.frozen(kw_only=True)
class _Lease:
    owner_id: str
    epoch: int
    live: bool = True


@attrs.define(eq=False)
class StoredInstance:
    """One instance as stored: its record, snapshot and the rows of the other tables."""

    record: InstanceRecord
    snapshot: dict[str, Any] | None = None
    history: list[HistoryEntry] = attrs.field(factory=list)
    subscriptions: tuple[SubscriptionRow, ...] = ()
    timers: dict[str, TimerRow] = attrs.field(factory=dict)
    inbox: list[InboxEvent] = attrs.field(factory=list)


@attrs.define(eq=False)
class InMemoryInstanceStore:
    """Instances in memory; see the module docstring.

    ``owner_id`` is the replica writing; it holds every partition at epoch 1 until told
    otherwise (``take_over``, ``reacquire``, ``expire``, ``release``). ``current`` and
    ``epoch_of`` are that replica's view of its leases, as ``PartitionLeases``'s: another
    owner taking a partition over does not change it, so the write is fenced by the lease
    itself, as in the database. ``wakes`` lists the ids given to ``notify_wake``.
    """

    owner_id: str = "replica-a"
    partition_count: int = DEFAULT_PARTITION_COUNT
    clock: Callable[[], datetime] = utc_now
    instances: dict[uuid.UUID, StoredInstance] = attrs.field(factory=dict, init=False)
    outbox: list[tuple[uuid.UUID, OutgoingEvent]] = attrs.field(factory=list, init=False)
    events: list[dict[str, Any]] = attrs.field(factory=list, init=False)
    writes: list[InstanceSnapshot] = attrs.field(factory=list, init=False)
    wakes: list[uuid.UUID] = attrs.field(factory=list, init=False)
    _definitions: dict[str, dict[str, _Definition]] = attrs.field(factory=dict, init=False)
    _keys: dict[str, uuid.UUID] = attrs.field(factory=dict, init=False)
    _batching: bool = attrs.field(default=False, init=False)
    _leases: dict[int, _Lease] = attrs.field(factory=dict, init=False)
    _view: dict[int, int] = attrs.field(factory=dict, init=False)
    _shapes: dict[tuple[str, tuple[tuple[str, str], ...]], int] = attrs.field(
        factory=dict, init=False
    )
    _inbox_seq: int = attrs.field(default=0, init=False)
    _registered: list[tuple[str, str]] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        for partition in range(self.partition_count):
            self._leases[partition] = _Lease(owner_id=self.owner_id, epoch=1)
            self._view[partition] = 1

    # -- leases -------------------------------------------------------------------------

    def epoch_of(self, partition: int) -> int | None:
        """The epoch this replica believes it holds ``partition`` under (None: not held)."""
        return self._view.get(partition)

    def take_over(self, partition: int, owner_id: str = "replica-b") -> None:
        """Another replica takes ``partition`` over, at the next epoch."""
        lease = self._leases[partition]
        self._leases[partition] = _Lease(owner_id=owner_id, epoch=lease.epoch + 1)

    def reacquire(self, partition: int) -> None:
        """This replica is granted ``partition`` again, at the next epoch."""
        lease = self._leases[partition]
        self._leases[partition] = _Lease(owner_id=self.owner_id, epoch=lease.epoch + 1)
        self._view[partition] = lease.epoch + 1

    def expire(self, partition: int) -> None:
        """``partition``'s lease runs out (nobody renewed it)."""
        self._leases[partition] = attrs.evolve(self._leases[partition], live=False)

    def release(self, partition: int) -> None:
        """This replica gives ``partition`` up (its lease runs out; another may take it)."""
        self.expire(partition)
        self._view.pop(partition, None)

    def current(self) -> LeaseSet:
        """The partitions this replica holds, as ``PartitionLeases.current``."""
        return LeaseSet(
            owner_id=self.owner_id,
            leases={
                p: Lease(partition=p, epoch=epoch, expires_at=_FOREVER)
                for p, epoch in self._view.items()
            },
        )

    # -- definitions ----------------------------------------------------------------------

    def register(
        self, definition_id: str, version: str = "1.0.0", document: dict[str, Any] | None = None
    ) -> None:
        """Register ``definition_id`` at ``version`` (the latest from now on)."""
        versions = self._definitions.setdefault(definition_id, {})
        versions.pop(version, None)
        versions[version] = _Definition(document=_copy(document or {}))
        if (definition_id, version) in self._registered:
            self._registered.remove((definition_id, version))
        self._registered.append((definition_id, version))

    def delete_definition(self, definition_id: str) -> None:
        """Soft-delete every version of ``definition_id``, as ``storage.delete_definition``."""
        versions = self._definitions.get(definition_id, {})
        for version, stored in versions.items():
            versions[version] = attrs.evolve(stored, deleted=True)

    def _live_versions(self, definition_id: str) -> list[str]:
        versions = self._definitions.get(definition_id, {})
        return [v for v, stored in versions.items() if not stored.deleted]

    def _missing(self, definition_id: str, version: str | None) -> Exception:
        live_ids = sorted(d for d in self._definitions if self._live_versions(d))
        return missing_definition(
            definition_id, version, self._live_versions(definition_id), live_ids
        )

    async def latest_version(self, definition_id: str) -> str:
        """The latest live version; raises ``DefinitionNotFound``."""
        await trio.lowlevel.checkpoint()
        live = self._live_versions(definition_id)
        if not live:
            raise self._missing(definition_id, None)
        return live[-1]

    async def resolve_workflow(
        self, namespace: str, name: str, version: str | None
    ) -> tuple[str, str] | None:
        """As ``storage.definitions.resolve_workflow``: the live definition registered last
        whose document is ``namespace``/``name`` (at ``version`` when given)."""
        await trio.lowlevel.checkpoint()
        for definition_id, stored_version in reversed(self._registered):
            stored = self._definitions[definition_id][stored_version]
            header = stored.document.get("document") or {}
            if (
                not stored.deleted
                and header.get("namespace") == namespace
                and header.get("name") == name
                and (version is None or stored_version == version)
            ):
                return definition_id, stored_version
        return None

    async def definition_document(self, definition_id: str, version: str) -> dict[str, Any]:
        """The registered document, also of a deleted version; raises ``DefinitionNotFound``."""
        await trio.lowlevel.checkpoint()
        stored = self._definitions.get(definition_id, {}).get(version)
        if stored is None:
            raise self._missing(definition_id, version)
        return _copy(stored.document)  # type: ignore[no-any-return]

    # -- instances ------------------------------------------------------------------------

    def create(
        self,
        definition_id: str,
        version: str = "1.0.0",
        input: Any = None,
        *,
        instance_id: uuid.UUID | None = None,
        business_key: str | None = None,
        idempotency_key: str | None = None,
        parent_id: uuid.UUID | None = None,
        parent_awaits: bool = False,
        subflow_depth: int = 0,
    ) -> InstanceRecord:
        """A new pending instance (as ``create_instance`` makes it, with no checks; a child
        of ``parent_id`` as a parent's snapshot makes it)."""
        instance_id = instance_id or uuid.uuid4()
        if idempotency_key is not None:
            self._keys[idempotency_key] = instance_id
        now = self.clock()
        record = InstanceRecord(
            instance_id=instance_id,
            definition_id=definition_id,
            definition_version=version,
            status=InstanceStatus.PENDING,
            business_key=business_key,
            idempotency_key=idempotency_key,
            input=_copy(input if input is not None else {}),
            output=None,
            error=None,
            context={},
            partition=partition_of(instance_id, self.partition_count),
            lease_owner=None,
            lease_epoch=0,
            snapshot_version=0,
            created_at=now,
            updated_at=now,
            started_at=None,
            completed_at=None,
            parent_id=parent_id,
            parent_awaits=parent_awaits,
            subflow_depth=subflow_depth,
        )
        self.instances[instance_id] = StoredInstance(record=record)
        return record

    def deliver(self, instance_id: uuid.UUID, event: dict[str, Any]) -> int:
        """Put ``event`` in the instance's inbox (as the router does); returns its seq."""
        key = f"{event.get('source')}#{event.get('id')}"
        return self._put_inbox(self._stored(instance_id), key, event)

    def _put_inbox(self, stored: StoredInstance, key: str, event: dict[str, Any]) -> int:
        self._inbox_seq += 1
        stored.inbox.append(InboxEvent(seq=self._inbox_seq, event=_copy(event), key=key))
        return self._inbox_seq

    def _notify_parent(self, record: InstanceRecord) -> None:
        """``record`` ended: put its end in the inbox of the parent that awaits it, unless
        that parent ended or has it already (as the database does)."""
        parent = self.instances.get(record.parent_id) if record.parent_id is not None else None
        if not record.parent_awaits or parent is None or parent.record.terminal:
            return
        key = subflow_key(record.instance_id)
        if any(e.key == key for e in parent.inbox):
            return
        event = subflow_ended_event(
            record.instance_id, record.status, record.output, record.error, self.clock()
        )
        self._put_inbox(parent, key, event)

    def stored(self, instance_id: uuid.UUID) -> StoredInstance:
        """The stored instance; raises ``InstanceNotFound``."""
        return self._stored(instance_id)

    async def load(self, instance_id: uuid.UUID) -> RecoverableInstance:
        """As ``storage.load_instance``: the record, snapshot and (unless terminal) inbox."""
        await trio.lowlevel.checkpoint()
        stored = self._stored(instance_id)
        inbox = () if stored.record.terminal else tuple(stored.inbox)
        return RecoverableInstance(
            record=stored.record,
            snapshot=_copy(stored.snapshot),
            inbox=inbox,
            has_inbox=bool(inbox),
        )

    async def shape_id(self, event_type: str, correlate: tuple[tuple[str, str], ...]) -> int:
        """The id of a subscription shape, registered on first use (0: no correlation)."""
        if not correlate:
            return 0
        return self._shapes.setdefault((event_type, correlate), len(self._shapes) + 1)

    async def retained_events(
        self, event_types: Collection[str], within: float
    ) -> Sequence[dict[str, Any]]:
        """No events are retained in memory."""
        return ()

    # -- the instance repository ----------------------------------------------------------

    @property
    def batching(self) -> bool:
        """Whether ``create_batched`` accepts starts (``run_batching`` is running)."""
        return self._batching

    async def run_batching(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept ``create_batched`` until cancelled (each start is its own batch here)."""
        self._batching = True
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            self._batching = False

    def _by_key(self, idempotency_key: str | None) -> InstanceRecord | None:
        instance_id = self._keys.get(idempotency_key) if idempotency_key is not None else None
        return None if instance_id is None else self.instances[instance_id].record

    async def create_batched(self, item: NewInstance) -> tuple[InstanceRecord, bool] | Retry:
        """As ``InstanceCreator.create``: the instance with the key, else ``Retry`` when the
        version check fails, else a new instance."""
        await trio.lowlevel.checkpoint()
        if not self._batching:
            raise DatabaseUnavailable("the instance creator is not running", database="memory")
        found = self._by_key(item.idempotency_key)
        if found is not None:
            return found, False
        live = self._live_versions(item.definition_id)
        if item.definition_version not in (live[-1:] if item.latest else live):
            return _RETRY
        return self._create_checked(item.definition_id, item.definition_version, item), True

    async def create_instance(
        self,
        *,
        definition_id: str,
        definition_version: str | None,
        input: Any,
        business_key: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[InstanceRecord, bool]:
        """As ``storage.create_instance``; raises ``DefinitionNotFound``."""
        await trio.lowlevel.checkpoint()
        found = self._by_key(idempotency_key)
        if found is not None:
            return found, False
        live = self._live_versions(definition_id)
        version = live[-1] if live and definition_version is None else definition_version
        if version is None or version not in live:
            raise self._missing(definition_id, definition_version)
        item = NewInstance(
            definition_id=definition_id,
            definition_version=version,
            latest=False,
            input=input,
            business_key=business_key,
            idempotency_key=idempotency_key,
        )
        return self._create_checked(definition_id, version, item), True

    def _create_checked(
        self, definition_id: str, version: str, item: NewInstance
    ) -> InstanceRecord:
        return self.create(
            definition_id,
            version,
            item.input,
            business_key=item.business_key,
            idempotency_key=item.idempotency_key,
        )

    async def list_recoverable(
        self, *, partitions: Collection[int], after: uuid.UUID | None = None, limit: int = 500
    ) -> Sequence[RecoverableInstance]:
        """As ``storage.list_recoverable``: non-terminal instances of ``partitions`` by id."""
        await trio.lowlevel.checkpoint()
        found = sorted(
            (
                stored
                for stored in self.instances.values()
                if stored.record.partition in partitions
                and not stored.record.terminal
                and (after is None or stored.record.instance_id > after)
            ),
            key=lambda stored: stored.record.instance_id,
        )
        return tuple(
            RecoverableInstance(
                record=stored.record, snapshot=_copy(stored.snapshot), has_inbox=bool(stored.inbox)
            )
            for stored in found[:limit]
        )

    async def set_status(
        self,
        instance_id: uuid.UUID,
        status: InstanceStatus,
        *,
        allowed_from: Collection[InstanceStatus],
        history_kind: str | None = None,
    ) -> InstanceRecord:
        """As ``storage.set_status``, with the same errors."""
        await trio.lowlevel.checkpoint()
        stored = self._stored(instance_id)
        current = stored.record.status
        if current not in allowed_from:
            allowed = ", ".join(s for s in INSTANCE_STATUSES if s in allowed_from)
            raise InvalidStatusTransition(
                f"workflow instance {instance_id} is {current}; it can become {status} only "
                f"from: {allowed}",
                instance_id=instance_id,
                status=current,
                requested=status,
            )
        now = self.clock()
        stored.record = attrs.evolve(
            stored.record,
            status=status,
            snapshot_version=stored.record.snapshot_version + COMMAND_VERSION_STEP,
            updated_at=now,
            completed_at=now if status.terminal else stored.record.completed_at,
        )
        if status.terminal:
            stored.timers, stored.subscriptions, stored.inbox = {}, (), []
            self._notify_parent(stored.record)
        if history_kind is not None:
            stored.history.append(
                HistoryEntry(
                    instance_id=instance_id,
                    seq=len(stored.history) + 1,
                    task_ref="",
                    kind=history_kind,
                    at=now,
                    details={},
                )
            )
        return stored.record

    async def find(self, instance_id: uuid.UUID) -> InstanceRecord | None:
        """The stored record, None when there is none."""
        await trio.lowlevel.checkpoint()
        stored = self.instances.get(instance_id)
        return None if stored is None else stored.record

    async def cancel_instance(
        self,
        instance_id: uuid.UUID,
        *,
        allowed_from: Collection[InstanceStatus],
        history_kind: str | None = None,
    ) -> tuple[InstanceRecord, tuple[InstanceRecord, ...]]:
        """As ``storage.cancel_instance``: cancelled, with its descendants."""
        record = await self.set_status(
            instance_id,
            InstanceStatus.CANCELLED,
            allowed_from=allowed_from,
            history_kind=history_kind,
        )
        return record, self._cascade([instance_id])

    async def cancel_descendants(
        self, *, parents: Sequence[uuid.UUID] = (), partitions: Collection[int] = ()
    ) -> tuple[InstanceRecord, ...]:
        """As ``storage.cancel_descendants``."""
        await trio.lowlevel.checkpoint()
        roots = list(parents)
        for stored in self.instances.values():
            parent = self.instances.get(stored.record.parent_id or uuid.UUID(int=0))
            if (
                parent is not None
                and not stored.record.terminal
                and parent.record.status is InstanceStatus.CANCELLED
                and parent.record.partition in partitions
            ):
                roots.append(parent.record.instance_id)
        return self._cascade(roots)

    def _cascade(self, roots: Sequence[uuid.UUID]) -> tuple[InstanceRecord, ...]:
        """Cancel every descendant of ``roots`` that has not ended."""
        children: dict[uuid.UUID, list[StoredInstance]] = {}
        for stored in self.instances.values():
            if stored.record.parent_id is not None:
                children.setdefault(stored.record.parent_id, []).append(stored)
        seen: set[uuid.UUID] = set()
        cancelled: list[InstanceRecord] = []
        queue = list(roots)
        now = self.clock()
        while queue:
            for stored in children.get(queue.pop(), []):
                record = stored.record
                if record.instance_id in seen:
                    continue
                seen.add(record.instance_id)
                queue.append(record.instance_id)
                if record.terminal:
                    continue
                stored.record = attrs.evolve(
                    record,
                    status=InstanceStatus.CANCELLED,
                    snapshot_version=record.snapshot_version + COMMAND_VERSION_STEP,
                    updated_at=now,
                    completed_at=now,
                )
                stored.timers, stored.subscriptions, stored.inbox = {}, (), []
                stored.history.append(
                    HistoryEntry(
                        instance_id=record.instance_id,
                        seq=len(stored.history) + 1,
                        task_ref="",
                        kind="workflow.cancelled",
                        at=now,
                        details={
                            "reason": "its parent workflow instance was cancelled",
                            "parentId": str(record.parent_id),
                        },
                    )
                )
                cancelled.append(stored.record)
        return tuple(sorted(cancelled, key=lambda r: r.instance_id))

    async def notify_wake(self, instance_ids: Sequence[uuid.UUID]) -> None:
        """Recorded in ``wakes`` (no other replica listens here)."""
        await trio.lowlevel.checkpoint()
        self.wakes.extend(instance_ids)

    def _stored(self, instance_id: uuid.UUID) -> StoredInstance:
        stored = self.instances.get(instance_id)
        if stored is None:
            raise InstanceNotFound(
                f"workflow instance {instance_id} not found", instance_id=instance_id
            )
        return stored

    # -- the snapshot sink ----------------------------------------------------------------

    async def write(self, snapshot: InstanceSnapshot) -> None:
        """Apply ``snapshot`` as the ``SnapshotWriter``'s statement does, or raise its error."""
        await trio.lowlevel.checkpoint()
        check_snapshot(snapshot)  # what PostgreSQL cannot store fails as with the writer
        epoch = snapshot.lease_epoch
        if epoch is None:
            epoch = self.epoch_of(snapshot.partition)
        if epoch is None:
            raise lease_lost(snapshot, self.owner_id, "this replica holds no lease on it")
        stored = self.instances.get(snapshot.instance_id)
        lease = self._leases.get(stored.record.partition) if stored is not None else None
        if (
            stored is None
            or lease is None
            or stored.record.partition != snapshot.partition
            or lease.owner_id != self.owner_id
            or lease.epoch != epoch
            or not lease.live
            or stored.record.snapshot_version >= snapshot.snapshot_version
            or stored.record.terminal
        ):
            row = None
            if stored is not None and lease is not None:
                row = {
                    "partition": stored.record.partition,
                    "snapshot_version": stored.record.snapshot_version,
                    "status": stored.record.status,
                    "owner_id": lease.owner_id,
                    "epoch": lease.epoch,
                    "live": lease.live,
                }
            error = diagnose(snapshot, epoch, self.owner_id, row)
            if error is not None:
                raise error
            return  # a retried write of the stored version
        self._apply(stored, snapshot, epoch)

    def _apply(self, stored: StoredInstance, snapshot: InstanceSnapshot, epoch: int) -> None:
        self.writes.append(snapshot)
        record = stored.record
        stored.record = attrs.evolve(
            record,
            status=snapshot.status,
            snapshot_version=snapshot.snapshot_version,
            output=_copy(snapshot.output),
            error=_copy(snapshot.error),
            context=_copy(snapshot.context) if snapshot.context is not None else {},
            started_at=snapshot.started_at or record.started_at,
            completed_at=snapshot.completed_at or record.completed_at,
            lease_owner=self.owner_id,
            lease_epoch=epoch,
            updated_at=self.clock(),
        )
        stored.snapshot = _copy(snapshot.snapshot)
        for row in snapshot.history:
            stored.history.append(
                HistoryEntry(
                    instance_id=record.instance_id,
                    seq=len(stored.history) + 1,
                    task_ref=row.task_ref,
                    kind=row.kind,
                    at=row.at,
                    details=_copy(row.details),
                )
            )
        if snapshot.subscriptions is not None:
            stored.subscriptions = tuple(
                attrs.evolve(s, attributes=_copy(s.attributes)) for s in snapshot.subscriptions
            )
        stored.inbox = [e for e in stored.inbox if e.seq > snapshot.inbox_through]
        for event in snapshot.outgoing:
            if event.destination == "events":
                self.events.append(json.loads(event.body))
            else:
                self.outbox.append((record.instance_id, event))
        if snapshot.timers is not None:
            stored.timers = {t.timer_key: t for t in snapshot.timers}
        for child in snapshot.children:
            if child.child_id not in self.instances:
                self.create(
                    child.definition_id,
                    child.definition_version,
                    child.input,
                    instance_id=child.child_id,
                    parent_id=record.instance_id,
                    parent_awaits=child.awaited,
                    subflow_depth=child.depth,
                )
        if snapshot.status.terminal:
            self._notify_parent(stored.record)
