"""``InMemoryInstanceStore`` passes the snapshot sink contract the ``SnapshotWriter`` passes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest

from tests.support.snapshot_contract import OpenHarness, SnapshotSinkContract, Stored
from workflow_orchestrator.instances.testing import InMemoryInstanceStore
from workflow_orchestrator.storage.instances import (
    INSTANCE_STATUSES,
    InstanceRecord,
    InstanceStatus,
)


@attrs.define(eq=False)
class MemoryHarness:
    """The contract's harness on an in-memory store."""

    store: InMemoryInstanceStore = attrs.field(factory=InMemoryInstanceStore)

    @property
    def sink(self) -> InMemoryInstanceStore:
        return self.store

    async def create(self) -> InstanceRecord:
        return self.store.create("order_processing")

    async def stored(self, instance_id: uuid.UUID) -> Stored:
        stored = self.store.stored(instance_id)
        record = stored.record
        return Stored(
            status=record.status,
            version=record.snapshot_version,
            snapshot=stored.snapshot,
            output=record.output,
            context=record.context,
            started_at=record.started_at,
            completed_at=record.completed_at,
            lease_owner=record.lease_owner,
            lease_epoch=record.lease_epoch,
            history=[(h.seq, h.kind, h.task_ref) for h in stored.history],
            subscriptions=[
                (s.filter_index, s.task_ref, s.event_type, s.shape_id, s.corr_key, s.attributes)
                for s in stored.subscriptions
            ],
            timers={k: (t.kind, t.due_at) for k, t in stored.timers.items()},
            inbox=[e.seq for e in stored.inbox],
            outbox=[
                (o.destination, o.routing_key, o.event_id)
                for i, o in self.store.outbox
                if i == instance_id
            ],
            events=[e["id"] for e in self.store.events],
        )

    async def record(self, instance_id: uuid.UUID) -> InstanceRecord:
        return self.store.stored(instance_id).record

    async def inbox(self, instance_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
        return [(e.key, e.event) for e in self.store.stored(instance_id).inbox]

    async def deliver(self, instance_id: uuid.UUID, event_id: str) -> int:
        return self.store.deliver(instance_id, {"id": event_id, "source": "s", "type": "t"})

    async def take_over(self, partition: int) -> None:
        self.store.take_over(partition)

    async def reacquire(self) -> None:
        for partition in range(self.store.partition_count):
            self.store.reacquire(partition)

    async def expire(self, partition: int) -> None:
        self.store.expire(partition)

    async def command(self, instance_id: uuid.UUID, status: InstanceStatus) -> InstanceRecord:
        return await self.store.set_status(
            instance_id,
            status,
            allowed_from=[s for s in INSTANCE_STATUSES if not s.terminal],
            history_kind=f"workflow.{status}",
        )


@asynccontextmanager
async def open_memory_harness() -> AsyncIterator[MemoryHarness]:
    yield MemoryHarness()


@pytest.fixture
def open_harness() -> OpenHarness:
    """Opens a contract harness on a fresh in-memory store."""
    return open_memory_harness


class TestInMemoryStoreContract(SnapshotSinkContract):
    """The snapshot sink contract on ``InMemoryInstanceStore``."""


async def test_load_gives_the_inbox_only_while_not_terminal() -> None:
    """``load`` returns the snapshot and the unconsumed inbox; a terminal instance's inbox is
    not loaded (nothing consumes it)."""
    store = InMemoryInstanceStore()
    record = store.create("d", input={"a": 1})
    store.deliver(record.instance_id, {"id": "e1", "source": "s", "type": "t"})
    waiting = await store.load(record.instance_id)
    store.stored(record.instance_id).record = attrs.evolve(record, status="completed")
    ended = await store.load(record.instance_id)
    assert waiting.has_inbox and [e.event["id"] for e in waiting.inbox] == ["e1"]
    assert waiting.record.input == {"a": 1}
    assert not ended.has_inbox and ended.inbox == ()


async def test_shapes_are_registered_once() -> None:
    """A shape gets one id on first use; no correlation is shape 0."""
    store = InMemoryInstanceStore()
    first = await store.shape_id("t", (("orderId", ".data.id"),))
    again = await store.shape_id("t", (("orderId", ".data.id"),))
    other = await store.shape_id("u", (("orderId", ".data.id"),))
    assert first == again == 1 and other == 2
    assert await store.shape_id("t", ()) == 0
