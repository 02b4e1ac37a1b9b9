"""``serve --workers 2``: a parent process and two real worker processes on one machine.

The workers are replicas ``<replicaId>-w0`` and ``-w1`` (each holds half of the 64 partitions),
share both ports (``SO_REUSEPORT``: a fresh connection reaches either), answer ``/metrics`` for
the group (counters summed over both) and ``/health/ready`` for the group (503 while one is not
ready). A SIGKILLed worker is restarted and rejoins; SIGHUP restarts both, one at a time;
SIGTERM to the parent drains both and exits 0, leaving no process and no group directory behind. A configuration error a worker
finds stops the group with exit code 2 instead of restarting it forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.process import RunningService, run_service
from tests.support.services import free_port, psql

pytestmark = pytest.mark.integration

REPLICA = "e2e"
STARTS = 20
START_ROUTE = "/api/v1/workflow-instances"

DEFINITION = """\
document: {dsl: '1.0.3', namespace: e2e, name: doubler, version: '1.0.0'}
do:
  - double:
      set:
        total: ${ .amount + .amount }
"""

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], within: float, what: str) -> T:
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        time.sleep(0.1)


def write_config(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "application.yaml"
    config = {
        "cluster": {"replicaId": REPLICA, "leaseTtl": "2s"},
        "server": {"shutdownGracePeriod": "5s"},
        "logging": {"level": "INFO"},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def workers_of(parent: subprocess.Popen[str]) -> list[psutil.Process]:
    children: list[psutil.Process] = psutil.Process(parent.pid).children()
    return children


def holdings(database_url: str) -> dict[str, int]:
    """Live partition leases per owner."""
    rows = psql(
        "SELECT owner_id, count(*) FROM partition_leases WHERE expires_at > now() GROUP BY 1",
        database_url=database_url,
    )
    pairs = (line.split("|") for line in rows.splitlines() if line)
    return {owner: int(count) for owner, count in pairs}


def fair(database_url: str) -> bool:
    return holdings(database_url) == {f"{REPLICA}-w0": 32, f"{REPLICA}-w1": 32}


def ready_answer(service: RunningService) -> tuple[int, dict[str, Any]] | None:
    """One /health/ready on a fresh connection (either worker may answer); None: no answer."""
    try:
        response = httpx.get(f"{service.management}/health/ready", timeout=1.0)
    except httpx.TransportError:
        return None
    return response.status_code, response.json()


def counter(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def start_and_complete(service: RunningService, database_url: str) -> None:
    response = httpx.post(
        f"{service.api}/api/v1/workflow-definitions",
        content=DEFINITION,
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status_code == 201, response.text
    for i in range(STARTS):
        # A client per request: a new connection, which the kernel hands to either worker.
        response = httpx.post(
            f"{service.api}{START_ROUTE}",
            json={"workflowDefinitionId": "doubler", "input": {"amount": i}},
            timeout=10.0,
        )
        assert response.status_code == 201, response.text

    def completed() -> bool:
        count = psql(
            "SELECT count(*) FROM workflow_instances WHERE status = 'completed'",
            database_url=database_url,
        )
        return int(count) == STARTS

    wait_for(completed, 15, f"{STARTS} instances completed")


def test_two_workers_share_the_ports_the_partitions_metrics_and_health(
    tmp_path: Path, database_url: str
) -> None:
    config = write_config(tmp_path)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    args = ("--config", str(config), "--url", database_url, "--workers", "2")
    with run_service(tmp_path, args=args, env={"TMPDIR": str(temporary)}) as service:
        parent = service.process
        first = workers_of(parent)
        assert len(first) == 2
        (directory,) = temporary.iterdir()
        assert directory.name.startswith("workflow-orchestrator-workers-")
        assert directory.stat().st_mode & 0o777 == 0o700

        members = psql("SELECT owner_id FROM cluster_members ORDER BY 1", database_url=database_url)
        assert members.split() == [f"{REPLICA}-w0", f"{REPLICA}-w1"]
        wait_for(lambda: fair(database_url), 15, "32 partitions held by each worker")

        start_and_complete(service, database_url)

        # Both workers answer on the shared management port, each for the whole group.
        answered: set[str] = set()
        probes = 0
        while len(answered) < 2 and probes < 60:
            answer = ready_answer(service)
            probes += 1
            assert answer is not None and answer[0] == 200, answer
            answered.add(answer[1]["components"]["workers"]["details"]["replica"])
        assert answered == {f"{REPLICA}-w0", f"{REPLICA}-w1"}

        # Every scrape, whichever worker answers, has the counters of both.
        for _ in range(4):
            text = httpx.get(f"{service.management}/metrics").text
            api = "workflow_orchestrator_http_requests_total"
            assert counter(text, api, app="api", route=START_ROUTE, status="201") == STARTS
            ready = counter(text, api, app="management", route="/health/ready", status="200")
            assert ready >= probes
            used = [
                s
                for f in text_string_to_metric_families(text)
                for s in f.samples
                if s.name == "workflow_orchestrator_db_pool_connections"
            ]
            assert {s.labels["worker"] for s in used} == answered

        # A frozen worker stops reporting: the other answers 503 for the group.
        frozen = first[1]
        frozen.send_signal(signal.SIGSTOP)
        try:

            def unready() -> dict[str, Any] | None:
                answer = ready_answer(service)
                return answer[1] if answer is not None and answer[0] == 503 else None

            body = wait_for(unready, 15, "the group not ready while a worker is frozen")
            assert body["status"] == "unhealthy"
            assert body["components"]["workers"]["status"] == "unhealthy"
            assert len(body["components"]["workers"]["details"]["notReady"]) == 1
        finally:
            frozen.send_signal(signal.SIGCONT)
        wait_for(lambda: (a := ready_answer(service)) and a[0] == 200, 15, "ready again")

        # A killed worker is restarted by the parent and takes its share back.
        killed = first[0]
        killed.kill()
        wait_for(
            lambda: len(now := workers_of(parent)) == 2 and killed.pid not in {p.pid for p in now},
            15,
            "the parent started a new worker",
        )
        wait_for(lambda: fair(database_url), 30, "32 partitions each again")
        wait_for(lambda: (a := ready_answer(service)) and a[0] == 200, 15, "ready after restart")
        text = httpx.get(f"{service.management}/metrics").text
        assert counter(text, "workflow_orchestrator_worker_restarts_total") == 1
        pids = [p.pid for p in workers_of(parent)]

        # SIGHUP restarts the workers one at a time (they read the configuration again).
        parent.send_signal(signal.SIGHUP)
        wait_for(lambda: "the workers were restarted" in service.log(), 40, "a rolling restart")
        renewed = [p.pid for p in workers_of(parent)]
        assert len(renewed) == 2 and not set(renewed) & set(pids)
        wait_for(lambda: (a := ready_answer(service)) and a[0] == 200, 15, "ready after SIGHUP")
        pids = renewed

        code, _ = service.stop(signal.SIGTERM, timeout=40)
        assert code == 0, service.log()
        assert not any(psutil.pid_exists(pid) for pid in pids), "orphaned workers"
        assert not directory.exists()
    log = service.log()
    assert log.count("restarting it in") == 1, log
    assert "all workers stopped" in log


def test_a_configuration_error_in_a_worker_stops_the_group(
    tmp_path: Path, database_url: str
) -> None:
    """A secret the workers cannot resolve: exit 2 once, not a restart loop."""
    config = tmp_path / "application.yaml"
    config.write_text(yaml.safe_dump({"database": {"password": "${secret:no-such-secret}"}}))
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "WORKFLOW_"))},
        "SERVER_PORT": str(free_port()),
        "MANAGEMENT_PORT": str(free_port()),
    }
    command = [sys.executable, "-m", "workflow_orchestrator.cli", "serve", "--config", str(config)]
    result = subprocess.run(
        [*command, "--url", database_url, "--workers", "2"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "secret 'no-such-secret' is not defined" in result.stderr
    assert "configuration error before it started; stopping the group" in result.stderr
    assert result.stderr.count(" started (pid ") == 2  # each worker once: no restart
    assert "restarting it" not in result.stderr
