"""A runtime fault: the instance failed in our code too often and is marked faulted.

The faulted snapshot is planned by ``plan_commit`` like every other commit, on top of the last
committed state, so it is terminal the same way: ``completed_at`` is set, subscriptions and
timers are dropped, the inbox is consumed, and the error is a standard runtime ``Problem``
naming the failure. A parent awaiting the instance gets its end in its inbox with the same
commit, and is woken.
"""

from __future__ import annotations

import logging
import uuid

from workflow_orchestrator.actors import FailureInfo
from workflow_orchestrator.dsl import ErrorType, Problem
from workflow_orchestrator.instances._commit import (
    PLAIN_COMMIT,
    CommitTarget,
    Pending,
    plan_commit,
)
from workflow_orchestrator.instances._observed import count_transition
from workflow_orchestrator.instances._ports import InstancePorts
from workflow_orchestrator.storage import SnapshotSuperseded
from workflow_orchestrator.storage.instances import HistoryRow, InstanceStatus

__all__ = ["fault_instance"]

logger = logging.getLogger(__name__)


async def fault_instance(
    ports: InstancePorts, instance_id: uuid.UUID, failure: FailureInfo | None, attempts: int
) -> None:
    """Commit ``instance_id`` as faulted after ``attempts`` runtime failures (the last one
    ``failure``); returns once it is durable. An instance that ended or changed meanwhile (a
    cancel of the crash-looping instance committed directly, also between the read and the
    write) is left as it is."""
    current = await ports.load(instance_id)
    if current.record.terminal:
        return  # cancelled (or ended) meanwhile: that status stands
    detail = f"{failure.type}: {failure.message}" if failure is not None else "unknown failure"
    problem = Problem.standard(
        ErrorType.RUNTIME,
        title="Runtime Error",
        detail=f"the instance failed {attempts} times in the runtime ({detail}); it is "
        "marked faulted instead of being retried again",
    ).to_json()
    record = current.record
    now = ports.clock()
    stored = (current.snapshot or {}).get("state") or {}
    snapshot = plan_commit(
        CommitTarget(instance_id=instance_id, partition=record.partition),
        record.snapshot_version,
        Pending(
            state={**stored, "status": InstanceStatus.FAULTED, "error": problem},
            status=InstanceStatus.FAULTED,
            history=(HistoryRow(kind="workflow.faulted", at=now, details={"error": problem}),),
            subscriptions_held=True,
            timers_held=True,
        ),
        PLAIN_COMMIT,
        now,
    )
    assert snapshot is not None  # a history row is pending
    try:
        await ports.snapshots.write(snapshot)
    except SnapshotSuperseded as superseded:
        logger.info(
            "workflow instance %s was not marked faulted: %s",
            instance_id,
            superseded,
            extra={"instance_id": str(instance_id)},
        )
        return  # a command ended (or changed) it since it was read: that status stands
    logger.error(
        "workflow instance %s faulted after %d runtime failures: %s",
        instance_id,
        attempts,
        detail,
        extra={"instance_id": str(instance_id)},
    )
    count_transition(ports.metrics, record.definition_id, record.status, InstanceStatus.FAULTED)
    ports.committed(instance_id, InstanceStatus.FAULTED)
    if record.parent_awaits and record.parent_id is not None:
        await ports.wake([record.parent_id])  # the child's end is in its inbox now
