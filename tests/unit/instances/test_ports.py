"""The ports record and the configured process port."""

from __future__ import annotations

import pytest

from tests.support.instances import open_instances
from workflow_orchestrator.dsl import WorkflowError
from workflow_orchestrator.dsl.runtime import ProcessRequest, ProcessResult
from workflow_orchestrator.instances import ConfiguredProcesses, EventOptions, LiveInstances


async def run(request: ProcessRequest) -> ProcessResult:
    return ProcessResult(code=0, stdout=request.command)


async def test_enabled_processes_run() -> None:
    """An enabled kind runs with the given runner."""
    processes = ConfiguredProcesses(run=run, shell=True)
    result = await processes.run_process(ProcessRequest(kind="shell", command="echo hi"))
    assert result == ProcessResult(code=0, stdout="echo hi")


@pytest.mark.parametrize("kind", ["shell", "script"])
async def test_disabled_processes_name_the_setting(kind: str) -> None:
    """A disabled kind is a configuration error the workflow sees, naming the setting."""
    processes = ConfiguredProcesses(run=run)
    with pytest.raises(WorkflowError) as refused:
        await processes.run_process(ProcessRequest(kind=kind, command="x"))
    assert refused.value.problem.detail == (
        f"run.{kind} is disabled; set workflows.run.{kind}: true in the configuration"
    )


async def test_ports_defaults_and_immutability() -> None:
    """Ports are frozen; by default events go to the events table, a wait parks after one
    second and every instance shares the record's live registry."""
    async with open_instances() as instances:
        ports = instances.ports()
    assert ports.events == EventOptions() and ports.park_after == 1.0
    assert isinstance(ports.live, LiveInstances)
    assert await ports.retained_events({"t"}, 60.0) == ()
    with pytest.raises(AttributeError):
        ports.park_after = 2.0  # type: ignore[misc]
