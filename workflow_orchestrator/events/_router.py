"""The event router: from a batch of CloudEvents to instances started and listens completed.

For each batch (see ``_routing`` for the contract with sources; the decisions below are the
I/O-free functions of ``_matching``, this module loads their inputs and performs their result):

- the subscription keys of each event are computed here, in Trio: for every correlation shape of
  its type (cached from ``subscription_shapes``), the ``from`` expressions are evaluated on the
  event and their values encoded as the shape's key (``instances.correlation_key``), within
  the event's ``CorrelationBudget`` (``eventProcessing.correlationBudget``): a pathological
  event degrades to "not computable" instead of stalling the batch;
- the definitions whose ``schedule.on`` matches the event (their latest live versions, reloaded
  when the routing transaction finds the definitions changed) each get a start, with the
  events array as input; with ``all``, the event fills its filter's slot for its correlation
  key (``event_start_progress``) and the event that fills the last slot starts the instance;
- ``storage.events.route_batch`` commits it all in one transaction (deduplication, inbox rows,
  instances, retained unmatched events, the source's own statements);
- the instances of this replica's partitions are activated from what the transaction returned
  (no further reads; at most a page, the rest drained by the runtime from the database); the
  other replicas are notified by the transaction.

``submit`` is for one event at a time (the HTTP endpoint): concurrent submissions are batched
into one ``route`` by ``run``, which also purges expired deduplication records, retained events
and orphaned inbox rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import attrs
import trio

from workflow_orchestrator.dsl import ExpressionEngine
from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.events._correlation_budget import CorrelationBudget
from workflow_orchestrator.events._matching import (
    Starter,
    by_source,
    event_to_route,
    instance_starts,
    route_outcome,
    start_slots,
    starter_of,
    subscription_keys,
)
from workflow_orchestrator.events._routing import Consume, EventOutcome, RouteOutcome
from workflow_orchestrator.instances import InstanceRuntime, WorkflowCatalog
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.storage import Database, PartitionLeases
from workflow_orchestrator.storage.events import (
    EventToRoute,
    RoutingRefused,
    RoutingStale,
    SubscriptionShape,
    definitions_stamp,
    load_event_starters,
    load_shapes,
    purge_event_records,
    route_batch,
)

__all__ = ["EventRouter", "Starter"]

logger = logging.getLogger(__name__)


@attrs.define(eq=False)
class _Submission:
    event: CloudEvent
    source: str
    done: trio.Event = attrs.field(factory=trio.Event)
    outcome: EventOutcome | None = None
    error: BaseException | None = None


def _source_of(submission: _Submission) -> str:
    return submission.source


@attrs.define(eq=False)
class EventRouter:
    """Routes batches of events; see the module docstring."""

    database: Database
    runtime: InstanceRuntime
    leases: PartitionLeases
    catalog: WorkflowCatalog
    engine: ExpressionEngine
    metrics: ServiceMetrics | None = None
    keep_unmatched_for: float = 0.0
    deduplication_window: float = 86_400.0
    purge_every: float = 60.0
    max_batch: int = 500
    correlation_budget: float = 2.0
    _shapes: tuple[SubscriptionShape, ...] = attrs.field(default=(), init=False)
    _shapes_version: int = attrs.field(default=0, init=False)
    _starters: tuple[Starter, ...] = attrs.field(default=(), init=False)
    _starters_stamp: str | None = attrs.field(default=None, init=False)
    _send: trio.MemorySendChannel[_Submission] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[_Submission] = attrs.field(init=False)
    _in_flight: dict[int, float] = attrs.field(factory=dict, init=False)
    _next_batch: int = attrs.field(default=0, init=False)
    routed_total: int = attrs.field(default=0, init=False)
    last_routed_at: float | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[_Submission](10_000)

    # -- service --------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[EventRouter] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Load shapes and starters, then batch submissions and keep tables tidy until
        cancelled."""
        await self._load_shapes()
        await self.refresh_starters()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._batch_submissions)
            nursery.start_soon(self._maintain)
            task_status.started(self)

    async def _maintain(self) -> None:
        while True:
            await trio.sleep(self.purge_every)
            try:
                await self.purge()
            except Exception as exc:  # the database may be away for a while: try again later
                logger.warning("event router maintenance failed: %s: %s", type(exc).__name__, exc)

    async def purge(self) -> None:
        """Delete expired deduplication records, retained events and slot sets, and inbox
        rows of instances that ended (``storage.events.purge_event_records``)."""
        counts = await purge_event_records(
            self.database,
            deduplication_window=self.deduplication_window,
            keep_unmatched_for=self.keep_unmatched_for,
        )
        if any(counts):
            logger.debug("purged event records: %s", counts)

    async def refresh_starters(self) -> None:
        """Reload the definitions that ``schedule.on`` starts (latest live versions) when the
        definitions changed since the last load; one crossing when they did not."""
        stamp = await definitions_stamp(self.database)
        if stamp == self._starters_stamp:
            return
        starters = []
        for version in await load_event_starters(self.database):
            interpreter = await self.catalog.interpreter(version.definition_id, version.version)
            starter = starter_of(
                version.definition_id, version.version, interpreter.workflow.schedule
            )
            if starter is not None:
                starters.append(starter)
        self._starters = tuple(starters)
        self._starters_stamp = stamp

    async def _load_shapes(self) -> None:
        shapes = await load_shapes(self.database)
        self._shapes = shapes
        self._shapes_version = max((s.shape_id for s in shapes), default=0)

    # -- routing --------------------------------------------------------------------------

    def oldest_in_flight(self) -> float | None:
        """Seconds since the oldest batch being routed now arrived (None when idle)."""
        if not self._in_flight:
            return None
        return time.monotonic() - min(self._in_flight.values())

    async def submit(self, event: CloudEvent, *, source: str = "http") -> EventOutcome:
        """Route one event, batched with concurrent submissions; returns once committed."""
        submission = _Submission(event=event, source=source)
        await self._send.send(submission)
        await submission.done.wait()
        if submission.error is not None:
            raise submission.error
        assert submission.outcome is not None
        return submission.outcome

    async def _batch_submissions(self) -> None:
        while True:
            batch = [await self._receive.receive()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            for source, items in by_source(batch, _source_of).items():
                await self._route_submissions(items, source)

    async def _route_submissions(self, items: list[_Submission], source: str) -> None:
        """Route ``items`` together; when PostgreSQL refuses a value of the batch, each alone,
        so only the submitter of the refused event gets the error."""
        try:
            outcome = await self.route([i.event for i in items], source=source)
        except RoutingRefused as exc:
            if len(items) == 1:
                items[0].error = exc
                items[0].done.set()
                return
            logger.warning("routing %d submitted events one at a time: %s", len(items), exc)
            for item in items:
                await self._route_submissions([item], source)
            return
        except Exception as exc:  # handed to each submitter, who answers the client
            for item in items:
                item.error = exc
                item.done.set()
            return
        for item, result in zip(items, outcome.events, strict=True):
            item.outcome = result
            item.done.set()

    async def route(
        self, events: Sequence[CloudEvent], *, source: str, consume: Consume | None = None
    ) -> RouteOutcome:
        """Route ``events`` in one transaction; see the module docstring."""
        if not events:
            if consume is not None:
                await self.database.run_in_transaction(consume)
            return RouteOutcome(events=())
        started_at = time.monotonic()
        token = self._next_batch
        self._next_batch += 1
        self._in_flight[token] = started_at
        try:
            return await self._route(events, source, consume, started_at)
        finally:
            del self._in_flight[token]

    async def _to_route(
        self,
        event: CloudEvent,
        starters: Sequence[Starter],
        shapes: Sequence[SubscriptionShape],
    ) -> EventToRoute:
        """What the routing transaction gets for ``event``; its expressions share one
        ``CorrelationBudget``."""
        budget = CorrelationBudget(self.engine, self.correlation_budget, event=event.key)
        return event_to_route(
            event,
            keys=await subscription_keys(budget, event, shapes),
            starts=await instance_starts(budget, event, starters),
            slots=await start_slots(budget, event, starters),
        )

    async def _route(
        self,
        events: Sequence[CloudEvent],
        source: str,
        consume: Consume | None,
        started_at: float,
    ) -> RouteOutcome:
        metrics = self.metrics
        if metrics is not None:
            for event in events:
                metrics.events_received.labels(source, metrics.event_type(event.type)).inc()
        # Taken before the routing transaction reads the activations: an instance that runs
        # meanwhile is read again when it starts (see InstanceRuntime.activate).
        read_at = self.runtime.activation_stamp()
        for attempt in range(5):
            # One consistent view per attempt: a concurrent reload cannot pair these keys with
            # a newer version (route_batch would not see that they are stale).
            starters, stamp = self._starters, self._starters_stamp
            shapes, shapes_version = self._shapes, self._shapes_version
            batch = [await self._to_route(event, starters, shapes) for event in events]
            try:
                routed = await route_batch(
                    self.database,
                    batch,
                    shapes_version=shapes_version,
                    definitions_stamp=stamp,
                    local_partitions=self.leases.current().partitions,
                    keep_unmatched=self.keep_unmatched_for > 0,
                    consume=consume,
                )
            except RoutingStale as stale:
                if attempt == 4:
                    raise
                if stale.shapes:
                    await self._load_shapes()
                if stale.definitions:
                    await self.refresh_starters()
                continue
            break
        # Bounded: at most a page of activations comes back; a larger wake-up is drained
        # from the database by the runtime. Activating waits (a bounded time) for room in
        # the runtime's queue, which slows this batch's source instead of growing memory.
        for activation in routed.activations:
            await self.runtime.activate(activation.record.instance_id, activation, read_at=read_at)
        if routed.backlog:
            self.runtime.request_drain()
        self.routed_total += len(events)
        self.last_routed_at = time.time()
        if metrics is not None:
            elapsed = time.monotonic() - started_at
            metrics.event_routing_duration.labels(source).observe(elapsed)
            for event, duplicate in zip(events, routed.duplicate, strict=True):
                if duplicate:
                    metrics.events_duplicate.labels(source, metrics.event_type(event.type)).inc()
                else:
                    metrics.events_routed.labels(source, metrics.event_type(event.type)).inc()
            for event_type in routed.unmatched_types:
                metrics.events_unmatched.labels(metrics.event_type(event_type)).inc()
        return route_outcome(routed)
