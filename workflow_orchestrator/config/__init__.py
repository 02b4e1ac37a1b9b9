"""Configuration: ``application.yaml`` with profiles, ``${VAR}`` interpolation and env overrides.

``load_config()`` returns a ``LoadedConfig`` whose ``settings`` is the typed, frozen ``Settings``
tree, or raises ``ConfigError`` listing every problem with its file, key path and fix.
"""

from workflow_orchestrator.config._database_url import (
    DatabaseLocation,
    InvalidDatabaseURL,
    mask_url,
    parse_database_url,
)
from workflow_orchestrator.config._errors import ConfigError, ConfigProblem
from workflow_orchestrator.config._loader import (
    ENVIRONMENT_OVERRIDES,
    PROFILES,
    LoadedConfig,
    load_config,
)
from workflow_orchestrator.config._settings import (
    ClusterSettings,
    ConsoleAppenderSettings,
    DatabaseEndpoint,
    DatabaseSettings,
    DefinitionsSettings,
    DistributedSchedulerSettings,
    EmbeddedDatabaseSettings,
    EventProcessingSettings,
    ExpressionSettings,
    FileAppenderSettings,
    KafkaSettings,
    LimitSettings,
    LoggingAppenders,
    LoggingSettings,
    MetricsSettings,
    PrometheusSettings,
    RabbitMQSettings,
    RetentionSettings,
    RollingPolicy,
    RunTaskSettings,
    SchedulerSettings,
    ServerSettings,
    Settings,
    SyslogAppenderSettings,
    WorkflowSettings,
)
from workflow_orchestrator.config._show import MASK, effective_rows, effective_tree

__all__ = [
    "ENVIRONMENT_OVERRIDES",
    "MASK",
    "PROFILES",
    "ClusterSettings",
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
    "LimitSettings",
    "LoadedConfig",
    "LoggingAppenders",
    "LoggingSettings",
    "MetricsSettings",
    "PrometheusSettings",
    "RabbitMQSettings",
    "RetentionSettings",
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
]
