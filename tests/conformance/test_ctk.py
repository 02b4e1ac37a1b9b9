"""Runs every scenario of the CTK feature files through the service's HTTP client and a stub."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import pytest

from tests.conformance.conftest import CTK_FEATURES, require_ctk
from tests.conformance.gherkin import Scenario, parse_feature
from tests.conformance.steps import World, run_scenario
from workflow_orchestrator.adapters import PooledHttpClient
from workflow_orchestrator.config import OutboundSettings
from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse
from workflow_orchestrator.security import OutboundPolicy

# The CTK's hosts are mapped to a stub on loopback, which the default policy refuses.
LOOPBACK_STUBS = OutboundPolicy.from_settings(OutboundSettings(allow=("127.0.0.0/8", "::1")))


def ctk_scenarios() -> list[Scenario]:
    """Every scenario of the CTK, in file order (empty if the CTK is absent)."""
    if not CTK_FEATURES.is_dir():
        return []
    return [s for path in sorted(CTK_FEATURES.glob("*.feature")) for s in parse_feature(path)]


SCENARIOS = ctk_scenarios()


def test_ctk_is_present() -> None:
    """The CTK folder exists (fails in CI, skips elsewhere, when it does not)."""
    require_ctk()
    assert len(SCENARIOS) >= 21


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"{s.path.stem}: {s.name}" for s in SCENARIOS])
def test_ctk_scenario(scenario: Scenario, stub_hosts: Mapping[str, str]) -> None:
    """The scenario passes with HTTP going through the service's client to the local stub."""

    @asynccontextmanager
    async def open_http() -> AsyncIterator[Callable[[HttpRequest], Awaitable[HttpResponse]]]:
        async with PooledHttpClient(
            host_map=stub_hosts, default_timeout=10, policy=LOOPBACK_STUBS
        ) as client:
            yield client.http

    run_scenario(scenario, World(), clock=None, open_http=open_http)
