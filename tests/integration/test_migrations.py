"""Schema migrations against the real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from tests.support.services import POSTGRES_URL, psql, psql_binary, url_for
from workflow_orchestrator._version import __version__
from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import DatabaseSettings
from workflow_orchestrator.storage import (
    Database,
    Migration,
    MigrationChecksumMismatch,
    MigrationError,
    MissingExtension,
    load_migrations,
    migrate,
    render_init_sql,
    schema_status,
)

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "workflow_orchestrator.cli"]


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[Database]:
    from workflow_orchestrator.storage import open_database

    async with open_asyncio_bridge(), open_database(DatabaseSettings(url=url)) as database:
        yield database


def applied_rows(url: str) -> list[str]:
    return psql("SELECT version FROM schema_migrations ORDER BY version", database_url=url).split()


async def test_fresh_database_gets_every_migration(database_url: str) -> None:
    """migrate on an empty database applies all migrations and the schema is then current."""
    with trio.fail_after(60):
        async with connect(database_url) as database:
            before = await schema_status(database)
            report = await migrate(database)
            after = await schema_status(database)
    versions = tuple(m.version for m in load_migrations())
    assert before.pending == versions and not before.current
    assert report.applied == versions
    assert after.current
    tables = psql(
        "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
        "WHERE schemaname = 'public'",
        database_url=database_url,
    )
    assert tables == (
        "audit_log,cluster_members,event_dead_letters,event_start_progress,event_subscriptions,events,"
        "instance_inbox,"
        "leader_leases,outbox,partition_leases,"
        "processed_events,schedule_state,schema_migrations,subscription_shapes,unmatched_events,"
        "workflow_definitions,workflow_instance_history,workflow_instances,workflow_timers"
    )
    extensions = psql(
        "SELECT string_agg(extname, ',') FROM pg_extension", database_url=database_url
    )
    assert {"pg_trgm", "btree_gin"} <= set(extensions.split(","))


async def test_rerun_is_a_no_op(database_url: str) -> None:
    """A second migrate applies nothing and leaves one bookkeeping row per migration."""
    with trio.fail_after(60):
        async with connect(database_url) as database:
            await migrate(database)
            second = await migrate(database)
    assert second.applied == ()
    assert applied_rows(database_url) == [str(m.version) for m in load_migrations()]


def test_three_concurrent_migrate_processes(database_url: str) -> None:
    """Three replicas migrating at once all succeed and each migration is applied once."""
    processes = [
        subprocess.Popen(
            [*CLI, "migrate", "--url", database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPOSITORY,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    applied_messages = [out for out, _ in outputs if out.startswith("applied migrations")]
    assert len(applied_messages) == 1, outputs
    assert applied_rows(database_url) == [str(m.version) for m in load_migrations()]


async def test_changed_migration_is_detected(database_url: str) -> None:
    """A migration whose recorded checksum differs from the file is reported, not re-run."""
    with trio.fail_after(60):
        async with connect(database_url) as database:
            await migrate(database)
            psql(
                "UPDATE schema_migrations SET checksum = 'deadbeef' || checksum WHERE version = 1",
                database_url=database_url,
            )
            with pytest.raises(MigrationChecksumMismatch) as exc:
                await migrate(database)
            status = await schema_status(database)
    first = load_migrations()[0]
    assert str(exc.value) == (
        f"migration {first.filename} was changed after it was applied (checksum "
        f"{first.checksum[:12]} != recorded deadbeef{first.checksum[:4]}); restore the original "
        "file and put the change in a new migration"
    )
    assert exc.value.version == 1
    assert status.mismatched == (1,) and not status.current


async def test_missing_extension_names_the_fix(database_name: str) -> None:
    """A user who may not create pg_trgm gets the exact SQL a superuser must run."""
    role = f"wo_noext_{uuid.uuid4().hex[:8]}"
    admin_url = url_for(database_name)
    psql(f"CREATE ROLE {role} LOGIN")
    try:
        psql(
            f'GRANT CONNECT ON DATABASE "{database_name}" TO {role}; '
            f"GRANT CREATE, USAGE ON SCHEMA public TO {role}",
            database_url=admin_url,
        )
        user_url = admin_url.replace("postgres@", f"{role}@", 1)
        with trio.fail_after(60):
            async with connect(user_url) as database:
                with pytest.raises(MissingExtension) as exc:
                    await migrate(database)
                status = await schema_status(database)
        assert str(exc.value) == (
            f"PostgreSQL extension pg_trgm is required but not installed in "
            f"{role}@127.0.0.1:5432/{database_name}, and user '{role}' may not create it; run "
            "as a superuser in that database: CREATE EXTENSION IF NOT EXISTS pg_trgm;"
        )
        assert exc.value.sql == "CREATE EXTENSION IF NOT EXISTS pg_trgm;"
        assert status.applied == ()  # nothing was half-applied
    finally:
        psql(f"REVOKE ALL ON SCHEMA public FROM {role}", database_url=admin_url)
        psql(f"DROP OWNED BY {role}", database_url=admin_url)
        psql(f"DROP ROLE {role}")


def test_init_sql_is_generated_from_the_migrations() -> None:
    """schema/init.sql is exactly what the migrations render (regenerate with `make schema`)."""
    committed = (REPOSITORY / "schema" / "init.sql").read_text()
    assert committed == render_init_sql(), "schema/init.sql is stale: run `make schema`"


async def test_init_sql_applied_with_psql_gives_a_current_schema(database_url: str) -> None:
    """`psql -f schema/init.sql` leaves a schema that migrate recognises as current."""
    await trio.run_process(
        [
            psql_binary(),
            database_url,
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-f",
            str(REPOSITORY / "schema" / "init.sql"),
        ],
        capture_stdout=True,
        capture_stderr=True,
    )
    with trio.fail_after(60):
        async with connect(database_url) as database:
            status = await schema_status(database)
            report = await migrate(database)
    assert status.current
    assert report.applied == ()


def test_unreachable_database_message(tmp_path: Path) -> None:
    """An unreachable server is named (without the password) along with the setting to fix."""
    from tests.support.services import free_port

    port = free_port()
    result = subprocess.run(
        [
            *CLI,
            "migrate",
            "--url",
            f"jdbc:postgresql://127.0.0.1:{port}/workflows",
            "--username",
            "app",
            "--password",
            "hunter2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"workflow-orchestrator: cannot connect to PostgreSQL at app@127.0.0.1:{port}/workflows: "
        "connection refused (is PostgreSQL running and listening on that host and port?); check "
        "database.url (from --url), database.username and database.password, and that the "
        "server is running"
    )
    assert "hunter2" not in result.stderr + result.stdout


def test_cli_migrate_status_and_init_schema(database_url: str) -> None:
    """init-schema creates the schema, a second init-schema and migrate change nothing."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args, "--url", database_url],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPOSITORY,
        )

    versions = [m.version for m in load_migrations()]
    status = run("migrate", "--status")
    assert status.returncode == 1 and f"pending: {versions}" in status.stdout
    first = run("init-schema")
    assert first.returncode == 0 and first.stdout.startswith(f"applied migrations {versions} to ")
    again = run("init-schema")
    assert again.returncode == 0 and "the schema already exists" in again.stdout
    migrate_run = run("migrate")
    assert (
        migrate_run.returncode == 0 and f"is current (version {versions[-1]})" in migrate_run.stdout
    )
    assert run("migrate", "--status").returncode == 0


def test_postgres_url_default_is_reachable() -> None:
    """The test PostgreSQL answers (guards against a silently skipped integration suite)."""
    assert psql("SELECT 1", database_url=POSTGRES_URL) == "1"


def with_newer_release(sql: str, *, compatible: bool) -> tuple[Migration, ...]:
    """This release's migrations plus one of a newer release."""
    ours = load_migrations()
    extra = Migration(
        version=ours[-1].version + 1,
        name="newer_release",
        sql=sql,
        previous_release_compatible=compatible,
    )
    return (*ours, extra)


async def test_schema_of_a_newer_release_that_declares_compatibility(database_url: str) -> None:
    """After a newer release's compatible migration, this release's migrate changes nothing and
    reports it; the schema is current for this release, and still current for the newer one."""
    newer = with_newer_release(
        "ALTER TABLE workflow_instances ADD COLUMN priority integer NOT NULL DEFAULT 0",
        compatible=True,
    )
    with trio.fail_after(60):
        async with connect(database_url) as database:
            await migrate(database, newer)
            report = await migrate(database)
            status = await schema_status(database)
            newer_status = await schema_status(database, newer)
    version = newer[-1].version
    assert (report.applied, report.newer, report.current_version) == ((), (version,), version)
    assert status.current and status.unknown == (version,) and status.incompatible == ()
    assert newer_status.current and newer_status.unknown == ()


async def test_schema_of_a_newer_release_that_does_not(database_url: str) -> None:
    """A newer migration without the declaration stops migrate and makes the schema not
    current, naming the version; nothing is changed."""
    newer = with_newer_release("ALTER TABLE audit_log DROP COLUMN remote", compatible=False)
    version = newer[-1].version
    with trio.fail_after(60):
        async with connect(database_url) as database:
            await migrate(database, newer)
            with pytest.raises(MigrationError) as exc:
                await migrate(database)
            status = await schema_status(database)
    assert str(exc.value).startswith(
        f"the database schema has migrations [{version}] of a newer release, and [{version}] of "
        "them do not declare that the previous release runs on their schema; upgrade"
    )
    assert not status.current and status.incompatible == (version,)
    assert applied_rows(database_url)[-1] == str(version)


async def test_newer_schema_missing_one_of_ours_is_refused(database_url: str) -> None:
    """A newer release's migrations on top of a schema without one of this release's cannot
    take this release's missing one."""
    ours = load_migrations()
    newer = (
        *ours[:-1],
        Migration(
            version=ours[-1].version + 1, name="n", sql="SELECT 1", previous_release_compatible=True
        ),
    )
    with trio.fail_after(60):
        async with connect(database_url) as database:
            await migrate(database, newer)
            with pytest.raises(MigrationError) as exc:
                await migrate(database)
    assert f"but not [{ours[-1].version}] of this one" in str(exc.value)


async def test_newer_migrations_of_two_releases_are_refused(database_url: str) -> None:
    """Compatible migrations applied by two newer releases: each promises only that the release
    just before it runs, so this release refuses (`helm rollback` across two upgrades)."""
    ours = load_migrations()
    first, second = ours[-1].version + 1, ours[-1].version + 2
    newer = (
        *ours,
        Migration(version=first, name="a", sql="SELECT 1", previous_release_compatible=True),
        Migration(version=second, name="b", sql="SELECT 1", previous_release_compatible=True),
    )
    with trio.fail_after(60):
        async with connect(database_url) as database:
            await migrate(database, newer)
            psql(
                f"UPDATE schema_migrations SET release = '9.1.0' WHERE version = {first}; "
                f"UPDATE schema_migrations SET release = '9.2.0' WHERE version = {second}",
                database_url=database_url,
            )
            with pytest.raises(MigrationError) as exc:
                await migrate(database)
            status = await schema_status(database)
    assert str(exc.value).startswith(
        f"the database schema has migrations [{first}, {second}] of several newer releases "
        f"({first} by 9.1.0, {second} by 9.2.0); each declares only that the release just "
        "before it runs on its schema, so this release may not: upgrade"
    )
    assert not status.current and status.incompatible == (first, second)


async def test_bookkeeping_from_before_declarations(database_name: str) -> None:
    """A schema_migrations table made before releases declared compatibility: a role that does
    not own it still runs a current schema (nothing altered); the next migration adds the
    columns, filled from the files."""
    admin_url = url_for(database_name)
    role = f"wo_runner_{uuid.uuid4().hex[:8]}"
    with trio.fail_after(60):
        async with connect(admin_url) as database:
            await migrate(database)
    psql(
        "ALTER TABLE schema_migrations DROP COLUMN previous_release_compatible, "
        "DROP COLUMN release",
        database_url=admin_url,
    )
    psql(f"CREATE ROLE {role} LOGIN")
    try:
        psql(
            f'GRANT CONNECT ON DATABASE "{database_name}" TO {role}; '
            f"GRANT USAGE ON SCHEMA public TO {role}; "
            f"GRANT SELECT ON schema_migrations TO {role}",
            database_url=admin_url,
        )
        with trio.fail_after(60):
            async with connect(admin_url.replace("postgres@", f"{role}@", 1)) as database:
                report = await migrate(database)
                status = await schema_status(database)
        assert report.applied == () and status.current
        ours = load_migrations()
        newer = (*ours, Migration(version=ours[-1].version + 1, name="n", sql="SELECT 1"))
        with trio.fail_after(60):
            async with connect(admin_url) as database:
                await migrate(database, newer)
        declared = psql(
            "SELECT string_agg(version || ':' || previous_release_compatible || ':' || release, "
            "',' ORDER BY version) FROM schema_migrations",
            database_url=admin_url,
        )
        expected = [
            f"{m.version}:{'true' if m.previous_release_compatible else 'false'}:" for m in ours
        ] + [f"{newer[-1].version}:false:{__version__}"]
        assert declared == ",".join(expected)
    finally:
        psql(f"DROP OWNED BY {role}", database_url=admin_url)
        psql(f"DROP ROLE {role}")
