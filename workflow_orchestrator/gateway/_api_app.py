"""The API app (port 8080, under ``server.contextPath``): definitions and instances API.

Bodies and answers are JSON with camelCase fields; errors are problem+json.
"""

from __future__ import annotations

import json
from typing import Any

from quart import Blueprint, Response, request
from quart_trio import QuartTrio

from workflow_orchestrator.gateway._http_metrics import install_request_metrics
from workflow_orchestrator.gateway._problems import install_problem_handlers, problem_response
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.storage import Database, InvalidCursor, list_definitions

__all__ = ["create_api_app"]

MAX_PAGE_SIZE = 500


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _page_size(raw: str | None, default: int = 50) -> int | Response:
    if raw is None:
        return default
    if raw.isdigit() and 1 <= int(raw) <= MAX_PAGE_SIZE:
        return int(raw)
    return problem_response(
        400,
        "invalid-query-parameter",
        "Invalid Query Parameter",
        f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}, got {raw!r}",
        parameter="limit",
    )


def create_api_app(
    *,
    database: Database,
    metrics: ServiceMetrics,
    metrics_enabled: bool,
    context_path: str = "/api",
) -> QuartTrio:
    """Build the API app with every route under ``context_path``."""
    app = QuartTrio("workflow_orchestrator.api")
    install_problem_handlers(app)
    if metrics_enabled:
        install_request_metrics(app, metrics, "api")
    v1 = Blueprint("v1", __name__, url_prefix=context_path.rstrip("/") + "/v1")

    @v1.get("/workflow-definitions")
    async def definitions() -> Response:
        limit = _page_size(request.args.get("limit"))
        if isinstance(limit, Response):
            return limit
        try:
            page = await list_definitions(
                database,
                limit=limit,
                cursor=request.args.get("cursor") or None,
                namespace=request.args.get("namespace") or None,
                name=request.args.get("name") or None,
                text=request.args.get("text") or None,
            )
        except InvalidCursor as exc:
            return problem_response(
                400, "invalid-cursor", "Invalid Cursor", str(exc), parameter="cursor"
            )
        return _json(
            {
                "items": [
                    {
                        "id": item.definition_id,
                        "namespace": item.namespace,
                        "name": item.name,
                        "version": item.version,
                        "createdAt": item.created_at.isoformat(),
                    }
                    for item in page.items
                ],
                "nextCursor": page.next_cursor,
            }
        )

    app.register_blueprint(v1)
    return app
