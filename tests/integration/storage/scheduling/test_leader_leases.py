"""Leader leases as the election sees them: grants raise the epoch, and the fence follows it."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.support.database import open_test_database
from workflow_orchestrator.storage import Database
from workflow_orchestrator.storage.scheduling import (
    LeaderGrant,
    LeaderObservation,
    acquire_leadership,
    check_fence,
    release_leadership,
    renew_leadership,
)

pytestmark = pytest.mark.integration

ROLE = "test-role"  # not created by the migrations: the first grant creates its row


async def fenced_write(database: Database, leader_id: str, epoch: int) -> bool:
    """``check_fence`` as the first statement of a (rolled back) write."""

    async def work(connection: Any) -> bool:
        async with connection.transaction():
            return await check_fence(connection, ROLE, leader_id, epoch, idle_timeout=5)

    return await database.run(work)


async def test_a_grant_is_exclusive_until_released(database_url: str) -> None:
    """The first candidate is granted epoch 1; another sees it; after release it gets epoch 2."""
    with trio.fail_after(30):
        async with open_test_database(database_url) as database:
            granted = await acquire_leadership(database, ROLE, "a", 60)
            assert isinstance(granted, LeaderGrant) and granted.epoch == 1
            seen = await acquire_leadership(database, ROLE, "b", 60)
            assert isinstance(seen, LeaderObservation)
            assert (seen.leader_id, seen.epoch) == ("a", 1)
            assert seen.remaining is not None and 0 < seen.remaining <= 60
            assert await renew_leadership(database, ROLE, "a", 1, 60) is True
            assert await renew_leadership(database, ROLE, "b", 1, 60) is False
            assert await fenced_write(database, "a", 1) is True
            await release_leadership(database, ROLE, "a", 1)
            taken = await acquire_leadership(database, ROLE, "b", 60)
            assert isinstance(taken, LeaderGrant) and taken.epoch == 2
            assert await fenced_write(database, "a", 1) is False
            assert await fenced_write(database, "b", 2) is True
            assert await renew_leadership(database, ROLE, "a", 1, 60) is False


async def test_an_expired_lease_is_granted_again_under_a_new_epoch(database_url: str) -> None:
    """Once expired, a lease cannot be renewed; its holder is granted it again, epoch + 1."""
    with trio.fail_after(30):
        async with open_test_database(database_url) as database:
            await acquire_leadership(database, ROLE, "a", 60)
            await database.execute(
                "UPDATE leader_leases SET expires_at = now() - interval '1 second' WHERE role = $1",
                ROLE,
            )
            assert await renew_leadership(database, ROLE, "a", 1, 60) is False
            assert await fenced_write(database, "a", 1) is False
            again = await acquire_leadership(database, ROLE, "a", 60)
            assert isinstance(again, LeaderGrant) and again.epoch == 2
