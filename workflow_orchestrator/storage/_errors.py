"""Storage errors. Messages name the database as ``user@host:port/db`` and never a password."""

from __future__ import annotations

import uuid

from workflow_orchestrator.errors import OrchestratorError

__all__ = [
    "DatabaseUnavailable",
    "DefinitionConflict",
    "DefinitionNotFound",
    "EmbeddedDatabaseError",
    "InstanceNotFound",
    "InvalidStatusTransition",
    "LeaseLost",
    "MigrationChecksumMismatch",
    "MigrationError",
    "MissingExtension",
    "OwnerIdInUse",
    "ReadTimedOut",
    "SnapshotSuperseded",
    "SnapshotWriteFailed",
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


class DefinitionNotFound(StorageError, LookupError):
    """No live definition has this id (and version, when one was asked for)."""

    def __init__(self, message: str, *, definition_id: str, version: str | None = None) -> None:
        super().__init__(message)
        self.definition_id = definition_id
        self.version = version


class DefinitionConflict(StorageError, ValueError):
    """The id and version are registered already, with a different document."""

    def __init__(self, message: str, *, definition_id: str, version: str) -> None:
        super().__init__(message)
        self.definition_id = definition_id
        self.version = version


class InstanceNotFound(StorageError, LookupError):
    """No workflow instance has this id."""

    def __init__(self, message: str, *, instance_id: uuid.UUID) -> None:
        super().__init__(message)
        self.instance_id = instance_id


class InvalidStatusTransition(StorageError, ValueError):
    """A command asked for a status change the instance's current status does not allow."""

    def __init__(
        self, message: str, *, instance_id: uuid.UUID, status: str, requested: str
    ) -> None:
        super().__init__(message)
        self.instance_id = instance_id
        self.status = status
        self.requested = requested


class LeaseLost(StorageError, RuntimeError):
    """A snapshot was fenced: this replica no longer holds its partition's lease (or epoch).

    The caller must stop driving the instance; whoever holds the partition now recovers it from
    its last committed snapshot.
    """

    def __init__(self, message: str, *, instance_id: uuid.UUID, partition: int) -> None:
        super().__init__(message)
        self.instance_id = instance_id
        self.partition = partition


class SnapshotWriteFailed(StorageError, RuntimeError):
    """A snapshot was not committed (database error, timeout, or the writer stopped).

    Whether an interrupted commit took effect is unknown: recover the instance from the database.
    """

    def __init__(self, message: str, *, instance_id: uuid.UUID) -> None:
        super().__init__(message)
        self.instance_id = instance_id


class SnapshotSuperseded(SnapshotWriteFailed):
    """A snapshot was refused because the stored instance is newer than the run that wrote it:
    a command changed its status (cancel, suspend, a forced stop) or it ended.

    Nothing of the snapshot was written. The caller must stop driving the instance quietly (it
    is no failure): the stored ``status`` (at ``stored_version``) stands.
    """

    def __init__(
        self, message: str, *, instance_id: uuid.UUID, status: str, stored_version: int
    ) -> None:
        super().__init__(message, instance_id=instance_id)
        self.status = status
        self.stored_version = stored_version


class OwnerIdInUse(StorageError, RuntimeError):
    """Another live process already runs as this replica id."""

    def __init__(self, message: str, *, owner_id: str) -> None:
        super().__init__(message)
        self.owner_id = owner_id


class ReadTimedOut(StorageError, TimeoutError):
    """An API read ran past ``database.apiStatementTimeout`` or found no free connection of
    the API pool (``database.apiPoolSize``) in that time: the client may retry later."""

    def __init__(self, message: str, *, timeout: float) -> None:
        super().__init__(message)
        self.timeout = timeout
