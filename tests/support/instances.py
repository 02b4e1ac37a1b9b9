"""Running instances with no database: the in-memory store, real interpreters, an HTTP port
that records what was durable when each call went out, and a clock that follows Trio's."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import trio

from workflow_orchestrator.dsl.expressions import ExpressionEngine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    Interpreter,
    ProcessRequest,
    ProcessResult,
)
from workflow_orchestrator.dsl.validation import load_document
from workflow_orchestrator.instances import InstancePorts
from workflow_orchestrator.instances.testing import InMemoryInstanceStore
from workflow_orchestrator.storage.instances import InstanceStatus

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def trio_clock() -> datetime:
    """Wall time that follows Trio's clock (the mock clock under ``autojump_clock``)."""
    return EPOCH + timedelta(seconds=trio.current_time())


def definition(name: str, body: str) -> dict[str, Any]:
    """A definition document named ``name`` from the YAML ``body`` (header added)."""
    header = f"document: {{dsl: '1.0.3', namespace: test, name: {name}, version: '1.0.0'}}\n"
    return load_document(header + textwrap.dedent(body))


@attrs.define(eq=False)
class Interpreters:
    """The interpreters of the test's definitions, by (definition id, version)."""

    engine: ExpressionEngine
    _built: dict[tuple[str, str], Interpreter] = attrs.field(factory=dict, init=False)

    def add(self, name: str, body: str) -> None:
        self._built[(name, "1.0.0")] = Interpreter(
            load_workflow(definition(name, body)), self.engine
        )

    async def interpreter(self, definition_id: str, version: str) -> Interpreter:
        return self._built[(definition_id, version)]


@attrs.frozen(kw_only=True)
class Call:
    """One HTTP call and what the store held for the instance when it went out."""

    url: str
    idempotency_key: str
    committed_version: int
    committed_status: InstanceStatus
    committed_history: tuple[tuple[str, str], ...]


Responder = Callable[[HttpRequest], Awaitable[HttpResponse]]


async def ok(request: HttpRequest) -> HttpResponse:
    """A 200 JSON answer naming the URL called."""
    return HttpResponse(
        status=200, headers={"content-type": "application/json"}, body=b'{"ok": true}'
    )


@attrs.define(eq=False)
class RecordingHttp:
    """The HTTP port of the tests: answers with ``respond`` and records every call with the
    instance's committed state at that moment (``instance_id`` is the one watched)."""

    store: InMemoryInstanceStore
    respond: Responder = ok
    instance_id: uuid.UUID | None = None
    calls: list[Call] = attrs.field(factory=list)
    called: trio.Event = attrs.field(factory=trio.Event)

    async def http(self, request: HttpRequest) -> HttpResponse:
        self.called.set()
        if self.instance_id is not None:
            stored = self.store.stored(self.instance_id)
            self.calls.append(
                Call(
                    url=request.url,
                    idempotency_key=request.idempotency_key,
                    committed_version=stored.record.snapshot_version,
                    committed_status=stored.record.status,
                    committed_history=tuple((h.kind, h.task_ref) for h in stored.history),
                )
            )
        return await self.respond(request)


class NoProcesses:
    """A process port for workflows that run none."""

    async def run_process(self, request: ProcessRequest) -> ProcessResult:
        raise AssertionError(f"no process expected, got {request.kind}")


@attrs.define(eq=False)
class Instances:
    """The pieces of one test: store, interpreters, HTTP port and the ports made of them."""

    store: InMemoryInstanceStore
    interpreters: Interpreters
    http: RecordingHttp
    committed: list[tuple[uuid.UUID, InstanceStatus]] = attrs.field(factory=list)
    parked: list[tuple[uuid.UUID, datetime | None]] = attrs.field(factory=list)
    _commit: trio.Event = attrs.field(factory=trio.Event, init=False)

    def _committed(self, instance_id: uuid.UUID, status: InstanceStatus) -> None:
        self.committed.append((instance_id, status))
        self._commit.set()
        self._commit = trio.Event()

    async def wait_status(self, instance_id: uuid.UUID, *statuses: InstanceStatus) -> None:
        """Wait until the committed status of the instance is one of ``statuses``."""
        while self.store.stored(instance_id).record.status not in statuses:
            await self._commit.wait()

    def ports(self, **changes: Any) -> InstancePorts:
        """Ports on the in-memory store (``changes`` override fields)."""
        values: dict[str, Any] = {
            "snapshots": self.store,
            "load": self.store.load,
            "interpreters": self.interpreters,
            "shapes": self.store,
            "http": self.http,
            "processes": NoProcesses(),
            "lease_epoch": self.store.epoch_of,
            "clock": trio_clock,
            "committed": self._committed,
            "parked": lambda i, w: self.parked.append((i, w)),
        }
        values.update(changes)
        return InstancePorts(**values)

    def start(self, name: str, input: Any = None) -> uuid.UUID:
        """A new pending instance of definition ``name``, watched by the HTTP port."""
        record = self.store.create(name, input=input)
        self.http.instance_id = record.instance_id
        return record.instance_id

    def history(self, instance_id: uuid.UUID) -> list[tuple[str, str]]:
        """The committed history: (kind, task_ref) in order."""
        return [(h.kind, h.task_ref) for h in self.store.stored(instance_id).history]


@asynccontextmanager
async def open_instances() -> AsyncIterator[Instances]:
    """An in-memory store on Trio's clock, with an expression engine for the interpreters.

    The engine has no sandbox (no worker processes under the mock clock): the workflows of
    these tests use expressions of the path and in-process tiers only.
    """
    engine = ExpressionEngine()
    store = InMemoryInstanceStore(clock=trio_clock)
    yield Instances(
        store=store, interpreters=Interpreters(engine=engine), http=RecordingHttp(store=store)
    )
