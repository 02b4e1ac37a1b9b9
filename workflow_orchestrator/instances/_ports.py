"""The ports of a running instance: everything its actor and effects use, in one frozen record.

An ``InstanceActor`` and its ``DurableEffects`` receive an ``InstancePorts`` and nothing else
of the service: where snapshots go (a ``SnapshotSink``: the group-commit ``SnapshotWriter`` in
the service, ``instances.testing.InMemoryInstanceStore`` in tests), how an instance is loaded,
the interpreters of definitions, HTTP, processes, where events go, the clock, and the callbacks
of their owner (``committed``, ``parked``, the ``LiveInstances`` registry). ``InstanceRuntime``
builds it from what the composition root (``service.py``) hands the runtime.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs

from workflow_orchestrator.dsl import ErrorType, Interpreter, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    ProcessRequest,
    ProcessResult,
    ServiceAdapters,
)
from workflow_orchestrator.instances._listening import EventOptions, ShapeSource
from workflow_orchestrator.instances._live import LiveInstances
from workflow_orchestrator.instances._subflows import NoSubflows, SubflowPort
from workflow_orchestrator.observability import InstanceMetrics
from workflow_orchestrator.security import NamespacePolicy, SecretStore
from workflow_orchestrator.storage.instances import (
    InstanceSnapshot,
    InstanceStatus,
    RecoverableInstance,
)

__all__ = [
    "ConfiguredProcesses",
    "HttpPort",
    "InstancePorts",
    "InterpreterSource",
    "ProcessPort",
    "ShapeSource",
    "SnapshotSink",
    "utc_now",
]


class SnapshotSink(Protocol):
    """Where commits go: ``write`` returns once ``snapshot`` (with its rows) is durable.

    Raises ``LeaseLost`` when fenced, ``InstanceNotFound`` for an unknown instance,
    ``SnapshotSuperseded`` when the instance ended or a command changed it since the run read
    it (its stored status stands), and ``SnapshotWriteFailed`` otherwise; a write of the
    stored version again changes nothing.
    """

    async def write(self, snapshot: InstanceSnapshot) -> None: ...


class HttpPort(Protocol):
    """Outbound HTTP (``PooledHttpClient`` in the service)."""

    async def http(self, request: HttpRequest) -> HttpResponse: ...


class ProcessPort(Protocol):
    """Local processes (``ConfiguredProcesses`` in the service)."""

    async def run_process(self, request: ProcessRequest) -> ProcessResult: ...


class InterpreterSource(Protocol):
    """The interpreter of a definition version (``WorkflowCatalog`` in the service)."""

    async def interpreter(self, definition_id: str, version: str) -> Interpreter: ...


def utc_now() -> datetime:
    """The wall clock, timezone-aware UTC."""
    return datetime.now(UTC)


def _ignore(*args: object) -> None:
    return None


async def _no_retained_events(types: Collection[str], within: float) -> Sequence[dict[str, Any]]:
    return ()


async def _no_wake(instance_ids: Sequence[uuid.UUID]) -> None:
    return None


@attrs.frozen(kw_only=True)
class ConfiguredProcesses:
    """Runs ``run.shell``/``run.script`` processes with ``run`` where the configuration
    enables them (``workflows.run.shell``/``script``); otherwise a configuration error the
    workflow sees, naming the setting."""

    run: Callable[[ProcessRequest], Awaitable[ProcessResult]]
    shell: bool = False
    script: bool = False

    async def run_process(self, request: ProcessRequest) -> ProcessResult:
        enabled = {"shell": self.shell, "script": self.script}.get(request.kind, True)
        if not enabled:
            raise WorkflowError(
                Problem.standard(
                    ErrorType.CONFIGURATION,
                    detail=f"run.{request.kind} is disabled; set workflows.run.{request.kind}: "
                    "true in the configuration",
                )
            )
        return await self.run(request)


@attrs.frozen(kw_only=True)
class InstancePorts:
    """What the actor and the effects of an instance use (see the module docstring).

    ``load(instance_id)`` reads the instance with its last committed snapshot and unconsumed
    inbox. ``retained_events(types, within)`` reads retained unmatched events (used only when
    ``unmatched_retention`` > 0). ``lease_epoch(partition)`` is the epoch under which this
    replica holds a partition now (None: not held), stamped on an activation's snapshots so
    a stale actor is fenced. ``park_after``: a wait longer than this parks the instance.
    ``committed(instance_id, status)`` is called after every commit, ``parked(instance_id,
    wake_at)`` after a park (its timers are committed). ``max_state_size``: the largest state a
    commit writes, in bytes of JSON (``workflows.limits.stateSize``, 0: no limit);
    ``commit_every``: a run of tasks without a durable effect commits every so many tasks
    (``workflows.limits.commitEvery``). ``secrets`` reads ``$secrets`` values; ``policy`` says
    which namespace may read which secret and run processes (checked at every read and run,
    as the settings may have changed since a definition was registered). ``services`` are the
    adapters of the calls beyond HTTP (gRPC, AsyncAPI, MCP) and of ``run.container`` that the
    configuration enables. ``metrics`` counts
    starts, ends and task durations by definition (None: nothing is counted).

    Subflows (``run.workflow``): ``subflows`` resolves the definitions tasks name and reads
    children; ``wake(instance_ids)`` runs instances whose work a commit made durable (the
    children it created, the parent a child's end was delivered to), here or on the replica
    holding their partition, never raising; ``subflow_depth`` is the most parents an instance
    may have (``workflows.limits.subflowDepth``, 0: no limit).
    """

    snapshots: SnapshotSink
    load: Callable[[uuid.UUID], Awaitable[RecoverableInstance]]
    interpreters: InterpreterSource
    shapes: ShapeSource
    http: HttpPort
    processes: ProcessPort
    retained_events: Callable[[Collection[str], float], Awaitable[Sequence[dict[str, Any]]]] = (
        _no_retained_events
    )
    events: EventOptions = attrs.field(factory=EventOptions)
    unmatched_retention: float = 0.0
    park_after: float = 1.0
    max_state_size: int = 16 * 1024 * 1024
    commit_every: int = 1000
    lease_epoch: Callable[[int], int | None] = _ignore
    clock: Callable[[], datetime] = utc_now
    committed: Callable[[uuid.UUID, InstanceStatus], None] = _ignore
    parked: Callable[[uuid.UUID, datetime | None], None] = _ignore
    live: LiveInstances = attrs.field(factory=LiveInstances)
    secrets: SecretStore = attrs.field(factory=SecretStore)
    policy: NamespacePolicy = attrs.field(factory=NamespacePolicy)
    metrics: InstanceMetrics | None = None
    services: ServiceAdapters = attrs.field(factory=ServiceAdapters)
    subflows: SubflowPort = attrs.field(factory=NoSubflows)
    wake: Callable[[Sequence[uuid.UUID]], Awaitable[None]] = _no_wake
    subflow_depth: int = 10
