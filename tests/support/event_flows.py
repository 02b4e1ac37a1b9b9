"""Event flows end to end, whatever the broker: the definitions, the payments, starting many
instances over the HTTP API, and reading back from the database and the health document what
the service did with them (RabbitMQ and Kafka end-to-end tests share these)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import trio

from tests.support.events import INSTANCES, cloud_event
from tests.support.process import RunningService
from tests.support.services import psql


def payment(order: str, amount: int, *, event_id: str | None = None) -> dict[str, Any]:
    return cloud_event(
        "payment.received",
        {"orderId": order, "amount": amount},
        event_id=event_id or f"pay-{order}",
        source="/tests/payments",
    )


async def in_thread(sql: str, database_url: str) -> str:
    """``psql`` in a worker thread, so the in-process service keeps running meanwhile."""
    result: str = await trio.to_thread.run_sync(lambda: psql(sql, database_url=database_url))
    return result


async def broker_state(management: httpx.AsyncClient) -> tuple[str, str | None]:
    """The detailed health's eventProcessing status and its broker detail."""
    try:
        body = (await management.get("/health/detailed", timeout=5)).json()
    except httpx.TransportError:
        return "unreachable", None
    events = body["components"]["eventProcessing"]
    return events["status"], events["details"].get("broker")


async def wait_connected(management: httpx.AsyncClient) -> None:
    # The broker state changes inside the service, which signals nothing a test can wait on.
    while (await broker_state(management))[1] != "connected":  # noqa: ASYNC110
        await trio.sleep(0.1)


async def start_many(
    api: httpx.AsyncClient, definition_id: str, orders: list[str], *, concurrency: int = 16
) -> dict[str, str]:
    """Start one instance per order over the HTTP API; returns order -> instance id."""
    ids: dict[str, str] = {}
    limiter = trio.CapacityLimiter(concurrency)

    async def one(order: str) -> None:
        async with limiter:
            response = await api.post(
                INSTANCES,
                json={"workflowDefinitionId": definition_id, "input": {"orderId": order}},
                headers={"Idempotency-Key": f"start-{order}"},
            )
        assert response.status_code in (200, 201), response.text
        ids[order] = response.json()["id"]

    async with trio.open_nursery() as nursery:
        for order in orders:
            nursery.start_soon(one, order)
    return ids


async def statuses(database_url: str, definition_id: str) -> Counter[str]:
    rows = await in_thread(
        "SELECT status, count(*) FROM workflow_instances "
        f"WHERE definition_id = '{definition_id}' GROUP BY status",
        database_url=database_url,
    )
    counts: Counter[str] = Counter()
    for line in rows.splitlines():
        status, count = line.split("|")
        counts[status] = int(count)
    return counts


async def wait_statuses(
    database_url: str, definition_id: str, status: str, count: int, *, seconds: float
) -> None:
    """Poll the database until ``count`` instances of ``definition_id`` have ``status``."""
    with trio.move_on_after(seconds):
        while (await statuses(database_url, definition_id))[status] < count:  # noqa: ASYNC110
            await trio.sleep(0.2)
    found = await statuses(database_url, definition_id)
    assert found[status] >= count, f"expected {count} {status} in {seconds:g}s: {dict(found)}"


async def completions(database_url: str, definition_id: str) -> dict[str, tuple[Any, int, int]]:
    """instance id -> (output, workflow completions, waitForPayment completions) in history."""
    rows = await in_thread(
        "SELECT i.instance_id, i.output::text, "
        "  count(*) FILTER (WHERE h.kind = 'workflow.completed'), "
        "  count(*) FILTER (WHERE h.kind = 'task.completed' AND h.task_ref LIKE '%waitForPayment') "
        "FROM workflow_instances i LEFT JOIN workflow_instance_history h USING (instance_id) "
        f"WHERE i.definition_id = '{definition_id}' GROUP BY i.instance_id, i.output::text",
        database_url=database_url,
    )
    found: dict[str, tuple[Any, int, int]] = {}
    for line in rows.splitlines():
        instance_id, output, workflows, waits = line.split("|")
        found[instance_id] = (json.loads(output) if output else None, int(workflows), int(waits))
    return found


async def assert_each_paid_once(
    database_url: str, definition_id: str, ids: dict[str, str], amounts: dict[str, int]
) -> None:
    """Every instance completed once, with the amount of its own order's event."""
    found = await completions(database_url, definition_id)
    assert set(found) == set(ids.values())
    wrong = [
        (order, found[instance_id])
        for order, instance_id in ids.items()
        if found[instance_id] != ({"orderId": order, "paid": amounts[order]}, 1, 1)
    ]
    assert not wrong, f"{len(wrong)} instances not completed exactly once: {wrong[:5]}"


async def process_connected(service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=service.management) as management:
        with trio.fail_after(30):
            await wait_connected(management)
