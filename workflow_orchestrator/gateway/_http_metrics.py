"""Per-route request counting and latency for a Quart app."""

from __future__ import annotations

import time

from quart import Quart, Response, g, request

from workflow_orchestrator.observability import ServiceMetrics

__all__ = ["install_request_metrics"]


def install_request_metrics(app: Quart, metrics: ServiceMetrics, app_name: str) -> None:
    """Record every request under its route template (``/v1/items/<id>``), or ``unmatched``."""

    @app.before_request
    async def start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    async def observe(response: Response) -> Response:
        started = getattr(g, "request_started", None)
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
            metrics.observe_request(
                app=app_name,
                method=request.method,
                route=rule,
                status=response.status_code,
                seconds=time.perf_counter() - started,
            )
        return response
