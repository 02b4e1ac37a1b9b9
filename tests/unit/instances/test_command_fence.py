"""A command's status stands against a run that goes on: the run's late commit is refused
(``SnapshotSuperseded``) and its actor stops quietly, with no crash, restart or fault."""

from __future__ import annotations

import logging
import uuid

import pytest
import trio
import trio.testing

from tests.support.instances import ok, open_instances, open_runtime
from workflow_orchestrator.actors import FailureInfo
from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse
from workflow_orchestrator.instances import Command, StartRequest, fault_instance
from workflow_orchestrator.instances._commands import command_transition
from workflow_orchestrator.instances.testing import InMemoryInstanceStore
from workflow_orchestrator.storage.instances import InstanceStatus, RecoverableInstance

CALL_THEN_SET = """\
do:
  - slow:
      call: http
      with: {method: get, endpoint: 'http://example.test/slow'}
  - after:
      set: {done: true}
"""


async def _command(store: InMemoryInstanceStore, instance_id: uuid.UUID, action: Command) -> None:
    """Commit ``action`` directly, as the runtime's forced path does for a run that did not
    stop in time (or another replica's command on an instance it believes at rest)."""
    transition = command_transition(action)
    await store.set_status(
        instance_id,
        transition.status,
        allowed_from=transition.allowed_from,
        history_kind=transition.history_kind,
    )


@pytest.mark.parametrize("action", [Command.CANCEL, Command.SUSPEND])
async def test_a_run_that_outlives_a_command_stops_quietly(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, action: Command
) -> None:
    """A cancel or suspend committed while the run is in a call: the run's next commit (the
    call's completion) is refused, its actor stops at once without a crash or a restart, the
    instance keeps the command's status (a long poll sees the cancel), and a suspended one
    resumes from its stored snapshot and completes."""
    caplog.set_level(logging.INFO, logger="workflow_orchestrator")
    status = command_transition(action).status
    async with open_runtime() as harness:
        harness.register("slow", CALL_THEN_SET)
        record, _ = await harness.runtime.start_instance(StartRequest(definition_id="slow"))
        instance_id = record.instance_id

        async def respond(request: HttpRequest) -> HttpResponse:
            harness.http.respond = ok  # the call of a resumed run is answered at once
            await _command(harness.store, instance_id, action)
            return await ok(request)

        harness.http.respond = respond
        await harness.wait_status(instance_id, status)
        assert harness.runtime.live.get(instance_id) is None
        stood = harness.store.stored(instance_id).record
        history = harness.history(instance_id)
        polled = await harness.runtime.wait_terminal(instance_id, 1)
        if action is Command.SUSPEND:
            await harness.runtime.command(instance_id, Command.RESUME)
            await harness.wait_status(instance_id, InstanceStatus.COMPLETED)
    assert stood.status is status and stood.output is None
    assert history[-1] == f"workflow.{status}" and "workflow.completed" not in history
    assert polled.status is status
    stops = [r for r in caplog.records if "stopped here" in r.getMessage()]
    assert len(stops) == 1 and stops[0].levelno == logging.WARNING
    assert f"(stored version {stood.snapshot_version})" in stops[0].getMessage() or (
        f"older than the stored version {stood.snapshot_version} (suspended)"
        in stops[0].getMessage()
    )
    assert not [r for r in caplog.records if "after a crash" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    if action is Command.SUSPEND:
        assert harness.history(instance_id)[-1] == "workflow.completed"


async def test_a_fault_after_a_cancel_leaves_it_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cancel committed between ``fault_instance``'s read and its write stands: the faulted
    snapshot is refused, nothing is logged as an error and no fault is announced."""
    caplog.set_level(logging.INFO, logger="workflow_orchestrator")
    async with open_instances() as instances:
        store = instances.store
        instance_id = instances.start("anything")

        async def read_then_cancelled(instance_id: uuid.UUID) -> RecoverableInstance:
            read = await store.load(instance_id)
            await _command(store, instance_id, Command.CANCEL)
            return read

        failure = FailureInfo(type="KeyError", message="'x'", time=0.0)
        ports = instances.ports(load=read_then_cancelled)
        await fault_instance(ports, instance_id, failure, 3)
        stored = store.stored(instance_id)
    assert stored.record.status is InstanceStatus.CANCELLED and stored.record.error is None
    assert [h.kind for h in stored.history] == ["workflow.cancelled"]
    assert instances.committed == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("was not marked faulted" in r.getMessage() for r in caplog.records)
