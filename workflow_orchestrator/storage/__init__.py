"""Storage: the only package that talks to PostgreSQL (asyncpg behind trio-asyncio).

The core lives here: ``open_database`` owns the pools (the primary's and the read replicas',
whose health ``Database.run_replica_checks`` keeps current); ``migrate``/``schema_status``
manage the schema; ``open_embedded_postgres`` runs a private server when no database is
configured; ``NotificationListener`` keeps a LISTEN; ``PartitionLeases``/``run_lease_keeper``
hold the partition leases; the errors.

The repositories are grouped by audience, each a subpackage speaking its callers' language:
``storage.events`` (routing, subscriptions, the events table, the outbox, wake-ups) and
``storage.scheduling`` (durable timers, schedules, leader leases). The instances audience
(definitions, instances, history, the group-commit ``SnapshotWriter`` and the batching
``InstanceCreator``) is still re-exported from here; see the marked sections below.
"""

from workflow_orchestrator.storage import events, scheduling
from workflow_orchestrator.storage._database import (
    Connection,
    Database,
    open_database,
    primary_location,
)
from workflow_orchestrator.storage._definitions import (
    DefinitionPage,
    DefinitionSummary,
    InvalidCursor,
    RegistrationOutcome,
    RegistrationResult,
    StoredDefinition,
    content_hash,
    delete_definition,
    get_definition,
    list_definitions,
    list_versions,
    register_definition,
)
from workflow_orchestrator.storage._embedded import (
    default_data_dir,
    find_postgres_binaries,
    open_embedded_postgres,
)
from workflow_orchestrator.storage._errors import (
    DatabaseUnavailable,
    DefinitionConflict,
    DefinitionNotFound,
    EmbeddedDatabaseError,
    InstanceNotFound,
    InvalidStatusTransition,
    LeaseLost,
    MigrationChecksumMismatch,
    MigrationError,
    MissingExtension,
    OwnerIdInUse,
    SnapshotWriteFailed,
    StorageError,
)
from workflow_orchestrator.storage._instance_creator import InstanceCreator, NewInstance
from workflow_orchestrator.storage._instances import (
    DEFAULT_PARTITION_COUNT,
    INSTANCE_STATUSES,
    TERMINAL_STATUSES,
    HistoryEntry,
    InboxEvent,
    InstancePage,
    InstanceRecord,
    InstanceStart,
    RecoverableInstance,
    create_instance,
    get_instance,
    instance_history,
    list_instances,
    list_recoverable,
    load_instance,
    partition_of,
    set_status,
)
from workflow_orchestrator.storage._leases import (
    Lease,
    LeaseSet,
    PartitionLeases,
    acquire_partitions,
    hold_owner_id,
    partitions_per_owner,
    release_partitions,
    renew_partitions,
    run_lease_keeper,
)
from workflow_orchestrator.storage._migrations import (
    REQUIRED_EXTENSIONS,
    Migration,
    MigrationReport,
    SchemaStatus,
    load_migrations,
    migrate,
    render_init_sql,
    schema_status,
)
from workflow_orchestrator.storage._notifications import (
    DATABASE_ERRORS,
    NotificationListener,
    describe_error,
    retry_backoff,
)
from workflow_orchestrator.storage._pools import (
    CONNECTION_ERRORS,
    PoolStatistics,
    describe_connect_error,
)
from workflow_orchestrator.storage._replicas import (
    ReadStatistics,
    ReplicaProbe,
    ReplicaState,
    ReplicaStatus,
    assess_replica,
)
from workflow_orchestrator.storage._snapshot_writer import (
    HistoryRow,
    InstanceSnapshot,
    OutgoingEvent,
    SnapshotWriter,
    SnapshotWriterStatistics,
    SubscriptionRow,
    TimerRow,
)
from workflow_orchestrator.storage.events import (
    ensure_shape,
    fetch_retained_events,
    notify_wake,
)

# The core: the database and its pools, replicas, schema, embedded server, notifications,
# partition leases, errors.
__all__ = [
    "CONNECTION_ERRORS",
    "DATABASE_ERRORS",
    "REQUIRED_EXTENSIONS",
    "Connection",
    "Database",
    "DatabaseUnavailable",
    "DefinitionConflict",
    "DefinitionNotFound",
    "EmbeddedDatabaseError",
    "InstanceNotFound",
    "InvalidStatusTransition",
    "Lease",
    "LeaseLost",
    "LeaseSet",
    "Migration",
    "MigrationChecksumMismatch",
    "MigrationError",
    "MigrationReport",
    "MissingExtension",
    "NotificationListener",
    "OwnerIdInUse",
    "PartitionLeases",
    "PoolStatistics",
    "ReadStatistics",
    "ReplicaProbe",
    "ReplicaState",
    "ReplicaStatus",
    "SchemaStatus",
    "SnapshotWriteFailed",
    "StorageError",
    "acquire_partitions",
    "assess_replica",
    "default_data_dir",
    "describe_connect_error",
    "describe_error",
    "find_postgres_binaries",
    "hold_owner_id",
    "load_migrations",
    "migrate",
    "open_database",
    "open_embedded_postgres",
    "partitions_per_owner",
    "primary_location",
    "release_partitions",
    "render_init_sql",
    "renew_partitions",
    "retry_backoff",
    "run_lease_keeper",
    "schema_status",
]

# The audience subpackages (``storage.instances`` joins them: issue 12).
__all__ += ["events", "scheduling"]

# Audience names: the instances audience (definitions, instances, history, snapshot writer,
# instance creator), re-exported here until it moves to ``storage.instances`` (issue 12).
__all__ += [
    "DEFAULT_PARTITION_COUNT",
    "INSTANCE_STATUSES",
    "TERMINAL_STATUSES",
    "DefinitionPage",
    "DefinitionSummary",
    "HistoryEntry",
    "HistoryRow",
    "InboxEvent",
    "InstanceCreator",
    "InstancePage",
    "InstanceRecord",
    "InstanceSnapshot",
    "InstanceStart",
    "InvalidCursor",
    "NewInstance",
    "OutgoingEvent",
    "RecoverableInstance",
    "RegistrationOutcome",
    "RegistrationResult",
    "SnapshotWriter",
    "SnapshotWriterStatistics",
    "StoredDefinition",
    "SubscriptionRow",
    "TimerRow",
    "content_hash",
    "create_instance",
    "delete_definition",
    "get_definition",
    "get_instance",
    "instance_history",
    "list_definitions",
    "list_instances",
    "list_recoverable",
    "list_versions",
    "load_instance",
    "partition_of",
    "register_definition",
    "set_status",
]

# Audience names of ``storage.events`` that ``instances/`` imports from here today; new code
# imports them from ``storage.events`` (issue 12: these go once instances/ does).
__all__ += ["ensure_shape", "fetch_retained_events", "notify_wake"]
