"""The RabbitMQ adapter: topology, batched consumption, batched acknowledgements, confirmed
publishing, reconnection; only plain values (``_values``) and Trio types leave it.

By concern: ``_connection`` (``open_rabbitmq`` and ``RabbitMQConnection``: the robust connection,
its two channels, the bounds and the tasks), ``_consume`` (deliveries to batches, acks, the
consumer and its restarts), ``_publish`` (confirmed batches, dead-letter copies), ``_topology``
(declarations), ``_internals`` (the aiormq internals the fast paths use, their checks and
fallbacks), ``_logs`` (connection trouble in our words), ``_errors`` and ``_values``.
"""

from workflow_orchestrator.events._rabbitmq._connection import RabbitMQConnection, open_rabbitmq
from workflow_orchestrator.events._rabbitmq._errors import (
    BrokerError,
    BrokerUnavailable,
    PublishFailed,
    TopologyConflict,
)
from workflow_orchestrator.events._rabbitmq._publish import REJECTION_REASON_HEADER
from workflow_orchestrator.events._rabbitmq._values import (
    BrokerState,
    Delivery,
    OutgoingMessage,
    RabbitMQStatistics,
    RabbitMQTopology,
)

__all__ = [
    "REJECTION_REASON_HEADER",
    "BrokerError",
    "BrokerState",
    "BrokerUnavailable",
    "Delivery",
    "OutgoingMessage",
    "PublishFailed",
    "RabbitMQConnection",
    "RabbitMQStatistics",
    "RabbitMQTopology",
    "TopologyConflict",
    "open_rabbitmq",
]
