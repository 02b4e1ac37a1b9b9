"""What event sources hand to the router, and what they get back.

A source (RabbitMQ, the database's ``events`` table, ``POST /api/v1/events``) parses what it
receives into `CloudEvent`s and calls ``Router.route`` with a batch. ``route`` returns once
everything the batch causes (deduplication records, instances started, events delivered to
waiting instances, retained unmatched events) is committed in ONE transaction; only then does
the source acknowledge (ack the deliveries, answer the HTTP request). ``consume`` lets a source
add its own statements to that transaction (the database source deletes the rows it claimed),
so the source's bookkeeping commits or rolls back with the routing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import attrs

from workflow_orchestrator.dsl.runtime import CloudEvent

__all__ = ["Consume", "EventOutcome", "RouteOutcome", "Router"]

# Runs on the asyncio side inside the routing transaction, with its asyncpg connection.
Consume = Callable[[Any], Awaitable[None]]


@attrs.frozen(kw_only=True)
class EventOutcome:
    """What one event of a batch caused."""

    duplicate: bool
    delivered: int = 0  # waiting instances it was delivered to
    started: tuple[str, ...] = ()  # instance ids started by ``schedule.on``


@attrs.frozen(kw_only=True)
class RouteOutcome:
    """The outcomes of a batch, in the order of its events."""

    events: tuple[EventOutcome, ...]


class Router(Protocol):
    """The event router as sources see it."""

    async def route(
        self, events: Sequence[CloudEvent], *, source: str, consume: Consume | None = None
    ) -> RouteOutcome:
        """Route ``events`` (from source kind ``source``: rabbitmq, database or http) in one
        transaction; raises on a database error (nothing was committed: retry or redeliver)."""
        ...
