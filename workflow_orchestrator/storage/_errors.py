"""Storage errors. Messages name the database as ``user@host:port/db`` and never a password."""

from __future__ import annotations

from workflow_orchestrator.errors import OrchestratorError

__all__ = [
    "DatabaseUnavailable",
    "EmbeddedDatabaseError",
    "MigrationChecksumMismatch",
    "MigrationError",
    "MissingExtension",
    "StorageError",
]


class StorageError(OrchestratorError):
    """Base class of the storage errors."""


class DatabaseUnavailable(StorageError, ConnectionError):
    """PostgreSQL could not be reached or refused the login."""

    def __init__(self, message: str, *, database: str) -> None:
        super().__init__(message)
        self.database = database


class MigrationError(StorageError, RuntimeError):
    """The schema cannot be brought to the version this release needs."""


class MigrationChecksumMismatch(MigrationError):
    """An applied migration's file was changed after it was applied."""

    def __init__(self, message: str, *, version: int) -> None:
        super().__init__(message)
        self.version = version


class MissingExtension(MigrationError):
    """A required PostgreSQL extension is not installed and cannot be created by this user."""

    def __init__(self, message: str, *, extension: str, sql: str) -> None:
        super().__init__(message)
        self.extension = extension
        self.sql = sql


class EmbeddedDatabaseError(StorageError, RuntimeError):
    """The embedded PostgreSQL could not be prepared or started."""
