"""The core of the interpreter: task lists, the per-task data flow and flow directives.

`Runner` walks the model recursively. Progress lives in the `ExecutionState` frames (see
`_state`), so re-entering the same walk with a restored state skips completed tasks: a task
list starts at its recorded ``next`` task with its recorded data, and composite tasks read their
own frame. Task handlers (one per task type, in the ``_*_tasks`` modules) receive the runner,
the task, its execution key, its transformed input and the expression arguments, and return the
raw output and an optional flow directive.

Data flow per task follows the spec: ``if`` on the raw input, ``input.schema`` then
``input.from``, the task, ``output.as`` then ``output.schema``, ``export.as`` then
``export.schema`` (which replaces ``$context``), then the flow directive.

Extensions (``use.extensions``, see `_extensions`) wrap a task's own work, between its input
and its output processing.

Fairness and budgets: every task of a list ends with a Trio checkpoint (as does every ``for``
iteration), so a loop of tasks that never waits still lets every other task of the process
run (health checks, lease renewal, shutdown) and can be cancelled; every task is counted
against the instance's limits (``_limits``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import attrs
import trio
import trio.lowlevel

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.model import Task, TaskList
from workflow_orchestrator.dsl.runtime._arguments import REMOTE_FUNCTION
from workflow_orchestrator.dsl.runtime._effects import CloudEvent
from workflow_orchestrator.dsl.runtime._evaluation import Evaluator
from workflow_orchestrator.dsl.runtime._extensions import extended
from workflow_orchestrator.dsl.runtime._time import descriptor, iso, parse_iso, plus_seconds

Outcome = tuple[Any, str | None]
_LIFECYCLE_TYPES = {
    kind: f"io.serverlessworkflow.{kind}.v1"
    for kind in (
        "workflow.started",
        "workflow.completed",
        "workflow.faulted",
        "task.started",
        "task.completed",
        "task.faulted",
        "task.retried",
    )
}
Handler = Callable[["Runner", Any, str, Any, dict[str, Any]], Awaitable[Outcome]]


@attrs.define(eq=False, kw_only=True)
class Runner(Evaluator):
    """Executes one instance of a workflow; owned by one `Interpreter.run` call."""

    handlers: Mapping[type, Handler]
    _qualified_name: str | None = None
    # Tasks started by this run (``workflows.limits.tasksPerRun``).
    tasks_this_run: int = 0
    # Function documents resolved by this run, by (URL, calling task's reference).
    remote_functions: dict[tuple[str, str], Task] = attrs.field(factory=dict)

    # -- lifecycle, timers ---------------------------------------------------------------

    def now(self) -> datetime:
        """The current time per the effects' clock."""
        return self.effects.now()

    def lifecycle(self, key: str, kind: str, at: str, data: dict[str, Any]) -> None:
        """Publish lifecycle event ``io.serverlessworkflow.<kind>.v1`` that happened ``at``.

        The event id is derived from the instance, the execution key and the kind, so a
        re-execution after a crash publishes the same id.
        """
        if not self.options.lifecycle_events:
            return
        self.state.history_rows += 1
        event = CloudEvent(
            attributes={
                "specversion": "1.0",
                "id": f"{self.state.instance_id}{key}@{kind}",
                "source": self.options.event_source,
                "type": _LIFECYCLE_TYPES.get(kind) or f"io.serverlessworkflow.{kind}.v1",
                "time": at,
                "datacontenttype": "application/json",
                "data": data,
            }
        )
        self.effects.add_lifecycle_event(event)

    async def deadline(self, key: str, seconds: float) -> datetime:
        """The absolute due time of timer ``key``, recorded once so resumes keep it."""
        frame = self.state.frames.get(key)
        if frame is not None:
            return parse_iso(frame["due"])
        due = plus_seconds(self.now(), seconds)
        self.state.frames[key] = {"due": iso(due)}
        return due

    async def sleep_until(self, due: datetime, *, key: str = "", kind: str = "wait") -> None:
        """Sleep on durable timer ``key`` after checkpointing the due time (``waiting``)."""
        async with self.waiting():
            await self.effects.sleep_until(due, key=key, kind=kind)

    @asynccontextmanager
    async def waiting(self) -> AsyncIterator[None]:
        """Mark the instance ``waiting`` and checkpoint; back to ``running`` afterwards.

        The checkpoint lets a durable implementation passivate the instance while it waits.
        """
        state = self.state
        state.status = "waiting"
        await self.effects.checkpoint(state)
        try:
            yield
        finally:
            state.status = "running"

    async def with_timeout(
        self, key: str, seconds: float, where: str, body: Callable[[], Awaitable[Outcome]]
    ) -> Outcome:
        """Run ``body``; if the due time passes first, cancel it and raise a timeout error."""
        timer_key = key + "/!timeout"
        due = await self.deadline(timer_key, seconds)
        result: list[Outcome] = []
        failure: list[WorkflowError] = []
        async with trio.open_nursery() as nursery:

            async def timer() -> None:
                try:
                    await self.effects.sleep_until(due, key=timer_key, kind="timeout")
                except WorkflowError as exc:
                    # The commit before the timer can fail the instance (a limit): a plain
                    # workflow error, as the body's.
                    failure.append(exc)
                nursery.cancel_scope.cancel()

            nursery.start_soon(timer)
            try:
                result.append(await body())
            except WorkflowError as exc:
                # Re-raised outside the nursery so it stays a plain (catchable) workflow error
                # instead of an ExceptionGroup.
                failure.append(exc)
            nursery.cancel_scope.cancel()
        if failure:
            raise failure[0]
        if not result:
            raise WorkflowError(
                Problem.standard(
                    ErrorType.TIMEOUT,
                    title="Timeout",
                    detail=f"timed out after {seconds:g}s",
                    instance=where,
                )
            )
        return result[0]

    # -- tasks and lists -----------------------------------------------------------------

    async def run_list(
        self, tasks: TaskList, key: str, data: Any, scope: Mapping[str, Any]
    ) -> tuple[Any, bool]:
        """Run a task list from its recorded position; returns (output, ended by ``end``)."""
        data, flow = await self.run_list_flow(tasks, key, data, scope)
        return data, flow == "end"

    async def run_list_flow(
        self, tasks: TaskList, key: str, data: Any, scope: Mapping[str, Any]
    ) -> tuple[Any, str | None]:
        """`run_list`, telling how the list stopped: ``"end"`` (a ``then: end``), ``"exit"``
        (a ``then: exit``, which an extension's ``before`` list uses to skip the task it
        extends) or None (it ran to its last task)."""
        frames = self.state.frames
        frame = frames.get(key)
        index, epoch, ended, exited = 0, 0, False, False
        if frame is not None:
            index, data, epoch, ended = frame["next"], frame["data"], frame["epoch"], frame["end"]
            exited = frame.get("exit", False)
        items = tasks.tasks
        count = len(items)
        base = len(tasks.reference)
        while index < count:
            task = items[index]
            task_key = key + task.reference[base:]
            if epoch:
                task_key = f"{task_key}~{epoch}"
            data, directive = await self.run_task(task, task_key, data, scope)
            self.state.drop_frames(task_key)
            if directive is None or directive == "continue":
                index += 1
            elif directive == "exit":
                index, exited = count, True
            elif directive == "end":
                index, ended = count, True
            else:
                target = tasks.positions.get(directive)
                if target is None:
                    raise WorkflowError(
                        Problem.standard(
                            ErrorType.CONFIGURATION,
                            detail=f"flow directive 'then: {directive}' names no task of this "
                            f"list; use one of {list(tasks.positions)} or continue/exit/end",
                            instance=task.reference,
                        )
                    )
                if target <= index:
                    epoch += 1
                    self.options.limits.check_iterations(
                        epoch + 1, tasks.reference or key, "task list"
                    )
                index = target
            frame = {"next": index, "data": data, "epoch": epoch, "end": ended}
            if exited:
                frame["exit"] = True
            frames[key] = frame
            await self.effects.checkpoint(self.state)
            # Yield to every other task of the process after each task: a workflow that loops
            # without waiting must not starve them, and must stay cancellable. (After, not
            # before: a task's first effects keep their order against timers started with it.)
            await trio.lowlevel.checkpoint()
        return data, "end" if ended else "exit" if exited else None

    async def run_task(
        self, task: Task, key: str, raw_input: Any, scope: Mapping[str, Any]
    ) -> Outcome:
        """Run one task with its data flow; returns (transformed output, flow directive)."""
        state = self.state
        self.tasks_this_run += 1
        state.tasks += 1
        self.options.limits.check_tasks(
            self.tasks_this_run, state.tasks, state.history_rows, task.reference
        )
        resumed = key in state.frames
        started = self.effects.now()
        task_info = {
            "name": task.name,
            "reference": task.reference,
            "definition": task.raw,
            "input": raw_input,
            "output": None,
            "startedAt": descriptor(started),
        }
        args: dict[str, Any] = {
            "context": state.context,
            "workflow": self.workflow_descriptor,
            "runtime": self.runtime_descriptor,
            "task": task_info,
        }
        if self.workflow.secrets and REMOTE_FUNCTION not in scope:
            args["secrets"] = await self.secrets()
        if scope:
            args.update(scope)
        where = task.reference
        if (
            task.if_ is not None
            and not resumed
            and not await self.condition(task.if_, raw_input, args, where)
        ):
            return raw_input, None
        state.active[key] = where
        if not resumed and self.options.lifecycle_events:
            at = iso(started)
            self.lifecycle(
                key,
                "task.started",
                at,
                {"workflow": self.qualified_name, "task": where, "startedAt": at},
            )
        try:
            data = raw_input
            if task.input is not None:
                await self.validate(task.input, raw_input, where, "input")
                if task.input.expression is not None:
                    data = await self.transform(task.input.expression, raw_input, args, where)
            args["input"] = data
            handler = self.handlers[type(task)]
            if self.workflow.extensions:
                handler = await extended(self, task, key, data, args, scope, handler)
            if task.timeout is not None:
                seconds = await self.seconds(task.timeout.after, data, args, where + "/timeout")
                output, directive = await self.with_timeout(
                    key, seconds, where, lambda: handler(self, task, key, data, args)
                )
            else:
                output, directive = await handler(self, task, key, data, args)
            task_info["output"] = output
            if task.output is not None:
                if task.output.expression is not None:
                    output = await self.transform(task.output.expression, output, args, where)
                await self.validate(task.output, output, where, "output")
            if task.export is not None:
                args["output"] = output
                if task.export.expression is not None:
                    state.context = await self.transform(
                        task.export.expression, output, args, where
                    )
                await self.validate(task.export, state.context, where, "context")
        except WorkflowError as exc:
            problem = exc.problem.with_instance(where)
            at = iso(self.now())
            self.lifecycle(
                key,
                "task.faulted",
                at,
                {
                    "workflow": self.qualified_name,
                    "task": where,
                    "faultedAt": at,
                    "error": problem.to_json(),
                },
            )
            state.active.pop(key, None)
            if problem is exc.problem:
                raise
            # The same class: a LimitExceeded stays one (``try`` never catches it).
            raise type(exc)(problem) from None
        state.active.pop(key, None)
        if self.options.lifecycle_events:
            at = iso(self.now())
            self.lifecycle(
                key,
                "task.completed",
                at,
                {
                    "workflow": self.qualified_name,
                    "task": where,
                    "completedAt": at,
                    "output": output,
                },
            )
        return output, directive if directive is not None else task.then

    @property
    def qualified_name(self) -> str:
        """``<name>-<instance id>.<namespace>``: the instance's name in lifecycle events."""
        name = self._qualified_name
        if name is None:
            workflow = self.workflow
            name = f"{workflow.name}-{self.state.instance_id}.{workflow.namespace}"
            self._qualified_name = name
        return name
