"""Running instances with no database: the in-memory store, real interpreters, an HTTP port
that records what was durable when each call went out, a clock that follows Trio's, and an
``InstanceRuntime`` on the in-memory store (``open_runtime``)."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import trio

from workflow_orchestrator.actors.testing import open_checked_actor_system
from workflow_orchestrator.dsl.expressions import ExpressionEngine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    Interpreter,
    ProcessRequest,
    ProcessResult,
    RuntimeOptions,
)
from workflow_orchestrator.dsl.validation import load_document
from workflow_orchestrator.instances import (
    InstancePorts,
    InstanceRuntime,
    ProcessPort,
    WorkflowCatalog,
)
from workflow_orchestrator.instances.testing import InMemoryInstanceStore
from workflow_orchestrator.storage.instances import InstanceRecord, InstanceSnapshot, InstanceStatus
from workflow_orchestrator.supervision import Backoff, Supervisor, SupervisorSpec

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

    def add(self, name: str, body: str, options: RuntimeOptions | None = None) -> None:
        self._built[(name, "1.0.0")] = Interpreter(
            load_workflow(definition(name, body)), self.engine, options
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


#: A definition that sets a step, waits ten minutes (parks) and sets another.
WAITER = """\
do:
  - first:
      set: {step: 1}
  - pause:
      wait: {minutes: 10}
  - last:
      set: {step: 2, done: true}
"""


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


@asynccontextmanager
async def open_instances_supervisor() -> AsyncIterator[Supervisor]:
    """The ``/user/instances`` supervisor as the service configures it, in a checked system."""
    async with open_checked_actor_system(seed=0) as system:
        await system.start_child(
            SupervisorSpec(
                name="instances",
                max_restarts=10_000,
                within_seconds=60.0,
                backoff=Backoff(initial=0.5, maximum=10.0),
            )
        )
        yield system.lookup_supervisor("/user/instances")


@attrs.define(eq=False)
class WatchedStore(InMemoryInstanceStore):
    """The in-memory store, with ``changed`` set after every write and status change."""

    changed: trio.Event = attrs.field(factory=trio.Event, init=False)

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def write(self, snapshot: InstanceSnapshot) -> None:
        try:
            await super().write(snapshot)
        finally:
            self._changed()

    async def set_status(
        self,
        instance_id: uuid.UUID,
        status: InstanceStatus,
        *,
        allowed_from: Collection[InstanceStatus],
        history_kind: str | None = None,
    ) -> InstanceRecord:
        try:
            return await super().set_status(
                instance_id, status, allowed_from=allowed_from, history_kind=history_kind
            )
        finally:
            self._changed()

    def _cascade(self, roots: Sequence[uuid.UUID]) -> tuple[InstanceRecord, ...]:
        # A cancel cascade changes statuses too (a command's, or recovery's).
        try:
            return super()._cascade(roots)
        finally:
            self._changed()


@attrs.define(eq=False)
class Runtime:
    """An ``InstanceRuntime`` on the in-memory store, with the real catalog and supervisor."""

    runtime: InstanceRuntime
    store: WatchedStore
    http: RecordingHttp
    ended: list[tuple[uuid.UUID, InstanceStatus]] = attrs.field(factory=list)

    def register(self, name: str, body: str) -> None:
        """Register definition ``name`` (version 1.0.0) from the YAML ``body``."""
        self.store.register(name, "1.0.0", definition(name, body))

    async def wait_status(self, instance_id: uuid.UUID, *statuses: InstanceStatus) -> None:
        """Wait until the stored status is one of ``statuses`` and no actor of the instance
        runs any more."""
        while self.store.stored(instance_id).record.status not in statuses:
            await self.store.changed.wait()
        while (actor := self.runtime.live.get(instance_id)) is not None:
            await actor.wait_gone()

    def history(self, instance_id: uuid.UUID) -> list[str]:
        """The kinds of the committed history rows, in order."""
        return [h.kind for h in self.store.stored(instance_id).history]


@asynccontextmanager
async def open_runtime(
    store: WatchedStore | None = None,
    *,
    run: bool = True,
    processes: ProcessPort | None = None,
    runtime_options: RuntimeOptions | None = None,
    **options: Any,
) -> AsyncIterator[Runtime]:
    """A runtime on ``store`` (a new one by default), started (recovery done) when ``run``.

    The expression engine has no sandbox (see ``open_instances``). ``processes`` runs
    ``run.shell``/``run.script`` (none by default); ``runtime_options`` are the interpreters'.
    """
    store = store or WatchedStore(clock=trio_clock)
    http = RecordingHttp(store=store)
    catalog = WorkflowCatalog(
        definitions=store, engine=ExpressionEngine(), options=runtime_options or RuntimeOptions()
    )
    async with open_instances_supervisor() as supervisor, trio.open_nursery() as nursery:
        runtime = InstanceRuntime(
            repository=store,
            snapshots=store,
            leases=store,
            catalog=catalog,
            supervisor=supervisor,
            http=http,
            processes=processes or NoProcesses(),
            clock=trio_clock,
            **options,
        )
        harness = Runtime(runtime=runtime, store=store, http=http)
        if run:
            await nursery.start(runtime.run)
        yield harness
        nursery.cancel_scope.cancel()
