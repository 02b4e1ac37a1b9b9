"""Errors of the RabbitMQ adapter. Messages name the broker as ``host:port/vhost``, no password."""

from __future__ import annotations

from workflow_orchestrator.errors import OrchestratorError

__all__ = ["BrokerError", "BrokerUnavailable", "PublishFailed", "TopologyConflict"]


class BrokerError(OrchestratorError):
    """Base class of the message broker errors."""


class BrokerUnavailable(BrokerError, ConnectionError):
    """The broker could not be reached (or not within the time allowed)."""

    def __init__(self, message: str, *, broker: str) -> None:
        super().__init__(message)
        self.broker = broker


class PublishFailed(BrokerError, RuntimeError):
    """A message of a published batch was not confirmed by the broker.

    Whether the broker kept it is unknown when the cause is a lost connection: publish again
    (consumers deduplicate by CloudEvents ``source`` + ``id``).
    """

    def __init__(self, message: str, *, exchange: str, routing_key: str) -> None:
        super().__init__(message)
        self.exchange = exchange
        self.routing_key = routing_key


class TopologyConflict(BrokerError, ValueError):
    """An exchange or queue exists already with different properties (type, durability,
    arguments such as the queue type or the dead-letter exchange)."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name
