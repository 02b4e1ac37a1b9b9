"""Subscription shapes: the distinct (event type, correlation pairs) of ``listen`` filters.

A shape is created when an instance first subscribes with it (``ensure_shape``) and never
deleted, so ``shape_id`` only grows: the router keys events on the shapes it loaded
(``load_shapes``) and ``route_batch`` refuses a batch computed before a newer shape existed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import attrs

from workflow_orchestrator.storage._database import Connection, Database

__all__ = ["SubscriptionShape", "ensure_shape", "load_shapes"]


@attrs.frozen(kw_only=True)
class SubscriptionShape:
    """A distinct (event type, correlation pairs) of listen filters."""

    shape_id: int
    event_type: str
    correlate: tuple[tuple[str, str], ...]


def _canonical(pairs: Sequence[tuple[str, str]]) -> str:
    return json.dumps([list(p) for p in pairs], separators=(",", ":"))


async def ensure_shape(
    database: Database, event_type: str, correlate: Sequence[tuple[str, str]]
) -> int:
    """The id of the shape (created if new); one crossing."""
    text = _canonical(correlate)

    async def work(connection: Connection) -> int:
        await connection.execute(
            "INSERT INTO subscription_shapes (event_type, correlate) VALUES ($1, $2::text::jsonb) "
            "ON CONFLICT (event_type, correlate) DO NOTHING",
            event_type,
            text,
        )
        shape_id: int = await connection.fetchval(
            "SELECT shape_id FROM subscription_shapes "
            "WHERE event_type = $1 AND correlate = $2::text::jsonb",
            event_type,
            text,
        )
        return shape_id

    return await database.run(work)


async def load_shapes(database: Database) -> tuple[SubscriptionShape, ...]:
    """Every subscription shape; one crossing."""
    rows = await database.fetch(
        "SELECT shape_id, event_type, correlate FROM subscription_shapes ORDER BY shape_id"
    )
    return tuple(
        SubscriptionShape(
            shape_id=r["shape_id"],
            event_type=r["event_type"],
            correlate=tuple((str(n), str(f)) for n, f in r["correlate"]),
        )
        for r in rows
    )
