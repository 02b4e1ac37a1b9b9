"""Fair scheduling and per-instance budgets: yields, tasksPerRun, totalTasks, historyRows,
loopIterations, and the counters kept in the execution state."""

from __future__ import annotations

import json

import trio
import trio.lowlevel

from tests.unit.dsl.runtime_support import document, run
from workflow_orchestrator.adapters import open_expression_engine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import (
    LIMIT_EXCEEDED,
    ExecutionState,
    InMemoryEffects,
    Interpreter,
    RuntimeLimits,
    RuntimeOptions,
)

TIGHT_LOOP = """
do:
  - again:
      set:
        n: ${ .n + 1 }
      then: again
"""


def _limits(**values: int) -> RuntimeOptions:
    return RuntimeOptions(limits=RuntimeLimits(**values))


async def test_a_tight_loop_lets_other_tasks_run_and_can_be_cancelled() -> None:
    """A loop that never waits yields before every task: a task beside it is scheduled again
    and again, and cancels it."""
    effects = InMemoryEffects()
    turns = 0
    async with open_expression_engine() as engine:
        interpreter = Interpreter(
            load_workflow(document(TIGHT_LOOP)),
            engine,
            _limits(tasks_per_run=0, total_tasks=0, history_rows=0, loop_iterations=0),
        )
        async with trio.open_nursery() as nursery:

            async def neighbour() -> None:
                nonlocal turns
                while effects.checkpoints < 200:
                    turns += 1
                    await trio.lowlevel.checkpoint()
                nursery.cancel_scope.cancel()

            nursery.start_soon(interpreter.start, effects, {"n": 0})
            nursery.start_soon(neighbour)
    assert turns > 100
    assert nursery.cancel_scope.cancelled_caught


async def test_tasks_per_run_faults_the_instance_naming_the_setting() -> None:
    """Over ``tasksPerRun`` the instance ends faulted with a limit-exceeded problem that names
    the count, the setting and what to do."""
    result, _ = await run(TIGHT_LOOP, {"n": 0}, options=_limits(tasks_per_run=50))
    assert result.status == "faulted"
    assert result.error is not None
    assert result.error.type == LIMIT_EXCEEDED
    assert result.error.type.endswith("limit-exceeded")
    assert result.error.instance == "/do/0/again"
    assert result.error.detail == (
        "the instance ran 50 tasks in one run without waiting, over the limit "
        "workflows.limits.tasksPerRun; raise it or add a wait"
    )
    assert result.state.tasks == 51
    # workflow.started, 50 x task.started/completed, workflow.faulted
    assert result.state.to_json()["budget"] == {"tasks": 51, "historyRows": 102}


async def test_total_tasks_count_across_resumes() -> None:
    """The total is kept in the state: a resumed instance goes on counting from it."""
    effects = InMemoryEffects(record_snapshots=True)
    body = "do:\n  - a: {set: {x: 1}}\n  - b: {set: {x: 2}}\n  - c: {set: {x: 3}}\n"
    async with open_expression_engine() as engine:
        workflow = load_workflow(document(body))
        first = await Interpreter(workflow, engine).start(effects, {})
        assert first.status == "completed"
        after_a = next(s for s in effects.snapshots if s["frames"].get("/do", {}).get("next") == 1)
        saved = json.loads(json.dumps(after_a))
        assert saved["budget"]["tasks"] == 1
        limited = Interpreter(workflow, engine, _limits(total_tasks=2))
        result = await limited.resume(InMemoryEffects(), saved)
    assert result.status == "faulted"
    assert result.error is not None
    assert result.error.detail == (
        "the instance ran 2 tasks, over the limit workflows.limits.totalTasks; raise it or "
        "split the work over several instances"
    )
    assert result.error.instance == "/do/2/c"


async def test_history_rows_count_lifecycle_and_emitted_events() -> None:
    """Lifecycle events and emitted events are history rows; past ``historyRows`` the
    instance faults."""
    body = """
    do:
      - tell: {emit: {event: {with: {source: "https://test.example", type: t.one}}}}
      - more: {set: {a: 1}}
      - last: {set: {a: 2}}
    """
    result, _ = await run(body, {}, options=_limits(history_rows=5))
    assert result.status == "faulted"
    assert result.error is not None
    # workflow.started, tell started/completed, the emitted event, more started/completed
    assert result.error.detail == (
        "the instance recorded 6 history rows (lifecycle and emitted events), over the limit "
        "workflows.limits.historyRows; raise it or split the work over several instances, or "
        "turn off workflows.lifecycleEvents"
    )
    assert result.error.instance == "/do/2/last"


async def test_for_loop_iterations_are_bounded() -> None:
    """A ``for`` loop over more items than ``loopIterations`` faults at the next item."""
    body = """
    do:
      - loop:
          for: {in: .items}
          do:
            - one: {set: {a: 1}}
    """
    result, _ = await run(body, {"items": list(range(10))}, options=_limits(loop_iterations=3))
    assert result.status == "faulted"
    assert result.error is not None
    assert result.error.type == LIMIT_EXCEEDED
    assert result.error.detail == (
        "the for loop at /do/0/loop ran 3 iterations, over the limit "
        "workflows.limits.loopIterations; raise it or bound the loop"
    )
    ok, _ = await run(body, {"items": [1, 2, 3]}, options=_limits(loop_iterations=3))
    assert ok.status == "completed"


async def test_backward_then_jumps_are_loop_iterations() -> None:
    """Jumping back in a task list with ``then`` counts iterations of that list."""
    result, _ = await run(TIGHT_LOOP, {"n": 0}, options=_limits(loop_iterations=20))
    assert result.status == "faulted"
    assert result.error is not None
    assert result.error.detail == (
        "the task list at /do ran 20 iterations, over the limit "
        "workflows.limits.loopIterations; raise it or bound the loop"
    )
    assert result.state.tasks == 20


async def test_try_never_catches_a_limit() -> None:
    """A ``try`` that catches every error still lets a limit fault the instance."""
    body = """
    do:
      - guard:
          try:
            - again:
                set:
                  n: ${ .n + 1 }
                then: again
          catch:
            errors: {}
      - after: {set: {escaped: true}}
    """
    result, _ = await run(body, {"n": 0}, options=_limits(tasks_per_run=30))
    assert result.status == "faulted"
    assert result.error is not None
    assert result.error.type == LIMIT_EXCEEDED
    assert result.error.detail is not None
    assert "workflows.limits.tasksPerRun" in result.error.detail


async def test_a_state_stored_before_the_counters_reads_them_as_zero() -> None:
    """Snapshots stored without ``budget`` still load; the counters round-trip through JSON."""
    state = ExecutionState(instance_id="i", namespace="n", name="w", version="1")
    old = state.to_json()
    del old["budget"]
    assert ExecutionState.from_json(old).tasks == 0
    assert ExecutionState.from_json(old).history_rows == 0
    state.tasks, state.history_rows = 7, 12
    again = ExecutionState.from_json(json.loads(json.dumps(state.to_json())))
    assert (again.tasks, again.history_rows) == (7, 12)
