"""How a broker source routes one batch: retried while the database is away, split when
PostgreSQL refuses one event's data (``_refusals``).

``route_or_refuse`` routes the batch's events in one transaction and returns what the source
may acknowledge or commit, and the events to dead-letter with their reasons:

- a database failure (a lost connection, a failover) is retried with a bounded backoff, the
  deliveries still unacknowledged (a WARNING on the first failure, an INFO line when it works
  again): a crash meanwhile leaves them with the broker, which hands them out again, and the
  router's deduplication drops what was committed already;
- when PostgreSQL refuses the batch because of one event's data, retrying it would block the
  source for ever: the events are routed one at a time (each still retried while the database
  is away), and an event refused alone is returned with the refusal as its reason.

The RabbitMQ and Kafka sources use it; ``item`` is whatever the source acknowledges (a
delivery, a record).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TypeVar

import trio

from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.events._refusals import REFUSED_BY_DATA, refusal_reason
from workflow_orchestrator.events._routing import Router
from workflow_orchestrator.retrying import RetryBackoff
from workflow_orchestrator.storage import describe_error

__all__ = ["Refused", "route_or_refuse", "route_until_done"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_RETRY_INITIAL = 0.2
_RETRY_MAX = 5.0

#: An item refused alone, its event and the dead-letter reason.
Refused = tuple[T, CloudEvent, str]


async def route_until_done(
    router: Router, events: Sequence[CloudEvent], *, source: str, broker: str
) -> Exception | None:
    """Route ``events``, retrying database failures with backoff; returns the error when
    PostgreSQL refused the batch's data instead (nothing was committed). ``source`` is the
    router's source label, ``broker`` the name in log lines (RabbitMQ, Kafka)."""
    backoff = RetryBackoff(initial=_RETRY_INITIAL, maximum=_RETRY_MAX)
    while True:
        try:
            await router.route(events, source=source)
        except REFUSED_BY_DATA as exc:  # retrying the same batch would fail the same way
            return exc
        except Exception as exc:  # database errors: retry; nothing was committed
            delay = backoff.failed()
            if backoff.failures == 1:
                logger.warning(
                    "routing %d events from %s failed (%s: %s); retrying, the messages stay "
                    "unacknowledged",
                    len(events),
                    broker,
                    type(exc).__name__,
                    exc,
                )
            await trio.sleep(delay)
            continue
        failures = backoff.succeeded()
        if failures:
            logger.info("routing from %s works again after %d failures", broker, failures)
        return None


async def route_or_refuse(
    router: Router,
    events: Sequence[CloudEvent],
    items: Sequence[T],
    *,
    source: str,
    broker: str,
) -> tuple[list[T], list[Refused[T]]]:
    """Route ``events`` (one per item, same order); the items routed, and those whose event
    PostgreSQL refused alone with the reason (see the module docstring)."""
    refused = await route_until_done(router, events, source=source, broker=broker)
    if refused is None:
        return list(items), []
    if len(events) > 1:
        logger.warning(
            "routing %d events from %s one at a time to find the one PostgreSQL refuses (%s)",
            len(events),
            broker,
            describe_error(refused),
        )
    routed: list[T] = []
    rejected: list[Refused[T]] = []
    for event, item in zip(events, items, strict=True):
        alone = (
            refused
            if len(events) == 1
            else await route_until_done(router, [event], source=source, broker=broker)
        )
        if alone is None:
            routed.append(item)
        else:
            rejected.append((item, event, refusal_reason(alone)))
    return routed, rejected
