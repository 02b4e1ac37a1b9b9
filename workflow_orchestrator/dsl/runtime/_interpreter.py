"""The public interpreter: start or resume workflow instances over an effects implementation.

An `Interpreter` belongs to one definition version (its model and expression engine are shared
by all instances); each `start`/`resume` call runs one instance until it completes, faults or is
cancelled, reporting progress through ``effects.checkpoint``. Resuming a state taken at any
checkpoint, in a fresh interpreter, continues without re-running completed tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from workflow_orchestrator.dsl.errors import Problem, WorkflowError
from workflow_orchestrator.dsl.expressions import ExpressionEngine
from workflow_orchestrator.dsl.model import (
    CallTask,
    DoTask,
    EmitTask,
    ForkTask,
    ForTask,
    ListenTask,
    RaiseTask,
    RunTask,
    SetTask,
    SwitchTask,
    TryTask,
    WaitTask,
    Workflow,
)
from workflow_orchestrator.dsl.runtime._call_tasks import run_call, run_run
from workflow_orchestrator.dsl.runtime._effects import Effects
from workflow_orchestrator.dsl.runtime._event_tasks import run_emit, run_listen
from workflow_orchestrator.dsl.runtime._flow_tasks import (
    run_do,
    run_for,
    run_fork,
    run_raise,
    run_set,
    run_switch,
    run_wait,
)
from workflow_orchestrator.dsl.runtime._options import RuntimeOptions
from workflow_orchestrator.dsl.runtime._runner import Handler, Outcome, Runner
from workflow_orchestrator.dsl.runtime._state import ExecutionState
from workflow_orchestrator.dsl.runtime._time import descriptor, iso, parse_iso
from workflow_orchestrator.dsl.runtime._try_task import run_try

_HANDLERS: dict[type, Handler] = {
    CallTask: run_call,
    DoTask: run_do,
    EmitTask: run_emit,
    ForTask: run_for,
    ForkTask: run_fork,
    ListenTask: run_listen,
    RaiseTask: run_raise,
    RunTask: run_run,
    SetTask: run_set,
    SwitchTask: run_switch,
    TryTask: run_try,
    WaitTask: run_wait,
}

_ROOT = "/do"


@attrs.frozen(kw_only=True)
class WorkflowResult:
    """How an instance ended: ``completed`` with ``output``, or ``faulted`` with ``error``."""

    status: str
    output: Any = None
    error: Problem | None = None
    state: ExecutionState = attrs.field(eq=False, repr=False)


class Interpreter:
    """Runs instances of one workflow definition version."""

    def __init__(
        self,
        workflow: Workflow,
        engine: ExpressionEngine,
        options: RuntimeOptions | None = None,
    ) -> None:
        self.workflow = workflow
        self.engine = engine
        self.options = options or RuntimeOptions()
        self._runtime = {
            "name": self.options.runtime_name,
            "version": self.options.runtime_version,
            "metadata": dict(self.options.runtime_metadata),
        }

    def new_state(self, input: Any, *, instance_id: str) -> ExecutionState:
        """The state of an instance that has not started yet."""
        return ExecutionState(
            instance_id=instance_id,
            namespace=self.workflow.namespace,
            name=self.workflow.name,
            version=self.workflow.version,
            input=input,
        )

    async def start(
        self, effects: Effects, input: Any = None, *, instance_id: str | None = None
    ) -> WorkflowResult:
        """Run a new instance with ``input`` to its end."""
        state = self.new_state(
            {} if input is None else input, instance_id=instance_id or effects.new_id()
        )
        return await self.resume(effects, state)

    async def resume(
        self, effects: Effects, state: ExecutionState | Mapping[str, Any]
    ) -> WorkflowResult:
        """Continue the instance recorded in ``state`` (a state object or its JSON) to its end.

        A finished state returns its result without running anything. Errors that are not
        workflow errors (bugs, cancellation) propagate; the state then holds the last
        checkpoint's progress plus whatever ran since.
        """
        if not isinstance(state, ExecutionState):
            state = ExecutionState.from_json(state)
        if state.status in ("completed", "faulted", "cancelled"):
            return self._result(state)
        runner = Runner(
            workflow=self.workflow,
            effects=effects,
            engine=self.engine,
            options=self.options,
            state=state,
            handlers=_HANDLERS,
            runtime_descriptor=self._runtime,
        )
        try:
            await self._run(runner)
        except WorkflowError as exc:
            state.status = "faulted"
            state.error = exc.problem.to_json()
            state.active.clear()
            at = iso(runner.now())
            runner.lifecycle(
                "",
                "workflow.faulted",
                at,
                {"name": runner.qualified_name, "faultedAt": at, "error": state.error},
            )
            await effects.checkpoint(state)
        return self._result(state)

    @staticmethod
    def _result(state: ExecutionState) -> WorkflowResult:
        error = Problem.from_json(state.error) if state.error is not None else None
        return WorkflowResult(status=state.status, output=state.output, error=error, state=state)

    async def _run(self, runner: Runner) -> None:
        state = runner.state
        workflow = self.workflow
        if state.status == "pending":
            started = runner.now()
            state.started_at = iso(started)
            state.status = "running"
        runner.workflow_descriptor = {
            "id": state.instance_id,
            "definition": workflow.raw,
            "input": state.input,
            "startedAt": descriptor(parse_iso(state.started_at)),
        }
        if _ROOT not in state.frames:
            runner.lifecycle(
                "",
                "workflow.started",
                state.started_at,
                {
                    "name": runner.qualified_name,
                    "definition": {
                        "namespace": workflow.namespace,
                        "name": workflow.name,
                        "version": workflow.version,
                    },
                    "startedAt": state.started_at,
                },
            )
            args = await runner.base_args()
            data = state.input
            if workflow.input is not None:
                await runner.validate(workflow.input, data, "/input", "workflow input")
                if workflow.input.expression is not None:
                    data = await runner.transform(workflow.input.expression, data, args, "/input")
            state.frames[_ROOT] = {"next": 0, "data": data, "epoch": 0, "end": False}
            await runner.effects.checkpoint(state)

        async def body() -> Outcome:
            output, _ = await runner.run_list(workflow.do, _ROOT, None, {})
            return output, None

        if workflow.timeout is not None:
            args = await runner.base_args()
            seconds = await runner.seconds(workflow.timeout.after, state.input, args, "/timeout")
            output, _ = await runner.with_timeout("", seconds, "/", body)
        else:
            output, _ = await body()
        if workflow.output is not None:
            args = await runner.base_args()
            if workflow.output.expression is not None:
                output = await runner.transform(workflow.output.expression, output, args, "/output")
            await runner.validate(workflow.output, output, "/output", "workflow output")
        state.output = output
        state.status = "completed"
        state.frames.clear()
        state.active.clear()
        at = iso(runner.now())
        runner.lifecycle(
            "",
            "workflow.completed",
            at,
            {"name": runner.qualified_name, "completedAt": at, "output": output},
        )
        await runner.effects.checkpoint(state)


async def run_workflow(
    workflow: Workflow,
    engine: ExpressionEngine,
    effects: Effects,
    input: Any = None,
    *,
    options: RuntimeOptions | None = None,
) -> WorkflowResult:
    """Run one instance of ``workflow`` to its end (a convenience over `Interpreter.start`)."""
    return await Interpreter(workflow, engine, options).start(effects, input)
