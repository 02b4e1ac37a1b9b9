"""A commit PostgreSQL cannot store: the instance ends without the value, and alone.

When the snapshot sink refuses a snapshot with ``SnapshotUnstorable`` (a NUL character, a lone
surrogate, NaN or an infinity, nesting too deep: retrying cannot help), ``commit_unstorable``
commits instead, on top of the last committed state (which holds no such value), the instance
as faulted with an error that names the value and where it is. When the refused commit carried
a status asked from outside the interpreter (a cancel or a suspend), that status is committed
instead of the fault. The refused commit's history rows that can be stored are kept; its state,
outgoing events and the rest are dropped. The commit is planned by ``plan_commit`` like every
other, so a fault is terminal the usual way (subscriptions, timers and inbox go), and a suspend
keeps the subscriptions and timers of the last commit.
"""

from __future__ import annotations

import logging

from workflow_orchestrator.dsl import ErrorType, Problem
from workflow_orchestrator.instances._commit import (
    PLAIN_COMMIT,
    CommitAsk,
    CommitTarget,
    Pending,
    plan_commit,
)
from workflow_orchestrator.instances._ports import InstancePorts
from workflow_orchestrator.storage import Unstorable, check_storable
from workflow_orchestrator.storage.instances import (
    HistoryRow,
    InstanceSnapshot,
    InstanceStatus,
    SnapshotUnstorable,
)

__all__ = ["UNSTORABLE_TITLE", "commit_unstorable", "unstorable_problem"]

logger = logging.getLogger(__name__)

UNSTORABLE_TITLE = "Unstorable Data"


def unstorable_problem(refused: SnapshotUnstorable) -> dict[str, object]:
    """The instance's error for ``refused`` (a standard runtime problem naming the value)."""
    return Problem.standard(
        ErrorType.RUNTIME,
        title=UNSTORABLE_TITLE,
        detail=f"{refused.problem}; the instance is faulted at its last committed state",
    ).to_json()


def _storable(row: HistoryRow) -> bool:
    try:
        check_storable([row.kind, row.task_ref, row.details])
    except Unstorable:
        return False
    return True


async def commit_unstorable(
    ports: InstancePorts,
    target: CommitTarget,
    refused_snapshot: InstanceSnapshot,
    refused: SnapshotUnstorable,
    asked: InstanceStatus | None = None,
) -> InstanceStatus:
    """Commit the instance without ``refused_snapshot`` (see the module docstring): faulted,
    or ``asked`` (cancelled, suspended) when the refused commit was that command's; returns
    the status committed, once it is durable."""
    current = await ports.load(target.instance_id)
    record = current.record
    stored = dict((current.snapshot or {}).get("state") or {})
    now = ports.clock()
    history = tuple(row for row in refused_snapshot.history if _storable(row))
    if asked is not None:
        status, ask = asked, CommitAsk(status=asked, note=str(asked))
        state = {**stored, "status": asked}
    else:
        problem = unstorable_problem(refused)
        status, ask = InstanceStatus.FAULTED, PLAIN_COMMIT
        state = {**stored, "status": InstanceStatus.FAULTED, "error": problem}
        history += (HistoryRow(kind="workflow.faulted", at=now, details={"error": problem}),)
    snapshot = plan_commit(
        target,
        record.snapshot_version,
        Pending(
            state=state,
            status=status,
            changed=True,
            history=history,
        ),
        ask,
        now,
    )
    assert snapshot is not None  # changed is set
    await ports.snapshots.write(snapshot)
    logger.warning(
        "workflow instance %s was committed %s without its last changes: %s",
        target.instance_id,
        status,
        refused.problem,
        extra={"instance_id": str(target.instance_id)},
    )
    ports.committed(target.instance_id, status)
    return status
