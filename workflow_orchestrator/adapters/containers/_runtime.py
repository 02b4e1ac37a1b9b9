"""`CliContainerRuntime`: ``run.container`` through the podman or docker CLI.

One call runs one container (``run``, attached when the task awaits it, detached otherwise)
and answers ``{"code", "stdout", "stderr"}``; the container's exit code is its result, as a
``run.shell`` process's is (a non-zero code is not an error by itself). The CLI runs without a
shell, with a scrubbed environment (``CLI_ENVIRONMENT``: what podman and docker read to find
their engine and configuration, never the service's secrets), and every CLI command is bounded.

Invariants:

- A container runs at most its timeout (the task's, else ``workflows.run.container.timeout``):
  an awaited one is stopped when it passes it, when its output passes
  ``workflows.run.maxOutputSize`` and when its task is cancelled; the stop happens in a
  shielded, bounded scope and removes the container (cleanup ``always``) or kills it (kept).
  A detached one, or one whose service died, is stopped by a later sweep (``_sweep``).
- A container name is taken over only from a container of the same call (the same task
  attempt, executed again after a crash) or from an ended container this service started for
  the same namespace; any other holder of the name is an error naming it.
- Ended containers whose cleanup is ``eventually`` are removed by `CliContainerRuntime.sweep`,
  which `open_container_runtime` runs every ``sweepInterval``, from their labels alone: a
  restart leaks none.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio.lowlevel

from workflow_orchestrator.adapters._processes import _feed, _OutputTooLarge, _read_capped
from workflow_orchestrator.adapters.containers._command_line import CommandLine
from workflow_orchestrator.adapters.containers._spec import (
    CALL_LABEL,
    CLEANUP_LABEL,
    NAMESPACE_LABEL,
    ContainerSpec,
    container_spec,
)
from workflow_orchestrator.adapters.containers._sweep import SweepPlan, parse_inspect, plan_sweep
from workflow_orchestrator.config import ConfigError, ConfigProblem, ContainerSettings
from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import ServiceCall

logger = logging.getLogger(__name__)

#: The variables of the service's environment the CLI gets (how podman and docker find their
#: engine, storage, configuration and registry credentials); nothing else reaches it.
CLI_ENVIRONMENT = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "DBUS_SESSION_BUS_ADDRESS",
    "CONTAINERS_CONF",
    "CONTAINERS_REGISTRIES_CONF",
    "CONTAINERS_STORAGE_CONF",
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "REGISTRY_AUTH_FILE",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
)
#: Bounds of the CLI's short commands (rm, kill, inspect, ps) and of a stop after a cancel.
COMMAND_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
_COMMAND_OUTPUT = 16 * 1024 * 1024
#: The exit code podman and docker use for their own failures (not the container's).
ENGINE_FAILED = 125
_MESSAGE = 2000
_PULL_WORDS = ("pull", "registry", "initializing source", "manifest", "dial tcp", "lookup ")
_MISSING_WORDS = ("image not known", "no such image", "unable to find image")


@attrs.frozen(kw_only=True)
class _Outcome:
    code: int
    stdout: bytes
    stderr: bytes
    too_large: str | None = None

    def message(self) -> str:
        text = self.stderr.decode("utf-8", "replace").strip() or "(no message)"
        return text if len(text) <= _MESSAGE else "..." + text[-_MESSAGE:]


def cli_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environment`` the runtime's CLI gets (``CLI_ENVIRONMENT``)."""
    return {k: environment[k] for k in CLI_ENVIRONMENT if k in environment}


def _error(kind: str, detail: str, where: str) -> WorkflowError:
    return WorkflowError(Problem.standard(kind, detail=detail, instance=where))


@attrs.define(eq=False)
class CliContainerRuntime:
    """Runs ``run.container`` calls with ``command_line`` (see the module docstring).

    ``environment`` is the CLI's (already scrubbed); ``clock`` gives wall-clock Unix seconds
    (deadline labels and sweeps). ``max_output`` caps each of stdout and stderr in bytes.
    """

    command_line: CommandLine
    settings: ContainerSettings
    max_output: int
    environment: Mapping[str, str]
    clock: Callable[[], float] = time.time

    # -- CLI ------------------------------------------------------------------------------

    async def _execute(self, argv: list[str], *, stdin: bytes | None, cap: int) -> _Outcome:
        """Run one CLI command to its end (the caller bounds it); killed and reaped when
        cancelled or when stdout or stderr passes ``cap`` bytes."""
        stdout, stderr = bytearray(), bytearray()
        try:
            process = await trio.lowlevel.open_process(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(self.environment),
            )
        except OSError as error:
            raise WorkflowError(
                Problem.standard(
                    ErrorType.RUNTIME,
                    detail=f"the container runtime {argv[0]!r} could not start: {error}; check "
                    "workflows.run.container.binary",
                )
            ) from None
        if process.stdout is None or process.stderr is None:
            raise RuntimeError("the process has no pipes")  # asked for above: a bug
        too_large: str | None = None
        try:
            try:
                async with trio.open_nursery() as nursery:
                    if process.stdin is not None:
                        nursery.start_soon(_feed, process.stdin, stdin or b"")
                    nursery.start_soon(_read_capped, process.stdout, "stdout", cap, stdout)
                    nursery.start_soon(_read_capped, process.stderr, "stderr", cap, stderr)
                await process.wait()
            except* _OutputTooLarge as group:
                leaf = group.exceptions[0]
                too_large = leaf.stream if isinstance(leaf, _OutputTooLarge) else "output"
        finally:
            if process.returncode is None:
                process.kill()
                with trio.move_on_after(5, shield=True):
                    await process.wait()
        code = process.returncode if process.returncode is not None else -1
        return _Outcome(code=code, stdout=bytes(stdout), stderr=bytes(stderr), too_large=too_large)

    async def _command(self, argv: list[str]) -> _Outcome:
        """A short CLI command, bounded by ``COMMAND_TIMEOUT``."""
        try:
            with trio.fail_after(COMMAND_TIMEOUT):
                return await self._execute(argv, stdin=None, cap=_COMMAND_OUTPUT)
        except trio.TooSlowError:
            raise WorkflowError(
                Problem.standard(
                    ErrorType.TIMEOUT,
                    detail=f"the container runtime did not answer '{' '.join(argv[1:4])} ...' "
                    f"within {COMMAND_TIMEOUT:g}s",
                )
            ) from None

    # -- one call -------------------------------------------------------------------------

    def _check_namespace(self, request: ServiceCall) -> None:
        allowed = self.settings.namespaces
        if "*" in allowed or request.namespace in allowed:
            return
        raise WorkflowError(
            Problem.standard(
                ErrorType.CONFIGURATION,
                detail=f"namespace {request.namespace!r} may not run containers; add it to "
                "workflows.run.container.namespaces in the configuration",
                instance=request.task_ref,
            )
        )

    async def call(self, request: ServiceCall) -> dict[str, Any]:
        """Run the container of ``request`` and answer ``{"code", "stdout", "stderr"}`` (all
        empty for a detached container, once it started). Faults with the DSL's errors: a
        refused or malformed field (configuration, validation), the runtime's own failure
        (runtime; an image that cannot be pulled: communication), the timeout."""
        self._check_namespace(request)
        spec = container_spec(request, self.settings, now=self.clock())
        where = request.task_ref
        argv = self.command_line.run(spec)
        stdin = spec.stdin.encode("utf-8", "surrogatepass") if spec.stdin is not None else None
        outcome = await self._run(spec, argv, stdin, where)
        if outcome.code == ENGINE_FAILED and b"already in use" in outcome.stderr:
            await self._take_name(spec, where)
            outcome = await self._run(spec, argv, stdin, where)
        if outcome.code == ENGINE_FAILED:
            raise self._engine_error(spec, outcome, where)
        if not spec.await_:
            return {"code": 0, "stdout": "", "stderr": ""}
        return {
            "code": outcome.code,
            "stdout": outcome.stdout.decode("utf-8", "replace"),
            "stderr": outcome.stderr.decode("utf-8", "replace"),
        }

    async def _run(
        self, spec: ContainerSpec, argv: list[str], stdin: bytes | None, where: str
    ) -> _Outcome:
        """``run`` under the container's timeout; past it, past the output cap or when
        cancelled the container is stopped before this returns or raises."""
        done = False
        outcome: _Outcome | None = None
        try:
            with trio.move_on_after(spec.timeout):
                outcome = await self._execute(argv, stdin=stdin, cap=self.max_output)
                done = outcome.too_large is None
        finally:
            if not done:
                with trio.move_on_after(STOP_TIMEOUT, shield=True):
                    await self._stop(spec)
        if outcome is None:
            raise _error(
                ErrorType.TIMEOUT,
                f"the container {spec.name!r} (image {spec.image!r}) did not finish within "
                f"{spec.timeout:g}s; it was stopped. Set a longer task timeout, or raise "
                "workflows.run.container.timeout",
                where,
            )
        if outcome.too_large is not None:
            raise _error(
                ErrorType.RUNTIME,
                f"the container {spec.name!r} wrote more than {self.max_output:,} bytes to "
                f"{outcome.too_large}; it was stopped. Write less, or raise "
                "workflows.run.maxOutputSize",
                where,
            )
        return outcome

    async def _stop(self, spec: ContainerSpec) -> None:
        """Stop this call's container (removed when its cleanup is ``always``, else killed
        and kept); a container of that name that is not this call's is left alone."""
        try:
            states = parse_inspect(
                (await self._command(self.command_line.inspect(spec.name))).stdout.decode()
            )
            if not any(s.labels.get(CALL_LABEL) == spec.call_id for s in states):
                return
            if spec.cleanup == "always":
                await self._command(self.command_line.remove(spec.name))
            else:
                await self._command(self.command_line.kill(spec.name))
        except WorkflowError as error:
            logger.warning(
                "could not stop container %s: %s", spec.name, error, extra={"container": spec.name}
            )

    async def _take_name(self, spec: ContainerSpec, where: str) -> None:
        """Free ``spec.name`` for this call when its holder may be replaced (see the module
        docstring), else raise an error naming the holder."""
        states = parse_inspect(
            (await self._command(self.command_line.inspect(spec.name))).stdout.decode()
        )
        for state in states:
            ours = state.labels.get(CALL_LABEL) == spec.call_id
            ended_here = (
                CLEANUP_LABEL in state.labels
                and state.labels.get(NAMESPACE_LABEL) == spec.namespace
                and not state.running
            )
            if not (ours or ended_here):
                raise _error(
                    ErrorType.RUNTIME,
                    f"the container name {spec.name!r} is taken by a container this task did "
                    "not start (one still running, of another namespace, or not started by "
                    "this service); give the task another name, or remove that container",
                    where,
                )
        if states:
            await self._command(self.command_line.remove(spec.name))

    def _engine_error(self, spec: ContainerSpec, outcome: _Outcome, where: str) -> WorkflowError:
        runtime = self.command_line.runtime
        message = outcome.message()
        lowered = message.lower()
        if spec.pull == "never" and any(word in lowered for word in _MISSING_WORDS):
            return _error(
                ErrorType.CONFIGURATION,
                f"the image {spec.image!r} is not in {runtime}'s storage and pullPolicy is "
                f"never: load it into {runtime} on the service's host, or use pullPolicy "
                f"ifNotPresent ({runtime}: {message})",
                where,
            )
        if spec.pull != "never" and any(word in lowered for word in _PULL_WORDS):
            policy = "always" if spec.pull == "always" else "ifNotPresent"
            return _error(
                ErrorType.COMMUNICATION,
                f"the image {spec.image!r} could not be pulled (pullPolicy: {policy}): the "
                f"registry must be reachable from {runtime}, or the image present locally and "
                f"pullPolicy ifNotPresent or never ({runtime}: {message})",
                where,
            )
        return _error(
            ErrorType.RUNTIME,
            f"{runtime} could not run the container {spec.name!r} (image {spec.image!r}): "
            f"{message}",
            where,
        )

    # -- sweeps ---------------------------------------------------------------------------

    async def sweep(self, now: float | None = None) -> SweepPlan:
        """Remove the ended ``eventually`` containers whose time has come and stop those
        running past their deadline (see ``_sweep``), at ``now`` (default: the clock)."""
        ids: list[str] = []
        for argv in (self.command_line.list_ended("eventually"), self.command_line.list_running()):
            ids += (await self._command(argv)).stdout.decode().split()
        if not ids:
            return SweepPlan()
        states = parse_inspect(
            (await self._command(self.command_line.inspect(*ids))).stdout.decode()
        )
        plan = plan_sweep(states, self.clock() if now is None else now)
        if plan.remove:
            await self._command(self.command_line.remove(*plan.remove))
        if plan.kill:
            await self._command(self.command_line.kill(*plan.kill))
        if plan.remove or plan.kill:
            logger.info(
                "container sweep removed %d and killed %d containers",
                len(plan.remove),
                len(plan.kill),
                extra={"removed": len(plan.remove), "killed": len(plan.kill)},
            )
        return plan

    async def run_sweeper(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Sweep now and every ``sweepInterval`` until cancelled; a failed sweep is logged
        and tried again at the next interval."""
        task_status.started()
        while True:
            try:
                await self.sweep()
            except WorkflowError as error:
                logger.warning("container sweep failed: %s", error)
            await trio.sleep(self.settings.sweep_interval)


def _binary(settings: ContainerSettings, environment: Mapping[str, str]) -> str:
    name = settings.binary or settings.runtime
    found = shutil.which(name, path=environment.get("PATH", os.defpath))
    if found is None:
        key = "workflows.run.container.binary"
        what = f"the program {name!r}" if settings.binary else f"{settings.runtime!r} on PATH"
        raise ConfigError(
            [
                ConfigProblem(
                    source="",
                    key=key,
                    message=f"workflows.run.container.runtime is {settings.runtime} but "
                    f"{what} was not found; install {settings.runtime}, set {key} to its path, "
                    "or set the runtime to none",
                )
            ]
        )
    return found


def _check_paths(settings: ContainerSettings) -> None:
    relative = [p for p in settings.allowed_host_paths if not os.path.isabs(p)]
    if relative:
        raise ConfigError(
            [
                ConfigProblem(
                    source="",
                    key="workflows.run.container.allowedHostPaths",
                    message=f"{relative} are not absolute directories; write them from /",
                )
            ]
        )


def container_runtime(
    settings: ContainerSettings,
    *,
    max_output: int,
    environment: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> CliContainerRuntime:
    """The runtime ``settings`` configure (podman or docker), its binary found on the CLI's
    ``PATH`` (``environment``: default the service's, scrubbed by `cli_environment`).

    Raises ``ConfigError`` naming the setting when the runtime is none, its binary is
    missing or an allowed host path is relative."""
    if settings.runtime not in ("podman", "docker"):
        raise ConfigError(
            [
                ConfigProblem(
                    source="",
                    key="workflows.run.container.runtime",
                    message=f"{settings.runtime!r} runs no containers; use podman or docker",
                )
            ]
        )
    _check_paths(settings)
    env = cli_environment(os.environ if environment is None else environment)
    command_line = CommandLine(
        binary=_binary(settings, env),
        runtime=settings.runtime,
        network=settings.network,
        port_address=settings.port_address,
        memory=settings.memory,
        cpus=settings.cpus,
        pids_limit=settings.pids_limit,
    )
    return CliContainerRuntime(
        command_line=command_line,
        settings=settings,
        max_output=max_output,
        environment=env,
        clock=clock,
    )


@asynccontextmanager
async def open_container_runtime(
    settings: ContainerSettings,
    *,
    max_output: int,
    environment: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[CliContainerRuntime]:
    """`container_runtime`, with its sweeper running until the context exits."""
    runtime = container_runtime(
        settings, max_output=max_output, environment=environment, clock=clock
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run_sweeper)
        yield runtime
        nursery.cancel_scope.cancel()
