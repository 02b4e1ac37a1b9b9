"""run.shell and run.script through the durable runtime of the real service (PostgreSQL): the
two official examples, the sandbox (scrubbed environment, exit codes, time limit, output cap,
memory limit), await: false, and the namespace policy at registration and at run time."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.events import INSTANCES, start, wait_for
from tests.support.service import InProcessService, open_service, register_yaml
from tests.support.services import unavailable
from tests.support.spec import require_spec

pytestmark = pytest.mark.integration

ENABLED = {"workflows.run.shell": True, "workflows.run.script": True}
RUNTIME_ERROR = "https://serverlessworkflow.io/spec/1.0.0/errors/runtime"


async def _finished(app: InProcessService, instance_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (
        await app.api.get(f"{INSTANCES}/{instance_id}", params={"wait": "30s"})
    ).json()
    assert body["status"] in ("completed", "faulted"), body
    return body


def _definition(name: str, run: str, namespace: str = "demo") -> str:
    return (
        f"document: {{dsl: '1.0.3', namespace: {namespace}, name: {name}, version: '1.0.0'}}\n"
        f"do:\n  - step:\n      run:\n{run}"
    )


async def test_the_official_process_examples_run_in_the_service(database_url: str) -> None:
    """run-shell-stdin-and-arguments.yaml and run-script-with-stdin-and-arguments.yaml (an
    ES module in JavaScript) complete with the output their comments describe."""
    if shutil.which("node") is None:
        unavailable("node is not installed; install Node.js 20.19 or newer")
    examples = require_spec() / "examples"
    with trio.fail_after(90):
        async with open_service(database_url, settings=ENABLED) as app:
            outputs = {}
            for name, definition_id in (
                ("run-shell-stdin-and-arguments.yaml", "run-shell-with-stdin-and-arguments"),
                ("run-script-with-stdin-and-arguments.yaml", "run-script-with-stdin-and-arguments"),
            ):
                await register_yaml(app, (examples / name).read_text(encoding="utf-8"))
                done = await _finished(app, await start(app, definition_id))
                assert done["status"] == "completed", done
                outputs[definition_id] = done["output"]
    assert outputs == {
        "run-shell-with-stdin-and-arguments": "STDIN was: Hello World\nARGS are Foo Bar\n",
        "run-script-with-stdin-and-arguments": (
            "stdin >  Hello Workflow\narg >  hello\nenv >  bar\n"
        ),
    }


SANDBOXED = {
    "environment": "        shell: {command: env, environment: {MINE: '${ .mine }'}}\n",
    "coded": "        shell: {command: 'echo out; exit 4'}\n        return: code\n",
    "failing": "        shell: {command: 'echo no such thing >&2; exit 4'}\n",
    "slow": "        shell: {command: 'sleep 60'}\n",
    "chatty": "        shell: {command: 'yes'}\n",
    "greedy": (
        "        script: {language: python, code: 'x = bytearray(1 << 30)'}\n        return: all\n"
    ),
}


async def test_the_sandbox_holds_in_the_service(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the durable runtime: a process sees none of the service's environment, exit
    codes follow return, and the time limit, output cap and memory limit fault or fail the
    process naming their settings."""
    monkeypatch.setenv("DATABASE_PASSWORD", "s3cret-of-the-service")
    settings = {
        **ENABLED,
        "workflows.run.timeout": "2s",
        "workflows.run.maxOutputSize": "1KB",
        "workflows.run.maxMemory": "64MB",
    }
    with trio.fail_after(120):
        async with open_service(database_url, settings=settings) as app:
            done = {}
            for name, run in SANDBOXED.items():
                await register_yaml(app, _definition(name, run))
                done[name] = await _finished(app, await start(app, name, {"mine": "yes"}))
    variables = dict(line.split("=", 1) for line in done["environment"]["output"].splitlines())
    assert "s3cret-of-the-service" not in done["environment"]["output"]
    assert set(variables) - {"PWD", "SHLVL", "_"} == {"PATH", "LANG", "HOME", "TMPDIR", "MINE"}
    assert variables["MINE"] == "yes"
    assert done["coded"]["output"] == 4
    failing = done["failing"]["error"]
    assert (failing["type"], failing["title"], failing["instance"]) == (
        RUNTIME_ERROR,
        "Process Failed",
        "/do/0/step",
    )
    assert failing["detail"].startswith(
        "the shell process exited with code 4; stderr: no such thing. With return: stdout"
    )
    slow = done["slow"]["error"]
    assert slow["type"] == "https://serverlessworkflow.io/spec/1.0.0/errors/timeout"
    assert slow["detail"] == (
        "the shell process did not finish within 2s; it was stopped. Make it faster, or raise "
        "workflows.run.timeout"
    )
    assert done["chatty"]["error"]["detail"] == (
        "the shell process wrote more than 1,024 bytes to stdout; it was stopped. Write less, "
        "or raise workflows.run.maxOutputSize"
    )
    greedy = done["greedy"]["output"]
    assert greedy["code"] == 1
    assert greedy["stderr"].rstrip().endswith("MemoryError")


async def _read_fifo(path: Path) -> str:
    def read() -> str:
        with path.open(encoding="ascii") as fifo:
            return fifo.readline().strip()

    return await trio.to_thread.run_sync(read)


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie not reaped yet has ended too)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True


async def test_a_process_not_awaited_lets_the_instance_complete_and_dies_with_the_service(
    database_url: str, tmp_path: Path
) -> None:
    """await: false: the instance completes with its input while the process runs on, owned
    by the service; stopping the service kills it."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    run = (
        "        shell:\n"
        "          command: 'echo $$ > \"$FIFO\"; exec sleep 60'\n"
        f"          environment: {{FIFO: '{fifo}'}}\n"
        "        await: false\n"
    )
    with trio.fail_after(60):
        async with open_service(database_url, settings=ENABLED) as app:
            await register_yaml(app, _definition("detached", run))
            instance_id = await start(app, "detached", {"kept": True})
            pid = int(await _read_fifo(fifo))
            done = await _finished(app, instance_id)
            assert done["status"] == "completed", done
            assert done["output"] == {"kept": True}
            assert not _gone(pid)
    assert _gone(pid)


async def test_a_namespace_not_allowed_is_refused_at_registration_and_at_run_time(
    database_url: str,
) -> None:
    """workflows.run.namespaces: a definition of another namespace gets 422 (rule
    process-not-allowed); one registered before the setting changed faults at run time with
    a configuration error naming the setting."""
    text = _definition("sheller", "        shell: {command: 'echo hi'}\n", namespace="demo")
    with trio.fail_after(90):
        async with open_service(database_url, settings=ENABLED) as app:
            await register_yaml(app, text)
        narrowed = {**ENABLED, "workflows.run.namespaces": ["billing"]}
        async with open_service(database_url, settings=narrowed) as app:
            refused = await app.api.post(
                "/v1/workflow-definitions",
                content=text.replace("name: sheller", "name: another"),
                headers={"Content-Type": "application/yaml"},
            )
            instance_id = await start(app, "sheller")
            faulted = await wait_for(app, instance_id, "faulted")
    assert refused.status_code == 422, refused.text
    (problem,) = refused.json()["problems"]
    assert (problem["pointer"], problem["rule"]) == ("/do/0/step", "process-not-allowed")
    assert problem["message"] == (
        "namespace 'demo' may not run run.shell processes; add it to workflows.run.namespaces "
        "in the configuration, or remove this task"
    )
    error = faulted["error"]
    assert error["type"] == "https://serverlessworkflow.io/spec/1.0.0/errors/configuration"
    assert error["detail"] == (
        "namespace 'demo' may not run run.shell processes; add it to workflows.run.namespaces "
        "in the configuration"
    )
