"""A test's own database, opened behind the one trio-asyncio loop (migrated by default)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import DatabaseSettings
from workflow_orchestrator.gateway import create_api_app
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.storage import Database, migrate, open_database


@asynccontextmanager
async def open_test_database(
    url: str, *, pool_size: int = 4, migrated: bool = True
) -> AsyncIterator[Database]:
    """``url``'s database with the schema applied (unless ``migrated`` is false)."""
    settings = DatabaseSettings(url=url, pool_size=pool_size)
    async with open_asyncio_bridge(), open_database(settings) as database:
        if migrated:
            await migrate(database)
        yield database


@asynccontextmanager
async def open_api_app(url: str, context_path: str = "/api") -> AsyncIterator[Any]:
    """The API app (definitions routes, no instance runtime) on a migrated database."""
    async with open_test_database(url) as database:
        yield create_api_app(
            database=database,
            metrics=ServiceMetrics(),
            metrics_enabled=True,
            context_path=context_path,
        )
