"""``GET /v1/audit-log``: the audit log, newest first (admins only).

Query parameters: ``limit`` (1-500, default 100), ``cursor`` (the ``nextCursor`` of the
previous page), ``principal``, ``action`` (``definition.register``, ``instance.cancel``, ...)
and ``since`` (an ISO 8601 time).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from quart import Blueprint, Response, request

from workflow_orchestrator.gateway._definition_routes import page_size
from workflow_orchestrator.gateway._json import json_response
from workflow_orchestrator.gateway._problems import ProblemError
from workflow_orchestrator.storage import AuditEntry, Database, list_audit_entries

__all__ = ["audit_routes"]

DEFAULT_AUDIT_PAGE = 100


def _entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "principal": entry.principal,
        "via": entry.via,
        "action": entry.action,
        "target": entry.target or None,
        "namespace": entry.namespace,
        "status": entry.status,
        "outcome": entry.outcome,
        "remote": entry.remote or None,
        "requestId": entry.request_id or None,
        "details": entry.details,
    }


def _bad(parameter: str, detail: str) -> ProblemError:
    return ProblemError(
        400, "invalid-query-parameter", "Invalid Query Parameter", detail, parameter=parameter
    )


def audit_routes(reads: Database) -> Blueprint:
    """The audit-log blueprint (mounted under ``<contextPath>/v1``)."""
    routes = Blueprint("audit", __name__, url_prefix="/audit-log")

    @routes.get("")
    async def listing() -> Response:
        limit = page_size(request.args.get("limit"), DEFAULT_AUDIT_PAGE)
        if isinstance(limit, Response):
            return limit
        cursor = request.args.get("cursor")
        if cursor is not None and not (cursor.isascii() and cursor.isdigit() and len(cursor) < 19):
            raise _bad("cursor", "cursor must be the nextCursor of a previous page")
        since_text = request.args.get("since")
        since = None
        if since_text is not None:
            try:
                since = datetime.fromisoformat(since_text)
            except ValueError:
                raise _bad(
                    "since", "since must be an ISO 8601 time such as 2026-01-31T12:00:00Z"
                ) from None
            if since.tzinfo is None:
                raise _bad("since", "since needs a time zone, such as Z or +01:00")
        page = await list_audit_entries(
            reads,
            limit=limit,
            before_seq=int(cursor) if cursor else None,
            principal=(request.args.get("principal") or None),
            action=(request.args.get("action") or None),
            since=since,
        )
        return json_response(
            {
                "items": [_entry_json(e) for e in page.items],
                "nextCursor": str(page.next_cursor) if page.next_cursor is not None else None,
            }
        )

    return routes
