"""`container_spec`: a ``run.container`` task's arguments checked before anything runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from workflow_orchestrator.adapters.containers import (
    ContainerSpec,
    Port,
    Volume,
    call_id,
    container_spec,
    default_name,
)
from workflow_orchestrator.config import ContainerSettings
from workflow_orchestrator.dsl import ErrorType, WorkflowError
from workflow_orchestrator.dsl.runtime import ServiceCall

KEY = "0b5e6f3c-8d0a-4a57-9a55-1f0c8f9b2f10/do/0/runContainer"
SETTINGS = ContainerSettings(runtime="podman")


def request(key: str = KEY, timeout: float | None = None, **arguments: Any) -> ServiceCall:
    """A call with ``arguments`` (image alpine unless given)."""
    return ServiceCall(
        kind="container",
        arguments={"image": "alpine", **arguments},
        key=key,
        task_ref="/do/0/runContainer",
        timeout=timeout,
        namespace="test",
    )


def spec(settings: ContainerSettings = SETTINGS, /, **arguments: Any) -> ContainerSpec:
    """The spec of a call with ``arguments`` at time 1000."""
    return container_spec(request(**arguments), settings, now=1000.0)


def refusal(settings: ContainerSettings = SETTINGS, /, **arguments: Any) -> WorkflowError:
    """The error of a call with ``arguments``."""
    with pytest.raises(WorkflowError) as raised:
        spec(settings, **arguments)
    assert raised.value.problem.instance == "/do/0/runContainer"
    return raised.value


def test_defaults_follow_the_spec() -> None:
    """Awaited, pulled if not present, never cleaned up, the service's timeout, labelled."""
    result = spec()
    assert result.await_ and result.pull == "missing" and result.cleanup == "never"
    assert result.cleanup_after is None and result.timeout == SETTINGS.timeout
    assert result.command is None and result.stdin is None and result.arguments == ()
    assert not result.named_by_task
    assert dict(result.labels) == {
        "io.workflow-orchestrator.call": call_id(KEY),
        "io.workflow-orchestrator.instance": KEY[:36],
        "io.workflow-orchestrator.task": "/do/0/runContainer",
        "io.workflow-orchestrator.namespace": "test",
        "io.workflow-orchestrator.cleanup": "never",
        "io.workflow-orchestrator.deadline": "1600",
    }


def test_the_default_name_is_stable_per_attempt() -> None:
    """The same key names the same container; another attempt another one."""
    first = default_name(request())
    assert first == f"wo-test-runContainer-{call_id(KEY)[:16]}"
    assert default_name(request()) == first
    assert default_name(request(key=KEY + "#1")) != first


def test_a_task_name_is_used_as_given() -> None:
    """``name`` is the container's name when valid."""
    result = spec(name="hello-run-1")
    assert result.name == "hello-run-1" and result.named_by_task


@pytest.mark.parametrize("name", ["-rf", "a b", "x/y", "é", "a" * 129])
def test_an_invalid_name_is_refused(name: str) -> None:
    """A name the runtime would refuse, or read as an option, is a validation error."""
    error = refusal(name=name)
    assert error.problem.type == ErrorType.VALIDATION


@pytest.mark.parametrize("image", ["-v", "--privileged", "alpine latest", "", "a\nb"])
def test_an_image_that_is_no_reference_is_refused(image: str) -> None:
    """An image that is not a reference (an option, spaces) is refused."""
    error = refusal(image=image)
    assert error.problem.type == ErrorType.VALIDATION
    assert "is not an image reference" in str(error.problem.detail)


def test_lifetime_and_pull_policy() -> None:
    """cleanup eventually keeps its duration (ISO or inline); pull policies map to the
    runtime's words."""
    result = spec(lifetime={"cleanup": "eventually", "after": {"minutes": 30}}, pullPolicy="always")
    assert (result.cleanup, result.cleanup_after, result.pull) == ("eventually", 1800.0, "always")
    assert ("io.workflow-orchestrator.cleanup-after", "1800") in result.labels
    assert spec(lifetime={"cleanup": "eventually", "after": "PT2H"}).cleanup_after == 7200.0
    assert spec(pullPolicy="never").pull == "never"
    assert spec(lifetime={"cleanup": "always"}).cleanup == "always"


def test_a_bad_lifetime_is_refused() -> None:
    """eventually needs after; unknown policies and durations are refused."""
    assert refusal(lifetime={"cleanup": "eventually"}).problem.detail == (
        "run.container: lifetime.after is required when lifetime.cleanup is eventually"
    )
    assert "lifetime.cleanup 'sometimes'" in str(refusal(lifetime={"cleanup": "sometimes"}))
    assert "lifetime.after" in str(refusal(lifetime={"cleanup": "eventually", "after": "soon"}))
    assert "pullPolicy 'maybe'" in str(refusal(pullPolicy="maybe"))


def test_environment_values_become_strings() -> None:
    """Declared variables only, values as text (JSON for non-strings)."""
    result = spec(environment={"A": "x", "N": 3, "F": True, "O": {"k": 1}, "Z": None})
    assert result.environment == (
        ("A", "x"),
        ("N", "3"),
        ("F", "true"),
        ("O", '{"k":1}'),
        ("Z", ""),
    )


@pytest.mark.parametrize("name", ["", "1A", "A=B", "-e", "A B"])
def test_an_invalid_variable_name_is_refused(name: str) -> None:
    """A variable name that is not one is refused (never a bare -e NAME)."""
    assert "environment variable name" in str(refusal(environment={name: "x"}))


def test_stdin_needs_an_awaited_container() -> None:
    """A detached container has nobody to write its stdin: refused with the fix."""
    assert "stdin cannot be given to a container that is not awaited" in str(
        refusal(stdin="data", **{"await": False})
    )
    assert spec(stdin="data").stdin == "data"


def test_ports_need_a_network() -> None:
    """Ports are refused while containers have no network, naming the setting."""
    error = refusal(ports={"8080": 80})
    assert error.problem.type == ErrorType.CONFIGURATION
    assert error.problem.detail == (
        "run.container: ports cannot be published while containers have no network "
        "(workflows.run.container.network is none); set a network there, or remove ports"
    )
    networked = ContainerSettings(runtime="podman", network="bridge")
    assert spec(networked, ports={"8080": 80, "5353": "53/udp"}).ports == (
        Port(host=8080, container=80),
        Port(host=5353, container=53, protocol="udp"),
    )
    assert "is not a port" in str(refusal(networked, ports={"0": 80}))
    assert "is not a port" in str(refusal(networked, ports={"80": "http"}))


def test_volumes_only_under_allowed_directories(tmp_path: Path) -> None:
    """Host paths are mounted only under allowedHostPaths, links followed; named volumes,
    relative paths and paths outside are refused naming the setting."""
    (tmp_path / "data").mkdir()
    os.symlink("/etc", tmp_path / "data" / "escape")
    allowed = ContainerSettings(runtime="podman", allowed_host_paths=(str(tmp_path),))
    assert spec(allowed, volumes={f"{tmp_path}/data": "/data:ro"}).volumes == (
        Volume(host=f"{tmp_path}/data", container="/data", read_only=True),
    )
    outside = refusal(allowed, volumes={"/etc": "/etc-host"})
    assert outside.problem.type == ErrorType.CONFIGURATION
    assert outside.problem.detail == (
        "run.container: host path '/etc' may not be mounted: it is not under a directory of "
        f"workflows.run.container.allowedHostPaths ({tmp_path}); add one to that setting, or "
        "remove the volume"
    )
    assert "may not be mounted" in str(refusal(allowed, volumes={f"{tmp_path}/data/escape": "/x"}))
    assert "may not be mounted" in str(refusal(allowed, volumes={f"{tmp_path}/../x": "/x"}))
    assert "(none configured)" in str(refusal(volumes={str(tmp_path): "/x"}))
    assert "named volumes" in str(refusal(allowed, volumes={"cache": "/cache"}))
    assert "must be an absolute path" in str(refusal(allowed, volumes={str(tmp_path): "relative"}))


def test_limits() -> None:
    """Sizes and counts are bounded; unknown fields are refused."""
    assert "arguments has 1025 items; the limit is 1024" in str(refusal(arguments=["x"] * 1025))
    assert "the limit is 131,072" in str(refusal(command="x" * (128 * 1024 + 1)))
    assert "unknown fields ['entrypoint']" in str(refusal(entrypoint="/bin/sh"))
    assert "NUL" in str(refusal(command="echo \x00"))


def test_the_task_timeout_sets_the_deadline() -> None:
    """A call's own timeout bounds the container and its deadline label."""
    result = container_spec(request(timeout=5), SETTINGS, now=1000.0)
    assert result.timeout == 5
    assert ("io.workflow-orchestrator.deadline", "1005") in result.labels
