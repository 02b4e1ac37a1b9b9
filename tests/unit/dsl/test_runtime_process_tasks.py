"""run.shell / run.script in the interpreter: the request each option builds, the output of
each ``return`` mode, failing exit codes, ``await: false``, scripts from a ``source``, and the
two official examples run for real."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.support.services import unavailable
from tests.support.spec import require_spec
from tests.unit.dsl.runtime_support import HEADER
from workflow_orchestrator.adapters import open_expression_engine, open_local_processes
from workflow_orchestrator.dsl.model import build_workflow, load_workflow
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    InMemoryEffects,
    Interpreter,
    ProcessRequest,
    ProcessResult,
    RuntimeOptions,
    WorkflowResult,
)
from workflow_orchestrator.dsl.validation import ValidationOptions, load_document

Handler = Callable[[ProcessRequest], Awaitable[ProcessResult]]
#: What a service with run.shell and run.script enabled accepts.
ENABLED = ValidationOptions(allow_shell=True, allow_script=True)


async def run(
    body: str,
    input: Any = None,
    *,
    effects: InMemoryEffects,
    options: RuntimeOptions | None = None,
) -> tuple[WorkflowResult, InMemoryEffects]:
    """Validate (shell and script enabled), build and run ``body`` with ``effects``."""
    workflow = load_workflow(HEADER + textwrap.dedent(body), ENABLED)
    async with open_expression_engine() as engine:
        return await Interpreter(workflow, engine, options).start(effects, input), effects


SUCCEEDED = ProcessResult(code=0, stdout="out", stderr="err")


def _recording(result: ProcessResult = SUCCEEDED) -> tuple[list[ProcessRequest], Handler]:
    requests: list[ProcessRequest] = []

    async def handler(request: ProcessRequest) -> ProcessResult:
        requests.append(request)
        return result

    return requests, handler


async def test_shell_options_become_the_request() -> None:
    """command, arguments (a list, non-strings as JSON), environment (null left out), stdin
    (an expression) and await reach the process request; the output is stdout by default."""
    requests, handler = _recording()
    result, _ = await run(
        """
        do:
          - sh:
              run:
                shell:
                  command: 'echo "$1"'
                  arguments: [plain, '${ .n }', '${ .flag }', '${ .obj }']
                  environment: {A: '${ .n }', B: text, C: null}
                  stdin: '${ .message }'
        """,
        {"n": 3, "flag": True, "obj": {"k": "v"}, "message": "hello"},
        effects=InMemoryEffects(processes=handler),
        options=RuntimeOptions(process_timeout=12.5),
    )
    assert result.output == "out"
    (request,) = requests
    assert request.kind == "shell"
    assert request.command == 'echo "$1"'
    assert request.arguments == ("plain", "3", "true", '{"k":"v"}')
    assert dict(request.environment) == {"A": "3", "B": "text"}
    assert request.stdin == "hello"
    assert (request.timeout, request.await_completion) == (12.5, True)
    assert request.key.endswith("/do/0/sh")


@pytest.mark.parametrize(
    ("language", "expected"),
    [("js", "javascript"), ("JavaScript", "javascript"), ("python", "python")],
)
async def test_script_languages_are_normalised(language: str, expected: str) -> None:
    """js, javascript (any case) and python scripts run with their code as the command."""
    requests, handler = _recording()
    await run(
        f"""
        do:
          - s:
              run:
                script: {{language: {language}, code: 'print(1)', arguments: [a]}}
        """,
        effects=InMemoryEffects(processes=handler),
    )
    assert (requests[0].kind, requests[0].language, requests[0].command) == (
        "script",
        expected,
        "print(1)",
    )
    assert requests[0].arguments == ("a",)


async def test_an_unsupported_language_faults_without_running() -> None:
    """A script in another language (registration refuses it: here the model is built
    without validation) is a configuration error naming the supported ones."""
    requests, handler = _recording()
    body = "do:\n  - s:\n      run:\n        script: {language: ruby, code: 'puts 1'}\n"
    workflow = build_workflow(load_document(HEADER + body))
    async with open_expression_engine() as engine:
        result = await Interpreter(workflow, engine).start(InMemoryEffects(processes=handler))
    assert requests == []
    assert result.error is not None
    assert result.error.type.endswith("/configuration")
    assert result.error.detail == (
        "script language 'ruby' is not supported; use js (or javascript) or python"
    )


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("stdout", "out"),
        ("stderr", "err"),
        ("code", 0),
        ("all", {"code": 0, "stdout": "out", "stderr": "err"}),
        ("none", None),
    ],
)
async def test_return_modes(mode: str, expected: Any) -> None:
    """Each return mode outputs what the reference says (all: the process result object)."""
    _, handler = _recording()
    result, _ = await run(
        f"do:\n  - sh:\n      run:\n        shell: {{command: x}}\n        return: {mode}\n",
        effects=InMemoryEffects(processes=handler),
    )
    assert result.status == "completed"
    assert result.output == expected


@pytest.mark.parametrize("mode", ["code", "all"])
async def test_a_failing_exit_code_is_output_when_asked_for(mode: str) -> None:
    """return: code and all hand a non-zero exit code to the workflow."""
    _, handler = _recording(ProcessResult(code=3, stdout="o", stderr="e"))
    result, _ = await run(
        f"do:\n  - sh:\n      run:\n        shell: {{command: x}}\n        return: {mode}\n",
        effects=InMemoryEffects(processes=handler),
    )
    assert result.output == (3 if mode == "code" else {"code": 3, "stdout": "o", "stderr": "e"})


@pytest.mark.parametrize("mode", ["stdout", "stderr", "none"])
async def test_a_failing_exit_code_faults_the_modes_that_drop_it(mode: str) -> None:
    """return: stdout, stderr and none fault with a runtime error on an exit code but 0."""
    _, handler = _recording(ProcessResult(code=3, stdout="o", stderr="no such file\n"))
    result, _ = await run(
        f"do:\n  - sh:\n      run:\n        shell: {{command: x}}\n        return: {mode}\n",
        effects=InMemoryEffects(processes=handler),
    )
    assert result.error is not None
    assert result.error.type == "https://serverlessworkflow.io/spec/1.0.0/errors/runtime"
    assert result.error.title == "Process Failed"
    assert result.error.instance == "/do/0/sh"
    assert result.error.detail == (
        f"the shell process exited with code 3; stderr: no such file. With return: {mode} a "
        "failure faults the task: fix the process, catch the error, or set return: code or "
        "all to handle the exit code in the workflow"
    )


async def test_a_process_killed_by_a_signal_names_it_and_the_memory_setting() -> None:
    """A process ended by SIGSEGV (as one out of memory may be) names the signal and
    workflows.run.maxMemory."""
    _, handler = _recording(ProcessResult(code=139, signal="SIGSEGV"))
    result, _ = await run(
        "do:\n  - s:\n      run:\n        script: {language: js, code: x}\n",
        effects=InMemoryEffects(processes=handler),
    )
    assert result.error is not None
    assert result.error.detail is not None
    assert result.error.detail.startswith(
        "the script process was killed by signal SIGSEGV (a process that runs out of memory, "
        "workflows.run.maxMemory, ends so); it wrote nothing to stderr."
    )


async def test_a_failure_can_be_caught() -> None:
    """The runtime error of a failed process is caught like any other."""
    _, handler = _recording(ProcessResult(code=2))
    result, _ = await run(
        """
        do:
          - guarded:
              try:
                - sh:
                    run:
                      shell: {command: x}
              catch:
                errors:
                  with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime}
                as: failure
                do:
                  - note:
                      set: {caught: '${ $failure.title }'}
        """,
        effects=InMemoryEffects(processes=handler),
    )
    assert result.output == {"caught": "Process Failed"}


async def test_await_false_outputs_the_input_and_ignores_the_result() -> None:
    """await: false starts the process (await_completion false) and the task outputs its
    transformed input, whatever the process returns."""
    requests, handler = _recording(ProcessResult(code=9))
    result, _ = await run(
        """
        do:
          - sh:
              input: {from: '${ {kept: .a} }'}
              run:
                shell: {command: x}
                await: false
                return: code
        """,
        {"a": 1},
        effects=InMemoryEffects(processes=handler),
    )
    assert result.output == {"kept": 1}
    assert requests[0].await_completion is False


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            'shell: {command: x, arguments: ["a\\0b"]}',
            "run.shell.arguments[0] contains a NUL character, which no process can receive; "
            "remove it",
        ),
        (
            "shell: {command: x, environment: {'A=B': v}}",
            "run.shell.environment has the variable name 'A=B'; a name must be non-empty, "
            "without '=' or NUL",
        ),
        (
            'shell: {command: x, environment: {A: "v\\0"}}',
            "run.shell.environment.A contains a NUL character, which no process can receive; "
            "remove it",
        ),
    ],
)
async def test_values_no_process_can_receive_are_configuration_errors(
    body: str, detail: str
) -> None:
    """A NUL character or '=' in a variable name faults before anything runs."""
    requests, handler = _recording()
    result, _ = await run(
        f"do:\n  - sh:\n      run:\n        {body}\n",
        effects=InMemoryEffects(processes=handler),
    )
    assert requests == []
    assert result.error is not None
    assert result.error.detail == detail


def _serving(status: int, body: bytes, seen: list[HttpRequest]) -> Any:
    async def http(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse(status=status, headers={"content-type": "text/plain"}, body=body)

    return http


SOURCED = """
do:
  - s:
      run:
        script:
          language: python
          source:
            endpoint:
              uri: https://scripts.example/{name}.py
              authentication:
                bearer: {token: t0k}
"""


async def test_a_script_source_is_fetched_through_the_effects() -> None:
    """script.source is fetched with the effects' HTTP (the outbound policy applies), its
    URI template filled from the input and its authentication sent; the body is the code."""
    seen: list[HttpRequest] = []
    requests, handler = _recording()
    result, _ = await run(
        SOURCED,
        {"name": "hello"},
        effects=InMemoryEffects(http=_serving(200, b"print('hi')\n", seen), processes=handler),
        options=RuntimeOptions(max_document_size=4096),
    )
    assert result.status == "completed", result.error
    (fetch,) = seen
    assert (fetch.method, fetch.url) == ("GET", "https://scripts.example/hello.py")
    assert fetch.headers["authorization"] == "Bearer t0k"
    assert fetch.max_body_size == 4096
    assert requests[0].command == "print('hi')\n"


@pytest.mark.parametrize(
    ("status", "body", "kind", "detail"),
    [
        (
            404,
            b"",
            "communication",
            "fetching the script https://scripts.example/hello.py returned status 404",
        ),
        (
            200,
            b"x" * 5000,
            "configuration",
            "the script https://scripts.example/hello.py is larger than 4,096 bytes, the limit "
            "set by workflows.maxDocumentSize; make it smaller or raise the setting",
        ),
        (
            200,
            b"\xff\xfe",
            "configuration",
            "the script https://scripts.example/hello.py is not UTF-8 text",
        ),
    ],
)
async def test_a_script_source_that_cannot_be_used_faults(
    status: int, body: bytes, kind: str, detail: str
) -> None:
    """A source answering an error status, too large (workflows.maxDocumentSize) or not
    UTF-8 faults the task naming the URI; nothing runs."""
    requests, handler = _recording()
    result, _ = await run(
        SOURCED,
        {"name": "hello"},
        effects=InMemoryEffects(http=_serving(status, body, []), processes=handler),
        options=RuntimeOptions(max_document_size=4096),
    )
    assert requests == []
    assert result.error is not None
    assert result.error.type.endswith(f"/{kind}")
    assert result.error.detail == detail


async def _run_example(name: str) -> Any:
    text = (require_spec() / "examples" / name).read_text(encoding="utf-8")
    async with open_expression_engine() as engine, open_local_processes() as processes:
        result = await Interpreter(load_workflow(text, ENABLED), engine).start(
            InMemoryEffects(processes=processes.run_process)
        )
    assert result.status == "completed", result.error
    return result.output


async def test_official_example_run_shell_stdin_and_arguments() -> None:
    """run-shell-stdin-and-arguments.yaml prints its stdin and two arguments."""
    output = await _run_example("run-shell-stdin-and-arguments.yaml")
    assert output == "STDIN was: Hello World\nARGS are Foo Bar\n"


async def test_official_example_run_script_with_stdin_and_arguments() -> None:
    """run-script-with-stdin-and-arguments.yaml (JavaScript, an ES module) prints its stdin,
    its argument and its environment variable, as its comments say."""
    if shutil.which("node") is None:
        unavailable("node is not installed; install Node.js 20.19 or newer")
    output = await _run_example("run-script-with-stdin-and-arguments.yaml")
    assert output == "stdin >  Hello Workflow\narg >  hello\nenv >  bar\n"
