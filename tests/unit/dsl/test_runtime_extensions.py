"""``use.extensions``: before/after lists around extended tasks, mocks, nesting, resumption."""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.testing

from tests.unit.dsl.runtime_support import document, lifecycle_types, run
from workflow_orchestrator.adapters import open_expression_engine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    InMemoryEffects,
    Interpreter,
    json_response,
)
from workflow_orchestrator.dsl.validation import validate_definition

LOGGED = """
use:
  extensions:
    - logging:
        extend: all
        before:
          - sendLog:
              call: http
              with:
                method: post
                endpoint: https://log.example.com
                body:
                  message: ${ "Executing task '\\($task.reference)'..." }
        after:
          - sendLog:
              call: http
              with:
                method: post
                endpoint: https://log.example.com
                body:
                  message: ${ "Executed task '\\($task.reference)'..." }
                  output: ${ . }
do:
  - sampleTask:
      call: http
      with:
        method: get
        endpoint: https://api.example.com/sample
  - double:
      set:
        twice: ${ .value * 2 }
"""


class Api:
    """Answers every request with ``{"value": 21}`` and records the requests in order."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []

    def calls(self) -> list[tuple[str, Any]]:
        return [(r.url, None if r.body is None else json.loads(r.body)) for r in self.requests]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return json_response(200, {"value": 21})


async def test_before_and_after_run_around_every_task_and_leave_its_data_alone() -> None:
    """The reference's logging extension: $task is the extended task; outputs unchanged."""
    api = Api()
    result, effects = await run(LOGGED, effects=InMemoryEffects(http=api))
    assert result.status == "completed", result.error
    assert result.output == {"twice": 42}
    log = "https://log.example.com"
    assert api.calls() == [
        (log, {"message": "Executing task '/do/0/sampleTask'..."}),
        ("https://api.example.com/sample", None),
        (log, {"message": "Executed task '/do/0/sampleTask'...", "output": {"value": 21}}),
        (log, {"message": "Executing task '/do/1/double'..."}),
        (log, {"message": "Executed task '/do/1/double'...", "output": {"twice": 42}}),
    ]
    before = "/use/extensions/0/logging/before/0/sendLog"
    after = "/use/extensions/0/logging/after/0/sendLog"
    assert lifecycle_types(effects)[:8] == [
        "workflow.started",
        "task.started /do/0/sampleTask",
        f"task.started {before}",
        f"task.completed {before}",
        f"task.started {after}",
        f"task.completed {after}",
        "task.completed /do/0/sampleTask",
        "task.started /do/1/double",
    ]


MOCKED = """
use:
  extensions:
    - mockService:
        extend: call
        when: ${ $task.definition.with.endpoint.uri | startswith("https://mocked.service.com") }
        before:
          - mockResponse:
              set:
                statusCode: 200
                content:
                  foo: ${ $task.name }
              then: exit
do:
  - callMocked:
      call: http
      with:
        method: get
        endpoint:
          uri: https://mocked.service.com/sample
      output:
        as: ${ .content }
  - callReal:
      call: http
      with:
        method: get
        endpoint:
          uri: https://api.example.com/sample
"""


async def test_then_exit_in_before_skips_the_task_and_gives_its_raw_output() -> None:
    """A mock: no request for the mocked call, its output.as applies to the mocked answer,
    and a call the condition does not match runs for real."""
    api = Api()
    body = MOCKED.replace(
        "  - callReal:", "  - keep:\n      set: {mocked: '${ . }'}\n  - callReal:"
    )
    result, _ = await run(body, effects=InMemoryEffects(http=api))
    assert result.status == "completed", result.error
    assert [url for url, _ in api.calls()] == ["https://api.example.com/sample"]
    assert result.output == {"value": 21}
    result, _ = await run(MOCKED.split("  - callReal:")[0], effects=InMemoryEffects(http=api))
    assert result.output == {"foo": "callMocked"}


async def test_the_official_mock_condition_reads_the_task_descriptor() -> None:
    """$task is the standard descriptor: $task.with is null, so the example's condition does
    not hold and the call runs (its definition is under $task.definition)."""
    api = Api()
    body = MOCKED.replace(
        "${ $task.definition.with.endpoint.uri | startswith",
        "${ $task.with.endpoint.uri != null and ($task.with.endpoint.uri | startswith",
    ).replace('service.com") }', 'service.com")) }')
    result, _ = await run(body, effects=InMemoryEffects(http=api))
    assert result.status == "completed", result.error
    assert [url for url, _ in api.calls()] == [
        "https://mocked.service.com/sample",
        "https://api.example.com/sample",
    ]


async def test_composite_extends_do_and_fork_only() -> None:
    """extend: composite applies to do and fork tasks, not to the tasks inside them."""
    api = Api()
    body = """
    use:
      extensions:
        - trace:
            extend: composite
            before:
              - note:
                  call: http
                  with:
                    method: post
                    endpoint: https://log.example.com
                    body: {task: '${ $task.name }'}
    do:
      - group:
          do:
            - inner:
                set: {a: 1}
      - parallel:
          fork:
            branches:
              - left:
                  set: {b: 2}
    """
    result, _ = await run(body, effects=InMemoryEffects(http=api))
    assert result.status == "completed", result.error
    assert api.calls() == [
        ("https://log.example.com", {"task": "group"}),
        ("https://log.example.com", {"task": "parallel"}),
    ]


async def test_extensions_nest_in_declaration_order() -> None:
    """The first extension's before runs first and its after last; an exit in an inner
    extension's before skips the task but not the outer extension's after."""
    api = Api()
    body = """
    use:
      extensions:
        - outer:
            extend: set
            before:
              - b1: {call: http, with: {method: post, endpoint: 'https://log.example.com/outer-before'}}
            after:
              - a1: {call: http, with: {method: post, endpoint: 'https://log.example.com/outer-after'}}
        - inner:
            extend: set
            before:
              - b2:
                  set: {replaced: true}
                  then: exit
            after:
              - a2: {call: http, with: {method: post, endpoint: 'https://log.example.com/inner-after'}}
    do:
      - original:
          set: {replaced: false}
    """
    result, _ = await run(body, effects=InMemoryEffects(http=api))
    assert result.status == "completed", result.error
    assert result.output == {"replaced": True}
    assert [url for url, _ in api.calls()] == [
        "https://log.example.com/outer-before",
        "https://log.example.com/outer-after",
    ]


async def test_tasks_run_by_an_extension_are_not_extended() -> None:
    """extend: all does not apply to its own before/after tasks (no endless recursion), nor to
    the function they call."""
    api = Api()
    body = """
    use:
      functions:
        ping:
          call: http
          with: {method: post, endpoint: 'https://log.example.com/ping'}
      extensions:
        - everything:
            extend: all
            before:
              - first:
                  call: ping
    do:
      - only:
          set: {done: true}
    """
    result, _ = await run(body, effects=InMemoryEffects(http=api))
    assert result.status == "completed", result.error
    assert [url for url, _ in api.calls()] == ["https://log.example.com/ping"]


async def test_then_end_in_before_ends_the_workflow() -> None:
    """``end`` in an extension's list ends the workflow with the list's output."""
    body = """
    use:
      extensions:
        - stop:
            extend: set
            when: ${ $task.name == "second" }
            before:
              - halt:
                  set: {stopped: true}
                  then: end
    do:
      - first:
          set: {step: 1}
      - second:
          set: {step: 2}
      - third:
          set: {step: 3}
    """
    result, _ = await run(body)
    assert result.status == "completed", result.error
    assert result.output == {"stopped": True}


async def test_a_faulting_when_faults_the_task_with_an_expression_error() -> None:
    """The condition is an expression like any other: a failure is the task's error."""
    body = """
    use:
      extensions:
        - broken:
            extend: set
            when: ${ $task.definition.set.a | startswith("x") }
            before:
              - noop: {set: {x: 1}}
    do:
      - only:
          set: {a: 1}
    """
    result, _ = await run(body)
    assert result.error is not None
    assert result.error.type.endswith("/expression")
    assert result.error.instance == "/use/extensions/0/broken/when"


def test_resuming_in_after_does_not_run_the_extended_task_again() -> None:
    """From every checkpoint, a fresh interpreter finishes with the same output and the
    extended call is sent once per idempotency key (never after it completed)."""
    body = """
    use:
      extensions:
        - audit:
            extend: call
            before:
              - pre: {call: http, with: {method: post, endpoint: 'https://log.example.com/pre'}}
            after:
              - post1: {call: http, with: {method: post, endpoint: 'https://log.example.com/post1'}}
              - post2: {call: http, with: {method: post, endpoint: 'https://log.example.com/post2'}}
    do:
      - work:
          call: http
          with: {method: get, endpoint: 'https://api.example.com/work'}
    """
    workflow = load_workflow(document(body))
    outcomes: list[Any] = []
    resumed_in_after: list[int] = []

    async def main() -> None:
        async with open_expression_engine() as engine:
            first = InMemoryEffects(http=Api(), record_snapshots=True)
            expected = await Interpreter(workflow, engine).start(first, {}, instance_id="i-1")
            assert expected.status == "completed", expected.error
            assert len(first.snapshots) >= 4
            for index, snapshot in enumerate(first.snapshots):
                api = Api()
                resumed = await Interpreter(workflow, engine).resume(
                    InMemoryEffects(http=api), snapshot
                )
                seen = [
                    r.data["url"]
                    for r in first.log[: first.snapshot_log_sizes[index]]
                    if r.kind == "http"
                ]
                sent = [r.url for r in api.requests]
                outcomes.append((resumed.status, resumed.output))
                completed_work = "https://api.example.com/work" in seen and any(
                    url.endswith("/post1") for url in seen
                )
                if completed_work:
                    resumed_in_after.append(index)
                    assert "https://api.example.com/work" not in sent, (index, seen, sent)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.1))
    assert outcomes and all(o == ("completed", {"value": 21}) for o in outcomes)
    assert resumed_in_after, "no checkpoint fell between the task and the end of its after list"


def test_extension_lists_are_checked_at_registration_like_task_lists() -> None:
    """A then target, a function reference and a when expression in an extension are
    checked with their pointers."""
    body = """
    use:
      extensions:
        - broken:
            extend: call
            when: ${ $nowhere }
            before:
              - first:
                  call: undeclared
                  then: missing
    do:
      - only:
          set: {a: 1}
    """
    problems = validate_definition(document(body))
    assert sorted((p.pointer, p.rule) for p in problems) == [
        ("/use/extensions/0/broken/before/0/first/call", "function-reference"),
        ("/use/extensions/0/broken/before/0/first/then", "then-target"),
        ("/use/extensions/0/broken/when", "expression-variable"),
    ]
