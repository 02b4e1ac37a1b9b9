"""Runs our own feature files (listen, wait, retries, timeouts, correlation, lifecycle, ...).

They run fully in memory under a virtual clock (``MockClock`` with autojump), HTTP answered by
the scenario's scripted endpoints and then the same petstore/httpbin stub the CTK uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio.testing

from tests.conformance.gherkin import Scenario, parse_feature
from tests.conformance.steps import World, run_scenario
from tests.conformance.stub import stub_response

FEATURES = Path(__file__).parent / "features"
SCENARIOS = [s for path in sorted(FEATURES.glob("*.feature")) for s in parse_feature(path)]


def test_enough_scenarios() -> None:
    """Our own feature files keep at least 30 scenarios."""
    assert len(SCENARIOS) >= 30


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"{s.path.stem}: {s.name}" for s in SCENARIOS])
def test_feature_scenario(scenario: Scenario) -> None:
    """The scenario passes in memory under the virtual clock."""
    world = World(http=stub_response)
    run_scenario(scenario, world, clock=trio.testing.MockClock(autojump_threshold=0.1))
