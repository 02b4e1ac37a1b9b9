"""Gateway: the API app (8080, under ``/api``) and the management app (8081) on hypercorn."""

from workflow_orchestrator.gateway._access import AccessPolicy
from workflow_orchestrator.gateway._api_app import create_api_app
from workflow_orchestrator.gateway._audit_trail import AuditTrail
from workflow_orchestrator.gateway._health import (
    HealthReporter,
    format_duration_ms,
    format_timestamp,
    format_uptime,
)
from workflow_orchestrator.gateway._management_app import create_management_app
from workflow_orchestrator.gateway._problems import (
    PROBLEM_BASE,
    PROBLEM_CONTENT_TYPE,
    problem_response,
)
from workflow_orchestrator.gateway._server import ListenerError, serve_app
from workflow_orchestrator.gateway._supervisor_routes import register_supervisor_routes
from workflow_orchestrator.gateway._tls import (
    ListenersTls,
    ListenerTls,
    TlsFileError,
    configured_tls,
)

__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_CONTENT_TYPE",
    "AccessPolicy",
    "AuditTrail",
    "HealthReporter",
    "ListenerError",
    "ListenerTls",
    "ListenersTls",
    "TlsFileError",
    "configured_tls",
    "create_api_app",
    "create_management_app",
    "format_duration_ms",
    "format_timestamp",
    "format_uptime",
    "problem_response",
    "register_supervisor_routes",
    "serve_app",
]
