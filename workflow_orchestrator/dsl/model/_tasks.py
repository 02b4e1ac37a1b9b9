"""Typed, immutable records of a workflow definition: tasks, task lists and their parts.

Everything here is built once per definition version by `build_workflow` and shared by all
instances, so nothing is mutated after construction. ``raw`` fields keep the definition's own
mapping for ``$task.definition`` and for the less-used parts that runtimes read as data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from workflow_orchestrator.dsl.model._duration import Duration

EMPTY: Mapping[str, Any] = {}


@attrs.frozen(kw_only=True)
class SchemaRef:
    """A JSON schema (``format: json``) inline, or an external resource to fetch."""

    document: Mapping[str, Any] | None = None
    resource: Mapping[str, Any] | None = None
    format: str = "json"


@attrs.frozen(kw_only=True)
class DataFilter:
    """``input``, ``output`` or ``export``: an optional transformation and an optional schema.

    ``expression`` is the ``from`` (input) or ``as`` (output, export) value: a runtime expression
    string, or an object whose ``${...}`` strings are evaluated.
    """

    expression: Any = None
    schema: SchemaRef | None = None


@attrs.frozen(kw_only=True)
class Timeout:
    """A timeout; ``after`` counts from the start of the task or workflow."""

    after: Duration


@attrs.frozen(kw_only=True)
class Task:
    """Fields common to every task (the schema's ``taskBase``)."""

    name: str
    reference: str
    raw: Mapping[str, Any] = EMPTY
    if_: str | None = None
    input: DataFilter | None = None
    output: DataFilter | None = None
    export: DataFilter | None = None
    timeout: Timeout | None = None
    then: str | None = None

    @property
    def kind(self) -> str:
        """The task type as the DSL names it (``set``, ``call``, ...)."""
        return type(self).__name__.removesuffix("Task").lower()


@attrs.frozen(kw_only=True)
class TaskList:
    """A named, ordered list of tasks; ``reference`` is the list's JSON pointer."""

    reference: str
    tasks: tuple[Task, ...]
    positions: Mapping[str, int]


@attrs.frozen(kw_only=True)
class DoTask(Task):
    """Runs ``do`` in sequence."""

    do: TaskList


@attrs.frozen(kw_only=True)
class SetTask(Task):
    """Replaces the data with ``set`` (an object template or an expression).

    ``constant`` is true when ``set`` holds no runtime expression at all.
    """

    set: Any
    constant: bool = False


@attrs.frozen(kw_only=True)
class SwitchCase:
    """One case; no ``when`` means the default case."""

    name: str
    when: str | None
    then: str


@attrs.frozen(kw_only=True)
class SwitchTask(Task):
    """Goes to the ``then`` of the first case whose ``when`` holds."""

    cases: tuple[SwitchCase, ...]


@attrs.frozen(kw_only=True)
class ForTask(Task):
    """Runs ``do`` once per item of ``in`` while ``while`` holds."""

    each: str
    in_: str
    at: str
    while_: str | None
    do: TaskList


@attrs.frozen(kw_only=True)
class ForkTask(Task):
    """Runs ``branches`` concurrently; with ``compete`` the first to finish wins."""

    branches: TaskList
    compete: bool


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a caught error is retried; limits of None are unbounded."""

    when: str | None = None
    except_when: str | None = None
    delay: Duration | None = None
    backoff: str = "constant"
    attempt_count: int | None = None
    attempt_duration: Duration | None = None
    total_duration: Duration | None = None
    jitter_from: Duration | None = None
    jitter_to: Duration | None = None


@attrs.frozen(kw_only=True)
class Catch:
    """The ``catch`` of a ``try``; ``errors`` holds the ``errors.with`` filter."""

    errors: Mapping[str, Any] = EMPTY
    as_: str = "error"
    when: str | None = None
    except_when: str | None = None
    retry: RetryPolicy | None = None
    do: TaskList | None = None


@attrs.frozen(kw_only=True)
class TryTask(Task):
    """Runs ``try``; errors that match ``catch`` are retried or handled by ``catch.do``."""

    try_: TaskList
    catch: Catch


@attrs.frozen(kw_only=True)
class RaiseTask(Task):
    """Raises ``error`` (reusable errors already resolved); its fields may be expressions."""

    error: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class WaitTask(Task):
    """Pauses until a durable timer fires."""

    duration: Duration


@attrs.frozen(kw_only=True)
class EmitTask(Task):
    """Emits a CloudEvent built from ``event`` (the ``emit.event.with`` properties)."""

    event: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class EventFilter:
    """Matches events whose attributes equal ``with`` (expressions evaluated) and correlate."""

    with_: Mapping[str, Any]
    correlate: Mapping[str, Any] = EMPTY


@attrs.frozen(kw_only=True)
class ConsumptionStrategy:
    """``one``, ``any`` or ``all`` of ``filters``; ``any`` may stop on ``until``."""

    mode: str
    filters: tuple[EventFilter, ...]
    until_expression: str | None = None
    until: ConsumptionStrategy | None = None


@attrs.frozen(kw_only=True)
class SubscriptionIterator:
    """``foreach`` of a ``listen`` or of an AsyncAPI subscription: tasks run for each consumed
    event or message."""

    item: str = "item"
    at: str = "index"
    do: TaskList | None = None
    output: DataFilter | None = None
    export: DataFilter | None = None


@attrs.frozen(kw_only=True)
class ListenTask(Task):
    """Waits for events per ``to``; ``read`` picks data, envelope or raw."""

    to: ConsumptionStrategy
    read: str = "data"
    foreach: SubscriptionIterator | None = None


@attrs.frozen(kw_only=True)
class CallTask(Task):
    """Calls ``call`` (http, openapi, another protocol or a function) with the arguments
        ``with_``.

        ``function`` is the resolved definition of a function from ``use.functions``; a cataloged
        function (``name:version@catalog``) or a function document's URI has none: the runtime
        resolves it when the task runs. ``foreach`` is the ``with.subscription.foreach`` of a
    ``call: asyncapi`` (its tasks built).
    """

    call: str
    with_: Mapping[str, Any] = EMPTY
    function: Task | None = None
    foreach: SubscriptionIterator | None = None


@attrs.frozen(kw_only=True)
class RunTask(Task):
    """Runs a ``workflow``, ``shell``, ``script`` or ``container`` process (``process``)."""

    process_kind: str
    process: Mapping[str, Any]
    await_: bool = True
    return_: str = "stdout"


@attrs.frozen(kw_only=True)
class Schedule:
    """When new instances start: every interval, on a cron, after completion, or on events.

    The interpreter does not act on it; the scheduler does. Instances started by ``on`` get the
    triggering events as an array input.
    """

    every: Duration | None = None
    cron: str | None = None
    after: Duration | None = None
    on: ConsumptionStrategy | None = None


@attrs.frozen(kw_only=True)
class Extension:
    """One of ``use.extensions``: ``before`` and ``after`` task lists run around every task of
    the types in ``extends`` (the DSL's ``extend``: ``composite`` is ``do`` and ``fork``,
    ``all`` every type) for which ``when`` holds."""

    name: str
    extend: str
    extends: frozenset[str]
    when: str | None = None
    before: TaskList | None = None
    after: TaskList | None = None

    def applies_to(self, task: Task) -> bool:
        """Whether the type of ``task`` is one this extension extends (``when`` aside)."""
        return self.extend == "all" or task.kind in self.extends


@attrs.frozen(kw_only=True)
class Workflow:
    """A whole definition, built once per version and shared by its instances."""

    namespace: str
    name: str
    version: str
    dsl: str
    raw: Mapping[str, Any]
    do: TaskList
    input: DataFilter | None = None
    output: DataFilter | None = None
    timeout: Timeout | None = None
    secrets: tuple[str, ...] = ()
    authentications: Mapping[str, Mapping[str, Any]] = EMPTY
    schedule: Schedule | None = None
    catalogs: Mapping[str, Mapping[str, Any]] = EMPTY
    extensions: tuple[Extension, ...] = ()
