"""Test helpers for code built on the instances part (as ``trio.testing`` is for Trio).

``InMemoryInstanceStore`` is an instance store in memory: a snapshot sink that applies a
snapshot exactly as the ``SnapshotWriter``'s statement does (fencing by partition lease and
epoch, versions that must grow, history numbered per instance, subscriptions, timers, inbox,
outbox and events tables), with the same errors and messages; it passes the same contract
tests (``tests/support/snapshot_contract.py``). It also loads instances (with their inbox)
and registers subscription shapes, so an ``InstancePorts`` made with it runs instances with
no database.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

import attrs
import trio

from workflow_orchestrator.instances._ports import utc_now
from workflow_orchestrator.storage import InstanceNotFound
from workflow_orchestrator.storage.instances import (
    DEFAULT_PARTITION_COUNT,
    HistoryEntry,
    InboxEvent,
    InstanceRecord,
    InstanceSnapshot,
    InstanceStatus,
    OutgoingEvent,
    RecoverableInstance,
    SubscriptionRow,
    TimerRow,
    partition_of,
)
from workflow_orchestrator.storage.instances._snapshot_outcomes import diagnose, lease_lost

__all__ = ["InMemoryInstanceStore", "StoredInstance"]


def _copy(value: Any) -> Any:
    """``value`` as the database gives it back: through JSON (which also refuses what the
    database would)."""
    return None if value is None else json.loads(json.dumps(value, separators=(",", ":")))


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
    otherwise (``take_over``, ``reacquire``, ``expire``). ``epoch_of`` is that replica's view
    of its leases, as ``PartitionLeases.epoch_of``: another owner taking a partition over does
    not change it, so the write is fenced by the lease itself, as in the database.
    """

    owner_id: str = "replica-a"
    partition_count: int = DEFAULT_PARTITION_COUNT
    clock: Callable[[], datetime] = utc_now
    instances: dict[uuid.UUID, StoredInstance] = attrs.field(factory=dict, init=False)
    outbox: list[tuple[uuid.UUID, OutgoingEvent]] = attrs.field(factory=list, init=False)
    events: list[dict[str, Any]] = attrs.field(factory=list, init=False)
    writes: list[InstanceSnapshot] = attrs.field(factory=list, init=False)
    _leases: dict[int, _Lease] = attrs.field(factory=dict, init=False)
    _view: dict[int, int] = attrs.field(factory=dict, init=False)
    _shapes: dict[tuple[str, tuple[tuple[str, str], ...]], int] = attrs.field(
        factory=dict, init=False
    )
    _inbox_seq: int = attrs.field(default=0, init=False)

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

    # -- instances ------------------------------------------------------------------------

    def create(
        self,
        definition_id: str,
        version: str = "1.0.0",
        input: Any = None,
        *,
        instance_id: uuid.UUID | None = None,
    ) -> InstanceRecord:
        """A new pending instance (as ``create_instance`` makes it)."""
        instance_id = instance_id or uuid.uuid4()
        now = self.clock()
        record = InstanceRecord(
            instance_id=instance_id,
            definition_id=definition_id,
            definition_version=version,
            status=InstanceStatus.PENDING,
            business_key=None,
            idempotency_key=None,
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
        )
        self.instances[instance_id] = StoredInstance(record=record)
        return record

    def deliver(self, instance_id: uuid.UUID, event: dict[str, Any]) -> int:
        """Put ``event`` in the instance's inbox (as the router does); returns its seq."""
        self._inbox_seq += 1
        self._stored(instance_id).inbox.append(InboxEvent(seq=self._inbox_seq, event=_copy(event)))
        return self._inbox_seq

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
        ):
            row = None
            if stored is not None and lease is not None:
                row = {
                    "partition": stored.record.partition,
                    "snapshot_version": stored.record.snapshot_version,
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
