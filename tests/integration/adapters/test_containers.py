"""``run.container`` through real podman: what runs, what is kept, what is stopped and swept.

The images are the busybox-static ones of ``tests.support.containers``; each test bounds its
own run with ``trio.fail_after``.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from tests.support.containers import ALPINE, GREETING, Podman
from workflow_orchestrator.adapters import PooledHttpClient, ServiceContext, open_service_adapters
from workflow_orchestrator.adapters.containers import (
    CliContainerRuntime,
    call_id,
    container_runtime,
    default_name,
)
from workflow_orchestrator.config import ConfigError, ContainerSettings, WorkflowSettings
from workflow_orchestrator.config._settings import RunTaskSettings
from workflow_orchestrator.dsl import ErrorType, WorkflowError
from workflow_orchestrator.dsl.runtime import ServiceCall
from workflow_orchestrator.security import OutboundPolicy

pytestmark = pytest.mark.integration

LIMIT = 60


def runtime(podman: Podman, *, max_output: int = 1 << 20, **settings: Any) -> CliContainerRuntime:
    """A podman runtime in the tests' environment (``settings`` override the defaults)."""
    return container_runtime(
        ContainerSettings(runtime="podman", **settings),
        max_output=max_output,
        environment=podman.environment,
    )


def call(
    key: str | None = None, /, *, timeout: float | None = None, **arguments: Any
) -> ServiceCall:
    """A ``run.container`` call of a new task attempt (``key``: a given one)."""
    return ServiceCall(
        kind="container",
        arguments={"image": ALPINE, "await": True, "return": "all", **arguments},
        key=key or f"{uuid.uuid4()}/do/0/runContainer",
        task_ref="/do/0/runContainer",
        timeout=timeout,
        namespace="test",
    )


def labels(podman: Podman, name: str) -> dict[str, str]:
    """The labels of container ``name``."""
    result = podman.run("container", "inspect", "--format", "{{json .Config.Labels}}", name)
    return dict(json.loads(result.stdout))


def running(podman: Podman, name: str) -> bool:
    """Whether container ``name`` runs."""
    result = podman.run("container", "inspect", "--format", "{{.State.Running}}", name)
    return result.stdout.strip() == "true"


async def test_stdin_arguments_and_the_kept_container(podman: Podman) -> None:
    """The command is a shell script reading stdin and $1 $2; with the default cleanup
    (never) the container stays, labelled with its call, instance, task and namespace."""
    request = call(
        command='input=$(cat)\necho "STDIN was: $input"\necho "ARGS are $1 $2"\n',
        stdin="Hello World",
        arguments=["Foo", "Bar"],
    )
    with trio.fail_after(LIMIT):
        result = await runtime(podman).call(request)
    assert result == {
        "code": 0,
        "stdout": "STDIN was: Hello World\nARGS are Foo Bar\n",
        "stderr": "",
    }
    name = default_name(request)
    assert name.startswith("wo-test-runContainer-")
    kept = labels(podman, name)
    assert kept["io.workflow-orchestrator.instance"] == request.key[:36]
    assert kept["io.workflow-orchestrator.task"] == "/do/0/runContainer"
    assert kept["io.workflow-orchestrator.namespace"] == "test"
    assert kept["io.workflow-orchestrator.cleanup"] == "never"
    assert not running(podman, name)


async def test_exit_code_and_stderr_are_the_result(podman: Podman) -> None:
    """A non-zero exit is the result (as for run.shell), with stdout and stderr apart; with
    cleanup always the container is gone afterwards."""
    request = call(command="echo out; echo err >&2; exit 3", lifetime={"cleanup": "always"})
    with trio.fail_after(LIMIT):
        result = await runtime(podman).call(request)
    assert result == {"code": 3, "stdout": "out\n", "stderr": "err\n"}
    assert not podman.exists(default_name(request))


async def test_default_command_of_the_image(podman: Podman) -> None:
    """Without a command the image's own runs (hello-world's greeting)."""
    request = call(image="hello-world", lifetime={"cleanup": "always"})
    with trio.fail_after(LIMIT):
        result = await runtime(podman).call(request)
    assert result["code"] == 0
    assert GREETING in result["stdout"]


async def test_only_declared_environment_reaches_the_container(podman: Podman) -> None:
    """The container sees the variables its task declares, never the service's own: the CLI
    itself runs without them."""
    environment = {**podman.environment, "WO_SERVICE_SECRET": "s3cret-value"}
    containers = container_runtime(
        ContainerSettings(runtime="podman"), max_output=1 << 20, environment=environment
    )
    assert "WO_SERVICE_SECRET" not in containers.environment
    request = call(
        command="env",
        environment={"GREETING": "hi there", "COUNT": 3},
        lifetime={"cleanup": "always"},
    )
    with trio.fail_after(LIMIT):
        result = await containers.call(request)
    assert "GREETING=hi there\n" in result["stdout"]
    assert "COUNT=3\n" in result["stdout"]
    assert "s3cret-value" not in result["stdout"]
    assert "WO_SERVICE_SECRET" not in result["stdout"]


@pytest.mark.parametrize("cleanup", ["always", "never"])
async def test_timeout_stops_the_container(podman: Podman, cleanup: str) -> None:
    """Past its timeout the container is stopped and the task faults with a timeout error:
    removed with cleanup always, killed and kept otherwise."""
    request = call(command="sleep 60", timeout=1.5, lifetime={"cleanup": cleanup})
    with trio.fail_after(LIMIT), pytest.raises(WorkflowError) as raised:
        await runtime(podman).call(request)
    assert raised.value.problem.type == ErrorType.TIMEOUT
    name = default_name(request)
    assert raised.value.problem.detail == (
        f"the container {name!r} (image {ALPINE!r}) did not finish within 1.5s; it was "
        "stopped. Set a longer task timeout, or raise workflows.run.container.timeout"
    )
    if cleanup == "always":
        assert not podman.exists(name)
    else:
        assert podman.exists(name) and not running(podman, name)


async def test_cancelled_task_removes_its_container(podman: Podman) -> None:
    """A cancelled task (its workflow cancelled, a timeout around it) stops its container
    before the cancellation completes."""
    request = call(command="sleep 60", lifetime={"cleanup": "always"})
    name = default_name(request)
    containers = runtime(podman)
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(containers.call, request)
            # podman is another process: no trio.Event sees its container start.
            while not (podman.exists(name) and running(podman, name)):  # noqa: ASYNC110
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    assert not podman.exists(name)


async def test_output_over_the_cap_stops_the_container(podman: Podman) -> None:
    """More output than workflows.run.maxOutputSize stops the container; the error names the
    setting."""
    request = call(command="yes | head -c 200000", lifetime={"cleanup": "always"})
    with trio.fail_after(LIMIT), pytest.raises(WorkflowError) as raised:
        await runtime(podman, max_output=4096).call(request)
    assert raised.value.problem.type == ErrorType.RUNTIME
    assert "more than 4,096 bytes to stdout" in str(raised.value.problem.detail)
    assert "workflows.run.maxOutputSize" in str(raised.value.problem.detail)
    assert not podman.exists(default_name(request))


async def test_a_rerun_of_the_same_attempt_replaces_its_container(podman: Podman) -> None:
    """The same task attempt executed again (after a crash) replaces its container, even a
    running one, instead of failing on the name."""
    key = f"{uuid.uuid4()}/do/0/runContainer"
    name = default_name(call(key))
    first = runtime(podman)
    podman.run(
        *("run", "-d", "--name", name, "--label", f"io.workflow-orchestrator.call={call_id(key)}"),
        *("--label", "io.workflow-orchestrator.cleanup=never", ALPINE, "sleep", "60"),
    )  # fmt: skip
    with trio.fail_after(LIMIT):
        result = await first.call(call(key, command="echo again"))
    assert result["stdout"] == "again\n"
    assert not running(podman, name)


async def test_a_name_held_by_another_container_is_refused(podman: Podman) -> None:
    """A task's name held by a container this service did not start is an error naming it;
    that container is left alone."""
    name = f"wo-foreign-{uuid.uuid4().hex[:8]}"
    podman.run("run", "-d", "--name", name, ALPINE, "sleep", "60")
    try:
        with trio.fail_after(LIMIT), pytest.raises(WorkflowError) as raised:
            await runtime(podman).call(call(name=name, command="true"))
        assert raised.value.problem.type == ErrorType.RUNTIME
        assert raised.value.problem.detail == (
            f"the container name {name!r} is taken by a container this task did not start "
            "(one still running, of another namespace, or not started by this service); give "
            "the task another name, or remove that container"
        )
        assert running(podman, name)
    finally:
        podman.run("rm", "-f", "-t", "0", name)


async def test_a_task_name_is_reused_after_an_ended_run(podman: Podman) -> None:
    """Another run of a task with a fixed name replaces the ended container of the earlier
    one (same namespace)."""
    name = f"hello-{uuid.uuid4().hex[:8]}"
    containers = runtime(podman)
    with trio.fail_after(LIMIT):
        await containers.call(call(name=name, command="echo one"))
        result = await containers.call(call(name=name, command="echo two"))
    assert result["stdout"] == "two\n"
    podman.run("rm", "-f", name)


async def test_eventually_is_swept_after_its_time(podman: Podman) -> None:
    """An ended container with cleanup eventually stays until ``after`` has passed since it
    ended, then a sweep removes it; containers kept for ever are not touched."""
    containers = runtime(podman)
    eventually = call(command="true", lifetime={"cleanup": "eventually", "after": {"minutes": 30}})
    never = call(command="true")
    with trio.fail_after(LIMIT):
        await containers.call(eventually)
        await containers.call(never)
        soon = await containers.sweep(now=time.time() + 60)
        assert podman.exists(default_name(eventually))
        later = await containers.sweep(now=time.time() + 31 * 60)
    assert not soon.remove
    assert podman.exists(default_name(never))
    assert not podman.exists(default_name(eventually))
    assert len(later.remove) >= 1


async def test_a_detached_container_is_stopped_past_its_deadline(podman: Podman) -> None:
    """await: false returns once the container started; a sweep past its deadline kills it
    (cleanup never: kept) and removes it (cleanup always)."""
    containers = runtime(podman)
    kept = call(command="sleep 60", timeout=5, **{"await": False})
    removed = call(
        command="sleep 60", timeout=5, lifetime={"cleanup": "always"}, **{"await": False}
    )
    with trio.fail_after(LIMIT):
        assert await containers.call(kept) == {"code": 0, "stdout": "", "stderr": ""}
        await containers.call(removed)
        assert running(podman, default_name(kept)) and running(podman, default_name(removed))
        assert not (await containers.sweep(now=time.time())).kill
        plan = await containers.sweep(now=time.time() + 3600)
    assert podman.exists(default_name(kept)) and not running(podman, default_name(kept))
    assert not podman.exists(default_name(removed))
    assert set(plan.kill) | set(plan.remove) >= {
        podman.run("container", "inspect", "--format", "{{.Id}}", default_name(kept)).stdout.strip()
    }


async def test_a_missing_image_with_pull_never(podman: Podman) -> None:
    """pullPolicy never and no such image: a configuration error saying what to do."""
    request = call(image="localhost/not-here", pullPolicy="never")
    with trio.fail_after(LIMIT), pytest.raises(WorkflowError) as raised:
        await runtime(podman).call(request)
    assert raised.value.problem.type == ErrorType.CONFIGURATION
    assert str(raised.value.problem.detail).startswith(
        "the image 'localhost/not-here' is not in podman's storage and pullPolicy is never: "
        "load it into podman on the service's host, or use pullPolicy ifNotPresent (podman: "
    )


async def test_volumes_under_an_allowed_directory(podman: Podman, tmp_path: Path) -> None:
    """A host directory under workflows.run.container.allowedHostPaths is mounted (read-only
    with :ro); one outside is refused before anything runs."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "note.txt").write_text("from the host")
    containers = runtime(podman, allowed_host_paths=(str(tmp_path),))
    request = call(
        command="cat /data/note.txt; echo; touch /data/x 2>/dev/null || echo read-only",
        volumes={str(tmp_path / "data"): "/data:ro"},
        lifetime={"cleanup": "always"},
    )
    with trio.fail_after(LIMIT):
        result = await containers.call(request)
    assert result["stdout"] == "from the host\nread-only\n"
    with pytest.raises(WorkflowError) as raised:
        await containers.call(call(command="true", volumes={"/etc": "/host-etc"}))
    assert raised.value.problem.type == ErrorType.CONFIGURATION
    assert "workflows.run.container.allowedHostPaths" in str(raised.value.problem.detail)


async def test_a_namespace_not_allowed_is_refused(podman: Podman) -> None:
    """workflows.run.container.namespaces limits who runs containers."""
    with pytest.raises(WorkflowError) as raised:
        await runtime(podman, namespaces=("ops",)).call(call(command="true"))
    assert raised.value.problem.detail == (
        "namespace 'test' may not run containers; add it to workflows.run.container.namespaces "
        "in the configuration"
    )


def test_a_missing_binary_is_a_configuration_error(tmp_path: Path) -> None:
    """A runtime whose program is not there keeps the service from starting, naming the
    setting."""
    settings = ContainerSettings(runtime="podman", binary=str(tmp_path / "podman"))
    with pytest.raises(ConfigError) as raised:
        container_runtime(settings, max_output=1024)
    assert str(raised.value) == (
        "invalid configuration (1 problem):\n  - workflows.run.container.binary: "
        f"workflows.run.container.runtime is podman but the program '{tmp_path / 'podman'}' "
        "was not found; install podman, set workflows.run.container.binary to its path, or set "
        "the runtime to none"
    )


async def test_the_service_adapters_serve_containers_when_configured(podman: Podman) -> None:
    """open_service_adapters adds the container caller when a runtime is configured, and
    refuses to open with a missing binary."""
    policy = OutboundPolicy()
    async with PooledHttpClient(policy=policy) as http:

        def context(container: ContainerSettings) -> ServiceContext:
            run = attrs.evolve(RunTaskSettings(), container=container)
            return ServiceContext(
                workflows=attrs.evolve(WorkflowSettings(), run=run), outbound=policy, http=http
            )

        async with open_service_adapters(context(ContainerSettings())) as adapters:
            assert "container" not in adapters.kinds()
        podman_settings = ContainerSettings(runtime="podman", binary=podman.binary)
        async with open_service_adapters(context(podman_settings)) as adapters:
            assert "container" in adapters.kinds()
        missing = ContainerSettings(runtime="docker", binary="/nonexistent/docker")
        with pytest.raises(ConfigError, match=r"workflows\.run\.container\.binary"):
            await open_service_adapters(context(missing)).__aenter__()
