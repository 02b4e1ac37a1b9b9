"""The command lines of the podman and docker CLIs: what `CliContainerRuntime` runs.

Pure. Both CLIs take the same options for what is used here (``run`` with ``--name``,
``--rm``, ``-d``, ``-i``, ``--pull always|missing|never``, ``--network``, ``--label``, ``-e``,
``-p``, ``-v``, ``--memory``, ``--cpus``, ``--pids-limit``, ``--security-opt``; ``rm -f``,
``kill``, ``inspect``, ``ps``); where they differ (``rm``'s stop timeout) the runtime's name
decides. Every value a definition sent is checked by `container_spec` first, so none starts
with ``-``; environment variables are always passed as ``NAME=value`` (a bare ``-e NAME``
would copy the CLI's own variable into the container).
"""

from __future__ import annotations

import attrs

from workflow_orchestrator.adapters.containers._spec import CLEANUP_LABEL, ContainerSpec

#: The CLI's own log level: its warnings would otherwise mix with the container's stderr.
_LOG_LEVEL = ("--log-level", "error")


@attrs.frozen(kw_only=True)
class CommandLine:
    """The command lines of one runtime: ``binary`` is the CLI's path, ``runtime`` its kind
    (``podman`` or ``docker``), the rest the limits every container gets (0: none)."""

    binary: str
    runtime: str
    network: str = "none"
    port_address: str = "127.0.0.1"
    memory: int = 0
    cpus: float = 0.0
    pids_limit: int = 0

    def _cli(self, *arguments: str) -> list[str]:
        return [self.binary, *_LOG_LEVEL, *arguments]

    def run(self, spec: ContainerSpec) -> list[str]:
        """``run`` of ``spec``: attached (stdout and stderr are the container's) when awaited,
        detached otherwise; ``--rm`` when its cleanup is ``always``."""
        options = ["run", "--name", spec.name]
        if spec.cleanup == "always":
            options.append("--rm")
        if not spec.await_:
            options.append("--detach")
        if spec.stdin is not None:
            options.append("--interactive")
        options += ["--pull", spec.pull, "--network", self.network]
        options += ["--security-opt", "no-new-privileges"]
        if self.memory:
            options += ["--memory", str(self.memory)]
        if self.cpus:
            options += ["--cpus", f"{self.cpus:g}"]
        if self.pids_limit:
            options += ["--pids-limit", str(self.pids_limit)]
        for key, value in spec.labels:
            options += ["--label", f"{key}={value}"]
        for key, value in spec.environment:
            options += ["--env", f"{key}={value}"]
        for port in spec.ports:
            options += [
                "--publish",
                f"{self.port_address}:{port.host}:{port.container}/{port.protocol}",
            ]
        for volume in spec.volumes:
            mode = ":ro" if volume.read_only else ""
            options += ["--volume", f"{volume.host}:{volume.container}{mode}"]
        options.append(spec.image)
        if spec.command is not None:
            options += ["sh", "-c", spec.command, "sh"]
        options += spec.arguments
        return self._cli(*options)

    def remove(self, *names: str) -> list[str]:
        """Remove the containers ``names``, killing them first when they run."""
        if self.runtime == "podman":
            return self._cli("rm", "--force", "--time", "0", *names)
        return self._cli("rm", "--force", *names)

    def kill(self, *names: str) -> list[str]:
        """Kill the running containers ``names`` (they are kept)."""
        return self._cli("kill", *names)

    def inspect(self, *names: str) -> list[str]:
        """The JSON list of what the runtime knows of the containers ``names``."""
        return self._cli("container", "inspect", *names)

    def list_ended(self, cleanup: str) -> list[str]:
        """The ids of this service's ended containers whose cleanup policy is ``cleanup``."""
        return self._cli(
            "ps",
            "--all",
            "--quiet",
            "--no-trunc",
            "--filter",
            f"label={CLEANUP_LABEL}={cleanup}",
            "--filter",
            "status=exited",
        )

    def list_running(self) -> list[str]:
        """The ids of this service's running containers."""
        return self._cli(
            "ps", "--quiet", "--no-trunc", "--filter", f"label={CLEANUP_LABEL}",
            "--filter", "status=running",
        )  # fmt: skip
