"""Resumability: stopping at any checkpoint and resuming in a fresh interpreter changes nothing.

For every CTK scenario and every scenario of our own feature files, the workflow runs once with
a snapshot (JSON round trip) at every checkpoint. Then, for each snapshot, a new interpreter and
new in-memory effects (clock set to the snapshot's time, the world advanced to what it had seen)
resume from it. The resumed run must end with the same status, output and error, and the effect
log of the first run up to the snapshot plus the resumed run's log must equal the first run's
log once repeats of the same step (same identity: event id, idempotency key) are dropped: the
at-least-once contract. ``fork`` with ``compete`` picks a winner by timing, so those scenarios
check their Then steps instead of exact equality. The features of calls beyond HTTP
(``call-*.feature``) reach their real local servers through the real adapters in every run
(opened by their Given steps) and run under the real clock, as in ``test_features``; their
logs are compared without their times, which differ from run to run.
"""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tests.conformance.conftest import CTK_FEATURES
from tests.conformance.gherkin import Scenario, parse_feature
from tests.conformance.steps import REAL_TIME_FEATURES, World, apply, warm_up
from tests.conformance.stub import stub_response
from tests.conformance.test_features import MARKS
from workflow_orchestrator.adapters import open_expression_engine
from workflow_orchestrator.dsl.errors import WorkflowError
from workflow_orchestrator.dsl.expressions import ExpressionEngine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import (
    CloudEvent,
    EffectRecord,
    HttpRequest,
    InMemoryEffects,
    Interpreter,
    ServiceAdapters,
    SubflowRequest,
    WorkflowResult,
)
from workflow_orchestrator.dsl.runtime._memory import DEFAULT_START

OWN_FEATURES = Path(__file__).parent / "features"
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def _scenarios() -> list[Scenario]:
    paths = sorted(OWN_FEATURES.glob("*.feature"))
    if CTK_FEATURES.is_dir():
        paths = sorted(CTK_FEATURES.glob("*.feature")) + paths
    # Real containers are not replayed under the virtual clock; a container task executed
    # again takes its container over (tests/integration/adapters/test_containers.py).
    paths = [p for p in paths if p.stem not in REAL_TIME_FEATURES]
    return [s for path in paths for s in parse_feature(path)]


SCENARIOS = _scenarios()


def _dedupe(log: list[EffectRecord]) -> list[tuple[str, str, Any, str]]:
    seen: set[tuple[str, str]] = set()
    out = []
    for record in log:
        if (record.kind, record.identity) in seen:
            continue
        seen.add((record.kind, record.identity))
        out.append((record.kind, record.identity, record.data, record.at))
    return out


def _effects(
    world: World, engine: ExpressionEngine, start: Any, seen: list[EffectRecord]
) -> InMemoryEffects:
    """Effects for a run starting at ``start`` in a world that already saw ``seen``."""
    handler = world.route_handler(stub_response)
    for record in seen:
        if record.kind == "http" and handler is not None:
            handler(HttpRequest(method=record.data["method"], url=record.data["url"]))
    offset = (start - DEFAULT_START).total_seconds()
    events = [(delay - offset, event) for delay, event in world.events]
    for record in seen:
        if record.kind == "emit":
            at = (trio_iso(record.at) - start).total_seconds()
            events.append((at, CloudEvent(attributes=record.data)))

    async def run_subflow(request: SubflowRequest) -> Any:
        key = f"{request.namespace}/{request.name}:{request.version}"
        child = Interpreter(load_workflow(world.subflows[key]), engine)
        result = await child.start(InMemoryEffects(start=effects.now()), request.input)
        if result.error is not None:
            raise WorkflowError(result.error)
        return result.output

    effects = InMemoryEffects(
        start=start,
        http=handler,
        secrets=world.secrets,
        events=events,
        subflows=run_subflow,
        services=ServiceAdapters(callers=world.services),
        record_snapshots=True,
    )
    return effects


def _untimed(value: Any) -> Any:
    """``value`` with every timestamp text replaced by ``<time>``."""
    if isinstance(value, str):
        return _TIME.sub("<time>", value)
    if isinstance(value, dict):
        return {key: _untimed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_untimed(item) for item in value)
    return value


def trio_iso(text: str) -> Any:
    """Parse the ISO time of an effect record."""
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _task_keys(log: list[EffectRecord], kind: str) -> set[str]:
    """Execution keys of the tasks with lifecycle events of ``kind`` in ``log``."""
    suffix = "@" + kind
    return {
        r.identity.split("#", 1)[1].removesuffix(suffix)
        for r in log
        if r.kind == "lifecycle" and r.identity.endswith(suffix)
    }


def _given(scenario: Scenario) -> World:
    world = World()
    for item in scenario.steps:
        if item.keyword == "Given":
            apply(world, item)
    return world


async def _run(
    world: World, engine: ExpressionEngine, effects: InMemoryEffects, state: Any = None
) -> WorkflowResult:
    assert world.definition is not None
    interpreter = Interpreter(load_workflow(world.definition, world.validation), engine)
    with trio.fail_after(10**7):
        if state is None:
            return await interpreter.start(effects, world.input)
        return await interpreter.resume(effects, state)


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(s, id=f"{s.path.stem}: {s.name}", marks=MARKS.get(s.path.stem, ()))
        for s in SCENARIOS
    ],
)
def test_resume_from_every_checkpoint(scenario: Scenario) -> None:
    """Resuming from each checkpoint gives the same result and the same deduplicated log."""
    world = _given(scenario)
    competing = "compete: true" in str(world.definition) or "'compete': True" in str(
        world.definition
    )

    concurrent = "fork" in str(world.definition)
    real_time = scenario.path.stem.startswith("call-")
    checked: list[int] = []

    async def main() -> None:
        async with open_expression_engine() as engine, AsyncExitStack() as resources:
            await warm_up(engine)
            for setup in world.setups:
                await setup(world, resources)
            first = _effects(world, engine, DEFAULT_START, [])
            expected = await _run(world, engine, first)
            assert first.snapshots, "the run took no checkpoint"
            for index, snapshot in enumerate(first.snapshots):
                seen = first.log[: first.snapshot_log_sizes[index]]
                effects = _effects(world, engine, first.snapshot_times[index], seen)
                resumed = await _run(world, engine, effects, snapshot)
                where = f"resumed from checkpoint {index} of {len(first.snapshots)}"
                assert resumed.status == expected.status, where
                if competing:
                    continue
                assert resumed.output == expected.output, where
                assert resumed.error == expected.error, where
                actual, wanted = _dedupe(seen + effects.log), _dedupe(first.log)
                if real_time:
                    actual, wanted = _untimed(actual), _untimed(wanted)
                if concurrent:
                    # Branches interleave in scheduling order, which trio randomizes.
                    actual, wanted = sorted(actual, key=repr), sorted(wanted, key=repr)
                assert actual == wanted, where
                completed = _task_keys(seen, "task.completed")
                rerun = completed & _task_keys(effects.log, "task.started")
                assert not rerun, f"{where}: completed tasks ran again: {sorted(rerun)}"
            checked.append(len(first.snapshots))

    trio.run(main, clock=None if real_time else trio.testing.MockClock(autojump_threshold=0.1))
    assert checked, "no snapshot was resumed"
