"""The interpreter: data flow, flow directives, lifecycle, checkpoints and resuming."""

from __future__ import annotations

import json

import pytest
import trio

from tests.unit.dsl.runtime_support import document, lifecycle_types, run
from workflow_orchestrator.adapters import open_expression_engine
from workflow_orchestrator.dsl.expressions import ExpressionEngine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import (
    ExecutionState,
    HttpRequest,
    HttpResponse,
    InMemoryEffects,
    Interpreter,
    RuntimeOptions,
    json_response,
)


async def test_data_flow_order_of_a_task() -> None:
    """input.from, then the task, output.as, export.as replace $context, in the spec's order."""
    result, _ = await run(
        """
        do:
          - price:
              input:
                from: .order
              set:
                total: ${ .qty * .unit }
                original: ${ $input.qty }
              output:
                as: '{ total: .total, qty: $input.qty }'
              export:
                as: '{ lastTotal: .total }'
          - report:
              set:
                total: ${ .total }
                remembered: ${ $context.lastTotal }
        """,
        {"order": {"qty": 3, "unit": 5}},
    )
    assert result.status == "completed"
    assert result.output == {"total": 15, "remembered": 15}


async def test_if_false_skips_the_task_and_passes_the_input_on() -> None:
    """A task whose ``if`` is not true is skipped; its raw input flows to the next task."""
    result, effects = await run(
        """
        do:
          - skipped:
              if: ${ .flag }
              set: {changed: true}
        """,
        {"flag": False, "x": 1},
    )
    assert result.output == {"flag": False, "x": 1}
    assert "task.started /do/0/skipped" not in lifecycle_types(effects)


async def test_task_input_schema_violation_is_a_validation_error() -> None:
    """A task input that fails input.schema faults with the validation type and the pointer."""
    result, _ = await run(
        """
        do:
          - strict:
              input:
                schema:
                  document: {type: object, required: [id]}
              set: {ok: true}
        """,
        {"name": "x"},
    )
    assert result.status == "faulted"
    assert result.error is not None
    assert result.error.type == "https://serverlessworkflow.io/spec/1.0.0/errors/validation"
    assert result.error.instance == "/do/0/strict"
    assert (
        result.error.detail == 'the input does not match its schema: /: "id" is a required property'
    )


async def test_expression_failure_is_the_spec_expression_error() -> None:
    """A jq runtime error faults with type expression, status 400, at the task."""
    result, _ = await run("do:\n  - bad:\n      set:\n        x: ${ .a.b.c + 1 }\n", {"a": 1})
    assert result.error is not None
    assert result.error.type == "https://serverlessworkflow.io/spec/1.0.0/errors/expression"
    assert result.error.status == 400
    assert result.error.instance == "/do/0/bad"


async def test_lifecycle_events_are_stable_cloudevents() -> None:
    """Lifecycle events are complete CloudEvents whose ids derive from instance and task."""
    _, effects = await run("do:\n  - only:\n      set: {a: 1}\n")
    events = [r.data for r in effects.log if r.kind == "lifecycle"]
    assert [e["type"] for e in events] == [
        "io.serverlessworkflow.workflow.started.v1",
        "io.serverlessworkflow.task.started.v1",
        "io.serverlessworkflow.task.completed.v1",
        "io.serverlessworkflow.workflow.completed.v1",
    ]
    started = events[1]
    assert started["specversion"] == "1.0"
    assert started["id"].endswith("/do/0/only@task.started")
    assert started["data"]["task"] == "/do/0/only"
    assert events[2]["data"]["output"] == {"a": 1}


async def test_lifecycle_events_can_be_turned_off() -> None:
    """With lifecycle_events=False nothing is published."""
    _, effects = await run(
        "do:\n  - only:\n      set: {a: 1}\n", options=RuntimeOptions(lifecycle_events=False)
    )
    assert [r for r in effects.log if r.kind == "lifecycle"] == []


async def test_then_to_an_unknown_task_is_a_configuration_error() -> None:
    """A runtime jump to a missing task says which names exist (validation also catches it)."""
    definition = document("do:\n  - a:\n      set: {x: 1}\n")
    definition["do"][0]["a"]["then"] = "ghost"
    from workflow_orchestrator.dsl.model import build_workflow

    result = await Interpreter(build_workflow(definition), ExpressionEngine()).start(
        InMemoryEffects()
    )
    assert result.error is not None
    assert result.error.detail == (
        "flow directive 'then: ghost' names no task of this list; use one of ['a'] or "
        "continue/exit/end"
    )


async def test_exit_leaves_only_the_current_list() -> None:
    """``exit`` completes the enclosing do; the outer list continues."""
    result, _ = await run(
        """
        do:
          - inner:
              do:
                - a: {set: {step: a}, then: exit}
                - b: {set: {step: b}}
          - after:
              set: {step: '${ .step + "-after" }'}
        """
    )
    assert result.output == {"step": "a-after"}


async def test_checkpoints_are_json_and_resume_in_a_fresh_interpreter() -> None:
    """A JSON round-tripped snapshot resumes in a new interpreter without re-running tasks."""
    body = """
        do:
          - one: {set: {n: 1}}
          - two: {set: {n: '${ .n + 1 }'}}
          - three: {set: {n: '${ .n + 1 }'}}
    """
    first, effects = await run(body, effects=InMemoryEffects(record_snapshots=True))
    snapshot = effects.snapshots[1]  # [0] is the start, [1] follows task "one"
    assert snapshot["frames"]["/do"]["next"] == 1
    state = ExecutionState.from_json(json.loads(json.dumps(snapshot)))
    async with open_expression_engine() as engine:
        resumed_effects = InMemoryEffects()
        interpreter = Interpreter(load_workflow(document(body)), engine)
        resumed = await interpreter.resume(resumed_effects, state)
    assert resumed.output == first.output == {"n": 3}
    assert "task.started /do/0/one" not in lifecycle_types(resumed_effects)


async def test_resuming_a_finished_state_runs_nothing() -> None:
    """A completed state returns its result and publishes nothing."""
    result, _ = await run("do:\n  - a: {set: {x: 1}}\n")
    effects = InMemoryEffects()
    again = await Interpreter(
        load_workflow(document("do:\n  - a: {set: {x: 1}}\n")), ExpressionEngine()
    ).resume(effects, result.state.to_json())
    assert again.output == {"x": 1}
    assert effects.log == []


def test_unknown_state_format_is_rejected() -> None:
    """A snapshot of another format is refused with the expected format in the message."""
    with pytest.raises(ValueError, match="execution state format 7 is not supported; expected 1"):
        ExecutionState.from_json({"format": 7})


async def test_workflow_input_from_and_output_as() -> None:
    """Workflow-level input.from and output.as transform the first input and the result."""
    result, _ = await run(
        """
        input:
          from: .payload
        output:
          as: .sum
        do:
          - add: {set: {sum: '${ .a + .b }'}}
        """,
        {"payload": {"a": 1, "b": 2}, "noise": True},
    )
    assert result.output == 3


async def test_cancellation_propagates(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling the caller cancels the interpreter (trio.Cancelled is never swallowed)."""
    with trio.move_on_after(5) as scope:
        await run("do:\n  - long: {wait: PT1H}\n")
    assert scope.cancelled_caught


async def test_external_schema_is_fetched_through_the_effects() -> None:
    """A schema given as a resource is fetched once per run and validates like an inline one."""
    fetched: list[str] = []

    def http(request: HttpRequest) -> HttpResponse:
        fetched.append(request.url)
        return json_response(200, {"type": "object", "required": ["id"]})

    body = """
        do:
          - first:
              input:
                schema:
                  resource: {endpoint: 'https://schemas.example.com/order.json'}
              set: {ok: true}
          - second:
              input:
                schema:
                  resource: {endpoint: 'https://schemas.example.com/order.json'}
              set: {ok: true}
    """
    result, _ = await run(body, {"id": 1}, effects=InMemoryEffects(http=http))
    assert result.error is not None  # the second task's input {ok: true} has no id
    assert result.error.instance == "/do/1/second"
    assert fetched == ["https://schemas.example.com/order.json"]
