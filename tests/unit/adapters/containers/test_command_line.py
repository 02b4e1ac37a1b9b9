"""`CommandLine`: the podman and docker command lines of a container and of its cleanup."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from tests.support.services import unavailable
from workflow_orchestrator.adapters.containers import CommandLine, call_id, container_spec
from workflow_orchestrator.config import ContainerSettings
from workflow_orchestrator.dsl.runtime import ServiceCall

KEY = "0b5e6f3c-8d0a-4a57-9a55-1f0c8f9b2f10/do/0/runContainer"
NETWORKED = ContainerSettings(runtime="podman", network="bridge", allowed_host_paths=("/srv",))


def run_line(runtime: str, **arguments: Any) -> list[str]:
    """The run command line of a call with ``arguments``."""
    request = ServiceCall(
        kind="container",
        arguments={"image": "alpine", "name": "job", **arguments},
        key=KEY,
        task_ref="/do/0/runContainer",
        namespace="test",
    )
    spec = container_spec(request, NETWORKED, now=1000.0, resolve=lambda p: p)
    line = CommandLine(
        binary=f"/usr/bin/{runtime}",
        runtime=runtime,
        network="bridge",
        memory=512 * 1024 * 1024,
        cpus=1.5,
        pids_limit=256,
    )
    return line.run(spec)


@pytest.mark.parametrize("runtime", ["podman", "docker"])
def test_an_awaited_container_with_everything(runtime: str) -> None:
    """Every field of run.container maps to the same options in both CLIs; the command is a
    shell script with its arguments as $1, $2."""
    line = run_line(
        runtime,
        command='echo "$1 $2"',
        arguments=["Foo", "Bar"],
        stdin="input",
        environment={"GREETING": "hi"},
        ports={"8080": 80},
        volumes={"/srv/data": "/data:ro"},
        lifetime={"cleanup": "always"},
        pullPolicy="always",
    )
    assert line == [
        f"/usr/bin/{runtime}",
        *("--log-level", "error", "run", "--name", "job", "--rm", "--interactive"),
        *("--pull", "always", "--network", "bridge", "--security-opt", "no-new-privileges"),
        *("--memory", "536870912", "--cpus", "1.5", "--pids-limit", "256"),
        *("--label", f"io.workflow-orchestrator.call={call_id(KEY)}"),
        *("--label", "io.workflow-orchestrator.task=/do/0/runContainer"),
        *("--label", "io.workflow-orchestrator.namespace=test"),
        *("--label", "io.workflow-orchestrator.cleanup=always"),
        *("--label", "io.workflow-orchestrator.deadline=1600"),
        *("--label", f"io.workflow-orchestrator.instance={KEY[:36]}"),
        *("--env", "GREETING=hi"),
        *("--publish", "127.0.0.1:8080:80/tcp"),
        *("--volume", "/srv/data:/data:ro"),
        *("alpine", "sh", "-c", 'echo "$1 $2"', "sh", "Foo", "Bar"),
    ]


def test_a_detached_container_without_a_command() -> None:
    """await false runs detached; without a command the arguments follow the image; cleanup
    never (the default) has no --rm; ifNotPresent is podman's and docker's 'missing'."""
    line = run_line("docker", arguments=["--verbose"], **{"await": False})
    assert "--detach" in line and "--rm" not in line and "--interactive" not in line
    assert line[line.index("--pull") + 1] == "missing"
    assert line[-2:] == ["alpine", "--verbose"]


def test_no_limits_when_set_to_zero() -> None:
    """Limits of 0 add no option."""
    request = ServiceCall(kind="container", arguments={"image": "alpine"}, key=KEY)
    spec = container_spec(request, ContainerSettings(runtime="podman"), now=0.0)
    line = CommandLine(binary="podman", runtime="podman").run(spec)
    assert not {"--memory", "--cpus", "--pids-limit"} & set(line)
    assert line[line.index("--network") + 1] == "none"


def test_cleanup_commands() -> None:
    """podman removes without waiting for a stop timeout; docker's rm -f kills at once."""
    podman = CommandLine(binary="podman", runtime="podman")
    docker = CommandLine(binary="docker", runtime="docker")
    assert podman.remove("a", "b") == [
        *("podman", "--log-level", "error", "rm", "--force", "--time", "0", "a", "b")
    ]
    assert docker.remove("a") == ["docker", "--log-level", "error", "rm", "--force", "a"]
    assert docker.kill("a") == ["docker", "--log-level", "error", "kill", "a"]
    assert podman.inspect("a") == ["podman", "--log-level", "error", "container", "inspect", "a"]
    assert docker.list_ended("eventually") == [
        *("docker", "--log-level", "error", "ps", "--all", "--quiet", "--no-trunc"),
        *("--filter", "label=io.workflow-orchestrator.cleanup=eventually"),
        *("--filter", "status=exited"),
    ]
    assert podman.list_running() == [
        *("podman", "--log-level", "error", "ps", "--quiet", "--no-trunc"),
        *("--filter", "label=io.workflow-orchestrator.cleanup", "--filter", "status=running"),
    ]


@pytest.mark.parametrize("runtime", ["podman", "docker"])
def test_the_installed_cli_knows_every_option(runtime: str) -> None:
    """Every long option of our command lines is in the installed CLI's help (docker has no
    engine here: its command line is what can be checked)."""
    binary = shutil.which(runtime)
    if binary is None:
        unavailable(f"{runtime} is not installed")
        return
    line = CommandLine(binary=binary, runtime=runtime, memory=1, cpus=1, pids_limit=1)

    def helped(*command: str) -> str:
        result = subprocess.run(
            [binary, *command, "--help"], capture_output=True, text=True, timeout=30, check=True
        )
        return result.stdout

    request = ServiceCall(kind="container", arguments={"image": "alpine", "stdin": "x"}, key=KEY)
    spec = container_spec(request, ContainerSettings(runtime=runtime), now=0.0)
    for command, used in (
        (("run",), line.run(spec)),
        (("rm",), line.remove("a")),
        (("ps",), line.list_ended("eventually")),
        (("container", "inspect"), line.inspect("a")),
    ):
        known = helped(*command) + helped()
        options = {word for word in used if word.startswith("--")}
        assert {o for o in options if o not in known} == set(), command
