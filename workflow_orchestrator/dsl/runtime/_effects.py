"""The effects interface: every side effect of the interpreter goes through it.

The interpreter itself does no I/O and reads no clock. An `Effects` implementation decides how a
side effect happens: `InMemoryEffects` runs workflows to completion under a virtual clock for
tests; the durable instance actor implements the same protocol with an outbox, durable timers
and the httpx client of ``workflow_orchestrator.adapters``.

Value types here are plain, immutable and JSON-friendly so a durable implementation can record
them. Absolute times are timezone-aware UTC `datetime` values.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from workflow_orchestrator.dsl.runtime._state import ExecutionState


@attrs.frozen(kw_only=True)
class HttpRequest:
    """An outbound HTTP request; ``idempotency_key`` is stable across re-executions.

    ``max_body_size`` caps the response body in bytes (None: the client's own cap); a client
    stops reading past it and fails the request.
    """

    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes | None = None
    follow_redirects: bool = False
    idempotency_key: str = ""
    timeout: float | None = None
    max_body_size: int | None = None


@attrs.frozen(kw_only=True)
class HttpResponse:
    """A received HTTP response; header names are lower-case."""

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""


@attrs.frozen(kw_only=True)
class CloudEvent:
    """A CloudEvent in structured form: the context attributes, extensions and ``data``."""

    attributes: Mapping[str, Any]

    @property
    def key(self) -> str:
        """The identity of the event (``source`` + ``id``): redeliveries share it."""
        return f"{self.attributes.get('source')}#{self.attributes.get('id')}"

    @property
    def type(self) -> str:
        """The event's ``type`` attribute."""
        return str(self.attributes.get("type", ""))

    def to_json(self) -> dict[str, Any]:
        """The event in structured JSON form (a copy)."""
        return dict(self.attributes)


@attrs.frozen(kw_only=True)
class SubscriptionFilter:
    """One filter of a listen, as a durable runtime indexes it.

    ``attributes`` are the filter's static context attributes (``type``, ``source``, ``data``
    subsets, ...), ``correlate`` the ``(name, from-expression)`` pairs sorted by name, and
    ``expected`` the value each correlation must have when it is known already (from
    ``expect``, or fixed by an event consumed before); events are still checked in full by the
    interpreter, so a subscription may match more than the filter does, never less.
    """

    attributes: Mapping[str, Any]
    correlate: tuple[tuple[str, str], ...] = ()
    expected: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ListenRequest:
    """Wait for one event that matches any of ``filters`` and is not in ``exclude``.

    Each filter is a mapping of context attributes to required values (expression-valued filter
    properties are checked by the interpreter afterwards and rejected events are excluded).
    ``exclude`` holds the `CloudEvent.key` of events already consumed or rejected.
    """

    filters: tuple[Mapping[str, Any], ...]
    exclude: frozenset[str] = frozenset()
    task_ref: str = ""
    instance_id: str = ""
    # The indexable form of the filters, computed on demand (only a parking runtime needs it).
    subscribe: Callable[[], Awaitable[tuple[SubscriptionFilter, ...]]] | None = attrs.field(
        default=None, eq=False, repr=False
    )

    async def subscriptions(self) -> tuple[SubscriptionFilter, ...]:
        """The subscription filters (one catch-all filter when none were given)."""
        if self.subscribe is None:
            return tuple(SubscriptionFilter(attributes=f) for f in self.filters)
        return await self.subscribe()


@attrs.frozen(kw_only=True)
class SubflowRequest:
    """Start the workflow ``namespace/name/version`` with ``input`` and await its output."""

    namespace: str
    name: str
    version: str
    input: Any
    key: str
    await_completion: bool = True


@attrs.frozen(kw_only=True)
class ProcessRequest:
    """Run a ``shell`` or ``script`` process (only where configuration enables it).

    ``command`` is the shell command, or the script's code (``language``: ``javascript`` or
    ``python``); ``arguments`` are its argv after the command or script, ``environment`` the
    only variables it gets besides the runtime's own few, ``stdin`` its standard input.
    ``timeout`` bounds it in seconds. When ``await_completion`` is false the effects return
    once the process started, with an empty result that the interpreter ignores; the process
    still runs under its timeout, owned by the runtime. ``key`` identifies the task run
    (instance id and task key) in logs.
    """

    kind: str
    command: str
    arguments: tuple[str, ...] = ()
    environment: Mapping[str, str] = attrs.field(factory=dict)
    stdin: str | None = None
    language: str | None = None
    timeout: float = 60.0
    await_completion: bool = True
    key: str = ""


@attrs.frozen(kw_only=True)
class ServiceCall:
    """A call to a service over a protocol other than plain HTTP, done by an adapter.

    ``kind`` names the adapter: ``grpc``, ``asyncapi``, ``mcp`` or ``container``
    (``run.container``). ``arguments`` are the task's evaluated arguments (a ``call``'s
    ``with``, a container's ``run.container`` with ``return``/``await``), plain JSON.
    ``key`` is stable across re-executions of one task attempt (an idempotency key where the
    protocol carries one, a container's name suffix...); ``task_ref`` is the task's JSON
    pointer, for messages. ``timeout`` bounds the call in seconds (None: the adapter's own).
    ``namespace`` is filled in by the durable runtime (the definition's namespace), for
    per-namespace policies; the interpreter leaves it empty.
    """

    kind: str
    arguments: Mapping[str, Any]
    key: str
    task_ref: str = ""
    timeout: float | None = None
    namespace: str = ""


@attrs.frozen(kw_only=True)
class ProcessResult:
    """What a process returned: its exit code (``128 + n`` when signal ``n`` ended it; then
    ``signal`` is its name, such as ``SIGSEGV``) and what it wrote."""

    code: int
    stdout: str = ""
    stderr: str = ""
    signal: str | None = None


class Effects(Protocol):
    """Side effects of one workflow instance, in the order the interpreter performs them.

    Implementations raise `WorkflowError` with a standard problem (communication, timeout,
    authorization, ...) for failures the workflow may catch; any other exception is a bug and
    faults the instance as a runtime error.
    """

    def now(self) -> datetime:
        """The current time (timezone-aware UTC)."""
        ...

    def new_id(self) -> str:
        """A fresh unique id (used for new instance ids only; task ids are derived)."""
        ...

    def random(self) -> float:
        """A random float in [0, 1) (retry jitter; the result is recorded in the state)."""
        ...

    async def sleep_until(self, when: datetime, *, key: str = "", kind: str = "wait") -> None:
        """Return at or after the absolute time ``when`` (a durable timer).

        ``key`` identifies the timer within the instance (stable across resumes) and ``kind``
        says what it is for: ``wait``, ``timeout`` or ``retry``.
        """
        ...

    async def http(self, request: HttpRequest) -> HttpResponse:
        """Perform an HTTP request; transport failures raise a communication `WorkflowError`."""
        ...

    async def emit(self, event: CloudEvent) -> None:
        """Publish an event emitted by an ``emit`` task."""
        ...

    async def wait_event(self, request: ListenRequest) -> CloudEvent:
        """Return the next event matching ``request``, waiting as long as it takes."""
        ...

    def listen_ended(self, task_ref: str) -> None:
        """The ``listen`` task ``task_ref`` ended (completed, faulted or cancelled): it
        consumes no more events (a durable implementation stops delivering them)."""
        ...

    async def run_subflow(self, request: SubflowRequest) -> Any:
        """Run a child workflow and return its output (a faulted child raises)."""
        ...

    async def run_process(self, request: ProcessRequest) -> ProcessResult:
        """Run a shell or script process, or raise a configuration error if disabled."""
        ...

    async def call_service(self, request: ServiceCall) -> Any:
        """Call a service through the adapter of ``request.kind`` and return its JSON result;
        a kind no adapter serves (or one disabled by configuration) raises a configuration
        `WorkflowError` naming the setting."""
        ...

    def consume_messages(
        self, request: ServiceCall
    ) -> AbstractAsyncContextManager[AsyncIterator[Any]]:
        """Subscribe through the adapter of ``request.kind``: the context yields an iterator
        of the messages received (JSON values) until the caller stops reading; leaving the
        context closes the subscription."""
        ...

    async def get_secret(self, name: str) -> Any:
        """The value of secret ``name``; unknown or forbidden raises an authorization error."""
        ...

    def add_lifecycle_event(self, event: CloudEvent) -> None:
        """Queue a workflow or task lifecycle event for publication; never blocks.

        Durable implementations keep queued events until the next `checkpoint` and write them
        with that state (an outbox in the same transaction), so an event is published if and
        only if the state change that produced it is durable. Ids are stable across
        re-executions, so consumers can drop repeats.
        """
        ...

    async def checkpoint(self, state: ExecutionState) -> None:
        """Persist ``state`` at a task boundary before execution continues.

        ``state`` is live: serialize it (``state.to_json()``) before returning.
        """
        ...
