"""The audit log table: append batches of entries, read pages newest first, delete old ones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from workflow_orchestrator.storage._database import Connection, Database

__all__ = [
    "AuditEntry",
    "AuditPage",
    "append_audit_entries",
    "delete_audit_entries_before",
    "list_audit_entries",
]


@attrs.frozen(kw_only=True)
class AuditEntry:
    """One change asked of the API; ``seq`` is 0 until stored."""

    at: datetime
    principal: str
    via: str
    action: str
    target: str
    namespace: str | None
    status: int
    outcome: str
    remote: str = ""
    request_id: str = ""
    details: dict[str, Any] = attrs.field(factory=dict)
    seq: int = 0


@attrs.frozen(kw_only=True)
class AuditPage:
    """Entries newest first; ``next_cursor`` (a ``seq``) reads the older ones."""

    items: tuple[AuditEntry, ...]
    next_cursor: int | None


async def append_audit_entries(database: Database, entries: Sequence[AuditEntry]) -> None:
    """Store ``entries`` in one statement."""
    if not entries:
        return

    async def work(connection: Connection) -> None:
        await connection.executemany(
            "INSERT INTO audit_log (at, principal, via, action, target, namespace, status, "
            "outcome, remote, request_id, details) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)",
            [
                (
                    e.at,
                    e.principal,
                    e.via,
                    e.action,
                    e.target,
                    e.namespace,
                    e.status,
                    e.outcome,
                    e.remote,
                    e.request_id,
                    e.details,
                )
                for e in entries
            ],
        )

    await database.run(work)


async def list_audit_entries(
    database: Database,
    *,
    limit: int = 100,
    before_seq: int | None = None,
    principal: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
) -> AuditPage:
    """A page of entries matching the filters, newest first."""

    async def work(connection: Connection) -> list[Any]:
        return list(
            await connection.fetch(
                "SELECT seq, at, principal, via, action, target, namespace, status, outcome, "
                "remote, request_id, details FROM audit_log "
                "WHERE ($1::bigint IS NULL OR seq < $1) AND ($2::text IS NULL OR principal = $2) "
                "AND ($3::text IS NULL OR action = $3) AND ($4::timestamptz IS NULL OR at >= $4) "
                "ORDER BY seq DESC LIMIT $5",
                before_seq,
                principal,
                action,
                since,
                limit + 1,
            )
        )

    rows = await database.run(work, read_only=True)
    items = tuple(
        AuditEntry(
            seq=r["seq"],
            at=r["at"],
            principal=r["principal"],
            via=r["via"],
            action=r["action"],
            target=r["target"],
            namespace=r["namespace"],
            status=r["status"],
            outcome=r["outcome"],
            remote=r["remote"],
            request_id=r["request_id"],
            details=r["details"],
        )
        for r in rows[:limit]
    )
    more = len(rows) > limit
    return AuditPage(items=items, next_cursor=items[-1].seq if more and items else None)


async def delete_audit_entries_before(database: Database, moment: datetime, limit: int) -> int:
    """Delete at most ``limit`` entries older than ``moment``; how many went."""

    async def work(connection: Connection) -> int:
        status = await connection.execute(
            "DELETE FROM audit_log WHERE seq IN "
            "(SELECT seq FROM audit_log WHERE at < $1 ORDER BY seq LIMIT $2)",
            moment,
            limit,
        )
        return int(str(status).rsplit(" ", 1)[-1])

    return await database.run(work)
