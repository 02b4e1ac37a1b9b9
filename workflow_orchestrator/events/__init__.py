"""Event processing: CloudEvents 1.0, the sources, the router and the outbox relay.

``EventProcessing`` runs it all for one replica (see ``_processing``): the ``EventRouter``, the
RabbitMQ, Kafka (``_kafka_source`` over ``adapters.kafka``) or database source, the
``OutboxRelay`` and cross-replica wake-ups. Below them: parsing and validation of the AMQP, HTTP
and Kafka bindings (structured and binary mode) into the DSL's `CloudEvent` and serialization
for publishing (pure functions on plain values), and ``open_rabbitmq``, the RabbitMQ adapter
(batched deliveries and acks, dead-lettering, publisher confirms, reconnection).
"""

from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.events._bindings import (
    AMQP_PREFIXES,
    KAFKA_PREFIX,
    EncodedEvent,
    KafkaEncoded,
    parse_amqp_message,
    parse_http_request,
    parse_kafka_record,
    to_amqp_binary,
    to_amqp_structured,
    to_http_binary,
    to_kafka_binary,
    to_kafka_structured,
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
from workflow_orchestrator.events._database_source import DatabaseEventSource
from workflow_orchestrator.events._outbox_relay import OutboxRelay
from workflow_orchestrator.events._outbox_signal import OutboxSignal
from workflow_orchestrator.events._processing import EventProcessing, event_options
from workflow_orchestrator.events._rabbitmq import (
    REJECTION_REASON_HEADER,
    BrokerError,
    BrokerState,
    BrokerUnavailable,
    Delivery,
    OutgoingMessage,
    PublishFailed,
    RabbitMQConnection,
    RabbitMQStatistics,
    RabbitMQTopology,
    TopologyConflict,
    open_rabbitmq,
)
from workflow_orchestrator.events._router import EventRouter
from workflow_orchestrator.events._routing import EventOutcome, RouteOutcome, Router

__all__ = [
    "AMQP_PREFIXES",
    "KAFKA_PREFIX",
    "MAX_EVENT_SIZE",
    "REJECTION_REASON_HEADER",
    "STRUCTURED_CONTENT_TYPE",
    "BrokerError",
    "BrokerState",
    "BrokerUnavailable",
    "CloudEvent",
    "DatabaseEventSource",
    "Delivery",
    "EncodedEvent",
    "EventOutcome",
    "EventProcessing",
    "EventRouter",
    "InvalidEvent",
    "KafkaEncoded",
    "OutboxRelay",
    "OutboxSignal",
    "OutgoingMessage",
    "PublishFailed",
    "RabbitMQConnection",
    "RabbitMQStatistics",
    "RabbitMQTopology",
    "RouteOutcome",
    "Router",
    "TopologyConflict",
    "event_data_bytes",
    "event_options",
    "event_time",
    "is_json_content_type",
    "open_rabbitmq",
    "parse_amqp_message",
    "parse_http_request",
    "parse_json_event",
    "parse_kafka_record",
    "to_amqp_binary",
    "to_amqp_structured",
    "to_http_binary",
    "to_json",
    "to_kafka_binary",
    "to_kafka_structured",
    "validate_event",
]
