"""Fixtures for the actor runtime tests: a leak-checked actor system per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from workflow_orchestrator.actors import ActorSystem
from workflow_orchestrator.actors.testing import open_checked_actor_system


@pytest.fixture
async def system() -> AsyncIterator[ActorSystem]:
    """An actor system that fails the test if it leaks tasks or mailboxes on shutdown."""
    async with open_checked_actor_system(seed=0) as system:
        yield system
