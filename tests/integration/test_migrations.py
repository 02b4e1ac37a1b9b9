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
from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import DatabaseSettings
from workflow_orchestrator.storage import (
    Database,
    MigrationChecksumMismatch,
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
