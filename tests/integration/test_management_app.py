"""The management and API apps in process, against the real PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from tests.support.database import open_test_database
from workflow_orchestrator.gateway import (
    HealthReporter,
    create_api_app,
    create_management_app,
)
from workflow_orchestrator.observability import (
    GroupMember,
    ServiceMetrics,
    WorkerGroup,
    write_members,
)
from workflow_orchestrator.storage import migrate

pytestmark = pytest.mark.integration


async def test_health_speaks_the_guides_words(database_url: str) -> None:
    """Every status is healthy, degraded or unhealthy; parts not running are unhealthy with a
    reason and make a ready service degraded, with the HTTP codes of readiness."""
    with trio.fail_after(60):
        async with open_test_database(database_url) as database:
            client = create_management_app(
                health=HealthReporter(database=database),
                metrics=ServiceMetrics(),
                metrics_enabled=True,
            ).test_client()
            live = await client.get("/health/live")
            ready = await client.get("/health/ready")
            overall = await client.get("/health")
            detailed = await client.get("/health/detailed")
            live_body, ready_body = await live.get_json(), await ready.get_json()
            overall_body, body = await overall.get_json(), await detailed.get_json()
    assert (live.status_code, live_body) == (200, {"status": "healthy"})
    assert ready.status_code == 200
    assert ready_body["status"] == ready_body["components"]["database"]["status"] == "healthy"
    assert (overall.status_code, overall_body) == (200, {"status": "degraded"})
    assert detailed.status_code == 200
    assert body["status"] == "degraded"
    assert body["components"]["database"]["status"] == "healthy"
    scheduler = body["components"]["scheduler"]
    assert scheduler["status"] == "unhealthy"
    assert scheduler["details"]["lastExecutionTime"] is None
    assert scheduler["details"]["reason"].startswith("the scheduler is not running")
    assert body["components"]["eventProcessing"]["status"] == "unhealthy"


async def test_metrics_can_be_switched_off(database_url: str) -> None:
    """With metrics disabled /metrics is a 404 problem that says how to enable it."""
    with trio.fail_after(60):
        async with open_test_database(database_url) as database:
            app = create_management_app(
                health=HealthReporter(database=database),
                metrics=ServiceMetrics(),
                metrics_enabled=False,
            )
            response = await app.test_client().get("/metrics")
            body = await response.get_json()
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    assert body["detail"] == (
        "metrics are disabled; set metrics.enabled: true (or METRICS_ENABLED=true)"
    )


async def test_each_scrape_exports_readiness_at_that_moment(database_url: str) -> None:
    """workflow_orchestrator_ready is 0 while the schema is not current (as /health/ready
    answers 503) and 1 at the first scrape after it is migrated."""
    with trio.fail_after(60):
        async with open_test_database(database_url, migrated=False) as database:
            client = create_management_app(
                health=HealthReporter(database=database),
                metrics=ServiceMetrics(),
                metrics_enabled=True,
            ).test_client()
            before = await (await client.get("/metrics")).get_data(as_text=True)
            probe = await client.get("/health/ready")
            await migrate(database)
            after = await (await client.get("/metrics")).get_data(as_text=True)
    assert probe.status_code == 503
    assert "\nworkflow_orchestrator_ready 0.0\n" in before
    assert "\nworkflow_orchestrator_ready 1.0\n" in after


async def test_wrong_method_and_bad_parameters_are_problems(database_url: str) -> None:
    """405 and 400 answers are problem+json naming what was wrong."""
    with trio.fail_after(60):
        async with open_test_database(database_url) as database:
            app = create_api_app(database=database, metrics=ServiceMetrics(), metrics_enabled=True)
            client = app.test_client()
            wrong_method = await client.delete("/api/v1/workflow-definitions")
            bad_limit = await client.get("/api/v1/workflow-definitions?limit=0")
            bad_cursor = await client.get("/api/v1/workflow-definitions?cursor=%%%")
            wrong_body = await wrong_method.get_json()
            limit_body = await bad_limit.get_json()
            cursor_body = await bad_cursor.get_json()
    assert wrong_method.status_code == 405
    assert wrong_body["detail"] == (
        "DELETE is not allowed on /api/v1/workflow-definitions; allowed: GET, HEAD, OPTIONS, POST"
    )
    assert bad_limit.status_code == 400
    assert limit_body["detail"] == "limit must be a whole number from 1 to 500, got '0'"
    assert bad_cursor.status_code == 400
    assert cursor_body["type"].endswith("/invalid-cursor")


async def test_definitions_page_reads_the_table(database_url: str) -> None:
    """The definitions list shows the latest live version of each stored definition, paged."""
    with trio.fail_after(60):
        async with open_test_database(database_url) as database:
            for definition_id, version in (
                ("billing", "1.0.0"),
                ("billing", "1.1.0"),
                ("orders", "2.0.0"),
            ):
                await database.execute(
                    "INSERT INTO workflow_definitions (definition_id, version, namespace, name, "
                    "document, source_text, content_hash) VALUES ($1, $2, 'acme', $1, '{}', '', '')",
                    definition_id,
                    version,
                )
                await trio.sleep(0.01)  # distinct created_at
            client = create_api_app(
                database=database, metrics=ServiceMetrics(), metrics_enabled=True
            ).test_client()
            first = await (await client.get("/api/v1/workflow-definitions?limit=1")).get_json()
            second = await (
                await client.get(
                    f"/api/v1/workflow-definitions?limit=1&cursor={first['nextCursor']}"
                )
            ).get_json()
            filtered = await (await client.get("/api/v1/workflow-definitions?text=ord")).get_json()
    assert [(i["id"], i["version"]) for i in first["items"]] == [("billing", "1.1.0")]
    assert [(i["id"], i["version"]) for i in second["items"]] == [("orders", "2.0.0")]
    assert second["nextCursor"] is None
    assert [i["id"] for i in filtered["items"]] == ["orders"]


async def test_a_worker_answers_readiness_for_its_group(database_url: str, tmp_path: Path) -> None:
    """In a group (server.workers > 1) ready needs every other running worker's fresh ready
    status too; the ``workers`` component names those that are not ready."""
    for name in ("status", "live", "metrics"):
        (tmp_path / name).mkdir()
    group = WorkerGroup(directory=tmp_path, index=0, replica="r-w0")
    other = WorkerGroup(directory=tmp_path, index=1, replica="r-w1")
    write_members(
        tmp_path,
        {
            0: GroupMember(index=0, pid=os.getpid(), replica="r-w0"),
            1: GroupMember(index=1, pid=os.getpid(), replica="r-w1"),
        },
    )
    with trio.fail_after(60):
        async with open_test_database(database_url) as database:
            client = create_management_app(
                health=HealthReporter(database=database, group=group),
                metrics=ServiceMetrics(),
                metrics_enabled=True,
            ).test_client()
            other.write_status(ready=False)
            waiting = await client.get("/health/ready")
            waiting_body = await waiting.get_json()
            other.write_status(ready=True)
            ready = await client.get("/health/ready")
            ready_body = await ready.get_json()
            detailed = await (await client.get("/health/detailed")).get_json()
    assert waiting.status_code == 503
    assert waiting_body["status"] == "unhealthy"
    assert waiting_body["components"]["database"]["status"] == "healthy"
    assert waiting_body["components"]["workers"] == {
        "status": "unhealthy",
        "details": {"replica": "r-w0", "workers": 2, "notReady": ["r-w1"]},
    }
    assert ready.status_code == 200
    assert ready_body["components"]["workers"]["status"] == "healthy"
    assert detailed["components"]["workers"]["details"]["notReady"] == []
