"""Subflows (``run.workflow``) in the durable runtime without a database: the decisions of
``_subflows``, and parents and children run by the runtime on the in-memory store, with the
real catalog, supervisor and actors, under Trio's mock clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tests.support.instances import WatchedStore, open_runtime, trio_clock
from workflow_orchestrator.dsl import ErrorType, WorkflowError
from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse, SubflowRequest
from workflow_orchestrator.instances import StartRequest
from workflow_orchestrator.instances._subflows import (
    ChildEnd,
    child_instance_id,
    subflow_result,
)
from workflow_orchestrator.storage.instances import (
    SUBFLOW_ENDED_TYPE,
    InboxEvent,
    InstanceStatus,
    subflow_ended_event,
    subflow_key,
)

AT = datetime(2026, 1, 2, tzinfo=UTC)
PARENT = uuid.UUID(int=1)
CHILD = uuid.UUID(int=2)
REQUEST = SubflowRequest(
    namespace="test", name="child", version="1.0.0", input={}, key=f"{PARENT}/do/0/run"
)
VALIDATION = "https://serverlessworkflow.io/spec/1.0.0/errors/validation"

CHILD_DOUBLES = """\
do:
  - double:
      set:
        doubled: ${ .n * 2 }
"""

CHILD_FAILS = """\
do:
  - refuse:
      raise:
        error:
          type: https://serverlessworkflow.io/spec/1.0.0/errors/validation
          status: 422
          title: Bad Customer
          detail: the customer has no name
"""

CHILD_WAITS = """\
do:
  - pause:
      wait: {hours: 1}
  - done:
      set: {waited: true}
"""

# Parks (over ``park_after``) and wakes by itself (within the runtime's timer lookahead).
CHILD_PAUSES = """\
do:
  - pause:
      wait: {seconds: 3}
  - done:
      set: {waited: true}
"""

PARENT_AWAITS = """\
do:
  - prepare:
      set: {n: 21}
  - runChild:
      run:
        workflow:
          namespace: test
          name: child
          version: '1.0.0'
          input:
            n: ${ .n }
"""

PARENT_CATCHES = """\
do:
  - guarded:
      try:
        - runChild:
            run:
              workflow: {namespace: test, name: child, version: '1.0.0'}
      catch:
        errors:
          with:
            type: https://serverlessworkflow.io/spec/1.0.0/errors/validation
        as: failure
        do:
          - remember:
              set:
                caught: ${ $failure.detail }
                status: ${ $failure.status }
"""

PARENT_DOES_NOT_WAIT = """\
do:
  - prepare:
      set: {n: 5}
  - runChild:
      run:
        workflow: {namespace: test, name: child, version: '1.0.0', input: {n: 1}}
        await: false
"""

RECURSIVE = """\
do:
  - again:
      run:
        workflow: {namespace: test, name: recursive, version: '1.0.0'}
"""


def inbox_end(status: str, output: Any = None, error: Any = None) -> InboxEvent:
    """The inbox row of the end of ``CHILD``."""
    return InboxEvent(
        seq=3,
        key=subflow_key(CHILD),
        event=subflow_ended_event(CHILD, status, output, error, AT),
    )


def test_the_child_id_is_stable_per_parent_and_task() -> None:
    """The same parent and task key give the same child id; another key or parent another."""
    one = child_instance_id(PARENT, f"{PARENT}/do/0/run")
    assert one == child_instance_id(PARENT, f"{PARENT}/do/0/run")
    assert one != child_instance_id(PARENT, f"{PARENT}/do/1/run")
    assert one != child_instance_id(CHILD, f"{PARENT}/do/0/run")
    assert one.version == 5


def test_an_inbox_row_is_read_as_an_end_only_with_its_key_and_type() -> None:
    """Only a row keyed ``subflow:<id>`` holding the ended event is an end; a routed event of
    the same type (key ``source#id``) or a row for a status that is not terminal is not."""
    end = ChildEnd.from_inbox(inbox_end("completed", {"ok": True}))
    forged = InboxEvent(
        seq=4,
        key=f"/somewhere#{CHILD}",
        event=subflow_ended_event(CHILD, "completed", {"ok": False}, None, AT),
    )
    running = inbox_end("running")
    assert end == ChildEnd(child_id=CHILD, status=InstanceStatus.COMPLETED, output={"ok": True})
    assert ChildEnd.from_inbox(forged) is None
    assert ChildEnd.from_inbox(running) is None
    assert inbox_end("completed").event["type"] == SUBFLOW_ENDED_TYPE


def test_a_faulted_child_is_an_error_with_its_type_status_and_detail() -> None:
    """A faulted child raises its problem type, status and title, the detail naming the
    child; a cancelled one a runtime error; a completed one gives its output."""
    problem = {
        "type": VALIDATION,
        "status": 422,
        "title": "Bad Customer",
        "detail": "no name",
        "instance": "/do/0/refuse",
    }
    with pytest.raises(WorkflowError) as faulted:
        subflow_result(REQUEST, ChildEnd.from_inbox(inbox_end("faulted", error=problem)))  # type: ignore[arg-type]
    with pytest.raises(WorkflowError) as cancelled:
        subflow_result(REQUEST, ChildEnd(child_id=CHILD, status=InstanceStatus.CANCELLED))
    output = subflow_result(
        REQUEST, ChildEnd(child_id=CHILD, status=InstanceStatus.COMPLETED, output=[1])
    )
    error = faulted.value.problem
    assert (error.type, error.status, error.title, error.instance) == (
        VALIDATION,
        422,
        "Bad Customer",
        None,
    )
    assert error.detail == f"subflow test/child:1.0.0 (instance {CHILD}) faulted: no name"
    assert cancelled.value.problem.type == ErrorType.RUNTIME
    assert cancelled.value.problem.detail == (
        f"subflow test/child:1.0.0 (instance {CHILD}) was cancelled before it completed"
    )
    assert output == [1]


async def start(harness: Any, definition_id: str) -> uuid.UUID:
    record, _ = await harness.runtime.start_instance(StartRequest(definition_id=definition_id))
    return record.instance_id  # type: ignore[no-any-return]


def children_of(store: WatchedStore, parent: uuid.UUID) -> list[uuid.UUID]:
    return [i for i, s in store.instances.items() if s.record.parent_id == parent]


async def test_the_parent_waits_and_continues_with_the_child_output(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With ``await`` (the default) the parent parks until its child completes, then goes on
    with the child's output; the child is one instance that names its parent."""
    async with open_runtime() as harness:
        harness.register("child", CHILD_DOUBLES)
        harness.register("parent", PARENT_AWAITS)
        parent = await start(harness, "parent")
        await harness.wait_status(parent, InstanceStatus.COMPLETED)
    stored = harness.store.stored(parent)
    (child,) = children_of(harness.store, parent)
    child_record = harness.store.stored(child).record
    assert stored.record.output == {"doubled": 42}
    assert child_record.status is InstanceStatus.COMPLETED
    assert child_record.input == {"n": 21}
    assert (child_record.parent_awaits, child_record.subflow_depth) == (True, 1)
    assert child == child_instance_id(parent, f"{parent}/do/1/runChild")
    assert "subflow.started" in harness.history(parent)
    assert stored.inbox == []  # the child's end was consumed


async def test_a_child_fault_is_caught_by_the_parent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A faulted child is an error of its own type in the parent, which ``try`` catches."""
    async with open_runtime() as harness:
        harness.register("child", CHILD_FAILS)
        harness.register("parent", PARENT_CATCHES)
        parent = await start(harness, "parent")
        await harness.wait_status(parent, InstanceStatus.COMPLETED)
    (child,) = children_of(harness.store, parent)
    assert harness.store.stored(child).record.status is InstanceStatus.FAULTED
    assert harness.store.stored(parent).record.output == {
        "caught": f"subflow test/child:1.0.0 (instance {child}) faulted: the customer has no name",
        "status": 422,
    }


async def test_an_uncaught_child_fault_faults_the_parent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Without ``try`` the child's fault faults the parent, with the child's problem."""
    async with open_runtime() as harness:
        harness.register("child", CHILD_FAILS)
        harness.register("parent", PARENT_AWAITS)
        parent = await start(harness, "parent")
        await harness.wait_status(parent, InstanceStatus.FAULTED)
    (child,) = children_of(harness.store, parent)
    error = harness.store.stored(parent).record.error
    assert error["type"] == VALIDATION and error["status"] == 422
    assert error["instance"] == "/do/1/runChild"
    assert error["detail"] == (
        f"subflow test/child:1.0.0 (instance {child}) faulted: the customer has no name"
    )


async def test_without_await_the_parent_goes_on_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With ``await: false`` the parent completes with its own data while its child waits; the
    child completes later, and its end is not delivered to the parent."""
    async with open_runtime() as harness:
        harness.register("child", CHILD_PAUSES)
        harness.register("parent", PARENT_DOES_NOT_WAIT)
        parent = await start(harness, "parent")
        await harness.wait_status(parent, InstanceStatus.COMPLETED)
        (child,) = children_of(harness.store, parent)
        child_while = harness.store.stored(child).record.status
        await harness.wait_status(child, InstanceStatus.COMPLETED)
    record = harness.store.stored(child).record
    assert harness.store.stored(parent).record.output == {"n": 5}
    assert not child_while.terminal
    assert (record.parent_id, record.parent_awaits, record.output) == (
        parent,
        False,
        {"waited": True},
    )


async def test_cancelling_the_parent_cancels_its_children(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancel of a parent waiting for its child cancels the child (and its own children),
    each with a history row naming the reason."""
    async with open_runtime() as harness:
        harness.register("child", CHILD_WAITS)
        harness.register("middle", PARENT_AWAITS.replace("name: child", "name: child"))
        harness.register("parent", PARENT_AWAITS.replace("name: child", "name: middle"))
        parent = await start(harness, "parent")
        await harness.wait_status(parent, InstanceStatus.WAITING)
        (middle,) = children_of(harness.store, parent)
        await harness.wait_status(middle, InstanceStatus.WAITING)
        (child,) = children_of(harness.store, middle)
        await harness.wait_status(child, InstanceStatus.WAITING)
        await harness.runtime.command(parent, "cancel")
        statuses = [harness.store.stored(i).record.status for i in (parent, middle, child)]
        await trio.sleep(7200)  # the child's wait was due: nothing wakes it any more
    assert statuses == [InstanceStatus.CANCELLED] * 3
    assert harness.store.stored(child).record.status is InstanceStatus.CANCELLED
    assert harness.history(child)[-1] == "workflow.cancelled"
    assert harness.store.stored(child).history[-1].details == {
        "reason": "its parent workflow instance was cancelled",
        "parentId": str(middle),
    }


async def test_a_cancelled_child_is_a_fault_of_its_parent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A child cancelled on its own while its parent waits faults the parent with a runtime
    error naming the child."""
    async with open_runtime() as harness:
        harness.register("child", CHILD_WAITS)
        harness.register("parent", PARENT_AWAITS)
        parent = await start(harness, "parent")
        await harness.wait_status(parent, InstanceStatus.WAITING)
        (child,) = children_of(harness.store, parent)
        await harness.wait_status(child, InstanceStatus.WAITING)
        await harness.runtime.command(child, "cancel")
        await harness.wait_status(parent, InstanceStatus.FAULTED)
    error = harness.store.stored(parent).record.error
    assert error["type"] == ErrorType.RUNTIME
    assert error["detail"] == (
        f"subflow test/child:1.0.0 (instance {child}) was cancelled before it completed"
    )


async def test_an_unknown_definition_is_a_configuration_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A task naming a definition that is not registered faults the parent with a
    configuration error naming it, and creates no child."""
    async with open_runtime() as harness:
        harness.register("parent", PARENT_AWAITS.replace("name: child", "name: nobody"))
        parent = await start(harness, "parent")
        await harness.wait_status(parent, InstanceStatus.FAULTED)
    error = harness.store.stored(parent).record.error
    assert error["type"] == ErrorType.CONFIGURATION
    assert error["detail"] == (
        "run.workflow names workflow test/nobody:1.0.0, which is not registered (namespace, "
        "name and version of its document); register it first"
    )
    assert children_of(harness.store, parent) == []


async def test_a_workflow_that_runs_itself_stops_at_the_depth_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The instance at ``subflowDepth`` faults with the limit's error instead of starting
    another child; each parent up to the top faults with it in turn."""
    async with open_runtime(subflow_depth=3) as harness:
        harness.register("recursive", RECURSIVE)
        top = await start(harness, "recursive")
        await harness.wait_status(top, InstanceStatus.FAULTED)
    depths = sorted(s.record.subflow_depth for s in harness.store.instances.values())
    deepest = next(s for s in harness.store.instances.values() if s.record.subflow_depth == 3)
    assert depths == [0, 1, 2, 3]
    assert deepest.record.error["detail"] == (
        "run.workflow would start test/recursive:1.0.0 4 subflows deep (3 allowed), over the "
        "limit workflows.limits.subflowDepth; raise it or stop the recursion of workflows that "
        "run themselves"
    )
    assert (
        harness.store.stored(top)
        .record.error["detail"]
        .endswith(
            "over the limit workflows.limits.subflowDepth; raise it or stop the recursion of "
            "workflows that run themselves"
        )
    )
    assert harness.store.stored(top).record.error["type"].endswith("/limit-exceeded")


async def test_recovery_finishes_a_cancel_cascade_a_crash_interrupted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancelled parent whose child still waits (the cascade did not run) gets the child
    cancelled when its partition is recovered."""
    store = WatchedStore(clock=trio_clock)
    store.register("child", "1.0.0", {})
    parent = store.create("child")
    await store.set_status(
        parent.instance_id, InstanceStatus.CANCELLED, allowed_from={InstanceStatus.PENDING}
    )
    child = store.create("child", parent_id=parent.instance_id, parent_awaits=True)
    await store.set_status(
        child.instance_id, InstanceStatus.WAITING, allowed_from={InstanceStatus.PENDING}
    )
    async with open_runtime(store) as harness:
        await harness.wait_status(child.instance_id, InstanceStatus.CANCELLED)
    assert harness.history(child.instance_id)[-1] == "workflow.cancelled"


async def test_a_parent_run_again_finds_its_child_and_makes_no_second(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A parent that runs again while its child has not ended (a wake-up, a restart) finds the
    child by its id and parks again: still one child, left as it is."""
    async with open_runtime() as harness:
        harness.register("child", CHILD_WAITS)
        harness.register("parent", PARENT_AWAITS)
        parent = await start(harness, "parent")
        await harness.wait_status(parent, InstanceStatus.WAITING)
        (child,) = children_of(harness.store, parent)
        await harness.wait_status(child, InstanceStatus.WAITING)
        before = harness.store.stored(child).record
        version = harness.store.stored(parent).record.snapshot_version
        await harness.runtime.activate(parent)
        while harness.store.stored(parent).record.snapshot_version == version:
            await harness.store.changed.wait()
        await harness.wait_status(parent, InstanceStatus.WAITING)
    assert children_of(harness.store, parent) == [child]
    assert harness.store.stored(child).record == before
    assert harness.history(parent).count("subflow.started") == 1


async def test_an_end_consumed_before_a_crash_is_read_from_the_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When the child's end is gone from the inbox (consumed by a commit that did not complete
    the task, then a crash), the parent reads the stored child and goes on with its output."""
    async with open_runtime() as harness:
        harness.register("child", CHILD_WAITS)
        harness.register("parent", PARENT_AWAITS)
        parent = await start(harness, "parent")
        await harness.wait_status(parent, InstanceStatus.WAITING)
        (child,) = children_of(harness.store, parent)
        await harness.wait_status(child, InstanceStatus.WAITING)
        await harness.runtime.command(child, "suspend")
        stored = harness.store.stored(child)
        stored.record = attrs.evolve(
            stored.record, status=InstanceStatus.COMPLETED, output={"from": "the child row"}
        )
        assert harness.store.stored(parent).inbox == []
        await harness.runtime.activate(parent)
        await harness.wait_status(parent, InstanceStatus.COMPLETED)
    assert harness.store.stored(parent).record.output == {"from": "the child row"}


PARENT_GIVES_UP = """\
do:
  - guarded:
      try:
        - runChild:
            run:
              workflow: {namespace: test, name: child, version: '1.0.0'}
            timeout:
              after: {seconds: 1}
      catch:
        errors:
          with:
            type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
        do:
          - note:
              set: {gaveUp: true}
  - later:
      wait: {seconds: 4}
"""


async def test_the_end_of_a_child_nobody_waits_for_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A run task that timed out leaves its child running; the child's end, delivered later
    to the parent waiting on something else, is deleted by the parent's next commit."""
    store = WatchedStore(clock=trio_clock)
    async with open_runtime(store) as harness:
        harness.register("child", CHILD_PAUSES)
        harness.register("parent", PARENT_GIVES_UP)
        parent = await start(harness, "parent")
        while not (children := children_of(store, parent)) or (
            store.stored(children[0]).record.status is not InstanceStatus.COMPLETED
        ):
            await store.changed.wait()
        delivered = [e.key for e in store.stored(parent).inbox]
        version = store.stored(parent).record.snapshot_version
        while store.stored(parent).record.snapshot_version == version:
            await store.changed.wait()
        after = (store.stored(parent).record.status, store.stored(parent).inbox)
        await harness.wait_status(parent, InstanceStatus.COMPLETED)
    assert delivered == [subflow_key(children[0])]
    assert after == (InstanceStatus.WAITING, [])
    assert store.stored(parent).record.output == {"gaveUp": True}


PARENT_CALLS_ON = """\
do:
  - runChild:
      run:
        workflow: {namespace: test, name: child, version: '1.0.0'}
        await: false
  - callOut:
      call: http
      with:
        method: get
        endpoint: http://example.com/slow
"""


async def test_cancelling_a_running_parent_cancels_its_children(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancel of a parent whose actor runs (here in a call) stops the run, commits the
    parent cancelled, then cancels the child it started without waiting for it."""
    released = trio.Event()

    async def slow(request: HttpRequest) -> HttpResponse:
        await released.wait()
        return HttpResponse(status=200)

    async with open_runtime() as harness:
        harness.http.respond = slow
        harness.register("child", CHILD_WAITS)
        harness.register("parent", PARENT_CALLS_ON)
        parent = await start(harness, "parent")
        await harness.http.called.wait()
        (child,) = children_of(harness.store, parent)
        assert harness.runtime.live.get(parent) is not None
        await harness.runtime.command(parent, "cancel")
        released.set()
        await harness.wait_status(child, InstanceStatus.CANCELLED)
    assert harness.store.stored(parent).record.status is InstanceStatus.CANCELLED
    assert harness.history(child)[-1] == "workflow.cancelled"


async def test_a_workflow_of_another_namespace_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A task naming a workflow of another namespace faults the parent with an authorization
    error naming both namespaces, and starts nothing (a child runs in its parent's
    namespace)."""
    async with open_runtime() as harness:
        harness.store.register(
            "foreign", "1.0.0", {"document": {"namespace": "billing", "name": "child"}}
        )
        harness.register("parent", PARENT_AWAITS.replace("namespace: test", "namespace: billing"))
        parent = await start(harness, "parent")
        await harness.wait_status(parent, InstanceStatus.FAULTED)
    error = harness.store.stored(parent).record.error
    assert error["type"] == ErrorType.AUTHORIZATION
    assert error["detail"] == (
        "run.workflow names workflow billing/child:1.0.0 of namespace 'billing', but a "
        "workflow of namespace 'test' runs subflows of its own namespace only; register the "
        "workflow in namespace 'test'"
    )
    assert children_of(harness.store, parent) == []
