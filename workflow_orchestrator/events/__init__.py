"""CloudEvents 1.0 for the event router and the outbox relay.

Parsing and validation of the AMQP and HTTP bindings (structured and binary mode) into the
DSL's `CloudEvent`, so a parsed event goes straight to the interpreter, and serialization for
publishing. Pure functions on plain values; no I/O.
"""

from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.events._bindings import (
    AMQP_PREFIXES,
    EncodedEvent,
    parse_amqp_message,
    parse_http_request,
    to_amqp_binary,
    to_amqp_structured,
    to_http_binary,
)
from workflow_orchestrator.events._cloudevents import (
    MAX_EVENT_SIZE,
    STRUCTURED_CONTENT_TYPE,
    InvalidEvent,
    event_data_bytes,
    event_time,
    is_json_content_type,
    parse_json_event,
    to_json,
    validate_event,
)

__all__ = [
    "AMQP_PREFIXES",
    "MAX_EVENT_SIZE",
    "STRUCTURED_CONTENT_TYPE",
    "CloudEvent",
    "EncodedEvent",
    "InvalidEvent",
    "event_data_bytes",
    "event_time",
    "is_json_content_type",
    "parse_amqp_message",
    "parse_http_request",
    "parse_json_event",
    "to_amqp_binary",
    "to_amqp_structured",
    "to_http_binary",
    "to_json",
    "validate_event",
]
