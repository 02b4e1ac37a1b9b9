"""Health of event processing when RabbitMQ cannot be reached: the service runs, reports the
broker, and is not ready when ``readyRequiresBroker`` says so."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import trio

from tests.support.service import InProcessService, open_service
from tests.support.services import free_port

pytestmark = pytest.mark.integration


def unreachable_broker(**extra: Any) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "eventProcessing.source": "rabbitmq",
        "eventProcessing.rabbitmq.url": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
        "eventProcessing.rabbitmq.exchanges": [f"business-{suffix}", f"system-{suffix}"],
        "eventProcessing.rabbitmq.queue": f"queue-{suffix}",
        **extra,
    }


async def detailed_once_unreachable(app: InProcessService) -> dict[str, Any]:
    while True:
        body: dict[str, Any] = (await app.management.get("/health/detailed")).json()
        if body["components"]["eventProcessing"]["details"].get("broker") == "unreachable":
            return body
        await trio.sleep(0.05)


async def test_unreachable_broker_degrades_but_keeps_the_service_ready(database_url: str) -> None:
    """Without the broker the service still serves (HTTP events too) and reports degraded."""
    with trio.fail_after(60):
        async with open_service(database_url, settings=unreachable_broker()) as app:
            body = await detailed_once_unreachable(app)
            events = body["components"]["eventProcessing"]
            assert (body["status"], events["status"]) == ("degraded", "degraded")
            assert "cannot connect to RabbitMQ at 127.0.0.1:" in events["details"]["brokerError"]
            assert (await app.management.get("/health/ready")).status_code == 200
            metrics = (await app.management.get("/metrics")).text
            assert "workflow_orchestrator_broker_connected 0.0" in metrics


async def test_ready_requires_broker_when_configured(database_url: str) -> None:
    """With ``readyRequiresBroker`` the readiness probe fails while the broker is away."""
    settings = unreachable_broker(**{"eventProcessing.readyRequiresBroker": True})
    with trio.fail_after(60):
        async with open_service(database_url, settings=settings) as app:
            await detailed_once_unreachable(app)
            ready = await app.management.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["components"]["broker"] == {"status": "unhealthy"}
