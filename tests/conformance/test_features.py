"""Runs our own feature files (listen, wait, retries, timeouts, correlation, lifecycle, ...).

They run fully in memory under a virtual clock (``MockClock`` with autojump), HTTP answered by
the scenario's scripted endpoints and then the same petstore/httpbin stub the CTK uses.
Scenarios tagged ``@real-time`` talk to real servers the scenario starts (a gRPC server, ...),
so they run on the real clock: a virtual clock would jump past a deadline while real I/O is
in flight; so do the container features and call-mcp (real processes and local servers).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio.testing

import tests.conformance.grpc_steps
import tests.conformance.mcp_steps  # noqa: F401 (registers the steps of call-mcp.feature)
from tests.conformance.gherkin import Scenario, parse_feature
from tests.conformance.steps import REAL_TIME_FEATURES, World, run_scenario
from tests.conformance.stub import stub_response
from tests.support.mcp_hosting import SSE_GENERATOR_WARNINGS

FEATURES = Path(__file__).parent / "features"
SCENARIOS = [s for path in sorted(FEATURES.glob("*.feature")) for s in parse_feature(path)]
#: Marks of the scenarios of a feature, by file stem.
MARKS = {"call-mcp": (pytest.mark.filterwarnings(SSE_GENERATOR_WARNINGS),)}


def test_enough_scenarios() -> None:
    """Our own feature files keep at least 30 scenarios."""
    assert len(SCENARIOS) >= 30


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(s, id=f"{s.path.stem}: {s.name}", marks=MARKS.get(s.path.stem, ()))
        for s in SCENARIOS
    ],
)
def test_feature_scenario(scenario: Scenario, request: pytest.FixtureRequest) -> None:
    """The scenario passes in memory under the virtual clock (real processes and real local
    servers: the real one)."""
    world = World(http=stub_response)
    real_time = (
        "real-time" in scenario.tags
        or scenario.path.stem in REAL_TIME_FEATURES
        or scenario.path.stem == "call-mcp"
    )
    if scenario.path.stem in REAL_TIME_FEATURES:
        world.container_environment = request.getfixturevalue("podman").environment
    clock = None if real_time else trio.testing.MockClock(autojump_threshold=0.1)
    run_scenario(scenario, world, clock=clock)
