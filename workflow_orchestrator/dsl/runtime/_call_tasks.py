"""Handlers of ``call`` and ``run`` tasks.

``http``, ``openapi`` and ``a2a`` calls go through the HTTP effect; ``grpc`` and ``mcp`` calls
and ``run.container`` through `Effects.call_service` (the adapter of their kind, where
configuration enables it); ``asyncapi`` calls through ``_asyncapi_call`` (the document over
HTTP, then `Effects.call_service` or `Effects.consume_messages`); ``run.workflow`` through
`Effects.run_subflow` and ``run.shell``/``run.script`` through `Effects.run_process`. A
declared function (``use.functions``) runs as its own task with the call's ``with`` as input,
and so does a cataloged function or one named by its URI, once resolved (``_functions``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.model import CallTask, RunTask
from workflow_orchestrator.dsl.runtime._a2a_call import call_a2a
from workflow_orchestrator.dsl.runtime._arguments import REMOTE_FUNCTION, custom_scope
from workflow_orchestrator.dsl.runtime._asyncapi_call import call_asyncapi
from workflow_orchestrator.dsl.runtime._effects import ProcessResult, ServiceCall, SubflowRequest
from workflow_orchestrator.dsl.runtime._functions import remote_function
from workflow_orchestrator.dsl.runtime._grpc_call import call_grpc
from workflow_orchestrator.dsl.runtime._http_call import call_http, call_openapi
from workflow_orchestrator.dsl.runtime._mcp_call import call_mcp
from workflow_orchestrator.dsl.runtime._process_task import process_output, run_process_task
from workflow_orchestrator.dsl.runtime._runner import Outcome, Runner

# The calls the DSL defines; any other ``call`` names a function.
BUILTIN_CALLS = frozenset({"http", "openapi", "a2a", "grpc", "asyncapi", "mcp"})


def _unsupported(detail: str, where: str) -> WorkflowError:
    return WorkflowError(
        Problem.standard(
            ErrorType.CONFIGURATION, title="Unsupported Feature", detail=detail, instance=where
        )
    )


async def run_call(
    runner: Runner, task: CallTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """Call an HTTP endpoint, an OpenAPI operation, an A2A agent, a service through its
    adapter, or a function (declared, cataloged or named by its URI)."""
    where = task.reference
    if task.function is not None or task.call not in BUILTIN_CALLS:
        scope = custom_scope(args)
        function = task.function
        if function is None:
            function = await remote_function(runner, task, key, data, args)
            scope[REMOTE_FUNCTION] = True
        arguments = await runner.evaluate_template(task.with_, data, args, where)
        output, _ = await runner.run_task(
            function, key + "/function", arguments if task.with_ else data, scope
        )
        return output, None
    if task.call == "asyncapi":
        # Evaluates its own arguments: a subscription's expressions are per message.
        return await call_asyncapi(runner, task, key, data, args), None
    with_ = await runner.evaluate_template(task.with_, data, args, where)
    if task.call == "http":
        return await call_http(runner, with_, data, args, key, where), None
    if task.call == "openapi":
        return await call_openapi(runner, with_, data, args, key, where), None
    if task.call == "a2a":
        return await call_a2a(runner, with_, data, args, key, where), None
    if task.call == "grpc":
        return await call_grpc(runner, with_, data, args, key, where), None
    # mcp: the adapter of its kind.
    return await call_mcp(runner, with_, data, args, key, where), None


def _container_result(value: Any) -> ProcessResult:
    """A container adapter's answer (``{"code", "stdout", "stderr"}``) as a process result."""
    if not isinstance(value, Mapping):
        return ProcessResult(code=0)
    return ProcessResult(
        code=int(value.get("code") or 0),
        stdout=str(value.get("stdout") or ""),
        stderr=str(value.get("stderr") or ""),
    )


async def run_run(
    runner: Runner, task: RunTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """Run a subflow through the effects, or a shell/script process where enabled."""
    if task.process_kind in ("shell", "script"):
        return await run_process_task(runner, task, key, data, args)
    where = task.reference
    process: Mapping[str, Any] = await runner.evaluate_template(task.process, data, args, where)
    if task.process_kind == "workflow":
        request = SubflowRequest(
            namespace=str(process["namespace"]),
            name=str(process["name"]),
            version=str(process.get("version", "latest")),
            input=process.get("input", data),
            key=f"{runner.state.instance_id}{key}",
            await_completion=task.await_,
        )
        if not task.await_:
            await runner.effects.run_subflow(request)
            return data, None
        async with runner.waiting():  # a durable runtime parks the instance meanwhile
            return await runner.effects.run_subflow(request), None
    if task.process_kind == "container":
        call = ServiceCall(
            kind="container",
            arguments={**process, "await": task.await_, "return": task.return_},
            key=f"{runner.state.instance_id}{key}",
            task_ref=where,
        )
        result = _container_result(await runner.effects.call_service(call))
        if not task.await_:
            return data, None
        return process_output(result, task.return_, "container"), None
    raise _unsupported(f"run {task.process_kind!r} is not a process this runtime knows", where)
