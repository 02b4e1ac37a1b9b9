"""The management and API apps in process, against the real PostgreSQL."""

from __future__ import annotations

import pytest
import trio

from tests.support.database import open_test_database
from workflow_orchestrator.gateway import (
    HealthReporter,
    create_api_app,
    create_management_app,
    format_duration_ms,
    format_uptime,
)
from workflow_orchestrator.observability import ServiceMetrics

pytestmark = pytest.mark.integration


def test_formats() -> None:
    """Uptime reads like '5d 12h 30m' and latency like '2ms'."""
    assert format_uptime(5 * 86400 + 12 * 3600 + 30 * 60 + 59) == "5d 12h 30m"
    assert format_uptime(0) == "0d 0h 0m"
    assert format_duration_ms(0.0024) == "2ms"


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
