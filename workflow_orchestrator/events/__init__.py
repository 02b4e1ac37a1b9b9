"""Event processing: CloudEvents 1.0 and the RabbitMQ adapter.

Parsing and validation of the AMQP and HTTP bindings (structured and binary mode) into the
DSL's `CloudEvent`, so a parsed event goes straight to the interpreter, and serialization for
publishing (pure functions on plain values). ``open_rabbitmq`` is the broker adapter: batches of
deliveries into Trio, batch acknowledgements, dead-lettering, publisher confirms, reconnection.
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
from workflow_orchestrator.events._rabbitmq import (
    REJECTION_REASON_HEADER,
    RabbitMQConnection,
    open_rabbitmq,
)
from workflow_orchestrator.events._rabbitmq_errors import (
    BrokerError,
    BrokerUnavailable,
    PublishFailed,
    TopologyConflict,
)
from workflow_orchestrator.events._rabbitmq_values import (
    BrokerState,
    Delivery,
    OutgoingMessage,
    RabbitMQStatistics,
    RabbitMQTopology,
)

__all__ = [
    "AMQP_PREFIXES",
    "MAX_EVENT_SIZE",
    "REJECTION_REASON_HEADER",
    "STRUCTURED_CONTENT_TYPE",
    "BrokerError",
    "BrokerState",
    "BrokerUnavailable",
    "CloudEvent",
    "Delivery",
    "EncodedEvent",
    "InvalidEvent",
    "OutgoingMessage",
    "PublishFailed",
    "RabbitMQConnection",
    "RabbitMQStatistics",
    "RabbitMQTopology",
    "TopologyConflict",
    "event_data_bytes",
    "event_time",
    "is_json_content_type",
    "open_rabbitmq",
    "parse_amqp_message",
    "parse_http_request",
    "parse_json_event",
    "to_amqp_binary",
    "to_amqp_structured",
    "to_http_binary",
    "to_json",
    "validate_event",
]
