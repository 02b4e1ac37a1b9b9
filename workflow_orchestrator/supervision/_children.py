"""Bookkeeping for non-actor children: services and nested supervisors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from workflow_orchestrator.actors._record import ChildRecord
from workflow_orchestrator.supervision._spec import SupervisorSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    from workflow_orchestrator.supervision._supervisor import Supervisor


class ServiceRecord(ChildRecord):
    """A service or nested-supervisor child: its task's scope and completion event."""

    __slots__ = ("done", "handle", "request_stop", "scope")

    def __init__(self, supervisor: Supervisor, spec: Any) -> None:
        super().__init__(supervisor, spec)
        self.done: trio.Event | None = None
        self.scope: trio.CancelScope | None = None
        self.request_stop: Callable[[], None] | None = None
        self.handle: Supervisor | None = None  # the running nested supervisor, if any

    @property
    def kind(self) -> str:
        return "supervisor" if isinstance(self.spec, SupervisorSpec) else "service"


class StartedStatus:
    """Wraps the ``task_status`` of ``nursery.start`` to know whether ``started`` ran."""

    __slots__ = ("inner", "is_started")

    def __init__(self, inner: trio.TaskStatus[Any]) -> None:
        self.inner = inner
        self.is_started = False

    def started(self, value: Any = None) -> None:
        self.is_started = True
        self.inner.started(value)
