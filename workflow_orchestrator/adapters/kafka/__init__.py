"""The Kafka adapter: group consumption in batches, commits after routing, acknowledged
producing, topic creation; only plain values (``_values``) and Trio types leave it.

By concern: ``_client_options`` (what the aiokafka clients are built with: servers, SASL,
TLS), ``_consumer`` (``open_kafka_consumer``: the group member, its fetch task, commits
and rebalances), ``_producer`` (``open_kafka_producer``: batches acknowledged by the broker,
idempotence), ``_topics`` (``ensure_topics``), ``_calls`` (clients of the servers that
``call: asyncapi`` names: ``call_options``, ``open_kafka_tail``), ``_logs`` (errors in our
words) and ``_values``.
Producing and consuming are opened separately, so that ``call: asyncapi`` can produce or
consume without the event source (``events._kafka_source`` is that source). The brokers are
the operator's infrastructure, like the database: connections to them do not go through the
outbound policy (``security.outbound``), which governs what workflows make the service fetch;
the servers of ``call: asyncapi`` are workflows' choice, and its adapter checks them (the
bootstrap address, and every broker metadata advertises, via ``learned_brokers``).
"""

from workflow_orchestrator.adapters.kafka._calls import (
    KafkaTail,
    MissingTopic,
    call_options,
    learned_brokers,
    open_kafka_tail,
    producer_options,
)
from workflow_orchestrator.adapters.kafka._client_options import (
    client_options,
    describe_brokers,
    ssl_context,
)
from workflow_orchestrator.adapters.kafka._consumer import KafkaConsumer, open_kafka_consumer
from workflow_orchestrator.adapters.kafka._logs import describe_kafka_error
from workflow_orchestrator.adapters.kafka._producer import KafkaProducer, open_kafka_producer
from workflow_orchestrator.adapters.kafka._topics import ensure_topics, missing_topics
from workflow_orchestrator.adapters.kafka._values import (
    KafkaConsumerStatistics,
    KafkaRecord,
    KafkaState,
    OutgoingRecord,
    PartitionLag,
)

__all__ = [
    "KafkaConsumer",
    "KafkaConsumerStatistics",
    "KafkaProducer",
    "KafkaRecord",
    "KafkaState",
    "KafkaTail",
    "MissingTopic",
    "OutgoingRecord",
    "PartitionLag",
    "call_options",
    "client_options",
    "describe_brokers",
    "describe_kafka_error",
    "ensure_topics",
    "learned_brokers",
    "missing_topics",
    "open_kafka_consumer",
    "open_kafka_producer",
    "open_kafka_tail",
    "producer_options",
    "ssl_context",
]
