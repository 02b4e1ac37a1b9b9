"""Storage: the only package that talks to PostgreSQL (asyncpg behind trio-asyncio).

``open_database`` owns the pools; ``migrate``/``schema_status`` manage the schema;
``open_embedded_postgres`` runs a private server when no database is configured.
"""

from workflow_orchestrator.storage._database import (
    Database,
    PoolStatistics,
    describe_connect_error,
    open_database,
    primary_location,
)
from workflow_orchestrator.storage._definitions import (
    DefinitionPage,
    DefinitionSummary,
    InvalidCursor,
    list_definitions,
)
from workflow_orchestrator.storage._embedded import (
    default_data_dir,
    find_postgres_binaries,
    open_embedded_postgres,
)
from workflow_orchestrator.storage._errors import (
    DatabaseUnavailable,
    EmbeddedDatabaseError,
    MigrationChecksumMismatch,
    MigrationError,
    MissingExtension,
    StorageError,
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

__all__ = [
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
]
