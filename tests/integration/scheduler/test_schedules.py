"""Schedules in the running service: ``every`` starts one instance per tick from registration,
on one replica or several, and ``scheduler.enabled: false`` fires nothing."""

from __future__ import annotations

import re
from datetime import datetime
from itertools import pairwise

import pytest
import trio

from tests.support.service import InProcessService, open_service, register_yaml
from tests.support.services import psql

pytestmark = pytest.mark.integration

EVERY_SECOND = """\
document: {dsl: '1.0.3', namespace: sched, name: ticker, version: '1.0.0'}
schedule:
  every: {seconds: 1}
do:
  - note:
      set: {ticked: true}
"""

AFTER_COMPLETION = """\
document: {dsl: '1.0.3', namespace: sched, name: chain, version: '1.0.0'}
schedule:
  after: {seconds: 1}
do:
  - rest:
      wait: {milliseconds: 500}
"""

FAST = {"scheduler.pollInterval": "0.2s"}
ELECTED = {
    **FAST,
    "scheduler.distributed.enabled": True,
    "scheduler.distributed.leaderElectionInterval": "2s",
}


def ticks(database_url: str, definition_id: str) -> list[str]:
    keys = psql(
        "SELECT coalesce(string_agg(idempotency_key, ',' ORDER BY idempotency_key), '') "
        f"FROM workflow_instances WHERE definition_id = '{definition_id}'",
        database_url=database_url,
    )
    return keys.split(",") if keys else []


async def wait_ticks(database_url: str, definition_id: str, count: int) -> list[str]:
    while True:  # polling the database: nothing in this process to wait on
        found = ticks(database_url, definition_id)
        if len(found) >= count:
            return found
        await trio.sleep(0.1)


async def test_every_starts_one_instance_per_tick_from_registration(database_url: str) -> None:
    """Ticks at registration + k seconds, each with its own idempotency key, all completing."""
    with trio.fail_after(60):
        async with open_service(database_url, settings=FAST) as app:
            await register_yaml(app, EVERY_SECOND)
            found = await wait_ticks(database_url, "ticker", 4)
            assert all(key.startswith("schedule:ticker:1.0.0:") for key in found)
            assert len(set(found)) == len(found)
            health = (await app.management.get("/health/detailed")).json()
            scheduler = health["components"]["scheduler"]
            assert scheduler["status"] == "healthy"
            assert scheduler["details"]["leader"] is True
            # The deployment guide's format: UTC, whole seconds, Z.
            assert re.fullmatch(
                r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", scheduler["details"]["lastExecutionTime"]
            )
            metrics = (await app.management.get("/metrics")).text
            assert 'workflow_orchestrator_schedule_ticks_total{outcome="started"}' in metrics


async def test_two_elected_replicas_start_exactly_one_instance_per_tick(
    database_url: str,
) -> None:
    """With leader election two replicas still start each tick once, without gaps."""
    with trio.fail_after(90):
        async with (
            open_service(database_url, settings=ELECTED) as first,
            open_service(database_url, settings=ELECTED) as second,
        ):
            await register_yaml(first, EVERY_SECOND)
            await wait_ticks(database_url, "ticker", 5)
            leaders = [
                (await app.management.get("/health/detailed")).json()["components"]["scheduler"][
                    "details"
                ]["leader"]
                for app in (first, second)
            ]
            assert sorted(leaders) == [False, True]
        moments = sorted(
            datetime.fromisoformat(key.split(":", 3)[3]) for key in ticks(database_url, "ticker")
        )
        gaps = {(later - earlier).total_seconds() for earlier, later in pairwise(moments)}
        assert gaps == {1.0}  # one instance per tick, none missing


async def test_after_waits_for_the_previous_completion(database_url: str) -> None:
    """``after`` starts the next instance only once the previous one completed, plus the delay."""
    with trio.fail_after(60):
        async with open_service(database_url, settings=FAST) as app:
            await register_yaml(app, AFTER_COMPLETION)
            await wait_ticks(database_url, "chain", 2)
            rows = psql(
                "SELECT string_agg(extract(epoch FROM created_at)::text || '/' || "
                "coalesce(extract(epoch FROM completed_at)::text, ''), ',' ORDER BY created_at) "
                "FROM workflow_instances WHERE definition_id = 'chain'",
                database_url=database_url,
            ).split(",")
            first_completed = float(rows[0].split("/")[1])
            second_created = float(rows[1].split("/")[0])
            assert second_created - first_completed >= 0.95


async def test_disabled_scheduler_fires_no_schedule(database_url: str) -> None:
    """``scheduler.enabled: false``: no instance is started and health says so."""
    settings = {**FAST, "scheduler.enabled": False}
    with trio.fail_after(60):
        async with open_service(database_url, settings=settings) as app:
            await register_yaml(app, EVERY_SECOND)
            await trio.sleep(2)
            assert ticks(database_url, "ticker") == []
            details = await scheduler_details(app)
            assert details["enabled"] is False and details["leader"] is None


async def scheduler_details(app: InProcessService) -> dict[str, object]:
    body = (await app.management.get("/health/detailed")).json()
    details: dict[str, object] = body["components"]["scheduler"]["details"]
    return details
