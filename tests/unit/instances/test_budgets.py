"""Budgets of durable instances on the in-memory store: commitEvery, the state size limit
(whose fault is itself committable) and the interpreter's limits through the actor."""

from __future__ import annotations

import json

import trio
import trio.testing

from tests.support.instances import open_instances, open_runtime
from tests.unit.instances.test_actor import run_to
from workflow_orchestrator.dsl.runtime import LIMIT_EXCEEDED, RuntimeLimits, RuntimeOptions
from workflow_orchestrator.instances import StartRequest
from workflow_orchestrator.instances._state_size import without_data
from workflow_orchestrator.storage.instances import InstanceStatus

PURE_LOOP = """\
do:
  - loop:
      for: {in: .items}
      do:
        - step:
            set: {n: '${ .n + 1 }'}
"""

TIGHT_LOOP = """\
do:
  - again:
      set:
        n: ${ .n + 1 }
      then: again
"""

BIG_THEN_CALL = """\
do:
  - grow:
      set: {one: '${ .blob }', two: '${ .blob }'}
  - call:
      call: http
      with: {method: get, endpoint: 'http://example.test/after'}
"""

BIG_OUTPUT = """\
do:
  - grow:
      set: {one: '${ .blob }', two: '${ .blob }'}
"""


async def test_a_long_run_without_effects_commits_every_commit_every_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A run of pure tasks commits its progress every ``commit_every`` checkpoints, so the
    history rows it holds stay bounded; the default keeps such a short run at one commit."""
    async with open_instances() as instances:
        instances.interpreters.add("loop", PURE_LOOP)
        bounded = instances.start("loop", {"items": list(range(30)), "n": 0})
        await run_to(instances, instances.ports(commit_every=10), bounded, InstanceStatus.COMPLETED)
        bounded_writes = list(instances.store.writes)
        instances.store.writes.clear()
        single = instances.start("loop", {"items": list(range(30)), "n": 0})
        await run_to(instances, instances.ports(), single, InstanceStatus.COMPLETED)
        single_writes = list(instances.store.writes)
        output = instances.store.stored(bounded).record.output
    statuses = [w.status for w in bounded_writes]
    assert statuses[-1] is InstanceStatus.COMPLETED
    assert statuses.count(InstanceStatus.RUNNING) >= 3
    # 10 checkpoints: about two lifecycle rows per task, whatever the run's length
    assert max(len(w.history) for w in bounded_writes) <= 25
    assert [w.status for w in single_writes] == [InstanceStatus.COMPLETED]
    assert output == {"n": 30}


async def test_a_tight_loop_faults_through_the_actor_naming_the_setting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A loop that never waits ends faulted with a limit-exceeded error naming
    workflows.limits.tasksPerRun, committed with its last rows."""
    options = RuntimeOptions(limits=RuntimeLimits(tasks_per_run=200))
    async with open_instances() as instances:
        instances.interpreters.add("tight", TIGHT_LOOP, options)
        instance_id = instances.start("tight", {"n": 0})
        ports = instances.ports(commit_every=50)
        await run_to(instances, ports, instance_id, InstanceStatus.FAULTED)
        stored = instances.store.stored(instance_id)
    error = stored.record.error
    assert error["type"] == LIMIT_EXCEEDED and error["type"].endswith("limit-exceeded")
    assert error["detail"] == (
        "the instance ran 200 tasks in one run without waiting, over the limit "
        "workflows.limits.tasksPerRun; raise it or add a wait"
    )
    assert stored.history[-1].kind == "workflow.faulted"
    assert len(instances.store.writes) >= 4


async def test_a_state_over_the_size_limit_faults_and_the_fault_is_committable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A state over ``max_state_size`` is never written: the instance faults before its next
    effect (the call never goes out) and the faulted state is committed without its data."""
    blob = "x" * 3000
    async with open_instances() as instances:
        instances.interpreters.add("big", BIG_THEN_CALL)
        instance_id = instances.start("big", {"blob": blob})
        ports = instances.ports(max_state_size=8000)
        await run_to(instances, ports, instance_id, InstanceStatus.FAULTED)
        stored = instances.store.stored(instance_id)
        writes = list(instances.store.writes)
    assert instances.http.calls == []
    error = stored.record.error
    assert error["type"] == LIMIT_EXCEEDED
    assert error["instance"] == "/do/1/call"
    assert error["detail"].startswith("the instance state is ")
    assert error["detail"].endswith(
        " bytes of JSON (8,000 allowed), over the limit workflows.limits.stateSize; raise it or "
        "keep less data in the instance (output.as, export.as)"
    )
    assert stored.snapshot is not None
    state = stored.snapshot["state"]
    assert state["frames"] == {} and state["input"] == {"blob": blob}
    assert all(len(json.dumps(w.snapshot["state"])) <= 8000 for w in writes)
    assert [h.kind for h in stored.history][-1] == "workflow.faulted"


async def test_a_final_output_over_the_size_limit_faults_instead_of_completing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An instance whose completed state is too large is committed faulted, its output
    dropped, with a workflow.faulted row after workflow.completed."""
    async with open_instances() as instances:
        instances.interpreters.add("bigout", BIG_OUTPUT)
        instance_id = instances.start("bigout", {"blob": "y" * 3000})
        ports = instances.ports(max_state_size=8000)
        await run_to(instances, ports, instance_id, InstanceStatus.FAULTED)
        stored = instances.store.stored(instance_id)
    assert stored.record.output is None
    assert "workflows.limits.stateSize" in stored.record.error["detail"]
    assert [h.kind for h in stored.history][-2:] == ["workflow.completed", "workflow.faulted"]


def test_without_data_drops_the_input_and_a_large_error_when_still_too_large() -> None:
    """The final state keeps its identity and counters; the input, then the error, go when
    the state is still over the limit."""
    state = {
        "format": 1,
        "instanceId": "i",
        "workflow": {"namespace": "n", "name": "w", "version": "1"},
        "status": "faulted",
        "input": {"blob": "z" * 5000},
        "frames": {"/do": {"data": "z" * 5000}},
        "budget": {"tasks": 3, "historyRows": 9},
        "error": {"type": "t", "status": 400, "detail": "e" * 5000},
    }
    fallback = {"type": LIMIT_EXCEEDED, "status": 400, "detail": "too large"}
    reduced = without_data(
        state, status="faulted", error=state["error"], fallback_error=fallback, limit=2000
    )
    assert reduced["input"] is None and reduced["error"] == fallback
    assert reduced["budget"] == {"tasks": 3, "historyRows": 9}
    assert reduced["frames"] == {} and reduced["instanceId"] == "i"


async def test_stopping_the_service_abandons_a_looping_run_without_committing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``abandon_runs`` (the service stopping) cancels a run that never waits: its actor
    goes away at once and the instance keeps its last commit, to resume from it later."""
    async with open_runtime(commit_every=50) as harness:
        harness.register("tight", TIGHT_LOOP)
        record, _ = await harness.runtime.start_instance(
            StartRequest(definition_id="tight", input={"n": 0})
        )
        instance_id = record.instance_id
        while harness.store.stored(instance_id).record.status is not InstanceStatus.RUNNING:
            await harness.store.changed.wait()
        actor = harness.runtime.live.get(instance_id)
        assert actor is not None
        assert harness.runtime.abandon_runs() == 1
        await actor.wait_gone()
        stored = harness.store.stored(instance_id)
        writes_after = len(harness.store.writes)
        await trio.sleep(1)
        assert len(harness.store.writes) == writes_after
    assert stored.record.status is InstanceStatus.RUNNING
    assert harness.runtime.live.get(instance_id) is None
