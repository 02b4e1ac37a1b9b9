"""The management app (port 8081): health endpoints, Prometheus metrics, supervision tree."""

from __future__ import annotations

import json
from typing import Any

from quart import Response
from quart_trio import QuartTrio

from workflow_orchestrator.actors import ActorSystem
from workflow_orchestrator.gateway._access import AccessPolicy, install_management_access
from workflow_orchestrator.gateway._health import HealthReporter
from workflow_orchestrator.gateway._http_metrics import install_request_metrics
from workflow_orchestrator.gateway._problems import install_problem_handlers, problem_response
from workflow_orchestrator.gateway._supervisor_routes import register_supervisor_routes
from workflow_orchestrator.observability import CONTENT_TYPE, ServiceMetrics

__all__ = ["create_management_app"]


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def create_management_app(
    *,
    health: HealthReporter,
    metrics: ServiceMetrics,
    metrics_enabled: bool,
    system: ActorSystem | None = None,
    access: AccessPolicy | None = None,
) -> QuartTrio:
    """Build the management app. ``/metrics`` answers 404 problem+json when metrics are off;
    otherwise each scrape checks readiness first (as ``/health/ready`` does, bounded by the
    probe timeout) and exports it as ``workflow_orchestrator_ready``. ``/supervisor`` shows
    ``system``'s supervision tree when one is given. ``access`` decides who may read what
    (None: everyone)."""
    app = QuartTrio("workflow_orchestrator.management", static_folder=None)
    install_management_access(app, access or AccessPolicy.open())
    if system is not None:
        group = health.group
        register_supervisor_routes(app, system, replica=group.replica if group else None)
    install_problem_handlers(app)
    if metrics_enabled:
        install_request_metrics(app, metrics, "management")

    @app.get("/health")
    async def overall() -> Response:
        ready, body = await health.detailed()
        return _json({"status": body["status"]}, 200 if ready else 503)

    @app.get("/health/live")
    async def live() -> Response:
        return _json(await health.live())

    @app.get("/health/ready")
    async def ready() -> Response:
        is_ready, body = await health.ready()
        return _json(body, 200 if is_ready else 503)

    @app.get("/health/detailed")
    async def detailed() -> Response:
        is_ready, body = await health.detailed()
        return _json(body, 200 if is_ready else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        if not metrics_enabled:
            return problem_response(
                404,
                "metrics-disabled",
                "Metrics Disabled",
                "metrics are disabled; set metrics.enabled: true (or METRICS_ENABLED=true)",
            )
        is_ready, _ = await health.ready()
        metrics.ready.set(1.0 if is_ready else 0.0)
        return Response(metrics.exposition(), content_type=CONTENT_TYPE)

    return app
