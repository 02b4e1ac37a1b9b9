"""Typed, immutable settings: the shape of ``application.yaml``.

Every class here mirrors one mapping of the YAML file. Python names are snake_case; the YAML key
of a field is its camelCase spelling (``management_port`` is ``managementPort``) unless the field's
metadata names another. Field metadata also carries the value kind used by the converter
(``duration`` such as ``"30s"``, ``size`` such as ``"100MB"``, ``secret`` for values never shown)
and the allowed choices of enumerated strings.
"""

from __future__ import annotations

import logging.handlers

import attrs

from workflow_orchestrator.config._call_settings import CallSettings, ContainerSettings
from workflow_orchestrator.config._kafka_settings import KafkaSettings
from workflow_orchestrator.config._meta import setting as _meta
from workflow_orchestrator.config._security_settings import SecuritySettings, TlsSettings

__all__ = [
    "ClusterSettings",
    "ConsoleAppenderSettings",
    "DatabaseEndpoint",
    "DatabaseSettings",
    "DefinitionsSettings",
    "DistributedSchedulerSettings",
    "EmbeddedDatabaseSettings",
    "EventProcessingSettings",
    "ExpressionSettings",
    "FileAppenderSettings",
    "LimitSettings",
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
]


_SYSLOG_FACILITIES = tuple(sorted(logging.handlers.SysLogHandler.facility_names))
_PORT = _meta(minimum=1, maximum=65535, help="a TCP port number between 1 and 65535")


@attrs.frozen(kw_only=True)
class ServerSettings:
    """The two HTTP listeners: the API and the management port."""

    host: str = attrs.field(default="0.0.0.0", metadata=_meta(help="the address to listen on"))
    port: int = attrs.field(default=8080, metadata=_PORT)
    management_port: int = attrs.field(default=8081, metadata=_PORT)
    # The management port's address; empty means ``host``.
    management_host: str = attrs.field(
        default="", metadata=_meta(help="the address of the management port; empty: as host")
    )
    # HTTPS on both listeners (``managementTls`` overrides it for the management port).
    tls: TlsSettings = attrs.field(factory=TlsSettings)
    management_tls: TlsSettings | None = None
    # Host header values the service answers (``example.com``, ``*.example.com``, with or
    # without a port); empty answers any. Probes (/health/live, /health/ready) are exempt.
    allowed_hosts: tuple[str, ...] = ()
    context_path: str = attrs.field(
        default="/api", metadata=_meta(help="a URL path prefix starting with '/', e.g. /api")
    )
    shutdown_grace_period: float = attrs.field(
        default=30.0,
        metadata=_meta(kind="duration", minimum=0, help="a duration such as 30s"),
    )
    # A long poll (?wait=) wakes on the instance's commit here; it re-reads the instance only
    # this often, for instances that end on another replica.
    long_poll_recheck_interval: float = attrs.field(
        default=10.0,
        metadata=_meta(kind="duration", minimum=0.1, help="a duration such as 10s"),
    )
    # Service processes on this machine: an integer >= 1 or ``auto`` (the usable CPUs). More
    # than one runs them under a small parent process, each a replica sharing both ports.
    workers: str = attrs.field(
        default="1",
        metadata=_meta(kind="workers", help="an integer >= 1 or auto (one per usable CPU)"),
    )
    # The largest request body the API reads (definitions, starts, events); larger is a 413.
    max_request_size: int = attrs.field(
        default=4 * 1024 * 1024,
        metadata=_meta(
            kind="size", minimum=1024, maximum=1024**3, help="a size such as 4MB (at most 1GB)"
        ),
    )


_POOL_SIZE = _meta(minimum=1, maximum=1000, help="a number of connections >= 1")
READ_PREFERENCES = ("PRIMARY", "PREFER_REPLICA")


@attrs.frozen(kw_only=True)
class DatabaseEndpoint:
    """One PostgreSQL server (the primary or a read replica) and the size of its pool.

    ``pool_size`` None means "as ``database.poolSize``"; ``load_config`` fills it in, so loaded
    settings always carry the size each pool gets.
    """

    url: str = attrs.field(
        default="", metadata=_meta(help="a PostgreSQL URL such as jdbc:postgresql://host:5432/db")
    )
    pool_size: int | None = attrs.field(default=None, metadata=_POOL_SIZE)


def _default_read_preference(database: DatabaseSettings) -> str:
    # Configuring replicas is asking for reads from them (the guide's production profile lists
    # readReplicas and says nothing more); without any, there is nothing else to read from.
    return "PREFER_REPLICA" if database.replica_urls else "PRIMARY"


@attrs.frozen(kw_only=True)
class EmbeddedDatabaseSettings:
    """The private PostgreSQL started when no ``database.url`` is configured."""

    enabled: bool = attrs.field(default=True, metadata=_meta(help="true or false"))
    data_dir: str = attrs.field(
        default="",
        metadata=_meta(help="a directory; empty means the user's state directory"),
    )
    port: int = attrs.field(
        default=0, metadata=_meta(minimum=0, maximum=65535, help="a TCP port; 0 picks a free one")
    )


@attrs.frozen(kw_only=True)
class DatabaseSettings:
    """PostgreSQL: the primary, optional read replicas, and the pool."""

    url: str = attrs.field(
        default="",
        metadata=_meta(
            help="a PostgreSQL URL such as jdbc:postgresql://host:5432/db; empty starts the "
            "embedded database",
        ),
    )
    username: str = attrs.field(default="", metadata=_meta(help="a PostgreSQL role name"))
    password: str = attrs.field(default="", metadata=_meta(secret=True, help="a password"))
    pool_size: int = attrs.field(default=20, metadata=_POOL_SIZE)
    connect_timeout: float = attrs.field(
        default=10.0, metadata=_meta(kind="duration", minimum=0.1, help="a duration such as 10s")
    )
    migrate_on_startup: bool = attrs.field(default=True, metadata=_meta(help="true or false"))
    primary: DatabaseEndpoint = attrs.field(factory=DatabaseEndpoint)
    replicas: tuple[DatabaseEndpoint, ...] = ()
    read_replicas: tuple[DatabaseEndpoint, ...] = ()
    read_preference: str = attrs.field(
        default=attrs.Factory(_default_read_preference, takes_self=True),
        metadata=_meta(choices=READ_PREFERENCES),
    )
    max_replica_lag: float = attrs.field(
        default=10.0,
        metadata=_meta(kind="duration", minimum=0, help="a duration such as 10s (0s: caught up)"),
    )
    replica_check_interval: float = attrs.field(
        default=2.0,
        metadata=_meta(kind="duration", minimum=0.05, help="a duration such as 2s (at least 50ms)"),
    )
    embedded: EmbeddedDatabaseSettings = attrs.field(factory=EmbeddedDatabaseSettings)
    # The API's reads have their own small pool on the primary, with a statement timeout, so
    # slow or abusive reads cannot take the connections the snapshot writer needs.
    api_pool_size: int = attrs.field(default=5, metadata=_POOL_SIZE)
    api_statement_timeout: float = attrs.field(
        default=5.0,
        metadata=_meta(kind="duration", minimum=0.01, help="a duration such as 5s"),
    )

    @property
    def primary_url(self) -> str:
        """The primary's URL: ``database.primary.url`` when set, else ``database.url``."""
        return self.primary.url or self.url

    @property
    def primary_pool_size(self) -> int:
        """The primary pool's maximum: ``database.primary.poolSize``, else ``database.poolSize``."""
        return self.primary.pool_size or self.pool_size

    @property
    def replica_endpoints(self) -> tuple[DatabaseEndpoint, ...]:
        """Read replicas from ``database.replicas`` and ``database.readReplicas``, in that
        order, each with its pool size (its own, else ``database.poolSize``)."""
        return tuple(
            attrs.evolve(r, pool_size=r.pool_size or self.pool_size)
            for r in (*self.replicas, *self.read_replicas)
            if r.url
        )

    @property
    def replica_urls(self) -> tuple[str, ...]:
        """The URLs of ``replica_endpoints``."""
        return tuple(r.url for r in (*self.replicas, *self.read_replicas) if r.url)


@attrs.frozen(kw_only=True)
class RabbitMQSettings:
    """RabbitMQ source settings."""

    url: str = attrs.field(
        default="amqp://guest:guest@localhost:5672/",
        metadata=_meta(help="an AMQP URL such as amqp://user:password@host:5672/vhost"),
    )
    exchanges: tuple[str, ...] = ("business-events", "system-events")
    queue: str = "workflow-orchestrator"
    prefetch: int = attrs.field(
        default=100, metadata=_meta(minimum=1, maximum=65535, help="a message count >= 1")
    )
    quorum_queues: bool = False
    heartbeat: float = attrs.field(
        default=30.0, metadata=_meta(kind="duration", minimum=1.0, help="a duration such as 30s")
    )


@attrs.frozen(kw_only=True)
class EventProcessingSettings:
    """Where business events come from."""

    source: str = attrs.field(
        default="database", metadata=_meta(choices=("database", "rabbitmq", "kafka"))
    )
    kafka: KafkaSettings = attrs.field(factory=KafkaSettings)
    rabbitmq: RabbitMQSettings = attrs.field(factory=RabbitMQSettings)
    deduplication_window: float = attrs.field(
        default=86_400.0,
        metadata=_meta(kind="duration", minimum=1.0, help="a duration such as 24h"),
    )
    unmatched_retention: float = attrs.field(
        default=0.0,
        metadata=_meta(kind="duration", minimum=0.0, help="a duration such as 5m (0s: off)"),
    )
    task_events: bool = True
    poll_interval: float = attrs.field(
        default=1.0,
        metadata=_meta(kind="duration", minimum=0.01, help="a duration such as 1s"),
    )
    ready_requires_broker: bool = False
    # Issue 13: the time one event's correlation and filter expressions may take in the router.
    correlation_budget: float = attrs.field(
        default=2.0,
        metadata=_meta(kind="duration", minimum=0.01, help="a duration such as 2s"),
    )


@attrs.frozen(kw_only=True)
class DistributedSchedulerSettings:
    """Leader election of the schedule-firing loop across replicas."""

    enabled: bool = False
    locking_mechanism: str = attrs.field(default="database", metadata=_meta(choices=("database",)))
    leader_election_interval: float = attrs.field(
        default=30.0, metadata=_meta(kind="duration", minimum=0.1, help="a duration such as 30s")
    )


@attrs.frozen(kw_only=True)
class SchedulerSettings:
    """Durable timers and schedules."""

    enabled: bool = True
    thread_pool_size: int = attrs.field(
        default=10, metadata=_meta(minimum=1, maximum=10_000, help="a number >= 1")
    )
    distributed: DistributedSchedulerSettings = attrs.field(factory=DistributedSchedulerSettings)
    timezone: str = attrs.field(
        default="UTC", metadata=_meta(help="an IANA time zone such as Europe/Paris")
    )
    overlap_policy: str = attrs.field(
        default="allow", metadata=_meta(choices=("allow", "skip", "buffer-one"))
    )
    catch_up: str = attrs.field(default="one", metadata=_meta(choices=("none", "one", "all")))
    catch_up_limit: int = attrs.field(
        default=100, metadata=_meta(minimum=1, maximum=100_000, help="a number >= 1")
    )
    poll_interval: float = attrs.field(
        default=1.0, metadata=_meta(kind="duration", minimum=0.01, help="a duration such as 1s")
    )


@attrs.frozen(kw_only=True)
class ConsoleAppenderSettings:
    """Log lines on standard error."""

    enabled: bool = True
    format: str = attrs.field(default="text", metadata=_meta(choices=("text", "json")))


@attrs.frozen(kw_only=True)
class RollingPolicy:
    """When a log file rolls over and how many old files are kept."""

    max_size: int = attrs.field(
        default=100 * 1024 * 1024,
        metadata=_meta(kind="size", minimum=1024, help="a size such as 100MB"),
    )
    max_history: int = attrs.field(
        default=30, metadata=_meta(minimum=1, maximum=10_000, help="a number of old files >= 1")
    )


@attrs.frozen(kw_only=True)
class FileAppenderSettings:
    """Log lines in a size-rolling file."""

    enabled: bool = False
    path: str = "/var/log/workflow-orchestrator/service.log"
    format: str = attrs.field(default="text", metadata=_meta(choices=("text", "json")))
    rolling_policy: RollingPolicy = attrs.field(factory=RollingPolicy)


@attrs.frozen(kw_only=True)
class SyslogAppenderSettings:
    """Log lines sent to a syslog server."""

    enabled: bool = False
    host: str = "localhost"
    port: int = attrs.field(default=514, metadata=_PORT)
    protocol: str = attrs.field(default="udp", metadata=_meta(choices=("udp", "tcp")))
    facility: str = attrs.field(default="user", metadata=_meta(choices=_SYSLOG_FACILITIES))


@attrs.frozen(kw_only=True)
class LoggingAppenders:
    """All log destinations."""

    console: ConsoleAppenderSettings = attrs.field(factory=ConsoleAppenderSettings)
    file: FileAppenderSettings = attrs.field(factory=FileAppenderSettings)
    syslog: SyslogAppenderSettings = attrs.field(factory=SyslogAppenderSettings)


@attrs.frozen(kw_only=True)
class LoggingSettings:
    """Log level and destinations."""

    level: str = attrs.field(
        default="INFO",
        metadata=_meta(choices=("TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL")),
    )
    appenders: LoggingAppenders = attrs.field(factory=LoggingAppenders)


@attrs.frozen(kw_only=True)
class PrometheusSettings:
    """The Prometheus exposition endpoint."""

    enabled: bool = True


@attrs.frozen(kw_only=True)
class MetricsSettings:
    """Metrics collection."""

    enabled: bool = True
    prometheus: PrometheusSettings = attrs.field(factory=PrometheusSettings)


@attrs.frozen(kw_only=True)
class DefinitionsSettings:
    """Workflow definitions: those registered at startup, and how they are validated.

    ``schema`` is the path of the official DSL 1.0.3 JSON schema (``workflow.yaml``), an
    optional extra check on top of the service's own validation; empty means none.
    ``max_expanded_size``, ``max_expressions`` and ``validation_timeout`` bound what one
    definition may cost to read and check (every definition is untrusted).
    """

    paths: tuple[str, ...] = ()
    schema: str = attrs.field(
        default="",
        metadata=_meta(help="the path of the Serverless Workflow 1.0.3 workflow.yaml, or empty"),
    )
    max_expanded_size: int = attrs.field(
        default=4 * 1024 * 1024,
        metadata=_meta(kind="size", minimum=1024, help="a size such as 4MB"),
    )
    max_expressions: int = attrs.field(
        default=2000,
        metadata=_meta(minimum=1, maximum=1_000_000, help="a number of expressions such as 2000"),
    )
    validation_timeout: float = attrs.field(
        default=10.0,
        metadata=_meta(kind="duration", minimum=0.1, help="a duration such as 10s"),
    )


@attrs.frozen(kw_only=True)
class ExpressionSettings:
    """Limits of one runtime-expression evaluation (jq): a runaway one fails, others go on."""

    cpu_budget: float = attrs.field(
        default=1.0,
        metadata=_meta(kind="duration", minimum=0.01, help="a duration such as 1s or 500ms"),
    )
    max_output_size: int = attrs.field(
        default=10 * 1024 * 1024,
        metadata=_meta(kind="size", minimum=1024, help="a size such as 10MB"),
    )
    max_memory: int = attrs.field(
        default=512 * 1024 * 1024,
        metadata=_meta(kind="size", minimum=0, help="a size such as 512MB (0: no cap)"),
    )
    workers: int = attrs.field(
        default=2, metadata=_meta(minimum=1, maximum=64, help="a number of processes from 1 to 64")
    )
    # Issue 13 (bounded inputs, fair sandbox): the in-process path only for small inputs, and
    # the evaluations one definition may queue for the sandbox before it waits.
    max_inline_input_size: int = attrs.field(
        default=64 * 1024,
        metadata=_meta(kind="size", minimum=0, help="a size such as 64KB (0: always the sandbox)"),
    )
    max_queued_per_definition: int = attrs.field(
        default=64,
        metadata=_meta(minimum=1, maximum=100_000, help="a number of evaluations from 1 to 100000"),
    )


@attrs.frozen(kw_only=True)
class RunTaskSettings:
    """The DSL's ``run`` tasks: local processes are off unless enabled here."""

    shell: bool = False
    script: bool = False
    timeout: float = attrs.field(
        default=60.0, metadata=_meta(kind="duration", minimum=0.1, help="a duration such as 60s")
    )
    max_output_size: int = attrs.field(
        default=1024 * 1024,
        metadata=_meta(kind="size", minimum=1024, help="a size such as 1MB"),
    )
    # The namespaces whose definitions may run processes (``*``: all) when shell or script is on.
    namespaces: tuple[str, ...] = ("*",)
    # The sandbox of each process (resource limits of the process and what it starts; 0: no
    # limit), how many run at once on this replica, and the interpreters of run.script.
    cpu_time: float = attrs.field(
        default=60.0,
        metadata=_meta(kind="duration", minimum=0, help="a duration such as 60s (0: no limit)"),
    )
    max_memory: int = attrs.field(
        default=512 * 1024 * 1024,
        metadata=_meta(kind="size", minimum=0, help="a size such as 512MB (0: no limit)"),
    )
    max_user_processes: int = attrs.field(
        default=512, metadata=_meta(minimum=0, help="a number of processes (0: no limit)")
    )
    max_open_files: int = attrs.field(
        default=256, metadata=_meta(minimum=0, help="a number of files (0: no limit)")
    )
    max_file_size: int = attrs.field(
        default=64 * 1024 * 1024,
        metadata=_meta(kind="size", minimum=0, help="a size such as 64MB (0: no limit)"),
    )
    concurrency: int = attrs.field(
        default=8,
        metadata=_meta(minimum=1, maximum=10_000, help="a number of processes from 1 to 10000"),
    )
    python: str = attrs.field(
        default="",
        metadata=_meta(help="a path or a command name (empty: the service's own Python)"),
    )
    node: str = attrs.field(default="node", metadata=_meta(help="a path or a command name"))
    container: ContainerSettings = attrs.field(factory=ContainerSettings)


_COUNT_LIMIT = _meta(minimum=0, help="a whole number (0: no limit)")


@attrs.frozen(kw_only=True)
class LimitSettings:
    """Per-instance budgets no sane workflow meets; an instance over one ends ``faulted`` with
    a ``limit-exceeded`` error naming it. ``commitEvery``: a run of tasks without a durable
    effect commits its progress every so many tasks. ``subflowDepth``: the most parents a
    ``run.workflow`` child may have (a workflow that runs itself ends there)."""

    tasks_per_run: int = attrs.field(default=100_000, metadata=_COUNT_LIMIT)
    total_tasks: int = attrs.field(default=1_000_000, metadata=_COUNT_LIMIT)
    state_size: int = attrs.field(
        default=16 * 1024 * 1024,
        metadata=_meta(kind="size", minimum=0, help="a size such as 16MB (0: no limit)"),
    )
    history_rows: int = attrs.field(default=1_000_000, metadata=_COUNT_LIMIT)
    loop_iterations: int = attrs.field(default=100_000, metadata=_COUNT_LIMIT)
    commit_every: int = attrs.field(
        default=1000, metadata=_meta(minimum=1, help="a number of tasks, at least 1")
    )
    subflow_depth: int = attrs.field(default=10, metadata=_COUNT_LIMIT)


@attrs.frozen(kw_only=True)
class WorkflowSettings:
    """How workflows run: expression limits, ``run`` tasks, outbound calls, lifecycle events."""

    expressions: ExpressionSettings = attrs.field(factory=ExpressionSettings)
    run: RunTaskSettings = attrs.field(factory=RunTaskSettings)
    calls: CallSettings = attrs.field(factory=CallSettings)
    http_timeout: float = attrs.field(
        default=30.0, metadata=_meta(kind="duration", minimum=0.1, help="a duration such as 30s")
    )
    # Issue 13 (bounded inputs): the largest response body of an outbound call.
    max_response_size: int = attrs.field(
        default=10 * 1024 * 1024,
        metadata=_meta(kind="size", minimum=1024, help="a size such as 10MB"),
    )
    lifecycle_events: bool = True
    limits: LimitSettings = attrs.field(factory=LimitSettings)
    # Remote documents (schema.resource, OpenAPI documents): body and expanded size.
    max_document_size: int = attrs.field(
        default=10 * 1024 * 1024,
        metadata=_meta(kind="size", minimum=1024, help="a size such as 10MB"),
    )
    # The root URI of the catalog named 'default' (call: name:version@default); "": none.
    default_catalog: str = attrs.field(
        default="",
        metadata=_meta(
            help="a catalog's root URI, e.g. https://github.com/serverlessworkflow/catalog/tree/main"
        ),
    )
    # Capacity (issue 13): live instance actors at once; the rest queue for a slot.
    max_active_instances: int = attrs.field(
        default=10_000,
        metadata=_meta(minimum=1, help="a number of instances at least 1, e.g. 10000"),
    )


@attrs.frozen(kw_only=True)
class ClusterSettings:
    """This replica's identity among the replicas sharing one database."""

    replica_id: str = attrs.field(
        default="",
        metadata=_meta(help="a replica id; empty means the host name"),
    )
    lease_ttl: float = attrs.field(
        default=30.0,
        metadata=_meta(kind="duration", minimum=1.0, help="a duration such as 30s"),
    )


@attrs.frozen(kw_only=True)
class RetentionSettings:
    """How long finished instances (completed, faulted, cancelled) and their rows are kept."""

    completed_instances: float = attrs.field(
        default=30 * 86_400.0,
        metadata=_meta(kind="duration", minimum=0, help="a duration such as 30d (0s: for ever)"),
    )
    sweep_interval: float = attrs.field(
        default=600.0,
        metadata=_meta(kind="duration", minimum=1.0, help="a duration such as 10m"),
    )
    batch_size: int = attrs.field(
        default=500, metadata=_meta(minimum=1, maximum=100_000, help="a number of instances >= 1")
    )


@attrs.frozen(kw_only=True)
class Settings:
    """The whole effective configuration of one service process."""

    server: ServerSettings = attrs.field(factory=ServerSettings)
    database: DatabaseSettings = attrs.field(factory=DatabaseSettings)
    event_processing: EventProcessingSettings = attrs.field(factory=EventProcessingSettings)
    scheduler: SchedulerSettings = attrs.field(factory=SchedulerSettings)
    logging: LoggingSettings = attrs.field(factory=LoggingSettings)
    metrics: MetricsSettings = attrs.field(factory=MetricsSettings)
    definitions: DefinitionsSettings = attrs.field(factory=DefinitionsSettings)
    workflows: WorkflowSettings = attrs.field(factory=WorkflowSettings)
    cluster: ClusterSettings = attrs.field(factory=ClusterSettings)
    retention: RetentionSettings = attrs.field(factory=RetentionSettings)
    security: SecuritySettings = attrs.field(factory=SecuritySettings)
