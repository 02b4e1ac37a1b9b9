"""``fault_instance``: a runtime fault is a terminal commit planned like every other."""

from __future__ import annotations

from datetime import timedelta

from tests.support.instances import EPOCH, open_instances
from workflow_orchestrator.actors import FailureInfo
from workflow_orchestrator.instances import fault_instance
from workflow_orchestrator.storage.instances import (
    InstanceSnapshot,
    InstanceStatus,
    SubscriptionRow,
    TimerRow,
)


async def test_fault_commits_a_terminal_runtime_error_on_the_last_snapshot() -> None:
    """The faulted snapshot builds on the stored state, records the runtime problem in the
    record and the history, and drops subscriptions, timers and inbox."""
    async with open_instances() as instances:
        instance_id = instances.start("anything")
        store = instances.store
        record = store.stored(instance_id).record
        await store.write(
            InstanceSnapshot(
                instance_id=instance_id,
                partition=record.partition,
                snapshot_version=1,
                status=InstanceStatus.WAITING,
                snapshot={"state": {"status": "waiting", "context": {"n": 1}}, "wakeAt": None},
                context={"n": 1},
                subscriptions=(
                    SubscriptionRow(
                        filter_index=0, task_ref="/do/0/a", event_type="t", shape_id=0, corr_key=""
                    ),
                ),
                timers=(TimerRow(timer_key="k", kind="wait", due_at=EPOCH + timedelta(hours=1)),),
            )
        )
        store.deliver(instance_id, {"id": "x", "source": "s", "type": "t"})
        failure = FailureInfo(type="KeyError", message="'x'", time=0.0)
        await fault_instance(instances.ports(), instance_id, failure, 3)
        stored = store.stored(instance_id)
    assert stored.record.status is InstanceStatus.FAULTED
    assert stored.record.snapshot_version == 2 and stored.record.completed_at is not None
    assert stored.record.error["detail"] == (
        "the instance failed 3 times in the runtime (KeyError: 'x'); it is marked faulted "
        "instead of being retried again"
    )
    assert stored.record.context == {"n": 1}
    assert stored.snapshot is not None and stored.snapshot["state"]["status"] == "faulted"
    assert stored.subscriptions == () and stored.timers == {} and stored.inbox == []
    assert [(h.kind, h.details) for h in stored.history] == [
        ("workflow.faulted", {"error": stored.record.error})
    ]
    assert instances.committed == [(instance_id, InstanceStatus.FAULTED)]
