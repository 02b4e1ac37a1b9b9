"""Local shell/script processes: output, return modes, timeout."""

from __future__ import annotations

import pytest

from tests.unit.dsl.runtime_support import document
from workflow_orchestrator.adapters import open_expression_engine, run_local_process
from workflow_orchestrator.dsl.errors import WorkflowError
from workflow_orchestrator.dsl.model import build_workflow
from workflow_orchestrator.dsl.runtime import InMemoryEffects, Interpreter, ProcessRequest


async def test_shell_command_with_arguments_and_stdin() -> None:
    """A shell command gets its arguments and stdin; stdout and the exit code come back."""
    result = await run_local_process(
        ProcessRequest(
            kind="shell", command='read x; echo "$1-$x"; exit 3', arguments=("a",), stdin="b\n"
        )
    )
    assert (result.code, result.stdout) == (3, "a-b\n")


async def test_python_script() -> None:
    """A python script runs with the service's interpreter."""
    result = await run_local_process(
        ProcessRequest(
            kind="script",
            language="python",
            command="import sys; print(sys.argv[1])",
            arguments=("hi",),
        )
    )
    assert result.stdout == "hi\n"


async def test_process_timeout_is_the_timeout_error() -> None:
    """A process that outlives its timeout is killed and raises the timeout error."""
    with pytest.raises(WorkflowError) as caught:
        await run_local_process(ProcessRequest(kind="shell", command="sleep 5", timeout=0.2))
    assert caught.value.problem.detail == "the shell process did not finish within 0.2s"


async def test_run_shell_task_when_enabled() -> None:
    """With a process handler the run task returns per ``return`` (all: code/stdout/stderr)."""
    workflow = build_workflow(
        document(
            "do:\n  - sh:\n      run:\n        shell: {command: 'echo out; echo err >&2'}\n        return: all\n"
        )
    )
    async with open_expression_engine() as engine:
        result = await Interpreter(workflow, engine).start(
            InMemoryEffects(processes=run_local_process)
        )
    assert result.output == {"code": 0, "stdout": "out\n", "stderr": "err\n"}


async def test_environment_is_scrubbed_to_what_the_task_declares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The service's own environment (a database password, secrets) never reaches a process:
    it gets PATH, LANG and the variables its task declares."""
    monkeypatch.setenv("DATABASE_PASSWORD", "s3cret")
    monkeypatch.setenv("WORKFLOW_SECRET_API_KEY", "k3y")
    result = await run_local_process(
        ProcessRequest(kind="shell", command="env", environment={"GREETING": "hello"})
    )
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines()}
    assert "GREETING=hello" in result.stdout.splitlines()
    assert "s3cret" not in result.stdout and "k3y" not in result.stdout
    assert names - {"PWD", "SHLVL", "_"} == {"PATH", "LANG", "GREETING"}


async def test_output_over_the_cap_stops_the_process_and_names_the_setting() -> None:
    """A process writing more than ``max_output`` bytes is stopped; the task faults."""
    with pytest.raises(WorkflowError) as caught:
        await run_local_process(
            ProcessRequest(kind="shell", command="yes xxxxxxxx", timeout=30), max_output=4096
        )
    detail = caught.value.problem.detail or ""
    assert "more than 4,096 bytes to stdout" in detail
    assert "workflows.run.maxOutputSize" in detail
    small = await run_local_process(
        ProcessRequest(kind="shell", command="echo ok"), max_output=4096
    )
    assert small.stdout == "ok\n"
