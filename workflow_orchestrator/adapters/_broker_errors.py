"""Errors of the message broker adapters (RabbitMQ, Kafka). Messages name the broker without
credentials (``host:port/vhost``, ``host:port,host:port``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

from workflow_orchestrator.errors import OrchestratorError

__all__ = ["BrokerError", "BrokerUnavailable", "PublishFailed", "broker_deadline"]


class BrokerError(OrchestratorError):
    """Base class of the message broker errors."""


class BrokerUnavailable(BrokerError, ConnectionError):
    """The broker could not be reached (or not within the time allowed)."""

    def __init__(self, message: str, *, broker: str) -> None:
        super().__init__(message)
        self.broker = broker


class PublishFailed(BrokerError, RuntimeError):
    """A message of a published batch was not confirmed by the broker.

    ``destination`` is the RabbitMQ exchange or the Kafka topic of the most telling failure,
    ``routing_key`` its routing key (RabbitMQ) or record key (Kafka). ``refused`` holds the
    positions (in the published list) of the messages the broker or the client refuses for
    good (too large, an invalid topic): publishing them again fails the same way. Whether the
    broker kept the others is unknown when the cause is a lost connection: publish again
    (consumers deduplicate by CloudEvents ``source`` + ``id``).
    """

    def __init__(
        self,
        message: str,
        *,
        destination: str,
        routing_key: str = "",
        refused: tuple[int, ...] = (),
    ) -> None:
        super().__init__(message)
        self.destination = destination
        self.routing_key = routing_key
        self.refused = refused

    @property
    def exchange(self) -> str:
        """``destination`` under its RabbitMQ name."""
        return self.destination


@contextmanager
def broker_deadline(seconds: float, what: str, *, broker: str, product: str) -> Iterator[None]:
    """``trio.fail_after`` that turns the timeout into ``BrokerUnavailable`` naming the work
    (``what``), the ``product`` (RabbitMQ, Kafka) and the ``broker``."""
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError as exc:
        raise BrokerUnavailable(
            f"{what} did not finish within {seconds:g}s; is {product} at {broker} reachable?",
            broker=broker,
        ) from exc
