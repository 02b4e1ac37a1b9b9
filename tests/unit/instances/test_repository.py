"""The instance repository port: ``InMemoryInstanceStore`` passes the contract that
``DatabaseInstanceRepository`` passes on PostgreSQL (``tests/integration/instances``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import pytest

from tests.support.repository_contract import InstanceRepositoryContract, OpenHarness, document
from workflow_orchestrator.instances.testing import InMemoryInstanceStore


@attrs.define(eq=False)
class MemoryRepositoryHarness:
    """The repository contract's harness on an in-memory store."""

    store: InMemoryInstanceStore = attrs.field(factory=InMemoryInstanceStore)

    @property
    def repository(self) -> InMemoryInstanceStore:
        return self.store

    @property
    def definitions(self) -> InMemoryInstanceStore:
        return self.store

    async def register(self, definition_id: str, version: str) -> None:
        self.store.register(definition_id, version, document(definition_id, version))

    async def delete(self, definition_id: str) -> None:
        self.store.delete_definition(definition_id)

    async def deliver(self, instance_id: uuid.UUID, event_id: str) -> None:
        self.store.deliver(instance_id, {"id": event_id, "source": "s", "type": "t"})

    async def history(self, instance_id: uuid.UUID) -> list[str]:
        return [h.kind for h in self.store.stored(instance_id).history]

    async def woken(self, count: int) -> list[uuid.UUID]:
        return self.store.wakes[:count]

    async def create_child(
        self, parent_id: uuid.UUID, *, awaited: bool = True, number: int = 1
    ) -> uuid.UUID:
        child_id = uuid.uuid5(parent_id, str(number))
        self.store.create(
            "orders",
            "1.0.0",
            {},
            instance_id=child_id,
            parent_id=parent_id,
            parent_awaits=awaited,
            subflow_depth=1,
        )
        return child_id


@asynccontextmanager
async def open_memory_repository() -> AsyncIterator[MemoryRepositoryHarness]:
    yield MemoryRepositoryHarness()


@pytest.fixture
def open_harness() -> OpenHarness:
    """Opens a repository contract harness on a new in-memory store."""
    return open_memory_repository


class TestInMemoryRepositoryContract(InstanceRepositoryContract):
    """The instance repository contract on ``InMemoryInstanceStore``."""
