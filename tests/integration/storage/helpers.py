"""Shared set-up for the storage integration tests: a migrated database and sample data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.support.database import open_test_database
from workflow_orchestrator.storage import Database
from workflow_orchestrator.storage.definitions import RegistrationResult, register_definition


@asynccontextmanager
async def open_storage(url: str, *, pool_size: int = 4) -> AsyncIterator[Database]:
    """The test's own database, migrated, behind the one trio-asyncio loop."""
    async with open_test_database(url, pool_size=pool_size) as database:
        yield database


def sample_document(name: str = "order_processing", version: str = "1.0.0") -> dict[str, Any]:
    return {
        "document": {"dsl": "1.0.3", "namespace": "shop", "name": name, "version": version},
        "do": [{"greet": {"set": {"hello": "world"}}}],
    }


async def register_sample(
    database: Database, definition_id: str = "order_processing", version: str = "1.0.0"
) -> RegistrationResult:
    document = sample_document(definition_id, version)
    return await register_definition(
        database,
        definition_id=definition_id,
        version=version,
        namespace="shop",
        name=definition_id,
        document=document,
        source_text=repr(document),
    )
