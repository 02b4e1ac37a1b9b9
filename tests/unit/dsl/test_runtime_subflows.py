"""``run.workflow`` in the interpreter with the in-memory effects, which follow the durable
runtime's semantics: a child's fault is an error the parent catches, an unknown workflow a
configuration error, ``await: false`` goes on with the parent's data, and an awaited child
marks the parent waiting meanwhile."""

from __future__ import annotations

from typing import Any

from tests.unit.dsl.runtime_support import run
from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import InMemoryEffects, SubflowRequest

VALIDATION = "https://serverlessworkflow.io/spec/1.0.0/errors/validation"


def failing(request: SubflowRequest) -> Any:
    raise WorkflowError(
        Problem.standard(ErrorType.VALIDATION, status=422, detail="the customer has no name")
    )


async def test_a_child_fault_is_caught_by_the_parent() -> None:
    """The child's error reaches the parent's ``try`` with its type and status."""
    result, _ = await run(
        """
        do:
          - guarded:
              try:
                - child:
                    run:
                      workflow: {namespace: test, name: child, version: '1.0.0'}
              catch:
                errors:
                  with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/validation}
                as: failure
                do:
                  - note:
                      set:
                        caught: ${ $failure.detail }
                        status: ${ $failure.status }
        """,
        effects=InMemoryEffects(subflows=failing),
    )
    assert result.status == "completed"
    assert result.output == {"caught": "the customer has no name", "status": 422}


async def test_an_unknown_workflow_is_a_configuration_error() -> None:
    """Without subflows every workflow named is unknown: a configuration error naming it."""
    result, _ = await run(
        """
        do:
          - child:
              run:
                workflow: {namespace: test, name: nobody, version: '2.0.0'}
        """
    )
    assert result.error is not None and result.error.type == ErrorType.CONFIGURATION
    assert result.error.detail == (
        "run.workflow names workflow test/nobody:2.0.0, which is not registered (namespace, "
        "name and version of its document); register it first"
    )
    assert result.error.instance == "/do/0/child"


async def test_without_await_the_parent_keeps_its_data() -> None:
    """``await: false`` starts the child and goes on with the task's input as its output."""
    requests: list[SubflowRequest] = []

    def record(request: SubflowRequest) -> Any:
        requests.append(request)
        return {"ignored": True}

    result, effects = await run(
        """
        do:
          - child:
              run:
                workflow: {namespace: test, name: child, version: '1.0.0', input: {n: 1}}
                await: false
        """,
        {"kept": 1},
        effects=InMemoryEffects(subflows=record),
    )
    assert result.output == {"kept": 1}
    assert [r.await_completion for r in requests] == [False]
    assert [r.data["await"] for r in effects.log if r.kind == "subflow"] == [False]


async def test_an_awaited_child_marks_the_parent_waiting() -> None:
    """The parent is checkpointed ``waiting`` before an awaited child runs (a durable runtime
    parks it then), and runs on afterwards."""
    seen: list[str] = []

    def child(request: SubflowRequest) -> Any:
        seen.append(effects.snapshots[-1]["status"])
        return {"answer": 42}

    effects = InMemoryEffects(record_snapshots=True, subflows=child)
    result, _ = await run(
        """
        do:
          - child:
              run:
                workflow: {namespace: test, name: child, version: latest}
        """,
        effects=effects,
    )
    assert seen == ["waiting"]
    assert result.status == "completed" and result.output == {"answer": 42}
