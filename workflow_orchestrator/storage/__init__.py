"""Storage: the only package that talks to PostgreSQL (asyncpg behind trio-asyncio).

The core lives here: ``open_database`` owns the pools (the primary's and the read replicas',
whose health ``Database.run_replica_checks`` keeps current); ``migrate``/``schema_status``
manage the schema; ``open_embedded_postgres`` runs a private server when no database is
configured; ``NotificationListener`` keeps a LISTEN; ``PartitionLeases``/``run_lease_keeper``
hold the partition leases and fence every replica's writes; the errors.

The repositories are grouped by audience, each a subpackage speaking its callers' language
(import their names from the subpackage, not from here):

- ``storage.instances``: instance rows, ``InstanceStatus``, history, the group-commit
  ``SnapshotWriter`` and the batching ``InstanceCreator``;
- ``storage.definitions``: register, read, list and delete definitions;
- ``storage.events``: routing, subscriptions, the events table, the outbox, wake-ups;
- ``storage.scheduling``: durable timers, schedules, leader leases.
"""

from workflow_orchestrator.storage import definitions, events, instances, scheduling
from workflow_orchestrator.storage._audit import (
    AuditEntry,
    AuditPage,
    append_audit_entries,
    delete_audit_entries_before,
    list_audit_entries,
)
from workflow_orchestrator.storage._database import (
    Connection,
    Database,
    open_database,
    primary_location,
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
    ReadTimedOut,
    SnapshotSuperseded,
    SnapshotWriteFailed,
    StorageError,
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
from workflow_orchestrator.storage._row_errors import ROW_ERRORS
from workflow_orchestrator.storage._storable import (
    MAX_JSON_DEPTH,
    Unstorable,
    check_depth,
    check_storable,
    check_text,
    storable_json,
)

__all__ = [
    "CONNECTION_ERRORS",
    "DATABASE_ERRORS",
    "MAX_JSON_DEPTH",
    "REQUIRED_EXTENSIONS",
    "ROW_ERRORS",
    "AuditEntry",
    "AuditPage",
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
    "ReadTimedOut",
    "ReplicaProbe",
    "ReplicaState",
    "ReplicaStatus",
    "SchemaStatus",
    "SnapshotSuperseded",
    "SnapshotWriteFailed",
    "StorageError",
    "Unstorable",
    "acquire_partitions",
    "append_audit_entries",
    "assess_replica",
    "check_depth",
    "check_storable",
    "check_text",
    "default_data_dir",
    "definitions",
    "delete_audit_entries_before",
    "describe_connect_error",
    "describe_error",
    "events",
    "find_postgres_binaries",
    "hold_owner_id",
    "instances",
    "list_audit_entries",
    "load_migrations",
    "migrate",
    "open_database",
    "open_embedded_postgres",
    "partitions_per_owner",
    "primary_location",
    "release_partitions",
    "render_init_sql",
    "renew_partitions",
    "run_lease_keeper",
    "scheduling",
    "schema_status",
    "storable_json",
]
