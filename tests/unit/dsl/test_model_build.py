"""Building the typed model: task types, resolved reusable components, pointers, errors."""

from __future__ import annotations

import pytest

from tests.unit.dsl.runtime_support import document
from workflow_orchestrator.dsl.model import (
    CallTask,
    ForTask,
    ListenTask,
    ModelError,
    RaiseTask,
    SetTask,
    SwitchTask,
    TryTask,
    WaitTask,
    build_task,
    build_workflow,
    load_workflow,
)
from workflow_orchestrator.dsl.validation import InvalidDefinition


def test_tasks_get_their_type_and_json_pointer() -> None:
    """Each task item becomes a typed task whose reference is its JSON pointer."""
    workflow = build_workflow(
        document(
            """
            do:
              - first:
                  set: {a: 1}
              - route:
                  switch:
                    - yes: {when: .a == 1, then: first}
                    - other: {then: end}
              - loop:
                  for: {in: .items}
                  do:
                    - inner: {wait: PT1S}
            """
        )
    )
    first, route, loop = workflow.do.tasks
    assert isinstance(first, SetTask)
    assert first.reference == "/do/0/first"
    assert isinstance(route, SwitchTask)
    assert [c.name for c in route.cases] == ["yes", "other"]
    assert route.cases[1].when is None
    assert isinstance(loop, ForTask)
    assert (loop.each, loop.at) == ("item", "index")
    inner = loop.do.tasks[0]
    assert isinstance(inner, WaitTask)
    assert inner.reference == "/do/2/loop/do/0/inner"
    assert inner.duration.seconds == 1.0
    assert workflow.do.positions == {"first": 0, "route": 1, "loop": 2}


def test_reusable_components_are_resolved_once() -> None:
    """use.errors, use.retries, use.timeouts and use.functions are resolved into the tasks."""
    workflow = build_workflow(
        document(
            """
            use:
              errors:
                notFound: {type: https://x/not-found, status: 404}
              retries:
                twice: {delay: PT1S, backoff: {linear: {}}, limit: {attempt: {count: 2}}}
              timeouts:
                short: {after: PT2S}
              functions:
                greet:
                  set: {greeting: hi}
            do:
              - guarded:
                  timeout: short
                  try:
                    - fail:
                        raise: {error: notFound}
                  catch:
                    retry: twice
              - hello:
                  call: greet
            """
        )
    )
    guarded, hello = workflow.do.tasks
    assert isinstance(guarded, TryTask)
    assert guarded.timeout is not None
    assert guarded.timeout.after.seconds == 2.0
    assert guarded.catch.retry is not None
    assert guarded.catch.retry.backoff == "linear"
    assert guarded.catch.retry.attempt_count == 2
    fail = guarded.try_.tasks[0]
    assert isinstance(fail, RaiseTask)
    assert fail.error == {"type": "https://x/not-found", "status": 404}
    assert isinstance(hello, CallTask)
    assert isinstance(hello.function, SetTask)
    assert hello.function.reference == "/use/functions/greet"


def test_listen_strategy_and_foreach() -> None:
    """listen.to any/until and foreach are modelled."""
    workflow = build_workflow(
        document(
            """
            do:
              - collect:
                  listen:
                    to:
                      any:
                        - with: {type: a}
                      until: ${ length > 2 }
                    read: envelope
                  foreach:
                    item: event
                    do:
                      - note: {set: {seen: true}}
            """
        )
    )
    collect = workflow.do.tasks[0]
    assert isinstance(collect, ListenTask)
    assert collect.to.mode == "any"
    assert collect.to.until_expression == "${ length > 2 }"
    assert collect.read == "envelope"
    assert collect.foreach is not None
    assert collect.foreach.item == "event"


def test_undeclared_reusable_error_is_reported_with_its_pointer() -> None:
    """A raise of an undeclared error names the pointer and the declared errors."""
    with pytest.raises(ModelError) as caught:
        build_workflow(document("do:\n  - fail:\n      raise: {error: missing}\n"))
    assert caught.value.pointer == "/do/0/fail/raise/error"
    assert str(caught.value) == (
        "/do/0/fail/raise/error: error 'missing' is not declared in use.errors; declared: []"
    )


def test_load_workflow_reports_every_problem() -> None:
    """load_workflow validates first and raises InvalidDefinition with the problems."""
    with pytest.raises(InvalidDefinition) as caught:
        load_workflow(
            "document: {dsl: '1.0.3', namespace: t, name: n, version: '1.0.0'}\n"
            "do:\n  - a: {set: {x: 1}, then: nowhere}\n"
        )
    assert any(p.pointer.startswith("/do/0/a") for p in caught.value.problems)


def test_load_workflow_accepts_text_and_documents() -> None:
    """YAML text and an already loaded document give equal models."""
    text = "document: {dsl: '1.0.3', namespace: t, name: n, version: '1.0.0'}\ndo:\n  - a: {set: {x: 1}}\n"
    assert load_workflow(text).do == load_workflow(document("do:\n  - a: {set: {x: 1}}\n")).do


def test_schedule_is_modelled_for_the_scheduler() -> None:
    """every/cron/after/on become a typed schedule (the interpreter ignores it)."""
    workflow = build_workflow(
        document(
            """
            schedule:
              every: PT15M
              on:
                one:
                  with: {type: com.example.order.placed.v1}
            do:
              - a: {set: {x: 1}}
            """
        )
    )
    assert workflow.schedule is not None
    assert workflow.schedule.every is not None
    assert workflow.schedule.every.seconds == 900
    assert workflow.schedule.on is not None
    assert workflow.schedule.on.mode == "one"
    assert workflow.schedule.cron is None


def test_extensions_are_built_with_their_pointers_and_extended_types() -> None:
    """use.extensions become Extension records: composite means do and fork, lists get the
    pointers of their tasks, and applies_to follows extend."""
    workflow = build_workflow(
        document(
            """
            use:
              extensions:
                - around:
                    extend: composite
                    when: ${ true }
                    before:
                      - note: {set: {a: 1}}
                - every:
                    extend: all
                    after:
                      - note: {set: {b: 2}}
            do:
              - group:
                  do:
                    - inner: {set: {c: 3}}
            """
        )
    )
    around, every = workflow.extensions
    assert (around.name, around.extends, around.when) == (
        "around",
        frozenset({"do", "fork"}),
        "${ true }",
    )
    assert around.before is not None and around.after is None
    assert around.before.tasks[0].reference == "/use/extensions/0/around/before/0/note"
    assert every.after is not None
    assert every.after.tasks[0].reference == "/use/extensions/1/every/after/0/note"
    group = workflow.do.tasks[0]
    inner = group.do.tasks[0]  # type: ignore[attr-defined]
    assert around.applies_to(group) and not around.applies_to(inner)
    assert every.applies_to(group) and every.applies_to(inner)


def test_a_function_document_is_built_under_the_pointer_given() -> None:
    """build_task builds one task definition (a function document) at a chosen pointer."""
    task = build_task({"do": [{"step": {"set": {"a": 1}}}]}, name="log", pointer="/do/0/log/call")
    assert task.name == "log" and task.reference == "/do/0/log/call"
    assert task.do.tasks[0].reference == "/do/0/log/call/do/0/step"  # type: ignore[attr-defined]
    with pytest.raises(ModelError, match="function 'missing' is not declared"):
        build_task({"call": "missing"}, name="f", pointer="/f")
