"""Versioned, forward-only schema migrations with checksums.

Migrations are the files ``migrations/V<NNN>__<name>.sql`` shipped in this package. Applied ones
are recorded in ``schema_migrations`` with the SHA-256 of their text; a file changed after it was
applied is reported, never re-run. ``migrate`` holds a PostgreSQL advisory lock for its whole run
so that several replicas starting at once apply each migration exactly once (the others wait,
then find nothing to do). Each migration runs in its own transaction with its bookkeeping row.

Required extensions (``pg_trgm``, ``btree_gin``) are checked before anything is applied, so a
missing one fails with the exact SQL that fixes it instead of a half-applied schema.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
import time
from typing import Any

import asyncpg
import attrs

from workflow_orchestrator.storage._database import Connection, Database
from workflow_orchestrator.storage._errors import (
    MigrationChecksumMismatch,
    MigrationError,
    MissingExtension,
)

__all__ = [
    "REQUIRED_EXTENSIONS",
    "Migration",
    "MigrationReport",
    "SchemaStatus",
    "load_migrations",
    "migrate",
    "render_init_sql",
    "schema_status",
]

REQUIRED_EXTENSIONS = ("pg_trgm", "btree_gin")
# Any fixed 64-bit number; it names "the schema migration lock" for every replica.
_LOCK_KEY = 0x576F726B666C6F77  # "Workflow"
_FILE_NAME = re.compile(r"^V(\d{3,})__([a-z0-9_]+)\.sql$")

_TABLE_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version       integer     PRIMARY KEY,
    name          text        NOT NULL,
    checksum      text        NOT NULL,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    execution_ms  integer     NOT NULL
)
"""


@attrs.frozen(kw_only=True)
class Migration:
    """One migration file: its version, name, SQL text and the SHA-256 of that text."""

    version: int
    name: str
    sql: str = attrs.field(repr=False)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    @property
    def filename(self) -> str:
        return f"V{self.version:03d}__{self.name}.sql"


@attrs.frozen(kw_only=True)
class MigrationReport:
    """What one ``migrate`` call did: the versions it applied (empty when already current)."""

    applied: tuple[int, ...]
    current_version: int


@attrs.frozen(kw_only=True)
class SchemaStatus:
    """How the database's schema compares with this release's migrations."""

    applied: tuple[int, ...]
    pending: tuple[int, ...]
    mismatched: tuple[int, ...]
    unknown: tuple[int, ...]

    @property
    def current(self) -> bool:
        """True when every migration is applied unchanged and none is from a newer release."""
        return not (self.pending or self.mismatched or self.unknown)


def load_migrations() -> tuple[Migration, ...]:
    """The migrations shipped with this release, ordered by version."""
    folder = importlib.resources.files("workflow_orchestrator.storage") / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(
                Migration(
                    version=int(match.group(1)),
                    name=match.group(2),
                    sql=entry.read_text(encoding="utf-8"),
                )
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return tuple(found)


def render_init_sql(migrations: tuple[Migration, ...] | None = None) -> str:
    """The whole schema as one script (``schema/init.sql``), including its bookkeeping rows.

    Running it with ``psql -f`` on an empty database leaves the same state as ``migrate``.
    """
    migrations = load_migrations() if migrations is None else migrations
    parts = [
        "-- Generated from workflow_orchestrator/storage/migrations by `make schema`; do not edit.",
        "-- Apply with: psql -v ON_ERROR_STOP=1 -f schema/init.sql <database>",
        "BEGIN;",
        _CREATE_TABLE.strip() + ";",
    ]
    for migration in migrations:
        parts.append(f"\n-- {migration.filename}\n{migration.sql.strip()}")
        parts.append(
            "INSERT INTO schema_migrations (version, name, checksum, execution_ms) VALUES "
            f"({migration.version}, '{migration.name}', '{migration.checksum}', 0);"
        )
    parts.append("COMMIT;")
    return "\n".join(parts) + "\n"


async def _ensure_extensions(connection: Connection, database: str) -> None:
    installed = {r["extname"] for r in await connection.fetch("SELECT extname FROM pg_extension")}
    available = {
        r["name"] for r in await connection.fetch("SELECT name FROM pg_available_extensions")
    }
    user = await connection.fetchval("SELECT current_user")
    for name in REQUIRED_EXTENSIONS:
        if name in installed:
            continue
        sql = f"CREATE EXTENSION IF NOT EXISTS {name};"
        if name not in available:
            raise MissingExtension(
                f"PostgreSQL extension {name} is required but not available on the server of "
                f"{database}; install the server's contrib package (e.g. postgresql-contrib), "
                f"then run as a superuser: {sql}",
                extension=name,
                sql=sql,
            )
        try:
            async with connection.transaction():
                await connection.execute(sql)
        except asyncpg.InsufficientPrivilegeError:
            raise MissingExtension(
                f"PostgreSQL extension {name} is required but not installed in {database}, and "
                f"user {user!r} may not create it; run as a superuser in that database: {sql}",
                extension=name,
                sql=sql,
            ) from None


def _privilege_hint(user: str, database: str) -> str:
    return (
        f"user {user!r} may not create the schema's tables in {database}; run init-schema or "
        "migrate as the database owner (or a superuser), or grant it as one: "
        f"GRANT CREATE ON SCHEMA public TO {user};"
    )


async def _applied(connection: Connection) -> dict[int, str]:
    rows = await connection.fetch("SELECT version, checksum FROM schema_migrations")
    return {r["version"]: r["checksum"] for r in rows}


def _check_checksums(applied: dict[int, str], migrations: tuple[Migration, ...]) -> None:
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise MigrationChecksumMismatch(
                f"migration {migration.filename} was changed after it was applied (checksum "
                f"{migration.checksum[:12]} != recorded {recorded[:12]}); restore the original "
                "file and put the change in a new migration",
                version=migration.version,
            )


async def migrate(database: Database) -> MigrationReport:
    """Apply every pending migration under the advisory lock; a no-op when current.

    Raises ``MissingExtension``, ``MigrationChecksumMismatch`` or ``MigrationError`` (a newer
    release's migration is recorded, or a migration's SQL failed: nothing of it is kept).
    """
    migrations = load_migrations()
    where = database.location.display()

    async def work(connection: Connection) -> MigrationReport:
        await connection.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await _ensure_extensions(connection, where)
            try:
                # Checked first: CREATE ... IF NOT EXISTS needs the CREATE privilege even when
                # the table exists, and a role without it may run a current schema.
                if not await connection.fetchval(_TABLE_EXISTS):
                    await connection.execute(_CREATE_TABLE)
            except asyncpg.InsufficientPrivilegeError as exc:
                user = await connection.fetchval("SELECT current_user")
                raise MigrationError(_privilege_hint(user, where)) from exc
            applied = await _applied(connection)
            _check_checksums(applied, migrations)
            known = {m.version for m in migrations}
            newer = sorted(set(applied) - known)
            if newer:
                raise MigrationError(
                    f"the database schema has migrations {newer} that this release does not know; "
                    "upgrade workflow-orchestrator to the release that applied them"
                )
            done: list[int] = []
            for migration in migrations:
                if migration.version in applied:
                    continue
                started = time.perf_counter()
                try:
                    async with connection.transaction():
                        await connection.execute(migration.sql)
                        await connection.execute(
                            "INSERT INTO schema_migrations (version, name, checksum, execution_ms)"
                            " VALUES ($1, $2, $3, $4)",
                            migration.version,
                            migration.name,
                            migration.checksum,
                            int((time.perf_counter() - started) * 1000),
                        )
                except asyncpg.InsufficientPrivilegeError as exc:
                    user = await connection.fetchval("SELECT current_user")
                    raise MigrationError(
                        f"migration {migration.filename} was rolled back: {exc}; "
                        + _privilege_hint(user, where)
                    ) from exc
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"migration {migration.filename} failed and was rolled back: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                done.append(migration.version)
            current = max([*applied, *done], default=0)
            return MigrationReport(applied=tuple(done), current_version=current)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)

    return await database.run(work, session_state=True)


async def schema_status(database: Database) -> SchemaStatus:
    """Compare the database with this release's migrations (read-only, one crossing)."""
    migrations = load_migrations()

    async def work(connection: Connection) -> dict[int, str]:
        exists = await connection.fetchval(_TABLE_EXISTS)
        return await _applied(connection) if exists else {}

    applied: dict[int, Any] = await database.run(work)
    known = {m.version: m.checksum for m in migrations}
    return SchemaStatus(
        applied=tuple(sorted(v for v in applied if v in known)),
        pending=tuple(sorted(v for v in known if v not in applied)),
        mismatched=tuple(sorted(v for v in known if v in applied and applied[v] != known[v])),
        unknown=tuple(sorted(v for v in applied if v not in known)),
    )
