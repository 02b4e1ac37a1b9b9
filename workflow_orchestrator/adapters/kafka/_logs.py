"""Kafka trouble in the service's own words: errors described in a line, and aiokafka's
connection noise turned into one WARNING of ours.

While a broker is away, aiokafka logs an ERROR for every failed connection attempt, metadata
refresh, heartbeat and fetch (several a second). A broker that is away is an expected condition
the service rides out (the consumer and producer reconnect by themselves; the health details
and ``workflow_orchestrator_broker_connected`` say so), so ``grep ERROR`` on the service's log
must not find it. ``install_kafka_log_rules`` puts a filter on aiokafka's loggers that drops
those records and logs, at most once per ``_QUIET_FOR`` seconds, one WARNING of this module's
logger with the library's message. Every other record passes unchanged; with the root logger
at DEBUG the dropped records pass too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import aiokafka.errors

from workflow_orchestrator.adapters._broker_errors import BrokerUnavailable, broker_deadline

__all__ = [
    "describe_kafka_error",
    "install_kafka_log_rules",
    "kafka_operation",
    "last_connection_trouble",
]

logger = logging.getLogger(__name__)

_LIBRARY_LOGGERS = (
    "aiokafka",
    "aiokafka.conn",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.consumer.fetcher",
    "aiokafka.producer.sender",
    "aiokafka.producer.producer",
    "aiokafka.cluster",
)
# Words of aiokafka's records about a broker it cannot reach (or lost).
_CONNECTION_TROUBLE = (
    "Unable connect to",
    "Unable to update metadata",
    "NodeNotReadyError",
    "KafkaConnectionError",
    "Marking the coordinator dead",
    "Connection lost",
    "RequestTimedOutError",
    "Got error produce response",
    "Unable to request metadata",
    "Heartbeat session expired",
    "Group Coordinator Request failed",
    "Failed fetch messages",
    "OffsetCommit failed",
    "LeaveGroup request failed",
    "not found in cluster metadata",
)
# aiokafka records about what the adapter reports itself, in its own words: dropped.
_REPORTED_BY_US = ("Unexpected error during InitProducerIdRequest",)
_QUIET_FOR = 30.0


def describe_kafka_error(error: BaseException) -> str:
    """An aiokafka error in a line: its name and, when it has one, its description. aiokafka
    gives up with "Unable to bootstrap" and says why only in its log (a refused login, a TLS
    handshake that failed): the last such line of the past minute is added."""
    if type(error).__name__ == "KafkaConnectionError":
        trouble = last_connection_trouble()
        if trouble is not None and trouble not in str(error):
            return f"{_described(error)} (last: {trouble})"
    return _described(error)


@contextmanager
def kafka_operation(seconds: float, what: str, brokers: str) -> Iterator[None]:
    """Bound a Kafka operation by ``seconds``; a timeout, an aiokafka error or an OS error
    becomes ``BrokerUnavailable`` naming ``what`` and the brokers."""
    with broker_deadline(seconds, what, broker=brokers, product="Kafka"):
        try:
            yield
        except (aiokafka.errors.KafkaError, OSError) as exc:
            if isinstance(exc, BrokerUnavailable):
                raise
            raise BrokerUnavailable(
                f"{what} at {brokers} failed: {describe_kafka_error(exc)}", broker=brokers
            ) from exc


def last_connection_trouble(within: float = 60.0) -> str | None:
    """The last connection trouble aiokafka logged in the past ``within`` seconds."""
    last = _RULES.last_trouble
    if last is None or time.monotonic() - last[0] > within:
        return None
    return last[1]


def _described(error: BaseException) -> str:
    description = getattr(error, "description", "") or ""
    text = str(error).strip()
    name = type(error).__name__
    if description and description not in text:
        text = f"{text} ({description})" if text and text != name else description
    if not text or text == name or name in text:
        return text or name
    return f"{name}: {text}"


class _KafkaLogRules(logging.Filter):
    """The filter of ``install_kafka_log_rules`` (one instance on every aiokafka logger)."""

    def __init__(self) -> None:
        super().__init__()
        self._last_reported = float("-inf")
        self.last_trouble: tuple[float, str] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        if any(words in message for words in _REPORTED_BY_US):
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        if not any(words in message for words in _CONNECTION_TROUBLE):
            return True
        now = time.monotonic()
        self.last_trouble = (now, message)
        if now - self._last_reported >= _QUIET_FOR:
            self._last_reported = now
            logger.warning(
                "Kafka connection trouble: %s; reconnecting in the background (the same is "
                "not logged again for %.0fs)",
                message,
                _QUIET_FOR,
            )
        return logging.getLogger().isEnabledFor(logging.DEBUG)


_RULES = _KafkaLogRules()


def install_kafka_log_rules() -> None:
    """Put the filter on aiokafka's loggers (idempotent; stays for the life of the process)."""
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        if _RULES not in library.filters:
            library.addFilter(_RULES)
