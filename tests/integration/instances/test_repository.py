"""The instance repository port on PostgreSQL: ``DatabaseInstanceRepository`` passes the
contract that ``InMemoryInstanceStore`` passes (``tests/unit/instances``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import attrs
import pytest
import trio

from tests.integration.storage.helpers import open_storage
from tests.support.repository_contract import InstanceRepositoryContract, OpenHarness, document
from workflow_orchestrator.instances import DatabaseInstanceRepository
from workflow_orchestrator.storage import Database, NotificationListener
from workflow_orchestrator.storage.definitions import delete_definition, register_definition
from workflow_orchestrator.storage.events import WAKE_CHANNEL
from workflow_orchestrator.storage.instances import instance_history, partition_of

pytestmark = pytest.mark.integration


@attrs.define(eq=False)
class DatabaseRepositoryHarness:
    """The contract's harness on ``DatabaseInstanceRepository``, with a LISTEN on the wake
    channel standing for the other replicas."""

    database: Database
    repository: DatabaseInstanceRepository
    notified: list[uuid.UUID] = attrs.field(factory=list)
    arrived: trio.Event = attrs.field(factory=trio.Event)

    @property
    def definitions(self) -> DatabaseInstanceRepository:
        return self.repository

    def on_payload(self, payload: str) -> None:
        self.notified.extend(uuid.UUID(i) for i in payload.split(","))
        self.arrived.set()
        self.arrived = trio.Event()

    async def register(self, definition_id: str, version: str) -> None:
        body = document(definition_id, version)
        await register_definition(
            self.database,
            definition_id=definition_id,
            version=version,
            namespace="shop",
            name=definition_id,
            document=body,
            source_text=repr(body),
        )

    async def delete(self, definition_id: str) -> None:
        await delete_definition(self.database, definition_id)

    async def deliver(self, instance_id: uuid.UUID, event_id: str) -> None:
        await self.database.execute(
            "INSERT INTO instance_inbox (instance_id, event_key, event) VALUES ($1, $2, $3)",
            instance_id,
            f"s#{event_id}",
            {"id": event_id, "source": "s", "type": "t"},
        )

    async def history(self, instance_id: uuid.UUID) -> list[str]:
        return [h.kind for h in await instance_history(self.database, instance_id)]

    async def create_child(
        self, parent_id: uuid.UUID, *, awaited: bool = True, number: int = 1
    ) -> uuid.UUID:
        child_id = uuid.uuid5(parent_id, str(number))
        await self.database.execute(
            "INSERT INTO workflow_instances (instance_id, definition_id, definition_version, "
            "status, partition, parent_id, parent_awaits, subflow_depth) "
            "VALUES ($1, 'orders', '1.0.0', 'pending', $2, $3, $4, 1)",
            child_id,
            partition_of(child_id),
            parent_id,
            awaited,
        )
        return child_id

    async def woken(self, count: int) -> list[uuid.UUID]:
        while len(self.notified) < count:
            await self.arrived.wait()
        return self.notified[:count]


@asynccontextmanager
async def open_database_repository(url: str) -> AsyncIterator[DatabaseRepositoryHarness]:
    async with open_storage(url) as database, trio.open_nursery() as nursery:
        harness = DatabaseRepositoryHarness(
            database=database, repository=DatabaseInstanceRepository(database=database)
        )
        listener = NotificationListener(
            database=database, channel=WAKE_CHANNEL, on_payload=harness.on_payload
        )
        await nursery.start(listener.run)
        yield harness
        nursery.cancel_scope.cancel()


@pytest.fixture
def open_harness(database_url: str) -> OpenHarness:
    """Opens a repository contract harness on the test's database."""
    return partial(open_database_repository, database_url)


class TestDatabaseRepositoryContract(InstanceRepositoryContract):
    """The instance repository contract on ``DatabaseInstanceRepository`` and PostgreSQL."""
