"""Errors of the RabbitMQ adapter: the broker errors every adapter shares (``_broker_errors``)
and ``TopologyConflict``. Messages name the broker as ``host:port/vhost``, no password."""

from __future__ import annotations

from workflow_orchestrator.adapters._broker_errors import (
    BrokerError,
    BrokerUnavailable,
    PublishFailed,
)

__all__ = ["BrokerError", "BrokerUnavailable", "PublishFailed", "TopologyConflict"]


class TopologyConflict(BrokerError, ValueError):
    """An exchange or queue exists already with different properties (type, durability,
    arguments such as the queue type or the dead-letter exchange)."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name
