"""The definitions repository: register, read, list and soft-delete workflow definitions.

A definition is identified by ``(definition_id, version)``. Registration is idempotent on
content: ``content_hash`` is the SHA-256 of the document's canonical JSON (sorted keys, no
whitespace), so registering the same document again is a no-op whatever its YAML formatting,
and the same id and version with another document is a ``DefinitionConflict``. Deleting is soft
(``deleted_at``): a deleted definition takes no new starts, but instances already running keep
reading it (``get_definition(..., include_deleted=True)``). "Latest" means most recently
registered live version.

Listing returns the latest live version of each definition id, ordered by id, one page at a
time with an opaque cursor (the last id of the page).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import attrs

from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.storage._database import Connection, Database
from workflow_orchestrator.storage._errors import DefinitionConflict, DefinitionNotFound

__all__ = [
    "DefinitionPage",
    "DefinitionSummary",
    "InvalidCursor",
    "RegistrationOutcome",
    "RegistrationResult",
    "StoredDefinition",
    "content_hash",
    "definition_not_found",
    "delete_definition",
    "get_definition",
    "list_definitions",
    "list_versions",
    "missing_definition",
    "register_definition",
    "resolve_workflow",
]

# How many registered ids a DefinitionNotFound message lists.
_KNOWN_IDS_SHOWN = 10


class InvalidCursor(OrchestratorError, ValueError):
    """A pagination cursor that this service did not issue."""


@attrs.frozen(kw_only=True)
class DefinitionSummary:
    """The latest version of one registered definition."""

    definition_id: str
    version: str
    namespace: str
    name: str
    created_at: datetime


@attrs.frozen(kw_only=True)
class DefinitionPage:
    """One page of definitions; ``next_cursor`` is None on the last page."""

    items: tuple[DefinitionSummary, ...]
    next_cursor: str | None


class RegistrationOutcome(enum.Enum):
    """What ``register_definition`` did."""

    CREATED = "created"
    UNCHANGED = "unchanged"


@attrs.frozen(kw_only=True)
class StoredDefinition:
    """One registered version of a definition, with its document as registered."""

    definition_id: str
    version: str
    namespace: str
    name: str
    document: dict[str, Any] = attrs.field(repr=False)
    source_text: str = attrs.field(repr=False)
    content_hash: str
    created_at: datetime
    deleted_at: datetime | None


@attrs.frozen(kw_only=True)
class RegistrationResult:
    """The outcome of one registration and the stored definition it refers to."""

    outcome: RegistrationOutcome
    definition: StoredDefinition

    @property
    def created(self) -> bool:
        return self.outcome is RegistrationOutcome.CREATED


def content_hash(document: dict[str, Any]) -> str:
    """SHA-256 (hex) of the document's canonical JSON: key order and formatting do not count."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


_COLUMNS = (
    "definition_id, version, namespace, name, document, source_text, content_hash, "
    "created_at, deleted_at"
)


def _stored(row: Any) -> StoredDefinition:
    return StoredDefinition(
        definition_id=row["definition_id"],
        version=row["version"],
        namespace=row["namespace"],
        name=row["name"],
        document=row["document"],
        source_text=row["source_text"],
        content_hash=row["content_hash"],
        created_at=row["created_at"],
        deleted_at=row["deleted_at"],
    )


def _summary(row: Any) -> DefinitionSummary:
    return DefinitionSummary(
        definition_id=row["definition_id"],
        version=row["version"],
        namespace=row["namespace"],
        name=row["name"],
        created_at=row["created_at"],
    )


def missing_definition(
    definition_id: str,
    version: str | None,
    live_versions: Sequence[str],
    live_ids: Sequence[str],
) -> DefinitionNotFound:
    """The error for a missing id or version (no I/O): with a ``version`` and live versions
    of the id, it lists those versions (oldest first); otherwise the live ids, sorted (at
    most ``_KNOWN_IDS_SHOWN`` of them shown; give one more to show that there are more)."""
    if version is not None and live_versions:
        return DefinitionNotFound(
            f"definition {definition_id!r} has no version {version!r}; "
            f"registered versions: {list(live_versions)}",
            definition_id=definition_id,
            version=version,
        )
    shown = repr(list(live_ids[:_KNOWN_IDS_SHOWN]))
    if len(live_ids) > _KNOWN_IDS_SHOWN:
        shown = shown[:-1] + ", ...]"
    return DefinitionNotFound(
        f"definition {definition_id!r} not found; registered: {shown}",
        definition_id=definition_id,
        version=version,
    )


async def definition_not_found(
    connection: Connection, definition_id: str, version: str | None
) -> DefinitionNotFound:
    """The error for a missing id (listing some live ids) or missing version (listing versions)."""
    versions: list[str] = []
    if version is not None:
        versions = [
            r["version"]
            for r in await connection.fetch(
                "SELECT version FROM workflow_definitions WHERE definition_id = $1 "
                "AND deleted_at IS NULL ORDER BY created_at",
                definition_id,
            )
        ]
        if versions:
            return missing_definition(definition_id, version, versions, ())
    known = [
        r["definition_id"]
        for r in await connection.fetch(
            "SELECT DISTINCT definition_id FROM workflow_definitions WHERE deleted_at IS NULL "
            "ORDER BY definition_id LIMIT $1",
            _KNOWN_IDS_SHOWN + 1,
        )
    ]
    return missing_definition(definition_id, version, versions, known)


def _encode(definition_id: str) -> str:
    return base64.urlsafe_b64encode(definition_id.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursor(
            f"cursor {cursor!r} is not one this service issued; use the nextCursor of a "
            "previous page, or omit it for the first page"
        ) from None


async def list_definitions(
    database: Database,
    *,
    limit: int = 50,
    cursor: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
    text: str | None = None,
    namespaces: Collection[str] | None = None,
) -> DefinitionPage:
    """A page of the latest live version of every definition matching the filters; may read
    from a replica. ``namespaces`` (None: all) keeps definitions whose latest version is in
    one of them (what a principal may see)."""
    after = _decode(cursor) if cursor else None

    async def work(connection: Connection) -> list[DefinitionSummary]:
        rows = await connection.fetch(
            """
            SELECT DISTINCT ON (definition_id) definition_id, version, namespace, name, created_at
            FROM workflow_definitions
            WHERE deleted_at IS NULL
              AND ($1::text IS NULL OR definition_id > $1)
              AND ($2::text IS NULL OR namespace = $2)
              AND ($3::text IS NULL OR name = $3)
              AND ($4::text IS NULL
                   OR (definition_id || ' ' || namespace || ' ' || name) ILIKE '%' || $4 || '%')
              AND ($6::text[] IS NULL OR namespace = ANY($6::text[]))
            ORDER BY definition_id, created_at DESC
            LIMIT $5
            """,
            after,
            namespace,
            name,
            text,
            limit + 1,
            sorted(namespaces) if namespaces is not None else None,
        )
        return [
            DefinitionSummary(
                definition_id=r["definition_id"],
                version=r["version"],
                namespace=r["namespace"],
                name=r["name"],
                created_at=r["created_at"],
            )
            for r in rows
        ]

    found = await database.run(work, read_only=True)
    more = len(found) > limit
    items = tuple(found[:limit])
    return DefinitionPage(
        items=items, next_cursor=_encode(items[-1].definition_id) if more and items else None
    )


async def register_definition(
    database: Database,
    *,
    definition_id: str,
    version: str,
    namespace: str,
    name: str,
    document: dict[str, Any],
    source_text: str,
) -> RegistrationResult:
    """Store a definition version; one crossing, safe under concurrent identical registrations.

    Returns ``CREATED`` for a new id and version (also when it revives a soft-deleted version
    with the identical document) and ``UNCHANGED`` when the identical document is registered
    already. Raises ``DefinitionConflict`` when the id and version hold a different document
    (also a deleted one: versions are never reused).
    """
    digest = content_hash(document)

    async def work(connection: Connection) -> RegistrationResult:
        async with connection.transaction():
            row = await connection.fetchrow(
                f"""
                INSERT INTO workflow_definitions
                    (definition_id, version, namespace, name, document, source_text, content_hash)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (definition_id, version) DO NOTHING
                RETURNING {_COLUMNS}
                """,
                definition_id,
                version,
                namespace,
                name,
                document,
                source_text,
                digest,
            )
            if row is not None:
                return RegistrationResult(
                    outcome=RegistrationOutcome.CREATED, definition=_stored(row)
                )
            row = await connection.fetchrow(
                f"SELECT {_COLUMNS} FROM workflow_definitions "
                "WHERE definition_id = $1 AND version = $2 FOR UPDATE",
                definition_id,
                version,
            )
            if row["content_hash"] != digest:
                raise DefinitionConflict(
                    f"definition {definition_id!r} version {version!r} is already registered "
                    f"with different content; register the changed document under a new "
                    f"version (document.version), or under another id",
                    definition_id=definition_id,
                    version=version,
                )
            if row["deleted_at"] is None:
                return RegistrationResult(
                    outcome=RegistrationOutcome.UNCHANGED, definition=_stored(row)
                )
            row = await connection.fetchrow(
                f"UPDATE workflow_definitions SET deleted_at = NULL "
                f"WHERE definition_id = $1 AND version = $2 RETURNING {_COLUMNS}",
                definition_id,
                version,
            )
            return RegistrationResult(outcome=RegistrationOutcome.CREATED, definition=_stored(row))

    return await database.run(work)


async def get_definition(
    database: Database,
    definition_id: str,
    version: str | None = None,
    *,
    include_deleted: bool = False,
    read_only: bool = False,
) -> StoredDefinition:
    """One definition version; the latest live one when ``version`` is None.

    ``include_deleted=True`` (with a version) also finds a soft-deleted version, as a running
    instance of a deleted definition needs. ``read_only=True`` may read from a replica (the
    API's reads; a miss there is confirmed on the primary); the runtime keeps the default, the
    primary, since it loads definitions right after their registration. Raises
    ``DefinitionNotFound``.
    """

    async def work(connection: Connection) -> StoredDefinition:
        if version is None:
            row = await connection.fetchrow(
                f"SELECT {_COLUMNS} FROM workflow_definitions "
                "WHERE definition_id = $1 AND deleted_at IS NULL "
                "ORDER BY created_at DESC, version DESC LIMIT 1",
                definition_id,
            )
        else:
            row = await connection.fetchrow(
                f"SELECT {_COLUMNS} FROM workflow_definitions "
                "WHERE definition_id = $1 AND version = $2 AND ($3 OR deleted_at IS NULL)",
                definition_id,
                version,
                include_deleted,
            )
        if row is None:
            raise await definition_not_found(connection, definition_id, version)
        return _stored(row)

    return await database.run(work, read_only=read_only)


async def resolve_workflow(
    database: Database, namespace: str, name: str, version: str | None
) -> tuple[str, str] | None:
    """The ``(definition_id, version)`` of the live definition whose document is
    ``namespace``/``name`` at ``version`` (None: the one registered last), as a ``run.workflow``
    task names it; when several ids hold it, the one registered last. None when there is none.
    One crossing, on the primary (a definition registered a moment ago is found)."""
    row = await database.run(
        lambda connection: connection.fetchrow(
            "SELECT definition_id, version FROM workflow_definitions "
            "WHERE namespace = $1 AND name = $2 AND ($3::text IS NULL OR version = $3) "
            "AND deleted_at IS NULL "
            "ORDER BY created_at DESC, version DESC, definition_id LIMIT 1",
            namespace,
            name,
            version,
        )
    )
    return None if row is None else (row["definition_id"], row["version"])


async def list_versions(database: Database, definition_id: str) -> tuple[DefinitionSummary, ...]:
    """Every live version of a definition, oldest first; may read from a replica (a miss there
    is confirmed on the primary). Raises ``DefinitionNotFound``."""

    async def work(connection: Connection) -> tuple[DefinitionSummary, ...]:
        rows = await connection.fetch(
            "SELECT definition_id, version, namespace, name, created_at FROM workflow_definitions "
            "WHERE definition_id = $1 AND deleted_at IS NULL ORDER BY created_at, version",
            definition_id,
        )
        if not rows:
            raise await definition_not_found(connection, definition_id, None)
        return tuple(_summary(r) for r in rows)

    return await database.run(work, read_only=True)


async def delete_definition(database: Database, definition_id: str) -> tuple[str, ...]:
    """Soft-delete every live version of a definition; returns the versions deleted.

    New instances can no longer be started from it; running instances continue. Raises
    ``DefinitionNotFound`` when no live version exists.
    """

    async def work(connection: Connection) -> tuple[str, ...]:
        rows = await connection.fetch(
            "UPDATE workflow_definitions SET deleted_at = now() "
            "WHERE definition_id = $1 AND deleted_at IS NULL RETURNING version",
            definition_id,
        )
        if not rows:
            raise await definition_not_found(connection, definition_id, None)
        return tuple(r["version"] for r in rows)

    return await database.run(work)
