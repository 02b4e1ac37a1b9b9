"""Property: for generated workflows, resuming from any checkpoint changes nothing.

Workflows are random compositions of set, wait, do, for, fork, try/catch/retry, raise, task
timeouts and switch with forward jumps. Each runs once with snapshots; every snapshot is resumed in a fresh interpreter
and must give the same result and, once repeated steps are dropped, the same effect log.
"""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow_orchestrator.adapters import open_expression_engine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import (
    EffectRecord,
    InMemoryEffects,
    Interpreter,
    WorkflowResult,
)

_names = iter(range(10**9))


def _name(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


def _leaf() -> st.SearchStrategy[dict[str, Any]]:
    add = st.integers(1, 5).map(lambda k: {_name("set"): {"set": {"n": f"${{ .n + {k} }}"}}})
    wait = st.integers(1, 30).map(lambda s: {_name("wait"): {"wait": f"PT{s}S"}})
    fail = st.sampled_from([503, 500]).map(
        lambda status: {
            _name("try"): {
                "try": [
                    {
                        _name("raise"): {
                            "raise": {"error": {"type": "https://x/e", "status": status}}
                        }
                    }
                ],
                "catch": {
                    "errors": {"with": {"status": 503}},
                    "retry": {"delay": "PT1S", "limit": {"attempt": {"count": 1}}},
                },
            }
        }
    )
    # Never wait exactly as long as the timeout: at a tie either may fire first (a real race).
    timed = (
        st.tuples(st.integers(1, 20), st.integers(1, 20))
        .filter(lambda p: p[0] != p[1])
        .map(
            lambda pair: {
                _name("timed"): {
                    "try": [
                        {
                            _name("slow"): {
                                "wait": f"PT{pair[0]}S",
                                "timeout": {"after": f"PT{pair[1]}S"},
                            }
                        }
                    ],
                    "catch": {"errors": {"with": {"status": 408}}},
                }
            }
        )
    )
    return st.one_of(add, wait, fail, timed)


def _task(children: st.SearchStrategy[list[dict[str, Any]]]) -> st.SearchStrategy[dict[str, Any]]:
    nested = children.map(lambda tasks: {_name("do"): {"do": tasks}})
    loop = children.map(lambda tasks: {_name("for"): {"for": {"in": ".items"}, "do": tasks}})
    caught = children.map(
        lambda tasks: {
            _name("guard"): {
                "try": [
                    *tasks,
                    {_name("boom"): {"raise": {"error": {"type": "https://x/e", "status": 400}}}},
                ],
                "catch": {
                    "as": "failure",
                    "do": [{_name("note"): {"set": {"n": "${ .n + $failure.status }"}}}],
                },
            }
        }
    )
    forked = st.tuples(children, children).map(
        lambda pair: {
            _name("fork"): {
                "fork": {
                    "branches": [
                        {_name("left"): {"do": pair[0]}},
                        {_name("right"): {"do": pair[1]}},
                    ]
                }
            }
        }
    )
    return st.one_of(nested, loop, caught, forked)


TASKS = st.recursive(
    st.lists(_leaf(), min_size=1, max_size=3),
    lambda children: st.lists(st.one_of(_leaf(), _task(children)), min_size=1, max_size=3),
    max_leaves=8,
)


def _with_jump(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add a switch that jumps forward to the last task when n is even."""
    if len(tasks) < 2:
        return tasks
    (target,) = tasks[-1]
    switch = {_name("route"): {"switch": [{"even": {"when": "${ .n % 2 == 0 }", "then": target}}]}}
    return [tasks[0], switch, *tasks[1:]]


def _dedupe(log: list[EffectRecord]) -> list[tuple[str, str, str]]:
    seen: set[tuple[str, str]] = set()
    out = []
    for record in log:
        if (record.kind, record.identity) not in seen:
            seen.add((record.kind, record.identity))
            out.append((record.kind, record.identity, json.dumps(record.data, sort_keys=True)))
    return out


async def _run(workflow: Any, effects: InMemoryEffects, state: Any = None) -> WorkflowResult:
    async with open_expression_engine() as engine:
        interpreter = Interpreter(workflow, engine)
        if state is None:
            return await interpreter.start(effects, {"n": 0, "items": [1, 2]})
        return await interpreter.resume(effects, state)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TASKS)
def test_resume_from_any_checkpoint_is_invisible(tasks: list[dict[str, Any]]) -> None:
    """Every checkpoint of a generated workflow resumes to the same result and log."""
    definition = {
        "document": {"dsl": "1.0.3", "namespace": "prop", "name": "gen", "version": "1.0.0"},
        "do": _with_jump(tasks),
    }
    workflow = load_workflow(definition)
    concurrent = "'fork'" in repr(definition)

    async def main() -> None:
        first = InMemoryEffects(record_snapshots=True)
        expected = await _run(workflow, first)
        for index, snapshot in enumerate(first.snapshots):
            seen = first.log[: first.snapshot_log_sizes[index]]
            effects = InMemoryEffects(start=first.snapshot_times[index])
            resumed = await _run(workflow, effects, snapshot)
            assert (resumed.status, resumed.output) == (expected.status, expected.output)
            if concurrent:
                # When several branches fail, the first to fail (by scheduling) is reported.
                assert (resumed.error is None) == (expected.error is None), f"checkpoint {index}"
            else:
                assert resumed.error == expected.error, f"checkpoint {index}"
            actual, wanted = _dedupe(seen + effects.log), _dedupe(first.log)
            if concurrent:
                if any(r.identity.endswith("@task.faulted") for r in first.log):
                    # Which of several failing branches fails first (and so which tasks get
                    # cancelled) depends on scheduling; the status comparison above suffices.
                    continue
                # Fork branches interleave in trio's (randomized) scheduling order.
                actual, wanted = sorted(actual), sorted(wanted)
            assert actual == wanted, f"checkpoint {index}"

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
