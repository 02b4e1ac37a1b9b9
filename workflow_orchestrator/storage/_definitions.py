"""Reading workflow definitions (registration arrives with the definitions API).

Listing returns the latest live version of each definition id, ordered by id, one page at a
time with an opaque cursor (the last id of the page).
"""

from __future__ import annotations

import base64
from datetime import datetime

import attrs

from workflow_orchestrator.storage._database import Connection, Database

__all__ = ["DefinitionPage", "DefinitionSummary", "InvalidCursor", "list_definitions"]


class InvalidCursor(ValueError):
    """A pagination cursor that this service did not issue."""


@attrs.frozen(kw_only=True)
class DefinitionSummary:
    """The latest version of one registered definition."""

    definition_id: str
    version: str
    namespace: str
    name: str
    created_at: datetime


@attrs.frozen(kw_only=True)
class DefinitionPage:
    """One page of definitions; ``next_cursor`` is None on the last page."""

    items: tuple[DefinitionSummary, ...]
    next_cursor: str | None


def _encode(definition_id: str) -> str:
    return base64.urlsafe_b64encode(definition_id.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursor(
            f"cursor {cursor!r} is not one this service issued; use the nextCursor of a "
            "previous page, or omit it for the first page"
        ) from None


async def list_definitions(
    database: Database,
    *,
    limit: int = 50,
    cursor: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
    text: str | None = None,
) -> DefinitionPage:
    """A page of the latest live version of every definition matching the filters."""
    after = _decode(cursor) if cursor else None

    async def work(connection: Connection) -> list[DefinitionSummary]:
        rows = await connection.fetch(
            """
            SELECT DISTINCT ON (definition_id) definition_id, version, namespace, name, created_at
            FROM workflow_definitions
            WHERE deleted_at IS NULL
              AND ($1::text IS NULL OR definition_id > $1)
              AND ($2::text IS NULL OR namespace = $2)
              AND ($3::text IS NULL OR name = $3)
              AND ($4::text IS NULL
                   OR (definition_id || ' ' || namespace || ' ' || name) ILIKE '%' || $4 || '%')
            ORDER BY definition_id, created_at DESC
            LIMIT $5
            """,
            after,
            namespace,
            name,
            text,
            limit + 1,
        )
        return [
            DefinitionSummary(
                definition_id=r["definition_id"],
                version=r["version"],
                namespace=r["namespace"],
                name=r["name"],
                created_at=r["created_at"],
            )
            for r in rows
        ]

    found = await database.run(work, read_only=True)
    more = len(found) > limit
    items = tuple(found[:limit])
    return DefinitionPage(
        items=items, next_cursor=_encode(items[-1].definition_id) if more and items else None
    )
