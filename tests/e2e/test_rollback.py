"""Rolling back onto a schema that a newer release migrated, as the guide rolls back.

``helm rollback`` and ``kubectl rollout undo`` start the previous release's processes against the
database that the newer release already migrated. The newer release here is this package
copied aside with one more migration file, run as its own process: exactly what the next
release's image would hold. This release then runs on the schema when the newer migration
declares ``-- previous-release: compatible``, and refuses, naming the version, when it does not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.process import REPOSITORY, run_service
from tests.support.services import free_port
from workflow_orchestrator.storage import load_migrations

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CLI = ("-m", "workflow_orchestrator.cli")
NEXT_VERSION = max(m.version for m in load_migrations()) + 1
# An expand change: a column with a default and an index. The previous release never reads
# the column, and its inserts get the default.
EXPAND = """\
-- A newer release's migration (written by tests/e2e/test_rollback.py).
-- previous-release: compatible
ALTER TABLE workflow_instances ADD COLUMN priority integer NOT NULL DEFAULT 0;
CREATE INDEX workflow_instances_priority ON workflow_instances (priority);
"""
# A contract change: the previous release cannot run once the column it writes is gone.
CONTRACT = """\
-- previous-release: incompatible
ALTER TABLE workflow_instances RENAME COLUMN business_key TO correlation_key;
"""
DEFINITION = """\
document: {dsl: '1.0.0', namespace: default, name: rollback-probe, version: '1.0.0'}
do:
  - greet:
      set:
        greeting: ${ "hello " + .name }
"""


def newer_release(folder: Path, migration: str) -> Path:
    """This package copied into ``folder`` with one more migration: the next release."""
    shutil.copytree(
        REPOSITORY / "workflow_orchestrator",
        folder / "workflow_orchestrator",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    name = f"V{NEXT_VERSION:03d}__newer_release.sql"
    (folder / "workflow_orchestrator" / "storage" / "migrations" / name).write_text(migration)
    return folder


def cli(release: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``workflow-orchestrator ARGS`` of the release whose package is in ``release``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "WORKFLOW_"))}
    env["PYTHONPATH"] = str(release)
    return subprocess.run(
        [sys.executable, *CLI, *args],
        cwd=release,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_rollback_runs_on_a_compatible_newer_schema(tmp_path: Path, database_url: str) -> None:
    """The previous release serves and runs instances on the schema its successor expanded;
    upgrading again finds the schema current."""
    newer = newer_release(tmp_path / "newer", EXPAND)
    upgraded = cli(newer, "migrate", "--url", database_url)
    expected = [m.version for m in load_migrations()] + [NEXT_VERSION]
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.startswith(f"applied migrations {expected} "), upgraded.stdout

    # The rollback: this release's migrate (the chart's hook Job) and serve on that schema.
    this = cli(REPOSITORY, "migrate", "--url", database_url)
    assert this.returncode == 0, this.stderr
    assert f"has migrations [{NEXT_VERSION}] of a newer release" in this.stdout
    status = cli(REPOSITORY, "migrate", "--status", "--url", database_url)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"from a newer release: [{NEXT_VERSION}] (each declared compatible" in status.stdout
    (tmp_path / "serve").mkdir()
    with run_service(tmp_path / "serve", args=("--url", database_url)) as service:
        database = httpx.get(f"{service.management}/health/detailed", timeout=10).json()
        details = database["components"]["database"]["details"]
        assert (details["schema"], details["newerMigrations"]) == ("current", [NEXT_VERSION])
        registered = httpx.post(
            f"{service.api}/api/v1/workflow-definitions?id=rollback-probe",
            content=DEFINITION,
            headers={"Content-Type": "application/yaml"},
            timeout=10,
        )
        assert registered.status_code == 201, registered.text
        started = httpx.post(
            f"{service.api}/api/v1/workflow-instances",
            json={"workflowDefinitionId": "rollback-probe", "input": {"name": "rollback"}},
            timeout=10,
        )
        assert started.status_code == 201, started.text
        instance = httpx.get(
            f"{service.api}/api/v1/workflow-instances/{started.json()['id']}?wait=20s",
            timeout=30,
        ).json()
        assert (instance["status"], instance["output"]["greeting"]) == (
            "completed",
            "hello rollback",
        )
        log = service.log()
    assert f"the database schema has migrations [{NEXT_VERSION}] of a newer release" in log

    # Upgrading again: the newer release finds its schema current, the rows intact.
    again = cli(newer, "migrate", "--url", database_url)
    assert again.returncode == 0, again.stderr
    assert "is current" in again.stdout


def test_rollback_past_an_incompatible_migration_is_refused(
    tmp_path: Path, database_url: str
) -> None:
    """A newer migration that does not declare compatibility stops this release's migrate and
    serve with the version and what to do, and changes nothing."""
    newer = newer_release(tmp_path / "newer", CONTRACT)
    assert cli(newer, "migrate", "--url", database_url).returncode == 0

    refused = cli(REPOSITORY, "migrate", "--url", database_url)
    message = (
        f"the database schema has migrations [{NEXT_VERSION}] of a newer release, and "
        f"[{NEXT_VERSION}] of them do not declare that the previous release runs on their schema"
    )
    assert refused.returncode == 1
    assert message in refused.stderr
    serve = subprocess.run(
        [sys.executable, *CLI, "serve", "--url", database_url],
        cwd=tmp_path,
        env={**os.environ, "SERVER_PORT": str(free_port()), "MANAGEMENT_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert serve.returncode != 0
    assert message in serve.stdout + serve.stderr
