"""The router's decisions, apart from its I/O: what a batch of events asks the routing
transaction to do, and what the transaction's result means for the sources.

Everything here reads only its arguments (expressions are evaluated by the ``Evaluator``
handed in: an ``ExpressionEngine``, which without a sandbox evaluates in-process, or the
router's per-event ``CorrelationBudget`` over one); ``EventRouter`` loads the shapes and
starters, calls these, and performs the result with ``storage.events.route_batch``.

- ``subscription_keys``: the ``(event_type, shape_id, corr_key)`` keys an event can match. Every
  event matches the plain ``(type, 0, '')`` and wildcard ``('', 0, '')`` keys; per correlation
  shape of its type (or of any type), the shape's ``('', ...)`` key, plus the shape's
  correlation key when every ``from`` expression evaluates on the event alone.
- ``instance_starts``: the ``one``/``any`` ``schedule.on`` starts an event causes, with the
  events array ``[event]`` as input and the idempotency key ``on:<definition_id>:<event key>``,
  so a redelivered event starts nothing twice.
- ``start_slots``: the ``all`` slot an event fills per definition (its first matching filter
  whose correlation computes and meets its static ``expect``).
- ``route_outcome``: the per-event outcomes handed back to sources, in batch order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import attrs

from workflow_orchestrator.dsl.expressions import CompiledExpression, is_runtime_expression
from workflow_orchestrator.dsl.model import ConsumptionStrategy, EventFilter, Schedule
from workflow_orchestrator.dsl.runtime import CloudEvent, with_matches
from workflow_orchestrator.events._routing import EventOutcome, RouteOutcome
from workflow_orchestrator.instances import correlation_key
from workflow_orchestrator.storage.events import (
    EventToRoute,
    RoutedBatch,
    StartSlot,
    SubscriptionShape,
)
from workflow_orchestrator.storage.instances import InstanceStart

__all__ = [
    "Evaluator",
    "Starter",
    "by_source",
    "event_to_route",
    "instance_starts",
    "matches_any",
    "route_outcome",
    "start_key",
    "start_slots",
    "starter_of",
    "subscription_keys",
]

_T = TypeVar("_T")

SubscriptionKey = tuple[str, int, str]


class Evaluator(Protocol):
    """What evaluates the expressions here: ``ExpressionEngine`` or ``CorrelationBudget``."""

    async def evaluate(
        self,
        source_or_compiled: str | CompiledExpression,
        data: Any,
        arguments: Mapping[str, Any],
    ) -> Any:
        """The expression's result over ``data``; raises on failure."""
        ...


@attrs.frozen(kw_only=True)
class Starter:
    """A definition version that ``schedule.on`` starts from events."""

    definition_id: str
    version: str
    strategy: ConsumptionStrategy


def starter_of(definition_id: str, version: str, schedule: Schedule | None) -> Starter | None:
    """The starter of a definition version, or None when its schedule starts nothing on
    events (no ``schedule`` or no ``schedule.on``)."""
    if schedule is None or schedule.on is None:
        return None
    return Starter(definition_id=definition_id, version=version, strategy=schedule.on)


async def subscription_keys(
    engine: Evaluator, event: CloudEvent, shapes: Iterable[SubscriptionShape]
) -> tuple[SubscriptionKey, ...]:
    """The subscription keys ``event`` can match (see the module docstring); a ``from`` that
    fails on the event leaves only the shape's ``''`` key."""
    event_type = event.type
    keys: list[SubscriptionKey] = [(event_type, 0, ""), ("", 0, "")]
    attributes = dict(event.attributes)
    for shape in shapes:
        if shape.event_type not in (event_type, ""):
            continue
        keys.append((shape.event_type, shape.shape_id, ""))
        values = []
        for _, expression in shape.correlate:
            try:
                values.append(await engine.evaluate(expression, attributes, {}))
            except Exception:  # not computable from the event alone: only '' keys match
                break
        else:
            keys.append((shape.event_type, shape.shape_id, correlation_key(values)))
    return tuple(keys)


async def matches_any(engine: Evaluator, filters: Sequence[EventFilter], event: CloudEvent) -> bool:
    """Whether ``event`` satisfies the ``with`` of one of ``filters`` (an expression that
    fails on the event counts as no match)."""

    async def evaluate(expression: str, value: Any) -> Any:
        try:
            return await engine.evaluate(expression, value, {})
        except Exception:
            return False

    for event_filter in filters:
        if await with_matches(event_filter.with_, event.attributes, evaluate):
            return True
    return False


async def start_key(engine: Evaluator, event_filter: EventFilter, event: CloudEvent) -> str | None:
    """The correlation key of ``event`` for a start filter ('' without ``correlate``);
    None when a correlation cannot be computed or misses its static ``expect``."""
    values = []
    attributes = dict(event.attributes)
    for _, rule in sorted(event_filter.correlate.items()):
        try:
            value = await engine.evaluate(str(rule["from"]), attributes, {})
        except Exception:
            return None
        expect = rule.get("expect")
        if expect is not None and not is_runtime_expression(str(expect)) and value != expect:
            return None
        values.append(value)
    return correlation_key(values) if values else ""


async def start_slots(
    engine: Evaluator, event: CloudEvent, starters: Iterable[Starter]
) -> tuple[StartSlot, ...]:
    """The ``all`` slots ``event`` fills: per definition, its first matching filter that
    correlates (its ``from`` values become the slot set's key)."""
    slots = []
    for starter in starters:
        strategy = starter.strategy
        if strategy.mode != "all":
            continue
        for index, event_filter in enumerate(strategy.filters):
            if not await matches_any(engine, (event_filter,), event):
                continue
            key = await start_key(engine, event_filter, event)
            if key is None:
                continue
            slots.append(
                StartSlot(
                    definition_id=starter.definition_id,
                    definition_version=starter.version,
                    corr_key=key,
                    index=index,
                    slots=len(strategy.filters),
                )
            )
            break
    return tuple(slots)


async def instance_starts(
    engine: Evaluator, event: CloudEvent, starters: Iterable[Starter]
) -> tuple[InstanceStart, ...]:
    """The instances ``event`` starts through a ``one``/``any`` ``schedule.on``."""
    starts = []
    for starter in starters:
        if starter.strategy.mode == "all":
            continue
        if await matches_any(engine, starter.strategy.filters, event):
            starts.append(
                InstanceStart(
                    definition_id=starter.definition_id,
                    definition_version=starter.version,
                    input=[event.to_json()],
                    idempotency_key=f"on:{starter.definition_id}:{event.key}",
                )
            )
    return tuple(starts)


def event_to_route(
    event: CloudEvent,
    *,
    keys: tuple[SubscriptionKey, ...],
    starts: tuple[InstanceStart, ...],
    slots: tuple[StartSlot, ...],
) -> EventToRoute:
    """What the routing transaction gets for ``event`` (its ``source`` + ``id`` deduplicate;
    a missing attribute is ``''``)."""
    return EventToRoute(
        source=str(event.attributes.get("source", "")),
        id=str(event.attributes.get("id", "")),
        type=event.type,
        event=event.to_json(),
        keys=keys,
        starts=starts,
        slots=slots,
    )


def route_outcome(routed: RoutedBatch) -> RouteOutcome:
    """The outcomes of a committed batch for its source, in the order of its events."""
    return RouteOutcome(
        events=tuple(
            EventOutcome(
                duplicate=duplicate,
                delivered=delivered,
                started=tuple(str(i) for i in started),
            )
            for duplicate, delivered, started in zip(
                routed.duplicate, routed.delivered, routed.started, strict=True
            )
        )
    )


def by_source(items: Iterable[_T], source_of: Callable[[_T], str]) -> dict[str, list[_T]]:
    """``items`` grouped by source kind, in first-seen order of the sources, each group in
    arrival order (one routing transaction per group)."""
    groups: dict[str, list[_T]] = {}
    for item in items:
        groups.setdefault(source_of(item), []).append(item)
    return groups
