"""The API app (port 8080, under ``server.contextPath``): definitions and instances API.

Bodies and answers are JSON with camelCase fields; errors are problem+json.
"""

from __future__ import annotations

from quart import Blueprint
from quart_trio import QuartTrio

from workflow_orchestrator.dsl.validation import ValidationOptions
from workflow_orchestrator.gateway._access import AccessPolicy, install_api_access
from workflow_orchestrator.gateway._audit_routes import audit_routes
from workflow_orchestrator.gateway._audit_trail import AuditTrail, install_audit
from workflow_orchestrator.gateway._content_types import install_content_type_checks
from workflow_orchestrator.gateway._definition_routes import definition_routes
from workflow_orchestrator.gateway._event_routes import EventSubmitter, event_routes
from workflow_orchestrator.gateway._http_metrics import install_request_metrics
from workflow_orchestrator.gateway._instance_routes import instance_routes
from workflow_orchestrator.gateway._openapi import openapi_routes
from workflow_orchestrator.gateway._problems import install_problem_handlers
from workflow_orchestrator.gateway._read_timeouts import install_read_timeout_handler
from workflow_orchestrator.gateway._request_checks import install_request_checks
from workflow_orchestrator.instances import InstanceRuntime, InterpreterSource
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.storage import Database

__all__ = ["MAX_BODY_BYTES", "create_api_app"]

MAX_BODY_BYTES = 4 * 1024 * 1024


def create_api_app(
    *,
    database: Database,
    metrics: ServiceMetrics,
    metrics_enabled: bool,
    context_path: str = "/api",
    validation: ValidationOptions | None = None,
    runtime: InstanceRuntime | None = None,
    catalog: InterpreterSource | None = None,
    events: EventSubmitter | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    access: AccessPolicy | None = None,
    audit: AuditTrail | None = None,
) -> QuartTrio:
    """Build the API app with every route under ``context_path``.

    The instances routes exist when an ``InstanceRuntime`` and the ``catalog`` of definition
    interpreters are given, ``POST /v1/events`` when the event router (``events``) is. Reads go
    through ``database.api_reads()`` (their own pool, with a statement timeout: a read that
    runs out of time answers 503); registrations and deletions through ``database``. A body
    over ``max_body_bytes`` (``server.maxRequestSize``) answers 413.

    ``access`` authenticates callers and checks their roles (None: open, as in tests);
    ``audit`` records every change, and serves ``GET /v1/audit-log`` to admins.
    """
    app = QuartTrio("workflow_orchestrator.api", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    install_problem_handlers(app)
    install_read_timeout_handler(app)
    reads = database.api_reads()
    install_request_checks(app)
    install_api_access(app, access or AccessPolicy.open())
    install_content_type_checks(app)
    if audit is not None:
        install_audit(app, audit)
    if metrics_enabled:
        install_request_metrics(app, metrics, "api")
    v1 = Blueprint("v1", __name__, url_prefix=context_path.rstrip("/") + "/v1")
    v1.register_blueprint(definition_routes(database, reads, validation or ValidationOptions()))
    if runtime is not None and catalog is not None:
        v1.register_blueprint(instance_routes(runtime, reads, catalog))
    if events is not None:
        v1.register_blueprint(event_routes(events))
    if audit is not None and audit.database is not None:
        v1.register_blueprint(audit_routes(reads))
    app.register_blueprint(v1)
    app.register_blueprint(openapi_routes(context_path))
    return app
