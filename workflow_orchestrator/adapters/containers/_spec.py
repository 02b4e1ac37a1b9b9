"""`ContainerSpec`: a ``run.container`` task's evaluated arguments, checked against the limits
and the configuration before anything runs.

Pure: `container_spec` reads no clock (``now`` is handed in) and runs nothing; its refusals are
`WorkflowError`s whose detail names the value and the fix (the task field, or the setting that
allows it). Everything a definition sends is untrusted: each field has a size limit, values
that reach the runtime's command line are checked so none can be read as an option, and a host
path is mounted only under a directory ``workflows.run.container.allowedHostPaths`` lists.

Names: a task's ``name`` is used as given (checked against the runtime's name rule); without
one the container is named from the call's key (``wo-<namespace>-<task>-<hash>``), so the same
task attempt, executed again after a crash, finds and replaces its own container.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from workflow_orchestrator.config import ContainerSettings
from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.model import duration_seconds
from workflow_orchestrator.dsl.runtime import ServiceCall

#: The label prefix of every container this service starts.
LABEL = "io.workflow-orchestrator"
#: Labels: the call's identity (a hash of its key), the instance, the task, the namespace, the
#: cleanup policy, the seconds to keep an ended container (``eventually``) and the wall-clock
#: time (Unix seconds) past which a container still running is killed.
CALL_LABEL = f"{LABEL}.call"
INSTANCE_LABEL = f"{LABEL}.instance"
TASK_LABEL = f"{LABEL}.task"
NAMESPACE_LABEL = f"{LABEL}.namespace"
CLEANUP_LABEL = f"{LABEL}.cleanup"
AFTER_LABEL = f"{LABEL}.cleanup-after"
DEADLINE_LABEL = f"{LABEL}.deadline"

PULL_POLICIES = {"ifNotPresent": "missing", "always": "always", "never": "never"}
CLEANUP_POLICIES = ("always", "never", "eventually")

MAX_IMAGE = 512
MAX_NAME = 128
MAX_COMMAND = 128 * 1024
MAX_ARGUMENTS = 1024
MAX_ARGUMENT = 128 * 1024
MAX_ENVIRONMENT = 256
MAX_VALUE = 128 * 1024
MAX_PORTS = 64
MAX_VOLUMES = 64
MAX_PATH = 4096
MAX_STDIN = 16 * 1024 * 1024
MAX_LABEL = 512

_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_NAME_PART = re.compile(r"[^A-Za-z0-9_.-]+")
_INSTANCE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_PORT = re.compile(r"(\d{1,5})(?:/(tcp|udp|sctp))?")


@attrs.frozen(kw_only=True)
class Volume:
    """A bind mount: ``host`` (resolved, under an allowed directory) at ``container``."""

    host: str
    container: str
    read_only: bool = False


@attrs.frozen(kw_only=True)
class Port:
    """A published port: ``host`` on the configured address to ``container``/``protocol``."""

    host: int
    container: int
    protocol: str = "tcp"


@attrs.frozen(kw_only=True)
class ContainerSpec:
    """One container to run, checked (see the module docstring).

    ``command`` is a shell script run as ``sh -c <command> sh <arguments...>`` (so the script
    reads its arguments as ``$1``, ``$2``...); without one, ``arguments`` follow the image as
    the runtime passes them (to its entrypoint, or in place of its default command).
    ``pull`` is the runtime's ``--pull`` value; ``labels`` mark the container as this call's.
    """

    image: str
    name: str
    named_by_task: bool
    command: str | None
    arguments: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]
    stdin: str | None
    ports: tuple[Port, ...]
    volumes: tuple[Volume, ...]
    pull: str
    cleanup: str
    cleanup_after: float | None
    await_: bool
    timeout: float
    call_id: str
    namespace: str
    labels: tuple[tuple[str, str], ...]


def _refuse(kind: str, detail: str, request: ServiceCall) -> WorkflowError:
    return WorkflowError(Problem.standard(kind, detail=detail, instance=request.task_ref))


def _invalid(detail: str, request: ServiceCall) -> WorkflowError:
    return _refuse(ErrorType.VALIDATION, f"run.container: {detail}", request)


def call_id(key: str) -> str:
    """The identity of a call in labels and names: a hash of its key (stable across
    re-executions of one task attempt)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _task_name(task_ref: str) -> str:
    return task_ref.rstrip("/").rsplit("/", 1)[-1] if task_ref else "task"


def default_name(request: ServiceCall) -> str:
    """``wo-<namespace>-<task>-<hash of the key>``: the name of a container whose task gives
    none, the same for every execution of one task attempt."""
    parts = [request.namespace, _task_name(request.task_ref)]
    slug = "-".join(p for p in (_NAME_PART.sub("-", part).strip("-.") for part in parts) if p)
    return f"wo-{slug[:80]}-{call_id(request.key)[:16]}" if slug else f"wo-{call_id(request.key)}"


def _label_value(text: str) -> str:
    """``text`` made safe for a label: printable, one line, bounded."""
    return "".join(c if c.isprintable() else "?" for c in text)[:MAX_LABEL]


def _string(value: Any, field: str, limit: int, request: ServiceCall) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{field} must be a string, got {type(value).__name__}", request)
    if len(value) > limit:
        raise _invalid(
            f"{field} is {len(value):,} characters long; the limit is {limit:,}", request
        )
    if "\x00" in value:
        raise _invalid(f"{field} contains a NUL character", request)
    return value


def _mapping(value: Any, field: str, limit: int, request: ServiceCall) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _invalid(f"{field} must be an object, got {type(value).__name__}", request)
    if len(value) > limit:
        raise _invalid(f"{field} has {len(value)} entries; the limit is {limit}", request)
    return value


def _image(value: Any, request: ServiceCall) -> str:
    image = _string(value, "image", MAX_IMAGE, request)
    if not _IMAGE.fullmatch(image):
        raise _invalid(
            f"image {image!r} is not an image reference; write it like 'alpine', "
            "'alpine:3.20' or 'registry.example/team/tool@sha256:...'",
            request,
        )
    return image


def _name(value: Any, request: ServiceCall) -> str:
    name = _string(value, "name", MAX_NAME, request)
    if not _NAME.fullmatch(name):
        raise _invalid(
            f"name {name!r} is not a container name: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit",
            request,
        )
    return name


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"))


def _environment(value: Any, request: ServiceCall) -> tuple[tuple[str, str], ...]:
    pairs = []
    for key, item in _mapping(value, "environment", MAX_ENVIRONMENT, request).items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key) or len(key) > 256:
            raise _invalid(
                f"environment variable name {key!r} is not valid: use letters, digits and "
                "'_', starting with a letter or '_'",
                request,
            )
        pairs.append((key, _string(_scalar(item), f"environment.{key}", MAX_VALUE, request)))
    return tuple(pairs)


def _arguments(value: Any, request: ServiceCall) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise _invalid("arguments must be a list of strings", request)
    if len(value) > MAX_ARGUMENTS:
        raise _invalid(f"arguments has {len(value)} items; the limit is {MAX_ARGUMENTS}", request)
    return tuple(
        _string(_scalar(item), f"arguments[{i}]", MAX_ARGUMENT, request)
        for i, item in enumerate(value)
    )


def _port_number(text: str, field: str, request: ServiceCall) -> tuple[int, str]:
    match = _PORT.fullmatch(text.strip())
    if match is None or not 1 <= int(match.group(1)) <= 65535:
        raise _invalid(
            f"{field} {text!r} is not a port: use a number from 1 to 65535, optionally "
            "followed by /tcp, /udp or /sctp",
            request,
        )
    return int(match.group(1)), match.group(2) or "tcp"


def _ports(value: Any, settings: ContainerSettings, request: ServiceCall) -> tuple[Port, ...]:
    ports = []
    for host, container in _mapping(value, "ports", MAX_PORTS, request).items():
        host_port, _ = _port_number(_scalar(host), "ports key (host port)", request)
        container_port, protocol = _port_number(_scalar(container), f"ports.{host}", request)
        ports.append(Port(host=host_port, container=container_port, protocol=protocol))
    if ports and settings.network == "none":
        raise _refuse(
            ErrorType.CONFIGURATION,
            "run.container: ports cannot be published while containers have no network "
            "(workflows.run.container.network is none); set a network there, or remove ports",
            request,
        )
    return tuple(ports)


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _volumes(
    value: Any,
    settings: ContainerSettings,
    request: ServiceCall,
    resolve: Callable[[str], str],
) -> tuple[Volume, ...]:
    volumes = []
    allowed = tuple(resolve(d) for d in settings.allowed_host_paths)
    for host, target in _mapping(value, "volumes", MAX_VOLUMES, request).items():
        host = _string(host, "volumes key (host path)", MAX_PATH, request)
        target = _string(target, f"volumes.{host}", MAX_PATH, request)
        read_only = False
        for suffix, flag in ((":ro", True), (":rw", False)):
            if target.endswith(suffix):
                target, read_only = target[: -len(suffix)], flag
        if not target.startswith("/") or ":" in target or "," in target:
            raise _invalid(
                f"volume target {target!r} must be an absolute path in the container without "
                "':' or ',' (optionally followed by :ro or :rw)",
                request,
            )
        if not host.startswith("/") or ":" in host or "," in host:
            raise _refuse(
                ErrorType.CONFIGURATION,
                f"run.container: volume {host!r} is not an absolute host path (named volumes "
                "are not supported); mount a directory under workflows.run.container."
                "allowedHostPaths",
                request,
            )
        resolved = resolve(host)
        if not any(_under(resolved, directory) for directory in allowed):
            where = ", ".join(settings.allowed_host_paths) or "none configured"
            raise _refuse(
                ErrorType.CONFIGURATION,
                f"run.container: host path {host!r} may not be mounted: it is not under a "
                f"directory of workflows.run.container.allowedHostPaths ({where}); add one "
                "to that setting, or remove the volume",
                request,
            )
        volumes.append(Volume(host=resolved, container=target, read_only=read_only))
    return tuple(volumes)


def _lifetime(value: Any, request: ServiceCall) -> tuple[str, float | None]:
    lifetime = _mapping(value, "lifetime", 2, request)
    cleanup = lifetime.get("cleanup", "never")
    if cleanup not in CLEANUP_POLICIES:
        raise _invalid(
            f"lifetime.cleanup {cleanup!r} is not one of {', '.join(CLEANUP_POLICIES)}", request
        )
    if cleanup != "eventually":
        return str(cleanup), None
    if "after" not in lifetime:
        raise _invalid("lifetime.after is required when lifetime.cleanup is eventually", request)
    try:
        after = duration_seconds(lifetime["after"])
    except (ValueError, TypeError) as error:
        raise _invalid(f"lifetime.after: {error}", request) from None
    if not after >= 0:
        raise _invalid("lifetime.after must not be negative", request)
    return "eventually", after


def container_spec(
    request: ServiceCall,
    settings: ContainerSettings,
    *,
    now: float,
    resolve: Callable[[str], str] = os.path.realpath,
) -> ContainerSpec:
    """The checked container of ``request`` (a ``run.container`` call's arguments, with
    ``await`` and ``return``) at wall-clock time ``now`` (Unix seconds, for its deadline
    label). ``resolve`` turns a host path into its real path (symbolic links followed), so a
    link cannot lead a mount out of an allowed directory."""
    arguments = request.arguments
    unknown = set(arguments) - {
        "image",
        "name",
        "command",
        "ports",
        "volumes",
        "environment",
        "stdin",
        "arguments",
        "lifetime",
        "pullPolicy",
        "await",
        "return",
    }
    if unknown:
        raise _invalid(f"unknown fields {sorted(unknown)}", request)
    image = _image(arguments.get("image"), request)
    named_by_task = arguments.get("name") not in (None, "")
    name = _name(arguments["name"], request) if named_by_task else default_name(request)
    command = arguments.get("command")
    if command is not None:
        command = _string(command, "command", MAX_COMMAND, request)
    stdin = arguments.get("stdin")
    if stdin is not None:
        stdin = _string(_scalar(stdin), "stdin", MAX_STDIN, request)
    await_ = arguments.get("await", True) is not False
    if stdin is not None and not await_:
        raise _invalid(
            "stdin cannot be given to a container that is not awaited (await: false): "
            "nothing would be there to write it; await the container, or pass the data in "
            "arguments or environment",
            request,
        )
    policy = arguments.get("pullPolicy", "ifNotPresent")
    if policy not in PULL_POLICIES:
        raise _invalid(f"pullPolicy {policy!r} is not one of {', '.join(PULL_POLICIES)}", request)
    cleanup, after = _lifetime(arguments.get("lifetime"), request)
    timeout = request.timeout if request.timeout is not None else settings.timeout
    identity = call_id(request.key)
    labels = [
        (CALL_LABEL, identity),
        (TASK_LABEL, _label_value(request.task_ref)),
        (NAMESPACE_LABEL, _label_value(request.namespace)),
        (CLEANUP_LABEL, cleanup),
        (DEADLINE_LABEL, f"{now + timeout:.0f}"),
    ]
    instance = _INSTANCE.match(request.key)
    if instance is not None:
        labels.append((INSTANCE_LABEL, instance.group(0)))
    if after is not None:
        labels.append((AFTER_LABEL, f"{after:g}"))
    return ContainerSpec(
        image=image,
        name=name,
        named_by_task=named_by_task,
        command=command,
        arguments=_arguments(arguments.get("arguments"), request),
        environment=_environment(arguments.get("environment"), request),
        stdin=stdin,
        ports=_ports(arguments.get("ports"), settings, request),
        volumes=_volumes(arguments.get("volumes"), settings, request, resolve),
        pull=PULL_POLICIES[str(policy)],
        cleanup=cleanup,
        cleanup_after=after,
        await_=await_,
        timeout=timeout,
        call_id=identity,
        namespace=request.namespace,
        labels=tuple(labels),
    )
