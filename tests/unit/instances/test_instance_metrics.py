"""The instance metrics count what the commits make true: a start when an instance leaves
pending, one end per terminal status whichever path commits it, and the duration of tasks
within one run, by definition."""

from __future__ import annotations

import uuid

import pytest
import trio
import trio.testing
from prometheus_client import CollectorRegistry

from tests.support.instances import open_instances, open_runtime
from workflow_orchestrator.actors import FailureInfo
from workflow_orchestrator.instances import StartRequest, fault_instance
from workflow_orchestrator.observability import InstanceMetrics
from workflow_orchestrator.storage import InvalidStatusTransition
from workflow_orchestrator.storage.instances import InstanceStatus

TWO_SETS = """\
do:
  - first:
      set: {step: 1}
  - second:
      set: {step: 2}
"""

# Parks (longer than park_after) and arms its own wake-up (within the timer lookahead).
WAITER = """\
do:
  - first:
      set: {step: 1}
  - pause:
      wait: {seconds: 3}
  - last:
      set: {step: 2}
"""

FAILING = """\
do:
  - first:
      set: {step: 1}
  - fail:
      raise:
        error:
          type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
          status: 500
          title: Boom
"""


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The value of one sample, 0 when the series does not exist."""
    return registry.get_sample_value(name, labels) or 0.0


async def test_starts_ends_and_task_durations_by_definition(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Instances that complete, fault, wait and get cancelled are each started and ended once;
    tasks are timed within a run (a task that parked, from the run that resumed it)."""
    registry = CollectorRegistry()
    async with open_runtime(metrics=InstanceMetrics(registry)) as harness:
        harness.register("two_sets", TWO_SETS)
        harness.register("failing", FAILING)
        harness.register("waiter", WAITER)
        started: dict[str, list[uuid.UUID]] = {}
        for name in ("two_sets", "failing", "waiter", "waiter"):
            record, _ = await harness.runtime.start_instance(StartRequest(definition_id=name))
            started.setdefault(name, []).append(record.instance_id)
        await harness.wait_status(started["two_sets"][0], InstanceStatus.COMPLETED)
        await harness.wait_status(started["failing"][0], InstanceStatus.FAULTED)
        first, second = started["waiter"]
        await harness.wait_status(second, InstanceStatus.WAITING)
        # Parked, so no actor: the command commits the end itself.
        await harness.runtime.command(second, "cancel")
        # The first waiter wakes after its three seconds (mock clock) and completes.
        await harness.wait_status(first, InstanceStatus.COMPLETED)
        # A command refused on an instance that ended counts nothing more.
        with pytest.raises(InvalidStatusTransition):
            await harness.runtime.command(started["two_sets"][0], "cancel")
    starts = {
        name: sample(registry, "workflow_orchestrator_instances_started_total", definition=name)
        for name in ("two_sets", "failing", "waiter")
    }
    ends = {
        (name, status): sample(
            registry,
            "workflow_orchestrator_instances_ended_total",
            definition=name,
            status=status,
        )
        for name in ("two_sets", "failing", "waiter")
        for status in ("completed", "faulted", "cancelled")
    }
    tasks = {
        (name, outcome): sample(
            registry,
            "workflow_orchestrator_task_duration_seconds_count",
            definition=name,
            outcome=outcome,
        )
        for name in ("two_sets", "failing", "waiter")
        for outcome in ("completed", "faulted")
    }
    assert starts == {"two_sets": 1, "failing": 1, "waiter": 2}
    assert {key: value for key, value in ends.items() if value} == {
        ("two_sets", "completed"): 1,
        ("failing", "faulted"): 1,
        ("waiter", "completed"): 1,
        ("waiter", "cancelled"): 1,
    }
    # waiter: "first" of both instances; of the one that woke, "pause" (timed from the run that
    # resumed it: it started again there) and "last".
    assert {key: value for key, value in tasks.items() if value} == {
        ("two_sets", "completed"): 2,
        ("failing", "completed"): 1,
        ("failing", "faulted"): 1,
        ("waiter", "completed"): 4,
    }


async def test_a_runtime_fault_counts_the_end_of_its_definition() -> None:
    """``fault_instance`` (after repeated crashes) counts a start for a pending instance and
    its faulted end."""
    registry = CollectorRegistry()
    async with open_instances() as instances:
        instance_id = instances.start("crashing")
        failure = FailureInfo(type="KeyError", message="'x'", time=0.0)
        ports = instances.ports(metrics=InstanceMetrics(registry))
        await fault_instance(ports, instance_id, failure, 3)
    assert sample(registry, "workflow_orchestrator_instances_started_total", definition="crashing")
    assert (
        sample(
            registry,
            "workflow_orchestrator_instances_ended_total",
            definition="crashing",
            status="faulted",
        )
        == 1
    )
