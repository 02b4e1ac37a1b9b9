"""What the instance metrics count, decided at the commit that makes it true.

A start is counted when an instance leaves ``pending`` by a commit of its run (its first
commit, also when that commit already ends it); an end when a commit makes it terminal, once,
whichever path commits it (its run, a runtime fault, a value PostgreSQL cannot store, a
command). A task's duration is the time between its ``task.started`` and its
``task.completed`` or ``task.faulted`` lifecycle events within one run (so only with
``workflows.lifecycleEvents``). A task that parked its instance (a wait longer than
``park_after``, a listen with no event yet) starts again in the run that resumes it and is
timed from there; one whose ``task.started`` came in an earlier run is not timed.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from workflow_orchestrator.observability import InstanceMetrics
from workflow_orchestrator.storage.instances import HistoryRow, InstanceStatus

__all__ = ["TaskClock", "count_transition"]

_TASK_ENDS = {"task.completed": "completed", "task.faulted": "faulted"}


def count_transition(
    metrics: InstanceMetrics | None,
    definition: str,
    before: InstanceStatus,
    after: InstanceStatus,
) -> None:
    """Count what a durable commit of a run from ``before`` to ``after`` means (no I/O)."""
    if metrics is None or before == after:
        return
    if before is InstanceStatus.PENDING:
        metrics.started(definition)
    if after.terminal and not before.terminal:
        metrics.ended(definition, str(after))


@attrs.define(eq=False)
class TaskClock:
    """The start times of the tasks of one run, by task reference, until each one ends."""

    metrics: InstanceMetrics
    definition: str
    _started: dict[str, datetime] = attrs.field(factory=dict, init=False)

    def lifecycle(self, row: HistoryRow) -> None:
        """Note a task's start, or time its end, from its lifecycle history row."""
        if row.kind == "task.started":
            self._started[row.task_ref] = row.at
            return
        outcome = _TASK_ENDS.get(row.kind)
        if outcome is None:
            return
        started = self._started.pop(row.task_ref, None)
        if started is not None:
            seconds = (row.at - started).total_seconds()
            self.metrics.task_finished(self.definition, outcome, seconds)
