"""A batch that PostgreSQL refused because of one event's data: tell it from an outage.

The router routes a source's batch in one transaction, so one event whose data PostgreSQL
refuses (an id or type too long for its index, a value out of range: ``RoutingRefused``, or
the driver's row errors ``storage.ROW_ERRORS`` from a router that does not translate them)
fails the whole batch, and retrying the batch would fail for ever. A source then routes the
batch's events one at a time: an event refused alone is dead-lettered with the reason, the
others are routed. Any other failure (a lost connection, a serialization failure, a lost
lease) is not tied to an event and keeps the source's retry with backoff.
"""

from __future__ import annotations

from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.events._cloudevents import InvalidEvent
from workflow_orchestrator.storage import ROW_ERRORS
from workflow_orchestrator.storage.events import RoutingRefused

__all__ = [
    "REFUSED_BY_DATA",
    "REJECTION_REASON_HEADER",
    "describe_event",
    "parse_failure",
    "refusal_reason",
]

REJECTION_REASON_HEADER = "x-rejection-reason"
"""The header of a dead-lettered message (RabbitMQ, Kafka) that says why it was refused."""

REFUSED_BY_DATA: tuple[type[Exception], ...] = (RoutingRefused, *ROW_ERRORS)
"""What a routing raises when PostgreSQL refused an event's data: route one at a time."""

_MAX_SHOWN = 120  # characters of an attribute shown in a log line (an id may be megabytes)


def _shown(value: object) -> str:
    text = str(value)
    if len(text) <= _MAX_SHOWN:
        return repr(text)
    return f"{text[:_MAX_SHOWN]!r}... ({len(text)} characters)"


def describe_event(event: CloudEvent) -> str:
    """``event <id> from source <source>`` for a log line, long values shortened."""
    attributes = event.attributes
    return f"event {_shown(attributes.get('id'))} from source {_shown(attributes.get('source'))}"


def refusal_reason(exc: BaseException) -> str:
    """The dead-letter reason of an event refused alone: the router's message (it names the
    refusal and says to shorten or change the event), or the driver error's on one line."""
    if isinstance(exc, RoutingRefused):
        return str(exc)
    return (
        f"PostgreSQL refused the event ({type(exc).__name__}: {' '.join(str(exc).split())}); "
        "shorten or change the event"
    )


def parse_failure(exc: Exception) -> str:
    """The dead-letter reason of a message a source could not parse: the parser's message, or
    the error of a parser bug (a source dead-letters it rather than stop on it)."""
    if isinstance(exc, InvalidEvent):
        return str(exc)
    return f"the message could not be read as a CloudEvent ({type(exc).__name__}: {exc})"
