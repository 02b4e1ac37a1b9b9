"""``call: asyncapi`` definitions: the model builds a subscription's ``foreach`` tasks, and the
semantic checks walk them like any task list."""

from __future__ import annotations

from tests.unit.dsl.runtime_support import document
from workflow_orchestrator.dsl.model import CallTask, EmitTask, build_workflow
from workflow_orchestrator.dsl.validation import validate_definition

SUBSCRIBER = """\
do:
  - getNotifications:
      call: asyncapi
      with:
        document: {endpoint: https://fake.com/docs/asyncapi.json}
        operation: getNotifications
        subscription:
          filter: ${ .correlationId == $context.userId }
          consume: {amount: 2}
          foreach:
            item: message
            at: position
            do:
              - tell:
                  emit:
                    event:
                      with: {source: https://test, type: t, data: '${ [$message, $position] }'}
                  then: %s
            output: {as: '${ .data }'}
"""


def test_the_subscription_foreach_is_built_as_a_task_list() -> None:
    """The model holds ``with.subscription.foreach`` as a built iterator with its tasks."""
    workflow = build_workflow(document(SUBSCRIBER % "continue"))
    (task,) = workflow.do.tasks
    assert isinstance(task, CallTask)
    assert task.foreach is not None
    assert (task.foreach.item, task.foreach.at) == ("message", "position")
    assert task.foreach.do is not None
    (tell,) = task.foreach.do.tasks
    assert isinstance(tell, EmitTask)
    assert tell.reference == "/do/0/getNotifications/with/subscription/foreach/do/0/tell"
    assert task.foreach.output is not None and task.foreach.output.expression == "${ .data }"


def test_a_publish_has_no_foreach() -> None:
    """Only a subscription's ``foreach`` is built; other calls have none."""
    workflow = build_workflow(
        document(
            """\
            do:
              - send:
                  call: asyncapi
                  with:
                    document: {endpoint: https://fake.com/docs/asyncapi.json}
                    operation: greet
                    message: {payload: {}}
            """
        )
    )
    (task,) = workflow.do.tasks
    assert isinstance(task, CallTask) and task.foreach is None


def test_the_foreach_tasks_are_checked_like_any_task_list() -> None:
    """A ``then`` inside the subscription's ``foreach`` must name a task of that list; the
    iterator's variables are known to expressions."""
    assert validate_definition(document(SUBSCRIBER % "continue")) == []
    problems = validate_definition(document(SUBSCRIBER % "nowhere"))
    assert [(p.pointer, p.rule) for p in problems] == [
        ("/do/0/getNotifications/with/subscription/foreach/do/0/tell/then", "then-target")
    ]
