"""Which instances recovery runs when this replica gains their partitions (no I/O).

Pending and running instances run again from their last committed snapshot (the recovered
item saves the read). A waiting instance runs only when events reached its inbox meanwhile
(it reads its inbox itself, so it is loaded again); otherwise its timers and subscriptions
wake it. Suspended and terminal instances are left alone.
"""

from __future__ import annotations

import attrs

from workflow_orchestrator.storage.instances import InstanceStatus, RecoverableInstance

__all__ = ["RecoveryRun", "recovery_run"]


@attrs.frozen(kw_only=True)
class RecoveryRun:
    """Run the instance; ``activation`` None means load it first."""

    activation: RecoverableInstance | None


def recovery_run(item: RecoverableInstance) -> RecoveryRun | None:
    """How recovery runs ``item``, or None when it stays as it is."""
    status = item.record.status
    if status is InstanceStatus.WAITING and item.has_inbox:
        return RecoveryRun(activation=None)  # events arrived meanwhile
    if status in (InstanceStatus.PENDING, InstanceStatus.RUNNING):
        return RecoveryRun(activation=item)
    return None
