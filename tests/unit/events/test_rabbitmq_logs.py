"""The rules for aiormq's and aio-pika's connection records: dropped unless everything is
logged (the integration tests show the WARNINGs that replace them)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import aiormq.exceptions
import pytest

from workflow_orchestrator.events._rabbitmq._logs import (
    broker_display,
    describe_connection_error,
    install_connection_log_rules,
)


@pytest.fixture
def root_level() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level = root.level
    yield root
    root.setLevel(level)


def transport_error(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    install_connection_log_rules()
    caplog.clear()
    error = aiormq.exceptions.AMQPConnectionError(111, "Connect call failed")
    logging.getLogger("aiormq.connection").error("error when creating transport: %r", error)
    return [r for r in caplog.records if r.name == "aiormq.connection"]


def test_transport_errors_are_dropped(
    caplog: pytest.LogCaptureFixture, root_level: logging.Logger
) -> None:
    """aiormq's ERROR for a failed attempt does not reach the log (the caller reports it)."""
    root_level.setLevel(logging.INFO)
    assert transport_error(caplog) == []


def test_everything_passes_at_debug(
    caplog: pytest.LogCaptureFixture, root_level: logging.Logger
) -> None:
    """With the root logger at DEBUG the library's own record is kept too."""
    root_level.setLevel(logging.DEBUG)
    assert [r.levelname for r in transport_error(caplog)] == ["ERROR"]


def test_brokers_are_named_without_credentials() -> None:
    """The broker is host:port/vhost; a refused connection says what to check."""
    assert broker_display("amqp://user:secret@mq:5673/orders") == "mq:5673/orders"
    assert broker_display("amqp://user:secret@mq/") == "mq:5672//"
    refused = aiormq.exceptions.AMQPConnectionError(111, "Connect call failed")
    assert describe_connection_error(refused) == (
        "connection refused (is RabbitMQ running and listening on that host and port?)"
    )
