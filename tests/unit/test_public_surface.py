"""The public names of each package (changing them is an API change: update this test on purpose)."""

from __future__ import annotations

import importlib

import pytest

SURFACE = {
    "workflow_orchestrator.events": {
        "AMQP_PREFIXES",
        "MAX_EVENT_SIZE",
        "REJECTION_REASON_HEADER",
        "STRUCTURED_CONTENT_TYPE",
        "BrokerError",
        "BrokerState",
        "BrokerUnavailable",
        "CloudEvent",
        "DatabaseEventSource",
        "Delivery",
        "EncodedEvent",
        "EventOutcome",
        "EventProcessing",
        "EventRouter",
        "InvalidEvent",
        "OutboxRelay",
        "OutgoingMessage",
        "PublishFailed",
        "RabbitMQConnection",
        "RabbitMQStatistics",
        "RabbitMQTopology",
        "RouteOutcome",
        "Router",
        "TopologyConflict",
        "event_data_bytes",
        "event_options",
        "event_time",
        "is_json_content_type",
        "open_rabbitmq",
        "parse_amqp_message",
        "parse_http_request",
        "parse_json_event",
        "to_amqp_binary",
        "to_amqp_structured",
        "to_http_binary",
        "to_json",
        "validate_event",
    },
    "workflow_orchestrator.instances": {
        "MAX_ATTEMPTS",
        "DurableEffects",
        "EventOptions",
        "InputInvalid",
        "InstanceActor",
        "InstanceRuntime",
        "Parked",
        "ShapeRegistry",
        "StartRequest",
        "WakeTimers",
        "WorkflowCatalog",
        "correlation_key",
        "expression_limits",
        "runtime_options",
        "secret_from_environment",
        "validation_options",
    },
    "workflow_orchestrator.definitions": {
        "DEFINITION_ID_PATTERN",
        "DefinitionFilesInvalid",
        "InvalidSubmission",
        "SchemaFileError",
        "Submission",
        "check_definition_file",
        "configured_schema",
        "find_definition_files",
        "parse_submission",
        "read_official_schema",
        "schedule_problems",
        "register_definition_files",
        "register_submission",
    },
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
        "ClusterSettings",
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
        "ExpressionSettings",
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
        "RunTaskSettings",
        "SchedulerSettings",
        "ServerSettings",
        "Settings",
        "SyslogAppenderSettings",
        "WorkflowSettings",
        "effective_rows",
        "effective_tree",
        "load_config",
        "mask_url",
        "parse_database_url",
    },
    "workflow_orchestrator.scheduler": {
        "LeaderLease",
        "Leadership",
        "LeadershipLost",
        "ScheduleError",
        "ScheduleLoop",
        "Scheduler",
        "TimerService",
        "validate_schedule",
    },
    "workflow_orchestrator.storage": {
        "DEFAULT_PARTITION_COUNT",
        "INSTANCE_STATUSES",
        "REQUIRED_EXTENSIONS",
        "TERMINAL_STATUSES",
        "WAKE_CHANNEL",
        "Database",
        "DatabaseUnavailable",
        "DefinitionConflict",
        "DefinitionNotFound",
        "DefinitionPage",
        "DefinitionSummary",
        "EmbeddedDatabaseError",
        "EventToRoute",
        "HistoryEntry",
        "HistoryRow",
        "InboxEvent",
        "InstanceCreator",
        "InstanceNotFound",
        "InstancePage",
        "InstanceRecord",
        "InstanceSnapshot",
        "InstanceStart",
        "InvalidCursor",
        "InvalidStatusTransition",
        "Lease",
        "LeaseLost",
        "LeaseSet",
        "Migration",
        "MigrationChecksumMismatch",
        "MigrationError",
        "MigrationReport",
        "MissingExtension",
        "NewInstance",
        "OutgoingEvent",
        "OwnerIdInUse",
        "PartitionLeases",
        "PoolStatistics",
        "ReadStatistics",
        "RecoverableInstance",
        "RegistrationOutcome",
        "RegistrationResult",
        "ReplicaProbe",
        "ReplicaState",
        "ReplicaStatus",
        "RoutedBatch",
        "ScheduleRecord",
        "SchemaStatus",
        "RoutingStale",
        "NotificationListener",
        "DATABASE_ERRORS",
        "SnapshotWriteFailed",
        "SnapshotWriter",
        "SnapshotWriterStatistics",
        "StartSlot",
        "StorageError",
        "StoredDefinition",
        "SubscriptionRow",
        "SubscriptionShape",
        "TickCommit",
        "TimerRow",
        "acquire_partitions",
        "assess_replica",
        "commit_ticks",
        "content_hash",
        "create_instance",
        "default_data_dir",
        "delete_definition",
        "describe_connect_error",
        "definitions_stamp",
        "describe_error",
        "ensure_shape",
        "fetch_retained_events",
        "find_postgres_binaries",
        "get_definition",
        "get_instance",
        "hold_owner_id",
        "instance_history",
        "list_definitions",
        "list_instances",
        "list_recoverable",
        "list_versions",
        "load_instance",
        "load_migrations",
        "load_schedules",
        "load_shapes",
        "migrate",
        "notify_wake",
        "open_database",
        "open_embedded_postgres",
        "partition_of",
        "partitions_per_owner",
        "primary_location",
        "purge_event_records",
        "retry_backoff",
        "register_definition",
        "release_partitions",
        "render_init_sql",
        "renew_partitions",
        "route_batch",
        "run_lease_keeper",
        "schema_status",
        "set_status",
        "tick_idempotency_key",
    },
    "workflow_orchestrator.gateway": {
        "PROBLEM_BASE",
        "PROBLEM_CONTENT_TYPE",
        "HealthReporter",
        "ListenerError",
        "create_api_app",
        "create_management_app",
        "format_duration_ms",
        "format_timestamp",
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
    """Every public error class of the package derives from OrchestratorError.

    Each module is imported and every exception class it defines is checked, so a new error
    that forgets the root fails here. The only exceptions are private control-flow signals
    that never reach a user (they are caught where they are raised), listed by name.
    """
    import importlib
    import inspect
    import pkgutil

    import workflow_orchestrator
    from workflow_orchestrator.errors import OrchestratorError

    signals = {
        "workflow_orchestrator.instances._effects.Parked",  # unwinds a run that parked
        "workflow_orchestrator.dsl.expressions._paths.PathMiss",  # falls back to full jq
        "workflow_orchestrator.storage._event_routing.RoutingStale",  # reloads, then retries
    }
    checked, outside, found = 0, [], set()
    for module_info in pkgutil.walk_packages(
        workflow_orchestrator.__path__, "workflow_orchestrator."
    ):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if not (inspect.isclass(value) and issubclass(value, BaseException)):
                continue
            if value.__module__ != module.__name__ or name.startswith("_"):
                continue
            checked += 1
            qualified = f"{module.__name__}.{name}"
            if qualified in signals:
                found.add(qualified)
            elif not issubclass(value, OrchestratorError):
                outside.append(qualified)
    assert outside == []
    assert found == signals  # the allowance names classes that exist
    assert checked > 30  # the walk really found the package's errors
