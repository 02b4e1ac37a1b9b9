"""Per-instance budgets: how much one instance may run before it is stopped.

A definition is code that runs inside the service, so every instance has limits no sane
workflow meets (``workflows.limits.*``): tasks in one run (one activation, until the instance
waits), tasks in total, history rows (lifecycle and emitted events), and iterations of one loop
(a ``for`` loop's items, or a task list's backward ``then:`` jumps). The counters that outlive
a run are kept in the `ExecutionState` (see ``_state``), so a resumed instance goes on counting;
loop positions are in the frames already.

Going over a limit raises `LimitExceeded`: a workflow error whose problem type ends in
``limit-exceeded`` and whose detail names the limit, the value reached and the setting to
raise. A ``try`` never catches it (a caught budget would be no budget), so the instance ends
``faulted``.
"""

from __future__ import annotations

import attrs

from workflow_orchestrator.dsl.errors import Problem, WorkflowError

__all__ = ["LIMIT_EXCEEDED", "LimitExceeded", "RuntimeLimits", "limit_exceeded"]

#: The problem type of an instance stopped by one of its limits.
LIMIT_EXCEEDED = "https://workflow-orchestrator.dev/problems/limit-exceeded"
_SETTINGS = "workflows.limits."


class LimitExceeded(WorkflowError):
    """An instance went over one of its limits; uncatchable by ``try``, it faults the
    instance with its problem."""


def limit_exceeded(
    setting: str, what: str, advice: str, *, instance: str | None = None
) -> LimitExceeded:
    """The error of limit ``setting`` (its key under ``workflows.limits``): ``what`` says what
    the instance did and ``advice`` how to stay under it."""
    return LimitExceeded(
        Problem(
            type=LIMIT_EXCEEDED,
            status=400,
            title="Limit Exceeded",
            detail=f"{what}, over the limit {_SETTINGS}{setting}; raise it or {advice}",
            instance=instance,
        )
    )


@attrs.frozen(kw_only=True)
class RuntimeLimits:
    """The interpreter's per-instance limits (``workflows.limits``); 0 turns one off.

    ``tasks_per_run``: tasks one run executes (a run lasts until the instance completes,
    faults or parks on a wait or an event); ``total_tasks``: tasks over the instance's life;
    ``history_rows``: lifecycle and emitted events it records; ``loop_iterations``: iterations
    of one ``for`` loop, or backward ``then:`` jumps in one task list.
    """

    tasks_per_run: int = 100_000
    total_tasks: int = 1_000_000
    history_rows: int = 1_000_000
    loop_iterations: int = 100_000

    def check_tasks(self, this_run: int, total: int, history: int, where: str) -> None:
        """Raise `LimitExceeded` when the counts after starting a task are over a limit."""
        if 0 < self.tasks_per_run < this_run:
            raise limit_exceeded(
                "tasksPerRun",
                f"the instance ran {this_run - 1:,} tasks in one run without waiting",
                "add a wait",
                instance=where,
            )
        if 0 < self.total_tasks < total:
            raise limit_exceeded(
                "totalTasks",
                f"the instance ran {total - 1:,} tasks",
                "split the work over several instances",
                instance=where,
            )
        if 0 < self.history_rows < history:
            raise limit_exceeded(
                "historyRows",
                f"the instance recorded {history:,} history rows (lifecycle and emitted events)",
                "split the work over several instances, or turn off workflows.lifecycleEvents",
                instance=where,
            )

    def check_iterations(self, iterations: int, where: str, kind: str) -> None:
        """Raise `LimitExceeded` when loop ``where`` has begun more than its iterations."""
        if 0 < self.loop_iterations < iterations:
            raise limit_exceeded(
                "loopIterations",
                f"the {kind} at {where} ran {iterations - 1:,} iterations",
                "bound the loop",
                instance=where,
            )
