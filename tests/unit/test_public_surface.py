"""The public names of each package (changing them is an API change: update this test on purpose)."""

from __future__ import annotations

import importlib

import pytest

SURFACE = {
    "workflow_orchestrator.actors": {
        "Actor",
        "ActorContext",
        "ActorNotFound",
        "ActorRef",
        "ActorStopped",
        "ActorSystem",
        "AskFailed",
        "AskTimeout",
        "FailureInfo",
        "LifecycleState",
        "MailboxFull",
        "StopKind",
        "StopReason",
        "Terminated",
        "open_actor_system",
    },
    "workflow_orchestrator.supervision": {
        "ActorSpec",
        "Backoff",
        "ChildSnapshot",
        "ChildSpec",
        "ChildStartFailed",
        "DuplicateChild",
        "Restart",
        "RestartIntensityExceeded",
        "RestartStrategy",
        "ServiceSpec",
        "Supervisor",
        "SupervisorSpec",
        "SupervisorStopped",
    },
    "workflow_orchestrator.config": {
        "ENVIRONMENT_OVERRIDES",
        "MASK",
        "PROFILES",
        "ConfigError",
        "ConfigProblem",
        "ConsoleAppenderSettings",
        "DatabaseEndpoint",
        "DatabaseLocation",
        "DatabaseSettings",
        "DefinitionsSettings",
        "DistributedSchedulerSettings",
        "EmbeddedDatabaseSettings",
        "EventProcessingSettings",
        "FileAppenderSettings",
        "InvalidDatabaseURL",
        "KafkaSettings",
        "LoadedConfig",
        "LoggingAppenders",
        "LoggingSettings",
        "MetricsSettings",
        "PrometheusSettings",
        "RabbitMQSettings",
        "RollingPolicy",
        "SchedulerSettings",
        "ServerSettings",
        "Settings",
        "SyslogAppenderSettings",
        "effective_rows",
        "effective_tree",
        "load_config",
        "mask_url",
        "parse_database_url",
    },
    "workflow_orchestrator.storage": {
        "REQUIRED_EXTENSIONS",
        "Database",
        "DatabaseUnavailable",
        "DefinitionPage",
        "DefinitionSummary",
        "EmbeddedDatabaseError",
        "InvalidCursor",
        "Migration",
        "MigrationChecksumMismatch",
        "MigrationError",
        "MigrationReport",
        "MissingExtension",
        "PoolStatistics",
        "SchemaStatus",
        "StorageError",
        "default_data_dir",
        "describe_connect_error",
        "find_postgres_binaries",
        "list_definitions",
        "load_migrations",
        "migrate",
        "open_database",
        "open_embedded_postgres",
        "primary_location",
        "render_init_sql",
        "schema_status",
    },
    "workflow_orchestrator.gateway": {
        "PROBLEM_BASE",
        "PROBLEM_CONTENT_TYPE",
        "HealthReporter",
        "ListenerError",
        "create_api_app",
        "create_management_app",
        "format_duration_ms",
        "format_uptime",
        "problem_response",
        "register_supervisor_routes",
        "serve_app",
    },
    "workflow_orchestrator.observability": {
        "CONTENT_TYPE",
        "TRACE",
        "JsonFormatter",
        "PoolReading",
        "ServiceMetrics",
        "TextFormatter",
        "configure_logging",
        "level_number",
    },
}


@pytest.mark.parametrize("module", sorted(SURFACE))
def test_public_names(module: str) -> None:
    """Each package exports exactly its documented names, and every one of them exists."""
    imported = importlib.import_module(module)
    assert set(imported.__all__) == SURFACE[module]
    for name in imported.__all__:
        assert hasattr(imported, name), name


def test_errors_share_one_root() -> None:
    """Every deliberate error derives from OrchestratorError and the builtin it refines."""
    from workflow_orchestrator.config import ConfigError
    from workflow_orchestrator.errors import OrchestratorError
    from workflow_orchestrator.storage import DatabaseUnavailable, MissingExtension

    assert issubclass(ConfigError, OrchestratorError) and issubclass(ConfigError, ValueError)
    assert issubclass(DatabaseUnavailable, ConnectionError)
    assert issubclass(MissingExtension, OrchestratorError)
