"""Handlers of the control-flow tasks: ``do``, ``set``, ``switch``, ``for``, ``fork``,
``raise`` and ``wait``.

Frames these handlers keep (see `_state`): ``for`` records the evaluated collection, the next
index and the loop data; ``fork`` records finished branch outputs (and the winner under
``compete``); ``wait`` records its absolute due time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio
import trio.lowlevel

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.model import (
    DoTask,
    ForkTask,
    ForTask,
    RaiseTask,
    SetTask,
    SwitchTask,
    WaitTask,
)
from workflow_orchestrator.dsl.runtime._arguments import custom_scope
from workflow_orchestrator.dsl.runtime._runner import Outcome, Runner


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


async def run_do(
    runner: Runner, task: DoTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """Run the nested list in sequence."""
    output, ended = await runner.run_list(task.do, key + "/do", data, custom_scope(args))
    return output, "end" if ended else None


async def run_set(
    runner: Runner, task: SetTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """The output is the evaluated ``set`` value."""
    if task.constant:
        # A copy: the model is shared by every instance and callers may mutate outputs.
        return _copy(task.set), None
    return await runner.transform(task.set, data, args, task.reference), None


async def run_switch(
    runner: Runner, task: SwitchTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """Take the ``then`` of the first matching case; without a match, the task's ``then``."""
    default = None
    for case in task.cases:
        if case.when is None:
            default = default or case.then
            continue
        if await runner.condition(case.when, data, args, f"{task.reference}/switch"):
            return data, case.then
    return data, default


async def run_for(
    runner: Runner, task: ForTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """Run ``do`` for each item; the output of one iteration is the input of the next."""
    frames = runner.state.frames
    frame = frames.get(key)
    if frame is None:
        items = await runner.evaluate(task.in_, data, args, task.reference + "/for/in")
        if items is None:
            items = []
        elif isinstance(items, Mapping):
            items = list(items.values())
        elif not isinstance(items, list):
            raise WorkflowError(
                Problem.standard(
                    ErrorType.VALIDATION,
                    detail=f"'for.in' must evaluate to an array, got {type(items).__name__}",
                    instance=task.reference,
                )
            )
        index = 0
        frames[key] = {"items": items, "index": 0, "data": data}
    else:
        items, index, data = frame["items"], frame["index"], frame["data"]
    scope = custom_scope(args)
    limits = runner.options.limits
    while index < len(items):
        await trio.lowlevel.checkpoint()  # fairness: one yield per iteration, whatever its body
        limits.check_iterations(index + 1, task.reference, "for loop")
        scope[task.each] = items[index]
        scope[task.at] = index
        if task.while_ is not None:
            loop_args = {**args, **scope}
            if not await runner.condition(task.while_, data, loop_args, task.reference + "/while"):
                break
        body_key = f"{key}/do[{index}]"
        data, ended = await runner.run_list(task.do, body_key, data, scope)
        runner.state.drop_frames(body_key)
        index += 1
        frames[key] = {"items": items, "index": index, "data": data}
        if ended:
            return data, "end"
    return data, None


async def run_fork(
    runner: Runner, task: ForkTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """Run the branches concurrently; the output is their outputs in order, or the winner's."""
    frames = runner.state.frames
    frame = frames.get(key) or {"results": {}}
    if task.compete and "winner" in frame:
        return frame["winner"], None
    results: dict[str, Any] = dict(frame["results"])
    failures: list[WorkflowError] = []
    ended: list[bool] = []
    scope = custom_scope(args)
    base = len(task.branches.reference)

    async with trio.open_nursery() as nursery:

        async def branch(index: int) -> None:
            item = task.branches.tasks[index]
            branch_key = key + item.reference[base:]
            try:
                output, directive = await runner.run_task(item, branch_key, data, scope)
            except WorkflowError as exc:
                failures.append(exc)
                nursery.cancel_scope.cancel()
                return
            runner.state.drop_frames(branch_key)
            if directive == "end":
                ended.append(True)
            if task.compete:
                if "winner" in frames.get(key, {}):
                    return
                frames[key] = {"results": {}, "winner": output}
                nursery.cancel_scope.cancel()
            else:
                results[str(index)] = output
                frames[key] = {"results": dict(results)}
            try:
                await runner.effects.checkpoint(runner.state)
            except WorkflowError as exc:  # a commit can fail the instance (a limit)
                failures.append(exc)
                nursery.cancel_scope.cancel()

        for index in range(len(task.branches.tasks)):
            if str(index) not in results:
                nursery.start_soon(branch, index)
    if failures:
        raise failures[0]
    directive = "end" if ended else None
    if task.compete:
        return frames[key]["winner"], directive
    return [results[str(i)] for i in range(len(task.branches.tasks))], directive


async def run_raise(
    runner: Runner, task: RaiseTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """Raise the (evaluated) error; ``instance`` defaults to the task's JSON pointer."""
    error = await runner.evaluate_template(task.error, data, args, task.reference)
    problem = Problem.from_json(error).with_instance(task.reference)
    raise WorkflowError(problem)


async def run_wait(
    runner: Runner, task: WaitTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """Sleep on a durable timer until the recorded due time; the data passes through."""
    seconds = await runner.seconds(task.duration, data, args, task.reference + "/wait")
    due = await runner.deadline(key + "/!wait", seconds)
    await runner.sleep_until(due, key=key + "/!wait", kind="wait")
    return data, None
