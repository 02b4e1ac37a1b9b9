"""``use.extensions``: task lists run before and after the tasks an extension extends.

An extension applies to a task whose type it names (``extend``; ``composite`` is ``do`` and
``fork``, ``all`` every type) when its ``when`` holds: an expression over the task's
transformed input with the task's arguments (``$task`` is the task's descriptor: its
definition is ``$task.definition``). Tasks that an extension runs are never extended
themselves, nor is anything they call.

Extensions wrap the task's own work, between its input and its output processing: for a
task's ``input.from``, then ``before``, the task, ``after``, then its ``output.as`` and
``export``. ``before`` receives the task's transformed input; a ``then: exit`` in it skips the
task (and the rest of the extension) and its output becomes the task's raw output, which is
how an extension mocks a call. Otherwise ``before``'s output is dropped, the task runs on its
own input, and ``after`` receives the task's raw output, whose own output is dropped too (an
extension observes; a ``then: end`` in either list ends the workflow). In both lists
``$task`` is the extended task's descriptor (``after`` sees its ``output``), and the tasks are
the workflow's own even around a task of a fetched function (see ``_functions``). Several
extensions nest in declaration order: the first one's ``before`` runs first and its
``after`` last.

Frames (see `_state`): ``<task key>/!extensions`` records which extensions apply, so a
resumed task takes the same decision; each extension's lists run under
``<task key>/!extension[<i>]/before`` and ``/after``; ``<task key>/!extension[<i>]/done``
records the task's raw output once it completed, so resuming in ``after`` never runs the task
again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workflow_orchestrator.dsl.model import Extension, Task
from workflow_orchestrator.dsl.runtime._arguments import REMOTE_FUNCTION, custom_scope

if TYPE_CHECKING:
    from workflow_orchestrator.dsl.runtime._runner import Handler, Outcome, Runner

__all__ = ["EXTENDING", "extended"]

#: The scope entry of the tasks an extension runs (not a jq name: no expression can read it).
EXTENDING = "!extension"


async def _chosen(
    runner: Runner, task: Task, key: str, data: Any, args: Mapping[str, Any]
) -> tuple[int, ...]:
    """The indexes of the extensions that apply to this execution of ``task``."""
    frames = runner.state.frames
    record_key = key + "/!extensions"
    frame = frames.get(record_key)
    if frame is not None:
        return tuple(frame["apply"])
    chosen = []
    for index, extension in enumerate(runner.workflow.extensions):
        if not extension.applies_to(task):
            continue
        if extension.when is not None:
            where = f"/use/extensions/{index}/{_escape(extension.name)}/when"
            if not await runner.condition(extension.when, data, args, where):
                continue
        chosen.append(index)
    if chosen:
        frames[record_key] = {"apply": chosen}
    return tuple(chosen)


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


async def _run(
    runner: Runner,
    task: Task,
    key: str,
    data: Any,
    args: dict[str, Any],
    chosen: tuple[int, ...],
    handler: Handler,
) -> Outcome:
    """The outcome of the task's work wrapped by extensions ``chosen`` (outermost first)."""
    if not chosen:
        return await handler(runner, task, key, data, args)
    index, inner = chosen[0], chosen[1:]
    extension: Extension = runner.workflow.extensions[index]
    base = f"{key}/!extension[{index}]"
    descriptor = args["task"]
    # The workflow's own tasks, even around a task of a fetched function: not restricted.
    scope = {k: v for k, v in custom_scope(args).items() if k != REMOTE_FUNCTION}
    scope.update({EXTENDING: True, "task": descriptor})
    if extension.before is not None:
        output, flow = await runner.run_list_flow(extension.before, base + "/before", data, scope)
        if flow == "exit":
            return output, None
        if flow == "end":
            return output, "end"
    if extension.after is None:
        return await _run(runner, task, key, data, args, inner, handler)
    frames = runner.state.frames
    done_key = base + "/done"
    done = frames.get(done_key)
    if done is None:
        output, directive = await _run(runner, task, key, data, args, inner, handler)
        frames[done_key] = {"output": output, "directive": directive}
    else:
        output, directive = done["output"], done["directive"]
    after_scope = {**scope, "task": {**descriptor, "output": output}}
    _, flow = await runner.run_list_flow(extension.after, base + "/after", output, after_scope)
    return output, "end" if flow == "end" else directive


async def extended(
    runner: Runner,
    task: Task,
    key: str,
    data: Any,
    args: dict[str, Any],
    scope: Mapping[str, Any],
    handler: Handler,
) -> Handler:
    """``handler`` wrapped by the extensions that apply to this execution of ``task`` (the
    handler itself when none does, or when an extension runs the task)."""
    if EXTENDING in scope:
        return handler
    chosen = await _chosen(runner, task, key, data, args)
    if not chosen:
        return handler

    async def run(runner: Runner, task: Any, key: str, data: Any, args: dict[str, Any]) -> Outcome:
        return await _run(runner, task, key, data, args, chosen, handler)

    return run
