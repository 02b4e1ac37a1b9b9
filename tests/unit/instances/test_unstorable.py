"""A commit holding a value PostgreSQL cannot store ends its instance faulted, without the
value, on the first try (no crash, no retry); a cancel still commits cancelled."""

from __future__ import annotations

import trio
import trio.testing

from tests.support.instances import open_instances
from tests.unit.instances.test_actor import run_to
from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse
from workflow_orchestrator.instances import DurableEffects
from workflow_orchestrator.instances._effects import CommittedWithout
from workflow_orchestrator.storage.instances import InstanceStatus

CALL_THEN_SET = """\
do:
  - fetch:
      call: http
      with: {method: get, endpoint: 'http://example.test/data'}
  - keep:
      set: {kept: '${ .v }'}
"""

NUL_DETAIL = (
    "the workflow data at /frames/~1do/data/v holds the NUL character (\\u0000), "
    "which PostgreSQL cannot store; remove it or encode the value (for example base64); the "
    "instance is faulted at its last committed state"
)


async def nul_body(request: HttpRequest) -> HttpResponse:
    """An answer whose JSON holds a NUL character."""
    return HttpResponse(
        status=200, headers={"content-type": "application/json"}, body=b'{"v": "a\\u0000b"}'
    )


async def test_poison_value_faults_the_instance_once_without_the_value(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An HTTP answer holding a NUL ends the instance faulted at its last committed state,
    with an error naming the value and where it is; the call is made once (no crash loop),
    and the history keeps the storable rows of the refused commit."""
    async with open_instances() as instances:
        instances.interpreters.add("caller", CALL_THEN_SET)
        instances.http.respond = nul_body
        instance_id = instances.start("caller")
        await run_to(instances, instances.ports(), instance_id, InstanceStatus.FAULTED)
        stored = instances.store.stored(instance_id)
    assert len(instances.http.calls) == 1
    assert stored.record.error["title"] == "Unstorable Data"
    assert stored.record.error["type"].endswith("/errors/runtime")
    assert stored.record.error["detail"] == NUL_DETAIL
    assert stored.record.completed_at is not None and stored.record.output is None
    assert stored.snapshot is not None
    assert "a\x00b" not in repr(stored.snapshot)
    assert instances.history(instance_id)[-1] == ("workflow.faulted", "")
    assert instances.committed[-1] == (instance_id, InstanceStatus.FAULTED)


async def test_cancel_of_a_poisoned_state_commits_cancelled() -> None:
    """A cancel whose commit would carry a value PostgreSQL cannot store commits the
    instance cancelled from its last committed state instead, and the run ends."""
    async with open_instances() as instances:
        instances.interpreters.add("caller", CALL_THEN_SET)
        instance_id = instances.start("caller")
        record = instances.store.stored(instance_id).record
        interpreter = await instances.interpreters.interpreter("caller", "1.0.0")
        state = interpreter.new_state({}, instance_id=str(instance_id))
        effects = DurableEffects(
            ports=instances.ports(),
            instance_id=instance_id,
            partition=record.partition,
            lease_epoch=instances.store.epoch_of(record.partition),
            version=record.snapshot_version,
        )
        effects.start_from(state)
        state.status = InstanceStatus.RUNNING
        await effects.checkpoint(state)
        await effects.flush()
        state.context = {"bad": float("nan")}
        await effects.checkpoint(state)
        try:
            await effects.commit_final(InstanceStatus.CANCELLED, state)
        except CommittedWithout as ended:
            outcome = ended
        stored = instances.store.stored(instance_id)
    assert outcome.status is InstanceStatus.CANCELLED
    assert outcome.refused.problem == (
        "the workflow data at /context/bad holds nan, which JSON does not allow; use a number, "
        "null or a string"
    )
    assert stored.record.status is InstanceStatus.CANCELLED and stored.record.error is None
    assert stored.record.snapshot_version == 2 and stored.record.context == {}
    assert instances.history(instance_id)[-1] == ("workflow.cancelled", "")
