"""RabbitMQ connection trouble in the service's own words: one WARNING per attempt, ours.

aiormq and aio-pika log a failed connection attempt themselves: aiormq an ERROR ("error when
creating transport") for every attempt, which its caller also sees as an exception, and aio-pika's
robust connection a WARNING of its own for every background reconnect attempt (an ERROR when
restoring the channels failed); when a connection drops, aiormq logs the loss with a traceback
and aio-pika an ERROR for each robust channel that tries to reopen on the closed connection. A
broker that is away is an expected condition the service rides out, so ``grep ERROR`` on the
service's log must not find it. ``install_connection_log_rules`` puts a filter on those library
loggers that drops the duplicates and turns the loss and each reconnect attempt into one WARNING
line of this module's logger, naming the broker (``host:port/vhost``, never the credentials)
where the library says which, the error and the delay until the next attempt. Every other record
of the libraries passes unchanged; with the root logger at DEBUG the dropped records pass too,
so nothing is hidden from someone who asked for everything.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

import aio_pika.abc
import aiormq.exceptions
import trio
from yarl import URL

__all__ = ["broker_display", "describe_connection_error", "install_connection_log_rules"]

logger = logging.getLogger(__name__)

# The libraries' own loggers whose connection records are rewritten.
_LIBRARY_LOGGERS = ("aiormq.connection", "aio_pika.robust_connection", "aio_pika.tools")


def broker_display(url: str | URL) -> str:
    """``host:port/vhost`` of an AMQP URL, without credentials."""
    parsed = URL(str(url))
    vhost = parsed.path[1:] or "/"
    return f"{parsed.host}:{parsed.port or 5672}/{vhost}"


def describe_connection_error(exc: BaseException) -> str:
    """A short reason for a failed connection attempt, with what to check."""
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
        return "the broker refused the login (wrong user name or password)"
    refused = isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, aiormq.exceptions.AMQPConnectionError)
        and bool(exc.args)
        and exc.args[0] == errno.ECONNREFUSED
    )
    if refused:
        return "connection refused (is RabbitMQ running and listening on that host and port?)"
    if isinstance(exc, TimeoutError | trio.TooSlowError):
        return "no answer within the connect timeout"
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _broker_of(connection: Any) -> str:
    url = getattr(connection, "url", None)
    return broker_display(url) if url is not None else "the broker"


class _ConnectionLogRules(logging.Filter):
    """The filter of ``install_connection_log_rules`` (one instance per library logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        args = record.args if isinstance(record.args, tuple) else ()
        if message.startswith("error when creating transport"):
            # Raised to the caller as well, which reports it (our connect loop, or aio-pika's
            # reconnect loop below).
            return _keep_for_debugging()
        if message.startswith("Connection attempt to ") and len(args) == 3:
            connection, error, delay = args
            _reconnect_failed(connection, error, delay)
            return _keep_for_debugging()
        if message.startswith("Reconnect attempt failed ") and len(args) == 4:
            connection, _, error, delay = args
            _reconnect_failed(connection, error, delay)
            return _keep_for_debugging()
        if message.startswith("Unexpected connection close from remote") and len(args) == 3:
            connection, code, text = args
            logger.warning(
                "RabbitMQ at %s closed the connection (%s %s); reconnecting",
                _broker_of(connection),
                code,
                text,
            )
            return _keep_for_debugging()
        if message.startswith("Callback ") and args and _is_channel_restore(args[0]):
            # A robust channel trying to reopen on the connection that just dropped; the
            # connection's own reconnect brings it back, and its loss is reported above.
            return _keep_for_debugging()
        if message.startswith("Cancelling cause reader exited abnormally"):
            error = record.exc_info[1] if record.exc_info else None
            reason = describe_connection_error(error) if error is not None else "unknown reason"
            logger.warning("RabbitMQ connection lost (%s); reconnecting", reason)
            return _keep_for_debugging()
        return True


def _is_channel_restore(callback: Any) -> bool:
    """Whether an aio-pika callback is a robust channel's reaction to its connection closing."""
    method = getattr(callback, "callback", None)
    owner = getattr(method, "__self__", None)
    return getattr(method, "__name__", "") == "_on_close" and isinstance(
        owner, aio_pika.abc.AbstractRobustChannel
    )


def _reconnect_failed(connection: Any, error: Any, delay: Any) -> None:
    reason = describe_connection_error(error) if isinstance(error, BaseException) else str(error)
    logger.warning(
        "RabbitMQ at %s: reconnect attempt failed: %s; trying again in %gs",
        _broker_of(connection),
        reason,
        float(delay),
    )


def _keep_for_debugging() -> bool:
    """Let a replaced library record through only when everything is logged (root at DEBUG)."""
    return logging.getLogger().isEnabledFor(logging.DEBUG)


_RULES = _ConnectionLogRules()


def install_connection_log_rules() -> None:
    """Put the filter on aiormq's and aio-pika's connection loggers (idempotent; stays for the
    life of the process, like the loggers)."""
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        if _RULES not in library.filters:
            library.addFilter(_RULES)
