"""``POST /v1/events``: publish one CloudEvent over HTTP (binding 1.0, structured or binary).

Structured mode: ``Content-Type: application/cloudevents+json`` and the event as the body.
Binary mode: the attributes as ``ce-*`` headers and the data as the body. The answer comes
once the event is routed and committed: ``202`` with what it did (``duplicate`` when an event
with the same ``source`` and ``id`` was routed before, the number of waiting instances it was
delivered to, the instances ``schedule.on`` started). An invalid event gets ``400`` naming the
problem; nothing is stored.
"""

from __future__ import annotations

import logging
from typing import Protocol

from quart import Blueprint, Response, request

from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.events import EventOutcome, InvalidEvent, parse_http_request
from workflow_orchestrator.gateway._json import json_response
from workflow_orchestrator.gateway._problems import problem_response
from workflow_orchestrator.storage import MAX_JSON_DEPTH, Unstorable, check_depth, check_storable
from workflow_orchestrator.storage.events import RoutingRefused

__all__ = ["EventSubmitter", "event_routes"]

logger = logging.getLogger(__name__)


class EventSubmitter(Protocol):
    """What the route needs of the router."""

    async def submit(self, event: CloudEvent, *, source: str = "http") -> EventOutcome: ...


def event_routes(router: EventSubmitter) -> Blueprint:
    """The events blueprint (mounted under ``<contextPath>/v1``)."""
    blueprint = Blueprint("events", __name__)

    @blueprint.post("/events")
    async def publish_event() -> Response:
        body = await request.get_data(as_text=False)
        assert isinstance(body, bytes)
        try:
            event = parse_http_request(headers=dict(request.headers), body=body)
            # What the router's transaction could not store fails here, for this event alone.
            check_depth(event.attributes, what="the event")
            check_storable(event.attributes, what="the event")
        except RecursionError:
            detail = f"the event nests deeper than {MAX_JSON_DEPTH} levels; flatten its data"
            logger.info("rejected an event posted over HTTP: %s", detail)
            return problem_response(400, "invalid-event", "Invalid CloudEvent", detail)
        except (InvalidEvent, Unstorable) as exc:
            logger.info("rejected an event posted over HTTP: %s", exc)
            extensions = {"pointer": exc.pointer} if isinstance(exc, Unstorable) else {}
            return problem_response(
                400, "invalid-event", "Invalid CloudEvent", str(exc), **extensions
            )
        try:
            outcome = await router.submit(event, source="http")
        except RoutingRefused as exc:  # PostgreSQL refused a value of this event alone
            logger.info("refused an event posted over HTTP: %s", exc)
            return problem_response(400, "invalid-event", "Invalid CloudEvent", str(exc))
        return json_response(
            {
                "id": event.attributes.get("id"),
                "source": event.attributes.get("source"),
                "type": event.type,
                "duplicate": outcome.duplicate,
                "deliveredTo": outcome.delivered,
                "startedInstances": list(outcome.started),
            },
            status=202,
        )

    return blueprint
