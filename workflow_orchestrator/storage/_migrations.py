"""Versioned, forward-only schema migrations with checksums.

Migrations are the files ``migrations/V<NNN>__<name>.sql`` shipped in this package. Applied ones
are recorded in ``schema_migrations`` with the SHA-256 of their text; a file changed after it was
applied is reported, never re-run. ``migrate`` holds a PostgreSQL advisory lock for its whole run
so that several replicas starting at once apply each migration exactly once (the others wait,
then find nothing to do). Each migration runs in its own transaction with its bookkeeping row.

Required extensions (``pg_trgm``, ``btree_gin``) are checked before anything is applied, so a
missing one fails with the exact SQL that fixes it instead of a half-applied schema.

Rollbacks. Migrations follow expand-then-contract, and each declares, in a leading comment line
``-- previous-release: compatible`` (or ``incompatible``), whether the release before it runs on
the schema after it: adding a table, an index or a column with a default is compatible;
dropping or renaming what the previous release reads is not, and waits for a later release.
The declaration is recorded with the migration, and so is the release that applied it, so a
release rolled back onto a schema that a newer release migrated (``helm rollback``, ``kubectl
rollout undo``) runs on it when every newer migration declared itself compatible and one
release applied them all; otherwise it refuses, naming the versions. A migration without the
line counts as incompatible.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import re
import time
from importlib.resources.abc import Traversable

import asyncpg
import attrs

from workflow_orchestrator._version import __version__
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
_DECLARATION = re.compile(r"^--\s*previous-release\s*:\s*(.*?)\s*$")
_DECLARED_VALUES = {"compatible": True, "incompatible": False}

_TABLE_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version       integer     PRIMARY KEY,
    name          text        NOT NULL,
    checksum      text        NOT NULL,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    execution_ms  integer     NOT NULL,
    previous_release_compatible boolean NOT NULL DEFAULT false,
    release       text        NOT NULL DEFAULT ''
)
"""
# Databases migrated before releases declared compatibility lack the last two columns; they
# are added when a migration is next applied (older releases name their INSERT's columns, so
# they keep working), and read as false and '' until then.
_HAS_DECLARATION_COLUMNS = """
SELECT count(*) = 2 FROM pg_attribute WHERE attrelid = 'schema_migrations'::regclass
    AND attname IN ('previous_release_compatible', 'release') AND NOT attisdropped
"""
_ADD_DECLARATION_COLUMNS = (
    "ALTER TABLE schema_migrations "
    "ADD COLUMN IF NOT EXISTS previous_release_compatible boolean NOT NULL DEFAULT false, "
    "ADD COLUMN IF NOT EXISTS release text NOT NULL DEFAULT ''"
)
_APPLIED = """
SELECT version, checksum,
       COALESCE((to_jsonb(m) ->> 'previous_release_compatible')::boolean, false) AS compatible,
       COALESCE(to_jsonb(m) ->> 'release', '') AS release
FROM schema_migrations m
"""
_RECORD = (
    "INSERT INTO schema_migrations "
    "(version, name, checksum, execution_ms, previous_release_compatible, release) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)


@attrs.frozen(kw_only=True)
class Migration:
    """One migration file: its version, name, SQL text and the SHA-256 of that text.

    ``previous_release_compatible`` is the file's ``-- previous-release:`` declaration: whether
    the release before this migration runs on the schema after it.
    """

    version: int
    name: str
    sql: str = attrs.field(repr=False)
    previous_release_compatible: bool = False

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    @property
    def filename(self) -> str:
        return f"V{self.version:03d}__{self.name}.sql"


@attrs.frozen(kw_only=True)
class MigrationReport:
    """What one ``migrate`` call did: the versions it applied (empty when already current).

    ``newer`` lists the migrations of a newer release found applied, each declared compatible
    with its previous release (this release runs on them).
    """

    applied: tuple[int, ...]
    current_version: int
    newer: tuple[int, ...] = ()


@attrs.frozen(kw_only=True)
class SchemaStatus:
    """How the database's schema compares with this release's migrations.

    ``unknown`` are applied migrations of a newer release; ``incompatible`` are those of them
    that do not declare that the release before them runs on their schema.
    """

    applied: tuple[int, ...]
    pending: tuple[int, ...]
    mismatched: tuple[int, ...]
    unknown: tuple[int, ...]
    incompatible: tuple[int, ...] = ()

    @property
    def current(self) -> bool:
        """True when this release runs on the schema: every one of its migrations is applied
        unchanged, and every migration of a newer release declares itself compatible."""
        return not (self.pending or self.mismatched or self.incompatible)


@attrs.frozen
class _Applied:
    checksum: str
    compatible: bool
    release: str


def _undeclared(applied: dict[int, _Applied], newer: list[int]) -> list[int]:
    """The newer migrations that do not declare that the release before them runs on them."""
    return [v for v in newer if not applied[v].compatible]


def _several_releases(applied: dict[int, _Applied], newer: list[int]) -> bool:
    """True when more than one release applied the newer migrations: a declaration promises
    only that the release just before it runs on it."""
    return len({applied[v].release for v in newer}) > 1


def _refused(applied: dict[int, _Applied], newer: list[int]) -> list[int]:
    """Those of a newer release's migrations under which this release may not run."""
    undeclared = _undeclared(applied, newer)
    if undeclared:
        return undeclared
    return list(newer) if _several_releases(applied, newer) else []


def _declared_compatibility(filename: str, sql: str) -> bool:
    """The ``-- previous-release:`` line among the file's leading comments; absent: False."""
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        match = _DECLARATION.match(stripped)
        if match:
            value = match.group(1)
            if value not in _DECLARED_VALUES:
                raise MigrationError(
                    f"migration {filename} declares 'previous-release: {value}'; write "
                    "'-- previous-release: compatible' (the previous release runs on the schema "
                    "after it) or '-- previous-release: incompatible'"
                )
            return _DECLARED_VALUES[value]
    return False


def load_migrations(folder: Traversable | None = None) -> tuple[Migration, ...]:
    """The migrations shipped with this release (or those in ``folder``), ordered by version.

    The shipped ones are read once per process: every health probe compares them with the
    database, and they do not change while the process runs."""
    if folder is None:
        return _shipped_migrations()
    return _read_migrations(folder)


@functools.cache
def _shipped_migrations() -> tuple[Migration, ...]:
    return _read_migrations(
        importlib.resources.files("workflow_orchestrator.storage") / "migrations"
    )


def _read_migrations(folder: Traversable) -> tuple[Migration, ...]:
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            sql = entry.read_text(encoding="utf-8")
            found.append(
                Migration(
                    version=int(match.group(1)),
                    name=match.group(2),
                    sql=sql,
                    previous_release_compatible=_declared_compatibility(entry.name, sql),
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
        compatible = "true" if migration.previous_release_compatible else "false"
        parts.append(
            "INSERT INTO schema_migrations "
            "(version, name, checksum, execution_ms, previous_release_compatible, release) "
            f"VALUES ({migration.version}, '{migration.name}', '{migration.checksum}', 0, "
            f"{compatible}, '{__version__}');"
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


async def _applied(connection: Connection) -> dict[int, _Applied]:
    rows = await connection.fetch(_APPLIED)
    return {r["version"]: _Applied(r["checksum"], r["compatible"], r["release"]) for r in rows}


async def _add_declaration_columns(
    connection: Connection, migrations: tuple[Migration, ...], where: str
) -> None:
    """Add the declaration columns to a table made before they existed, filled from the files.

    Only before applying a migration: a role that merely runs the schema need not own the
    table. The ALTER waits at most 10s for its lock (a dump or a long query holding it).
    """
    if await connection.fetchval(_HAS_DECLARATION_COLUMNS):
        return
    try:
        async with connection.transaction():
            await connection.execute("SET LOCAL lock_timeout = '10s'")
            await connection.execute(_ADD_DECLARATION_COLUMNS)
            await connection.executemany(
                "UPDATE schema_migrations SET previous_release_compatible = $2 WHERE version = $1",
                [(m.version, m.previous_release_compatible) for m in migrations],
            )
    except asyncpg.InsufficientPrivilegeError as exc:
        user = await connection.fetchval("SELECT current_user")
        raise MigrationError(
            f"user {user!r} may not add the columns previous_release_compatible and release to "
            f"schema_migrations in {where}; run migrate as the table's owner (or a superuser)"
        ) from exc


def _newer_release_refusal(
    applied: dict[int, _Applied], newer: list[int], pending: list[int]
) -> MigrationError | None:
    """Why this release cannot run on a schema with a newer release's migrations, or None."""
    undeclared = _undeclared(applied, newer)
    if undeclared:
        return MigrationError(
            f"the database schema has migrations {newer} of a newer release, and {undeclared} "
            "of them do not declare that the previous release runs on their schema; upgrade "
            "workflow-orchestrator to the release that applied them (a rollback past an "
            "incompatible migration needs the database restored from before it)"
        )
    if _several_releases(applied, newer):
        by = ", ".join(f"{v} by {applied[v].release or 'an unrecorded release'}" for v in newer)
        return MigrationError(
            f"the database schema has migrations {newer} of several newer releases ({by}); "
            "each declares only that the release just before it runs on its schema, so this "
            "release may not: upgrade workflow-orchestrator to the newest of them"
        )
    if pending:
        return MigrationError(
            f"the database schema has migrations {newer} of a newer release but not {pending} of "
            "this one, which cannot be applied on top of them; upgrade workflow-orchestrator to "
            "the release that applied them"
        )
    return None


def _check_checksums(applied: dict[int, _Applied], migrations: tuple[Migration, ...]) -> None:
    for migration in migrations:
        found = applied.get(migration.version)
        recorded = None if found is None else found.checksum
        if recorded is not None and recorded != migration.checksum:
            raise MigrationChecksumMismatch(
                f"migration {migration.filename} was changed after it was applied (checksum "
                f"{migration.checksum[:12]} != recorded {recorded[:12]}); restore the original "
                "file and put the change in a new migration",
                version=migration.version,
            )


async def migrate(
    database: Database, migrations: tuple[Migration, ...] | None = None
) -> MigrationReport:
    """Apply every pending migration under the advisory lock; a no-op when current.

    A schema that a newer release migrated is left as it is when each of its newer migrations
    declares itself compatible (``MigrationReport.newer`` names them). Raises
    ``MissingExtension``, ``MigrationChecksumMismatch`` or ``MigrationError`` (a newer
    release's migration does not declare itself compatible, or a migration's SQL failed:
    nothing of it is kept).
    """
    migrations = load_migrations() if migrations is None else migrations
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
                pending = [m.version for m in migrations if m.version not in applied]
                refusal = _newer_release_refusal(applied, newer, pending)
                if refusal is not None:
                    raise refusal
                return MigrationReport(applied=(), current_version=max(applied), newer=tuple(newer))
            done: list[int] = []
            if any(m.version not in applied for m in migrations):
                await _add_declaration_columns(connection, migrations, where)
            for migration in migrations:
                if migration.version in applied:
                    continue
                started = time.perf_counter()
                try:
                    async with connection.transaction():
                        await connection.execute(migration.sql)
                        await connection.execute(
                            _RECORD,
                            migration.version,
                            migration.name,
                            migration.checksum,
                            int((time.perf_counter() - started) * 1000),
                            migration.previous_release_compatible,
                            __version__,
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


async def schema_status(
    database: Database, migrations: tuple[Migration, ...] | None = None
) -> SchemaStatus:
    """Compare the database with this release's migrations (read-only, one crossing)."""
    migrations = load_migrations() if migrations is None else migrations

    async def work(connection: Connection) -> dict[int, _Applied]:
        exists = await connection.fetchval(_TABLE_EXISTS)
        return await _applied(connection) if exists else {}

    applied: dict[int, _Applied] = await database.run(work)
    known = {m.version: m.checksum for m in migrations}
    unknown = sorted(v for v in applied if v not in known)
    return SchemaStatus(
        applied=tuple(sorted(v for v in applied if v in known)),
        pending=tuple(sorted(v for v in known if v not in applied)),
        mismatched=tuple(
            sorted(v for v in known if v in applied and applied[v].checksum != known[v])
        ),
        unknown=tuple(unknown),
        incompatible=tuple(_refused(applied, unknown)),
    )
