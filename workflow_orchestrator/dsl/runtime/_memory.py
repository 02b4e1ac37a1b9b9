"""`InMemoryEffects`: the effects of one instance, in memory, for tests and benchmarks.

Time is virtual: ``now()`` is the configured start plus the trio clock's progress, so under
``trio.testing.MockClock(autojump_threshold=0)`` (pytest-trio's ``autojump_clock``) waits,
timeouts and retry delays complete instantly and in order. Events are scripted with arrival
times, HTTP answers come from a handler function, and every side effect is appended to `log`.
"""

from __future__ import annotations

import inspect
import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime._effects import (
    CloudEvent,
    HttpRequest,
    HttpResponse,
    ListenRequest,
    ProcessRequest,
    ProcessResult,
    ServiceCall,
    SubflowRequest,
)
from workflow_orchestrator.dsl.runtime._services import ServiceAdapters
from workflow_orchestrator.dsl.runtime._state import ExecutionState
from workflow_orchestrator.dsl.runtime._time import iso, plus_seconds

HttpHandler = Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]
SubflowHandler = Callable[[SubflowRequest], Any]
ProcessHandler = Callable[[ProcessRequest], Awaitable[ProcessResult]]

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


@attrs.frozen(kw_only=True)
class EffectRecord:
    """One side effect: ``kind`` (http, emit, lifecycle, timer, consume, subflow) and data.

    ``identity`` is stable across re-executions of the same step (event ids, idempotency keys),
    so logs of resumed runs can be compared after dropping repeats.
    """

    kind: str
    identity: str
    data: Mapping[str, Any]
    at: str = ""


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    return bool(expected == actual)


def json_response(
    status: int, content: Any, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """A JSON `HttpResponse` (a helper for scripted HTTP handlers)."""
    return HttpResponse(
        status=status,
        headers={"content-type": "application/json", **(headers or {})},
        body=json.dumps(content).encode(),
    )


class InMemoryEffects:
    """Effects that keep everything in memory; see the module docstring."""

    def __init__(
        self,
        *,
        start: datetime = DEFAULT_START,
        http: HttpHandler | None = None,
        secrets: Mapping[str, Any] | None = None,
        events: Iterable[tuple[float, CloudEvent]] = (),
        subflows: SubflowHandler | None = None,
        processes: ProcessHandler | None = None,
        services: ServiceAdapters | None = None,
        record_snapshots: bool = False,
        loopback: bool = True,
        seed: int = 0,
    ) -> None:
        self.log: list[EffectRecord] = []
        self.snapshots: list[dict[str, Any]] = []
        self.snapshot_times: list[datetime] = []
        self.snapshot_log_sizes: list[int] = []
        self.checkpoints = 0
        self._start = start
        self._t0: float | None = None
        self._last_time: float | None = None
        self._last_now = start
        self._http = http
        self._secrets = dict(secrets or {})
        self._subflows = subflows
        self._processes = processes
        self._services = services or ServiceAdapters()
        self._record = record_snapshots
        self._loopback = loopback
        self._random = random.Random(seed)
        self._bus: list[tuple[datetime, CloudEvent]] = [
            (plus_seconds(start, offset), event) for offset, event in events
        ]
        self._arrived = trio.Event()

    # -- clock and ids -------------------------------------------------------------------

    def now(self) -> datetime:
        """Virtual time: the start plus the trio clock's progress since the first call."""
        try:
            current = trio.current_time()
        except RuntimeError:
            return self._start
        if self._t0 is None:
            self._t0 = current
        if current != self._last_time:
            self._last_time = current
            self._last_now = plus_seconds(self._start, current - self._t0)
        return self._last_now

    def new_id(self) -> str:
        """A deterministic UUID (seeded), so runs can be compared."""
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def random(self) -> float:
        """A deterministic random float (seeded)."""
        return self._random.random()

    async def sleep_until(self, when: datetime, *, key: str = "", kind: str = "wait") -> None:
        """Sleep on the trio clock until the virtual time reaches ``when``."""
        self._record_effect("timer", iso(when), {"until": iso(when)})
        delay = (when - self.now()).total_seconds()
        await trio.sleep(max(delay, 0.0))

    def _record_effect(
        self, kind: str, identity: str, data: Mapping[str, Any], at: str | None = None
    ) -> None:
        self.log.append(
            EffectRecord(kind=kind, identity=identity, data=data, at=at or iso(self.now()))
        )

    # -- calls ---------------------------------------------------------------------------

    async def http(self, request: HttpRequest) -> HttpResponse:
        """Answer from the scripted handler; without one every request gets 404."""
        body = None if request.body is None else request.body.decode("utf-8", "replace")
        self._record_effect(
            "http",
            request.idempotency_key or f"{request.method} {request.url}",
            {
                "method": request.method,
                "url": request.url,
                "headers": dict(request.headers),
                "body": body,
            },
        )
        if self._http is None:
            return HttpResponse(status=404, headers={"content-type": "text/plain"}, body=b"")
        response = self._http(request)
        if inspect.isawaitable(response):
            response = await response
        assert isinstance(response, HttpResponse)
        return response

    async def run_subflow(self, request: SubflowRequest) -> Any:
        """Run a child through the scripted handler, as the durable runtime does: its result
        is the child's output, a ``WorkflowError`` it raises is the child's fault (which the
        parent may catch); without a handler no workflow is registered (a configuration
        error). Without ``await`` the result is not used."""
        self._record_effect(
            "subflow",
            request.key,
            {
                "workflow": f"{request.namespace}/{request.name}:{request.version}",
                "await": request.await_completion,
            },
        )
        if self._subflows is None:
            raise WorkflowError(
                Problem.standard(
                    ErrorType.CONFIGURATION,
                    title="Subflow Not Found",
                    detail=f"run.workflow names workflow {request.namespace}/{request.name}:"
                    f"{request.version}, which is not registered (namespace, name and version "
                    "of its document); register it first",
                )
            )
        result = self._subflows(request)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def run_process(self, request: ProcessRequest) -> ProcessResult:
        """Run through the ``processes`` handler; without one processes are disabled."""
        self._record_effect("process", request.command, {"kind": request.kind})
        if self._processes is not None:
            return await self._processes(request)
        raise WorkflowError(
            Problem.standard(
                ErrorType.CONFIGURATION,
                title="Unsupported Feature",
                detail=f"running {request.kind} processes is disabled; enable it in the "
                "runtime configuration",
            )
        )

    async def call_service(self, request: ServiceCall) -> Any:
        """Call through the ``services`` adapters (a configuration error without one)."""
        self._record_effect("service", request.key, {"kind": request.kind})
        return await self._services.call(request)

    def consume_messages(
        self, request: ServiceCall
    ) -> AbstractAsyncContextManager[AsyncIterator[Any]]:
        """Subscribe through the ``services`` adapters (a configuration error without one)."""
        self._record_effect("subscribe", request.key, {"kind": request.kind})
        return self._services.consume(request)

    async def get_secret(self, name: str) -> Any:
        """The configured secret, or an authorization error (403)."""
        if name not in self._secrets:
            raise WorkflowError(
                Problem.standard(
                    ErrorType.AUTHORIZATION,
                    title="Authorization Error",
                    detail=f"secret {name!r} does not exist or is not accessible",
                )
            )
        return self._secrets[name]

    # -- events --------------------------------------------------------------------------

    def publish(self, event: CloudEvent, *, delay: float = 0.0) -> None:
        """Make ``event`` available to listeners ``delay`` seconds from now."""
        self._bus.append((plus_seconds(self.now(), delay), event))
        self._arrived.set()
        self._arrived = trio.Event()

    async def emit(self, event: CloudEvent) -> None:
        """Record the event; with loopback, listeners of this instance may consume it."""
        self._record_effect("emit", event.key, event.to_json())
        if self._loopback:
            self.publish(event)

    def listen_ended(self, task_ref: str) -> None:
        """Nothing to release: scripted events stay on the bus."""

    async def wait_event(self, request: ListenRequest) -> CloudEvent:
        """The first scripted event matching ``request``, sleeping until it arrives."""
        while True:
            now = self.now()
            upcoming: datetime | None = None
            for arrival, event in self._bus:
                if event.key in request.exclude:
                    continue
                if not any(_subset(f, event.attributes) for f in request.filters):
                    continue
                if arrival <= now:
                    self._record_effect("consume", event.key, event.to_json())
                    return event
                if upcoming is None or arrival < upcoming:
                    upcoming = arrival
            arrived = self._arrived
            if upcoming is not None:
                with trio.move_on_after((upcoming - now).total_seconds()):
                    await arrived.wait()
            else:
                await arrived.wait()

    def add_lifecycle_event(self, event: CloudEvent) -> None:
        """Record a lifecycle event."""
        attributes = event.attributes
        self._record_effect("lifecycle", event.key, attributes, attributes.get("time"))

    async def checkpoint(self, state: ExecutionState) -> None:
        """Count checkpoints; with ``record_snapshots`` keep a JSON copy of each state."""
        self.checkpoints += 1
        if self._record:
            self.snapshots.append(json.loads(json.dumps(state.to_json())))
            self.snapshot_times.append(self.now())
            self.snapshot_log_sizes.append(len(self.log))
