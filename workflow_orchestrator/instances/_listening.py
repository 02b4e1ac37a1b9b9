"""How an instance's events are stored: subscriptions of a parked ``listen`` and outgoing events.

A parked ``listen`` becomes one ``event_subscriptions`` row per filter, keyed by the event type,
the filter's correlation *shape* (its sorted ``(name, from)`` pairs, registered once in
``subscription_shapes``) and the correlation key: the JSON list of the expected values when all
of them are known (from ``expect``, or fixed by an event consumed before), else ``''`` (any).
The router computes the same key from each event, so finding the waiting instances of an event
is an index lookup whatever their number. ``correlation_key`` is that shared encoding.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs

from workflow_orchestrator.dsl.runtime import CloudEvent, ListenRequest
from workflow_orchestrator.storage import Database
from workflow_orchestrator.storage.events import ensure_shape
from workflow_orchestrator.storage.instances import OutgoingEvent, SubscriptionRow

__all__ = [
    "EventOptions",
    "ShapeRegistry",
    "ShapeSource",
    "correlation_key",
    "outgoing_event",
    "subscription_rows",
]

_TASK_EVENT_PREFIX = "io.serverlessworkflow.task."
# ``json.dumps(..., separators=(",", ":"), default=str)`` without an encoder per call.
_BODY = json.JSONEncoder(separators=(",", ":"), default=str)


def correlation_key(values: Sequence[Any]) -> str:
    """The correlation key of ``values`` (in the shape's name order)."""
    return json.dumps(list(values), sort_keys=True, separators=(",", ":"))


@attrs.frozen(kw_only=True)
class EventOptions:
    """Where an instance's events go: ``emit_destination`` is ``business`` (the outbox, to the
    business exchange) or ``events`` (the database event source); lifecycle events go to the
    outbox (system exchange) when ``lifecycle_to_outbox``, task ones only with ``task_events``.
    """

    emit_destination: str = "events"
    lifecycle_to_outbox: bool = False
    task_events: bool = True

    def lifecycle_outgoing(self, event: CloudEvent) -> OutgoingEvent | None:
        """The outbox row of a lifecycle event, or None when it is not published."""
        if not self.lifecycle_to_outbox:
            return None
        if not self.task_events and event.type.startswith(_TASK_EVENT_PREFIX):
            return None
        return outgoing_event(event, "system")


def outgoing_event(event: CloudEvent, destination: str) -> OutgoingEvent:
    """The outgoing row of ``event`` (structured JSON body, routing key = its type)."""
    return OutgoingEvent(
        destination=destination,
        routing_key=event.type,
        event_id=str(event.attributes.get("id", "")),
        body=_BODY.encode(event.to_json()),
    )


class ShapeSource(Protocol):
    """The id of a subscription shape, registered on first use (``ShapeRegistry``)."""

    async def shape_id(self, event_type: str, correlate: tuple[tuple[str, str], ...]) -> int: ...


@attrs.define(eq=False)
class ShapeRegistry:
    """The ids of subscription shapes, registered on first use and cached for the process."""

    database: Database
    _ids: dict[tuple[str, tuple[tuple[str, str], ...]], int] = attrs.field(factory=dict, init=False)

    async def shape_id(self, event_type: str, correlate: tuple[tuple[str, str], ...]) -> int:
        if not correlate:
            return 0
        key = (event_type, correlate)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = await ensure_shape(self.database, event_type, correlate)
        return found


def _type_of(attributes: Mapping[str, Any]) -> str:
    value = attributes.get("type")
    return value if isinstance(value, str) else ""


async def subscription_rows(
    request: ListenRequest, shapes: ShapeSource
) -> tuple[SubscriptionRow, ...]:
    """The ``event_subscriptions`` rows of a parked listen."""
    rows = []
    for index, subscription in enumerate(await request.subscriptions()):
        attributes = dict(subscription.attributes)
        event_type = _type_of(attributes)
        attributes.pop("type", None)
        shape_id = await shapes.shape_id(event_type, subscription.correlate)
        names = [name for name, _ in subscription.correlate]
        known = bool(names) and all(name in subscription.expected for name in names)
        key = correlation_key([subscription.expected[n] for n in names]) if known else ""
        rows.append(
            SubscriptionRow(
                filter_index=index,
                task_ref=request.task_ref,
                event_type=event_type,
                shape_id=shape_id,
                corr_key=key,
                attributes=attributes,
            )
        )
    return tuple(rows)
