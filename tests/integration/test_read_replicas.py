"""Read replicas: reads go to them in turn and fall back to the primary when they fail."""

from __future__ import annotations

import pytest
import trio

from tests.support.services import create_database, drop_database, psql, url_for
from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import DatabaseEndpoint, DatabaseSettings
from workflow_orchestrator.storage import open_database

pytestmark = pytest.mark.integration


async def test_reads_use_the_replica_and_fall_back(database_url: str) -> None:
    """PREFER_REPLICA sends reads to the replica; a replica that disappears is not an outage."""
    replica_name = create_database("wo_replica")
    psql("CREATE TABLE marker AS SELECT 'replica' AS side", database_url=url_for(replica_name))
    psql("CREATE TABLE marker AS SELECT 'primary' AS side", database_url=database_url)
    settings = DatabaseSettings(
        url=database_url,
        read_replicas=(DatabaseEndpoint(url=url_for(replica_name)),),
        read_preference="PREFER_REPLICA",
        pool_size=2,
    )
    try:
        with trio.fail_after(60):
            async with open_asyncio_bridge(), open_database(settings) as database:
                assert await database.fetchval("SELECT side FROM marker", read_only=True) == (
                    "replica"
                )
                assert await database.fetchval("SELECT side FROM marker") == "primary"
                assert set(database.all_statistics()) == {"primary", "replica-0"}
                drop_database(replica_name)
                assert await database.fetchval("SELECT side FROM marker", read_only=True) == (
                    "primary"
                )
    finally:
        drop_database(replica_name)
