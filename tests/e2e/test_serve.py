"""The real `workflow-orchestrator serve` process: endpoints, health shape, graceful stop."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.process import REPOSITORY, RunningService, run_service
from tests.support.services import free_port, psql, url_for
from workflow_orchestrator.storage import load_migrations

pytestmark = pytest.mark.e2e

GRACE_SECONDS = 5
AFTER_MIGRATE = """\
document: {dsl: '1.0.0', namespace: default, name: after-migrate, version: '1.0.0'}
do:
  - done:
      set:
        done: true
"""


def check_guide_endpoints(service: RunningService) -> None:
    """Every management endpoint and the definitions list answer as the guide shows."""
    for path in ("/health", "/health/live", "/health/ready"):
        response = httpx.get(service.management + path, timeout=10)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["status"] == "healthy"

    detailed = httpx.get(service.management + "/health/detailed", timeout=10)
    assert detailed.status_code == 200
    body = detailed.json()
    assert set(body) == {"status", "components", "version", "uptime"}
    assert body["status"] == "healthy"
    assert re.fullmatch(r"\d+d \d+h \d+m", body["uptime"])
    database = body["components"]["database"]
    assert database["status"] == "healthy"
    assert re.fullmatch(r"\d+/\d+", database["details"]["connectionPool"])
    assert re.fullmatch(r"\d+ms", database["details"]["latency"])
    events = body["components"]["eventProcessing"]["details"]
    assert {"subscriptionCount", "processingDelay"} <= set(events)
    scheduler = body["components"]["scheduler"]["details"]
    assert {"pendingTasks", "lastExecutionTime"} <= set(scheduler)

    metrics = httpx.get(service.management + "/metrics", timeout=10)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert "process_resident_memory_bytes" in text
    assert 'workflow_orchestrator_db_pool_connections{pool="primary",state="used"}' in text
    assert re.search(
        r'workflow_orchestrator_http_requests_total\{app="management",method="GET",'
        r'route="/health/detailed",status="200"\} 1\.0',
        text,
    )

    definitions = httpx.get(service.api + "/api/v1/workflow-definitions", timeout=10)
    assert definitions.status_code == 200
    assert definitions.json() == {"items": [], "nextCursor": None}

    missing = httpx.get(service.api + "/api/v1/nothing-here", timeout=10)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == (
        "no route matches GET /api/v1/nothing-here; check the path and method"
    )


def check_supervision_tree(service: RunningService) -> None:
    """/supervisor shows the live tree: the root supervisor and the service parts under it."""
    tree = httpx.get(service.management + "/supervisor", timeout=10).json()
    assert (tree["path"], tree["kind"], tree["strategy"]) == ("/user", "supervisor", "rest_for_one")
    parts = [(child["name"], child["kind"], child["state"]) for child in tree["children"]]
    assert parts == [
        ("storage", "service", "running"),
        ("leases", "service", "running"),
        ("snapshots", "service", "running"),
        ("instances", "supervisor", "running"),
        ("runtime", "service", "running"),
        ("scheduler", "service", "running"),
        ("events", "service", "running"),
        ("api", "service", "running"),
        ("management", "service", "running"),
    ]
    subtree = httpx.get(service.management + "/supervisor/user/instances?depth=1", timeout=10)
    assert subtree.status_code == 200
    assert subtree.json()["childCount"] == 0
    missing = httpx.get(service.management + "/supervisor/user/nope", timeout=10)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def is_ready(service: RunningService) -> bool:
    try:
        return httpx.get(service.management + "/health/ready", timeout=10).status_code == 200
    except httpx.TransportError:
        return False


def stop_gracefully(service: RunningService) -> None:
    code, seconds = service.stop(signal.SIGTERM)
    assert code == 0, service.log()
    assert seconds < GRACE_SECONDS + 10, f"stop took {seconds:.1f}s"
    assert "workflow-orchestrator stopped" in service.log()


def test_serve_against_postgresql(tmp_path: Path, database_url: str) -> None:
    """Against the real PostgreSQL: every endpoint answers, SIGTERM exits 0 within the grace."""
    with run_service(
        tmp_path,
        args=("--url", database_url),
        env={"LOG_LEVEL": "INFO"},
    ) as service:
        check_guide_endpoints(service)
        check_supervision_tree(service)
        stop_gracefully(service)


def test_readiness_fails_when_schema_is_not_current(tmp_path: Path, database_url: str) -> None:
    """With migrateOnStartup off and an empty database, /health/ready is 503 and says why;
    once `migrate` runs elsewhere, the service starts its parts again and runs instances."""
    config = tmp_path / "app.yaml"
    config.write_text("database:\n  migrateOnStartup: false\n")
    with run_service(
        tmp_path, args=("--url", database_url, "--config", str(config)), ready_path="/health/live"
    ) as service:
        ready = httpx.get(service.management + "/health/ready", timeout=10)
        assert ready.status_code == 503
        database = ready.json()["components"]["database"]
        assert database["status"] == "unhealthy"
        assert database["details"]["schema"] == "outdated"
        versions = [m.version for m in load_migrations()]
        assert database["details"]["pendingMigrations"] == versions
        assert httpx.get(service.management + "/health", timeout=10).status_code == 503
        assert f"the database schema is not current (pending {versions})" in service.log()

        migrated = subprocess.run(
            [sys.executable, "-m", "workflow_orchestrator.cli", "migrate", "--url", database_url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stderr
        # The service checks every 2s, then restarts its parts (the listeners too: a probe
        # may find the port closed for a moment).
        deadline = time.monotonic() + 60
        while not is_ready(service):
            assert time.monotonic() < deadline, service.log()
            time.sleep(0.2)
        tree = httpx.get(service.management + "/supervisor", timeout=10).json()
        assert "instances" in [child["name"] for child in tree["children"]]
        registered = httpx.post(
            service.api + "/api/v1/workflow-definitions?id=after-migrate",
            content=AFTER_MIGRATE,
            headers={"Content-Type": "application/yaml"},
            timeout=10,
        )
        assert registered.status_code == 201, registered.text
        started = httpx.post(
            service.api + "/api/v1/workflow-instances",
            json={"workflowDefinitionId": "after-migrate", "input": {}},
            timeout=10,
        )
        assert started.status_code == 201, started.text
        ended = httpx.get(
            f"{service.api}/api/v1/workflow-instances/{started.json()['id']}?wait=20s", timeout=30
        )
        assert ended.json()["status"] == "completed", ended.text
        assert "the database schema is current now; starting the service's parts again" in (
            service.log()
        )
        stop_gracefully(service)


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    """A data directory the embedded server's system user can reach (not under /root)."""
    folder = Path(tempfile.mkdtemp(prefix="wo-embedded-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_serve_with_embedded_database(tmp_path: Path, embedded_dir: Path) -> None:
    """Without a database URL an embedded PostgreSQL is started, used, stopped and reused."""
    env = {"XDG_STATE_HOME": str(embedded_dir)}
    with run_service(tmp_path, env=env) as service:
        check_guide_endpoints(service)
        data_dir = embedded_dir / "workflow-orchestrator" / "postgres"
        assert f", data in {data_dir}, server log " in service.log()
        assert "; connect with: psql postgresql://postgres@127.0.0.1:" in service.log()
        stop_gracefully(service)
    data_dir = embedded_dir / "workflow-orchestrator" / "postgres"
    assert (data_dir / "PG_VERSION").is_file()
    assert not (data_dir / "postmaster.pid").exists(), "the embedded server was not stopped"
    with run_service(tmp_path, env=env) as again:
        assert "initialising the embedded PostgreSQL" not in again.log()
        stop_gracefully(again)
    assert os.listdir(data_dir)


def test_port_in_use_is_a_clear_error(tmp_path: Path, database_url: str) -> None:
    """A taken API port stops startup with exit 1 and a sentence naming the setting to change."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "workflow_orchestrator.cli", "serve", "--url", database_url],
            env={**os.environ, "SERVER_PORT": str(port), "MANAGEMENT_PORT": str(free_port())},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"workflow-orchestrator: cannot listen on 0.0.0.0:{port} for the API: address already in "
        "use; set server.port (SERVER_PORT) to a free port or stop what uses this one"
    )
    assert "Traceback" not in result.stderr


def test_wrong_schema_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A definitions.schema (WORKFLOW_DSL_SCHEMA) that is missing stops startup: exit 2, one
    line naming the setting and where it came from, before any database is started."""
    missing = tmp_path / "workflow.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "workflow_orchestrator.cli", "serve"],
        env={**os.environ, "WORKFLOW_DSL_SCHEMA": str(missing)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"workflow-orchestrator: env WORKFLOW_DSL_SCHEMA: definitions.schema: the schema file "
        f"{missing} does not exist; point it at the official Serverless Workflow 1.0.3 "
        "schema/workflow.yaml, or leave it empty (definitions are validated without it)"
    ]


def test_survives_terminated_database_connections(tmp_path: Path, database_name: str) -> None:
    """Connections killed by PostgreSQL (restart, failover) do not stop the service."""
    with run_service(tmp_path, args=("--url", url_for(database_name))) as service:
        killed = psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = '{database_name}' AND application_name = 'workflow-orchestrator'"
        )
        assert int(killed) >= 1
        time.sleep(0.5)
        for _ in range(3):
            response = httpx.get(service.management + "/health/ready", timeout=10)
            if response.status_code == 200:
                break
            time.sleep(0.5)
        assert response.status_code == 200, response.text
        assert service.process.poll() is None, service.log()
        stop_gracefully(service)


def test_local_profile_registers_the_example(tmp_path: Path, database_url: str) -> None:
    """`make run`'s profile, run from the checkout, registers examples/order_processing.yaml."""
    with run_service(
        tmp_path,
        args=("--profile", "local"),
        env={"DATABASE_URL": database_url},
        cwd=REPOSITORY,
    ) as service:
        response = httpx.get(
            service.api + "/api/v1/workflow-definitions/order_processing", timeout=10
        )
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "order-processing"
        assert "definitions from examples: 1 registered, 0 unchanged" in service.log()
        stop_gracefully(service)
