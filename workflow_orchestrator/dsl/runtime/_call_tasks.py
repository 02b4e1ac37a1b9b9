"""Handlers of ``call`` (http, openapi, functions) and ``run`` (workflow, shell, script).

``grpc``, ``asyncapi``, ``a2a`` and ``mcp`` calls and cataloged functions raise a configuration
error naming what is not supported yet; ``run: container`` is rejected unless the effects
implement it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.model import CallTask, RunTask
from workflow_orchestrator.dsl.runtime._arguments import custom_scope
from workflow_orchestrator.dsl.runtime._effects import ProcessRequest, SubflowRequest
from workflow_orchestrator.dsl.runtime._http_call import call_http, call_openapi
from workflow_orchestrator.dsl.runtime._runner import Outcome, Runner


def _unsupported(detail: str, where: str) -> WorkflowError:
    return WorkflowError(
        Problem.standard(
            ErrorType.CONFIGURATION, title="Unsupported Feature", detail=detail, instance=where
        )
    )


async def run_call(
    runner: Runner, task: CallTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """Call an HTTP endpoint, an OpenAPI operation or a declared function."""
    where = task.reference
    if task.function is not None:
        arguments = await runner.evaluate_template(task.with_, data, args, where)
        output, _ = await runner.run_task(
            task.function, key + "/function", arguments if task.with_ else data, custom_scope(args)
        )
        return output, None
    with_ = await runner.evaluate_template(task.with_, data, args, where)
    if task.call == "http":
        return await call_http(runner, with_, data, args, key, where), None
    if task.call == "openapi":
        return await call_openapi(runner, with_, data, args, key, where), None
    if "@" in task.call or "://" in task.call:
        raise _unsupported(
            f"cataloged function {task.call!r} cannot be resolved: catalogs are not supported "
            "yet; declare the function under use.functions",
            where,
        )
    raise _unsupported(
        f"call {task.call!r} is not supported yet; use http, openapi or a function from "
        "use.functions",
        where,
    )


def _process_output(result: Any, mode: str) -> Any:
    if mode == "stdout":
        return result.stdout
    if mode == "stderr":
        return result.stderr
    if mode == "code":
        return result.code
    if mode == "all":
        return {"code": result.code, "stdout": result.stdout, "stderr": result.stderr}
    return None


async def run_run(
    runner: Runner, task: RunTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """Run a subflow through the effects, or a shell/script process where enabled."""
    where = task.reference
    process: Mapping[str, Any] = await runner.evaluate_template(task.process, data, args, where)
    if task.process_kind == "workflow":
        output = await runner.effects.run_subflow(
            SubflowRequest(
                namespace=str(process["namespace"]),
                name=str(process["name"]),
                version=str(process.get("version", "latest")),
                input=process.get("input", data),
                key=f"{runner.state.instance_id}{key}",
                await_completion=task.await_,
            )
        )
        return (output if task.await_ else data), None
    if task.process_kind in ("shell", "script"):
        command = process.get("command") or process.get("code") or ""
        result = await runner.effects.run_process(
            ProcessRequest(
                kind=task.process_kind,
                command=str(command),
                arguments=tuple(str(a) for a in process.get("arguments") or ()),
                environment={str(k): str(v) for k, v in (process.get("environment") or {}).items()},
                stdin=process.get("stdin"),
                language=process.get("language"),
                timeout=runner.options.process_timeout,
            )
        )
        return (_process_output(result, task.return_) if task.await_ else data), None
    raise _unsupported(
        f"run '{task.process_kind}' needs a container runtime, and none is configured",
        where,
    )
