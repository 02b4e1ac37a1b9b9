"""A user's mistakes against the real command and scripts: each ends with one line naming the
setting, file or value to change, a non-zero exit code, and no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.process import REPOSITORY
from tests.support.services import free_port, psql, require_postgres, url_for

pytestmark = pytest.mark.e2e

COMMAND = [sys.executable, "-m", "workflow_orchestrator.cli"]


def run(args: list[str], cwd: Path, **env: str) -> tuple[int, str]:
    """Exit code and last line of standard error; fails on a traceback."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "WORKFLOW_"))
    }
    environment.update(
        SERVER_PORT=str(free_port()), MANAGEMENT_PORT=str(free_port()), LOG_LEVEL="INFO", **env
    )
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=120, cwd=cwd, env=environment, check=False
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode != 0, result.stderr
    return result.returncode, result.stderr.strip().splitlines()[-1].strip()


@pytest.mark.parametrize(
    "command", [["serve"], ["init-schema"], ["migrate"], ["migrate", "--status"]]
)
def test_unreachable_database(command: list[str], tmp_path: Path) -> None:
    """Nothing listens at the URL: exit 1 naming database.url and where it came from."""
    port = free_port()
    url = f"jdbc:postgresql://127.0.0.1:{port}/workflows"
    assert run([*COMMAND, *command, "--url", url], tmp_path) == (
        1,
        f"workflow-orchestrator: cannot connect to PostgreSQL at 127.0.0.1:{port}/workflows: "
        "connection refused (is PostgreSQL running and listening on that host and port?); "
        "check database.url (from --url), database.username and database.password, and that "
        "the server is running",
    )


@pytest.mark.parametrize("script", ["start.sh", "init-schema.sh", "migrate.sh"])
def test_scripts_report_the_same_line(script: str, tmp_path: Path) -> None:
    """bin/*.sh end with the command's own line for an unreachable database (from env)."""
    port = free_port()
    code, line = run(
        [str(REPOSITORY / "bin" / script)],
        tmp_path,
        WORKFLOW_ORCHESTRATOR_BIN=str(Path(sys.executable).parent / "workflow-orchestrator"),
        DATABASE_URL=f"jdbc:postgresql://127.0.0.1:{port}/workflows",
    )
    assert code == 1
    assert line.startswith(
        f"workflow-orchestrator: cannot connect to PostgreSQL at 127.0.0.1:{port}"
    )
    assert line.endswith(
        "check database.url (from env DATABASE_URL), database.username and "
        "database.password, and that the server is running"
    )


def test_database_that_does_not_exist(tmp_path: Path) -> None:
    """A database name the server does not have says to create it or fix the name."""
    require_postgres()
    url = url_for(f"wo_missing_{uuid.uuid4().hex[:8]}")
    code, line = run([*COMMAND, "migrate", "--url", url], tmp_path)
    assert code == 1
    assert "the database does not exist (create it, or fix the database name in the URL)" in line
    assert line.endswith("and that the server is running")


def test_login_refused(tmp_path: Path, database_url: str) -> None:
    """A user the server refuses (unknown role, or a wrong password) says so."""
    code, line = run(
        [*COMMAND, "init-schema", "--url", database_url, "--username", "nobody_wo"], tmp_path
    )
    assert code == 1
    assert "the server refused the login (wrong user name or password)" in line
    assert "check database.url (from --url), database.username and database.password" in line


@pytest.fixture
def weak_role(database_name: str) -> Iterator[str]:
    """A role that may connect to the test database but not create tables in it."""
    role = f"wo_weak_{uuid.uuid4().hex[:8]}"
    psql(f'CREATE ROLE "{role}" LOGIN')
    psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC", database_url=url_for(database_name))
    psql(
        "CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE EXTENSION IF NOT EXISTS btree_gin",
        database_url=url_for(database_name),
    )
    try:
        yield role
    finally:
        psql(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)')
        psql(f'DROP ROLE IF EXISTS "{role}"')


def test_role_without_create_privilege(tmp_path: Path, database_name: str, weak_role: str) -> None:
    """A role that may not create the tables gets the GRANT that fixes it, not a traceback."""
    code, line = run(
        [*COMMAND, "migrate", "--url", url_for(database_name), "--username", weak_role], tmp_path
    )
    assert code == 1
    assert line.endswith(
        f"user '{weak_role}' may not create the schema's tables in "
        f"{weak_role}@127.0.0.1:5432/{database_name}; run init-schema or migrate as the "
        f"database owner (or a superuser), or grant it as one: GRANT CREATE ON SCHEMA public "
        f"TO {weak_role};"
    )


def test_address_not_of_this_machine(tmp_path: Path, database_url: str) -> None:
    """A server.host the machine does not have names server.host, not the port."""
    config = tmp_path / "app.yaml"
    config.write_text("server:\n  host: 192.0.2.1\n")  # TEST-NET-1: never a local address
    code, line = run([*COMMAND, "serve", "--config", str(config), "--url", database_url], tmp_path)
    assert code == 1
    assert line.startswith("workflow-orchestrator: cannot listen on 192.0.2.1:")
    assert line.endswith(
        "set server.host to an address of this machine, e.g. 0.0.0.0 (all) or 127.0.0.1"
    )


def test_unusable_embedded_data_dir(tmp_path: Path) -> None:
    """An embedded data directory that cannot be created names database.embedded.dataDir."""
    # A folder others may enter: as root, the server's system user must be able to reach the
    # data directory's parent, or that (another one-line error) is reported first.
    shared = Path(tempfile.mkdtemp(prefix="wo-data-dir-", dir="/tmp"))
    try:
        shared.chmod(0o755)
        (shared / "a-file").write_text("")
        config = tmp_path / "app.yaml"
        config.write_text(f"database:\n  embedded:\n    dataDir: {shared / 'a-file' / 'pg'}\n")
        code, line = run([*COMMAND, "serve", "--config", str(config)], tmp_path)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert code == 1
    assert line.startswith(
        f"workflow-orchestrator: cannot prepare the embedded database directory "
        f"{shared / 'a-file' / 'pg'}: "
    )
    assert line.endswith(
        "set database.embedded.dataDir (or XDG_STATE_HOME) to a directory this user may write"
    )


def test_unwritable_log_file_stops_serve(tmp_path: Path) -> None:
    """A log file that cannot be opened stops `serve` before anything starts (exit 2)."""
    (tmp_path / "a-file").write_text("")
    config = tmp_path / "app.yaml"
    config.write_text(
        "logging:\n  appenders:\n    file:\n      enabled: true\n"
        f"      path: {tmp_path / 'a-file' / 'service.log'}\n"
    )
    code, line = run([*COMMAND, "serve", "--config", str(config)], tmp_path)
    assert code == 2
    assert line.startswith(f"- {config}: logging.appenders.file.path: cannot open log file ")


def test_missing_tls_certificate_stops_serve(tmp_path: Path) -> None:
    """A server.tls.certificate that does not exist stops `serve` before anything starts: exit
    2, one line naming the setting and its file."""
    missing = tmp_path / "tls.crt"
    config = tmp_path / "app.yaml"
    config.write_text(
        "server:\n  tls:\n    enabled: true\n"
        f"    certificate: {missing}\n    privateKey: {tmp_path / 'tls.key'}\n"
    )
    code, line = run([*COMMAND, "serve", "--config", str(config)], tmp_path)
    assert code == 2
    assert line == (
        f"workflow-orchestrator: {config}: server.tls.certificate: the file {missing} does not "
        "exist; give the PEM certificate chain of the listener (a Kubernetes TLS secret's tls.crt)"
    )
