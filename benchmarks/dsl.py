"""DSL engine benchmark: interpreter tasks/s, snapshot size and serialize/restore time.

Run: ``.venv/bin/python benchmarks/dsl.py [--seconds 3]``. The workflow is 20 tasks of
``set``/``switch``/``for`` (the ``for`` runs 2 iterations of 2 tasks, counted as executed
tasks); it runs in memory under a virtual clock with lifecycle events on and off. It also
prints jq evaluations per second through the engine's public API: a plain path (the fast path
that skips jq) and arithmetic (full jq, in process).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import trio
import trio.testing

from workflow_orchestrator.adapters import open_expression_engine
from workflow_orchestrator.dsl import (
    ExecutionState,
    InMemoryEffects,
    Interpreter,
    RuntimeOptions,
    load_workflow,
)

TASKS: list[dict[str, Any]] = []
for i in range(6):
    TASKS.append(
        {f"set{i}": {"set": {"n": f"${{ .n + {i} }}", "tag": f"t{i}", "items": "${ .items }"}}}
    )
TASKS.append(
    {
        "route": {
            "switch": [
                {"big": {"when": "${ .n > 100 }", "then": "continue"}},
                {"small": {"then": "continue"}},
            ]
        }
    }
)
TASKS.append(
    {
        "loop": {
            "for": {"each": "item", "in": "${ .items }"},
            "do": [
                {"add": {"set": {"n": "${ .n + 1 }", "items": "${ .items }"}}},
                {"mark": {"set": {"n": "${ .n }", "items": "${ .items }", "last": "${ .n }"}}},
            ],
        }
    }
)
for i in range(8):
    TASKS.append({f"more{i}": {"set": {"n": f"${{ .n + {i} }}", "items": "${ .items }"}}})
for i in range(4):
    TASKS.append(
        {
            f"check{i}": {
                "switch": [
                    {"odd": {"when": "${ .n > 0 }", "then": "continue"}},
                    {"other": {"then": "continue"}},
                ]
            }
        }
    )

DEFINITION = {
    "document": {"dsl": "1.0.3", "namespace": "bench", "name": "twenty", "version": "1.0.0"},
    "do": TASKS,
}
TOP_LEVEL = len(TASKS)
EXECUTED_PER_RUN = TOP_LEVEL + 2 * 2  # the for loop's body runs twice, 2 tasks each


async def _measure(seconds: float, lifecycle: bool) -> tuple[float, int]:
    workflow = load_workflow(DEFINITION)
    async with open_expression_engine() as engine:
        interpreter = Interpreter(workflow, engine, RuntimeOptions(lifecycle_events=lifecycle))
        runs = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            effects = InMemoryEffects()
            result = await interpreter.start(effects, {"n": 0, "items": [1, 2]})
            assert result.status == "completed", result.error
            runs += 1
        elapsed = time.perf_counter() - start
    return runs * EXECUTED_PER_RUN / elapsed, runs


async def _snapshot() -> tuple[int, float, float]:
    workflow = load_workflow(DEFINITION)
    async with open_expression_engine() as engine:
        effects = InMemoryEffects(record_snapshots=True)
        await Interpreter(workflow, engine).start(effects, {"n": 0, "items": [1, 2]})
    middle = effects.snapshots[len(effects.snapshots) // 2]
    state = ExecutionState.from_json(middle)
    rounds = 20_000
    start = time.perf_counter()
    for _ in range(rounds):
        text = json.dumps(state.to_json(), separators=(",", ":"))
    serialize = (time.perf_counter() - start) / rounds
    start = time.perf_counter()
    for _ in range(rounds):
        ExecutionState.from_json(json.loads(text))
    restore = (time.perf_counter() - start) / rounds
    return len(text.encode()), serialize, restore


async def _expressions(rounds: int = 50_000) -> tuple[float, float]:
    data = {"order": {"id": "ORD-1", "total": 3}, "n": 1}
    async with open_expression_engine() as engine:
        rates = []
        for source in ("${ .order.id }", "${ .n + .order.total }"):
            compiled = engine.compile(source)
            start = time.perf_counter()
            for _ in range(rounds):
                await engine.evaluate(compiled, data, {})
            rates.append(rounds / (time.perf_counter() - start))
    return rates[0], rates[1]


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    options = parser.parse_args()
    clock = trio.testing.MockClock(autojump_threshold=0)
    for lifecycle in (True, False):
        rate, runs = trio.run(_measure, options.seconds, lifecycle, clock=clock)
        label = "on" if lifecycle else "off"
        print(
            f"interpreter: {rate:,.0f} tasks/s ({runs:,} runs of {EXECUTED_PER_RUN} tasks, "
            f"lifecycle events {label})"
        )
    fast, full = trio.run(_expressions)
    print(f"expressions: {fast:,.0f} evaluations/s fast path, {full:,.0f} evaluations/s full jq")
    size, serialize, restore = trio.run(_snapshot)
    print(f"snapshot: {size:,} bytes mid-run (JSON)")
    print(f"snapshot: serialize {serialize * 1e6:.1f} us, restore {restore * 1e6:.1f} us")


if __name__ == "__main__":
    main()
