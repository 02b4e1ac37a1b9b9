"""``run: shell`` and ``run: script``: from the task to a `ProcessRequest`, and from the
`ProcessResult` to the task's output.

Request. The process definition is evaluated as a template (``stdin``, ``arguments`` items,
``environment`` values and the others may be runtime expressions). ``arguments`` is a list
(DSL 1.0.3) passed as argv after the command or script; ``environment`` a mapping whose
``null`` values are left out; ``stdin`` is written to the process's standard input. Values
that are not strings are passed as JSON text (``true``, ``3``, ``{"a":1}``). A NUL character,
or ``=`` in a variable name, is a configuration error (no process could receive it). A script
is its ``code``, or its ``source`` (an external resource, fetched through the effects, hence
the outbound policy, at most ``RuntimeOptions.max_document_size`` bytes,
``workflows.maxDocumentSize``, UTF-8 text). Script languages: ``js``/``javascript`` and
``python`` (any case).

Output (``return``): ``stdout`` (the default), ``stderr``, ``code``, ``all`` (``{code, stdout,
stderr}``, the spec's process result) or ``none`` (``null``). The reference leaves a failing
exit code to runtimes; here ``code`` and ``all`` hand it to the workflow, whatever it is, and
the modes that drop it (``stdout``, ``stderr``, ``none``) fault the task with a runtime error
on any exit code but 0, naming the code and the end of stderr, so a failure never passes
unnoticed (catch it with ``try``, or ask for ``code``/``all``). ``await: false`` starts the
process and outputs the task's transformed input at once; the process's end is not waited
for, nor its exit code checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.model import RunTask
from workflow_orchestrator.dsl.runtime._auth import authorize
from workflow_orchestrator.dsl.runtime._documents import require_success
from workflow_orchestrator.dsl.runtime._effects import HttpRequest, ProcessRequest, ProcessResult
from workflow_orchestrator.dsl.runtime._runner import Outcome, Runner
from workflow_orchestrator.dsl.runtime._uri import MissingTemplateValue, expand_uri_template

__all__ = ["SCRIPT_LANGUAGES", "process_output", "process_request", "run_process_task"]

#: The spelling of each accepted ``script.language`` (lower-cased) in a `ProcessRequest`.
SCRIPT_LANGUAGES = {"js": "javascript", "javascript": "javascript", "python": "python"}
_STDERR_TAIL = 500
# How a process that ran out of memory (workflows.run.maxMemory) may end.
_MEMORY_SIGNALS = frozenset({"SIGABRT", "SIGBUS", "SIGKILL", "SIGSEGV"})
_SOURCE_SETTING = "workflows.maxDocumentSize"


def _error(error_type: str, detail: str, where: str | None = None) -> WorkflowError:
    return WorkflowError(Problem.standard(error_type, detail=detail, instance=where))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _checked(text: str, what: str, where: str) -> str:
    if "\0" in text:
        raise _error(
            ErrorType.CONFIGURATION,
            f"{what} contains a NUL character, which no process can receive; remove it",
            where,
        )
    return text


def _arguments(value: Any, kind: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _error(
            ErrorType.CONFIGURATION,
            f"run.{kind}.arguments must be a list of strings (argv), not "
            f"{type(value).__name__}; write '- value' items",
            where,
        )
    return tuple(
        _checked(_text(item), f"run.{kind}.arguments[{index}]", where)
        for index, item in enumerate(value)
    )


def _environment(value: Any, kind: str, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _error(
            ErrorType.CONFIGURATION,
            f"run.{kind}.environment must be a mapping of variable names to values",
            where,
        )
    variables: dict[str, str] = {}
    for name, item in value.items():
        name = str(name)
        if not name or "=" in name or "\0" in name:
            raise _error(
                ErrorType.CONFIGURATION,
                f"run.{kind}.environment has the variable name {name!r}; a name must be "
                "non-empty, without '=' or NUL",
                where,
            )
        if item is not None:
            variables[name] = _checked(_text(item), f"run.{kind}.environment.{name}", where)
    return variables


def _language(value: Any, where: str) -> str:
    language = SCRIPT_LANGUAGES.get(str(value).lower()) if isinstance(value, str) else None
    if language is None:
        raise _error(
            ErrorType.CONFIGURATION,
            f"script language {value!r} is not supported; use js (or javascript) or python",
            where,
        )
    return language


def _endpoint(source: Any, where: str) -> tuple[str, Mapping[str, Any] | None]:
    endpoint = source.get("endpoint") if isinstance(source, Mapping) else None
    if isinstance(endpoint, str):
        return endpoint, None
    if isinstance(endpoint, Mapping) and isinstance(endpoint.get("uri"), str):
        authentication = endpoint.get("authentication")
        return endpoint["uri"], authentication if isinstance(authentication, Mapping) else None
    raise _error(
        ErrorType.CONFIGURATION,
        "run.script.source must be an external resource: {endpoint: <uri>} or "
        "{endpoint: {uri: <uri>, authentication: ...}}",
        where,
    )


async def _fetch_source(
    runner: Runner, source: Any, data: Any, args: dict[str, Any], key: str, where: str
) -> str:
    """The script at ``source``, fetched through the effects (the outbound policy applies)."""
    template, authentication = _endpoint(source, where)
    try:
        uri = expand_uri_template(template, data)
    except MissingTemplateValue as exc:
        raise _error(ErrorType.VALIDATION, str(exc), where) from None
    headers = {"accept": "text/plain, */*"}
    if authentication:
        headers["authorization"], args["authorization"] = await authorize(
            runner, authentication, data, args, where, key
        )
    limit = runner.options.max_document_size
    response = await runner.effects.http(
        HttpRequest(
            method="GET",
            url=uri,
            headers=headers,
            idempotency_key=f"{runner.state.instance_id}{key}/source",
            timeout=runner.options.http_timeout,
            max_body_size=limit,
        )
    )
    require_success(response, f"fetching the script {uri}", where)
    if len(response.body) > limit:
        raise _error(
            ErrorType.CONFIGURATION,
            f"the script {uri} is larger than {limit:,} bytes, the limit set by "
            f"{_SOURCE_SETTING}; make it smaller or raise the setting",
            where,
        )
    try:
        code = response.body.decode("utf-8")
    except UnicodeDecodeError:
        raise _error(
            ErrorType.CONFIGURATION, f"the script {uri} is not UTF-8 text", where
        ) from None
    return _checked(code, f"the script {uri}", where)


async def process_request(
    runner: Runner, task: RunTask, key: str, data: Any, args: dict[str, Any]
) -> ProcessRequest:
    """The `ProcessRequest` of a ``run.shell``/``run.script`` task (see the module doc)."""
    where = task.reference
    kind = task.process_kind
    spec: Mapping[str, Any] = await runner.evaluate_template(task.process, data, args, where)
    language: str | None = None
    if kind == "shell":
        command = spec.get("command")
        if not isinstance(command, str):
            raise _error(ErrorType.CONFIGURATION, "run.shell.command must be a string", where)
    else:
        language = _language(spec.get("language"), where)
        if spec.get("source") is not None:
            command = await _fetch_source(runner, spec["source"], data, args, key, where)
        elif isinstance(spec.get("code"), str):
            command = spec["code"]
        else:
            raise _error(
                ErrorType.CONFIGURATION, "run.script needs its code (a string) or a source", where
            )
    stdin = spec.get("stdin")
    return ProcessRequest(
        kind=kind,
        command=_checked(command, f"run.{kind}.{'command' if kind == 'shell' else 'code'}", where),
        arguments=_arguments(spec.get("arguments"), kind, where),
        environment=_environment(spec.get("environment"), kind, where),
        stdin=None if stdin is None else _text(stdin),
        language=language,
        timeout=runner.options.process_timeout,
        await_completion=task.await_,
        key=f"{runner.state.instance_id}{key}",
    )


def _failed(result: ProcessResult, mode: str, kind: str) -> WorkflowError:
    tail = result.stderr[-_STDERR_TAIL:].strip().replace("\0", "\ufffd")
    if result.signal is not None:
        what = f"was killed by signal {result.signal}"
        if result.signal in _MEMORY_SIGNALS:
            what += " (a process that runs out of memory, workflows.run.maxMemory, ends so)"
    else:
        what = f"exited with code {result.code}"
    stderr = f"; stderr: {tail}" if tail else "; it wrote nothing to stderr"
    return WorkflowError(
        Problem.standard(
            ErrorType.RUNTIME,
            title="Process Failed",
            detail=f"the {kind} process {what}{stderr}. With return: {mode} a failure faults "
            "the task: fix the process, catch the error, or set return: code or all to handle "
            "the exit code in the workflow",
        )
    )


def process_output(result: ProcessResult, mode: str, kind: str = "process") -> Any:
    """The task's output for ``return: mode``; a failed process (exit code but 0) raises a
    runtime error unless ``mode`` is ``code`` or ``all`` (see the module doc)."""
    if mode == "code":
        return result.code
    if mode == "all":
        return {"code": result.code, "stdout": result.stdout, "stderr": result.stderr}
    if result.code != 0:
        raise _failed(result, mode, kind)
    if mode == "stderr":
        return result.stderr
    if mode == "none":
        return None
    return result.stdout


async def run_process_task(
    runner: Runner, task: RunTask, key: str, data: Any, args: dict[str, Any]
) -> Outcome:
    """Run the task's shell command or script through the effects; its output per
    ``return`` (or its input, when the process is not awaited)."""
    request = await process_request(runner, task, key, data, args)
    result = await runner.effects.run_process(request)
    if not task.await_:
        return data, None
    return process_output(result, task.return_, task.process_kind), None
