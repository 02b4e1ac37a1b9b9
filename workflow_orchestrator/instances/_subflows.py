"""The decisions of a ``run.workflow`` task (subflow) in the durable runtime, without I/O.

A child instance is identified by its parent and the task's execution key
(``child_instance_id``: a UUIDv5), stable across re-runs of the same task attempt, so the
parent's commit creates it once (``ChildRow``, inserted ``ON CONFLICT DO NOTHING``). The
child's end reaches the parent as an ``io.workflow-orchestrator.subflow.ended.v1`` event in its
inbox (``storage.instances.subflow_ended_event``); ``ChildEnd`` reads it, or the stored child
itself when the event was consumed before a crash, and ``subflow_result`` turns it into the
task's output or into the error the parent may catch:

- completed: the child's output;
- faulted: a ``WorkflowError`` with the child's problem type, status and title, its detail
  naming the child (``subflow ns/name:version (instance <id>) faulted: <detail>``);
- cancelled: a runtime error naming the child.

A child runs in its parent's namespace only: a task naming a workflow of another namespace is
an authorization error (``subflow_outside_namespace``), as starting it would let a definition
start instances, with their secret grants, in a namespace its author may not write to.

``SubflowPort`` is what the effects read: the definition a task names (``resolve_workflow``:
namespace, name and version, ``latest`` being the version registered last) and a stored
instance (``find``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, NoReturn, Protocol

import attrs

from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import SubflowRequest, limit_exceeded
from workflow_orchestrator.storage.instances import (
    SUBFLOW_ENDED_TYPE,
    SUBFLOW_KEY_PREFIX,
    InboxEvent,
    InstanceRecord,
    InstanceStatus,
)

__all__ = [
    "ChildEnd",
    "NoSubflows",
    "SubflowPort",
    "child_instance_id",
    "subflow_depth_exceeded",
    "subflow_not_registered",
    "subflow_outside_namespace",
    "subflow_result",
]


class SubflowPort(Protocol):
    """What the durable effects read for subflows (the instance repository in the service,
    ``instances.testing.InMemoryInstanceStore`` in tests)."""

    async def resolve_workflow(
        self, namespace: str, name: str, version: str | None
    ) -> tuple[str, str] | None:
        """The ``(definition_id, version)`` of the live definition ``namespace/name`` at
        ``version`` (None: the one registered last); None when none is registered."""
        ...

    async def find(self, instance_id: uuid.UUID) -> InstanceRecord | None:
        """The stored instance, None when there is none."""
        ...


class NoSubflows:
    """A ``SubflowPort`` with no definitions (``run.workflow`` is then a configuration
    error naming the definition)."""

    async def resolve_workflow(
        self, namespace: str, name: str, version: str | None
    ) -> tuple[str, str] | None:
        return None

    async def find(self, instance_id: uuid.UUID) -> InstanceRecord | None:
        return None


def child_instance_id(parent_id: uuid.UUID, key: str) -> uuid.UUID:
    """The id of the child the task with execution ``key`` of ``parent_id`` starts."""
    return uuid.uuid5(parent_id, key)


def _workflow(request: SubflowRequest) -> str:
    return f"{request.namespace}/{request.name}:{request.version}"


@attrs.frozen(kw_only=True)
class ChildEnd:
    """How a child ended: its terminal ``status``, ``output`` and ``error``."""

    child_id: uuid.UUID
    status: InstanceStatus
    output: Any = None
    error: Any = None

    @classmethod
    def from_inbox(cls, item: InboxEvent) -> ChildEnd | None:
        """The end an inbox row holds, None when it is no subflow end (or a malformed one)."""
        if not item.key.startswith(SUBFLOW_KEY_PREFIX):
            return None
        event = item.event
        data = event.get("data")
        if event.get("type") != SUBFLOW_ENDED_TYPE or not isinstance(data, Mapping):
            return None
        try:
            child_id = uuid.UUID(item.key[len(SUBFLOW_KEY_PREFIX) :])
            status = InstanceStatus(str(data.get("status")))
        except ValueError:
            return None
        if not status.terminal:
            return None
        return cls(
            child_id=child_id, status=status, output=data.get("output"), error=data.get("error")
        )

    @classmethod
    def from_record(cls, record: InstanceRecord) -> ChildEnd | None:
        """The end of a stored child, None while it has not ended."""
        if not record.terminal:
            return None
        return cls(
            child_id=record.instance_id,
            status=record.status,
            output=record.output,
            error=record.error,
        )


def subflow_result(request: SubflowRequest, end: ChildEnd) -> Any:
    """The task's output for a child that ended (see the module docstring); raises the
    ``WorkflowError`` of a faulted or cancelled child."""
    if end.status is InstanceStatus.COMPLETED:
        return end.output
    named = f"subflow {_workflow(request)} (instance {end.child_id})"
    if end.status is InstanceStatus.CANCELLED:
        raise WorkflowError(
            Problem.standard(
                ErrorType.RUNTIME,
                title="Subflow Cancelled",
                detail=f"{named} was cancelled before it completed",
            )
        )
    error = end.error if isinstance(end.error, Mapping) else {}
    child = Problem.from_json(error) if error else Problem.standard(ErrorType.RUNTIME)
    detail = child.detail or child.title or "no detail"
    raise WorkflowError(attrs.evolve(child, instance=None, detail=f"{named} faulted: {detail}"))


def subflow_not_registered(request: SubflowRequest) -> WorkflowError:
    """The configuration error of a task naming a definition that is not registered."""
    return WorkflowError(
        Problem.standard(
            ErrorType.CONFIGURATION,
            title="Subflow Not Found",
            detail=f"run.workflow names workflow {_workflow(request)}, which is not registered "
            "(namespace, name and version of its document); register it first",
        )
    )


def subflow_outside_namespace(request: SubflowRequest, namespace: str) -> WorkflowError:
    """The authorization error of a task naming a workflow outside its own ``namespace``."""
    return WorkflowError(
        Problem.standard(
            ErrorType.AUTHORIZATION,
            title="Subflow Outside The Namespace",
            detail=f"run.workflow names workflow {_workflow(request)} of namespace "
            f"{request.namespace!r}, but a workflow of namespace {namespace!r} runs subflows "
            f"of its own namespace only; register the workflow in namespace {namespace!r}",
        )
    )


def subflow_depth_exceeded(request: SubflowRequest, depth: int, limit: int) -> NoReturn:
    """Raise the limit error of a child that would have more than ``limit`` parents."""
    raise limit_exceeded(
        "subflowDepth",
        f"run.workflow would start {_workflow(request)} {depth} subflows deep ({limit} allowed)",
        "stop the recursion of workflows that run themselves",
    )
