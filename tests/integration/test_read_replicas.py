"""Read replicas against a real streaming standby: the API's reads go to it while it is healthy,
and to the primary, without an error, while it lags or is down."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio

from tests.support.replica import StreamingReplica, start_streaming_replica
from tests.support.service import InProcessService, open_service, register_yaml

pytestmark = pytest.mark.integration

DEFINITIONS = "/v1/workflow-definitions"
INSTANCES = "/v1/workflow-instances"
_READS = re.compile(r'^workflow_orchestrator_db_reads_total\{pool="([^"]+)"\} (\S+)$', re.M)

PRICING = """\
document: {dsl: '1.0.3', namespace: shop, name: pricing, version: '1.0.0'}
do:
  - price:
      set:
        orderId: ${ .orderId }
        total: ${ .amount * 2 }
"""


def named(name: str) -> str:
    """A one-task definition called ``name``."""
    return (
        f"document: {{dsl: '1.0.3', namespace: shop, name: {name}, version: '1.0.0'}}\n"
        "do:\n  - only:\n      set: {done: true}\n"
    )


@pytest.fixture(scope="module")
def streaming_replica() -> Iterator[StreamingReplica]:
    """One hot standby of the test server for this module, stopped and removed at the end."""
    replica = start_streaming_replica()
    try:
        yield replica
    finally:
        replica.destroy()


@pytest.fixture
def replica(streaming_replica: StreamingReplica) -> StreamingReplica:
    """The module's standby, running and replaying, whatever the previous test left."""
    if not streaming_replica.running:
        streaming_replica.start()
    streaming_replica.resume_replay()
    return streaming_replica


def replica_settings(replica: StreamingReplica, database: str, max_lag: str) -> dict[str, Any]:
    """The production profile's shape: ``readReplicas`` with no ``readPreference``."""
    return {
        "database.readReplicas": [{"url": replica.url(database)}],
        "database.maxReplicaLag": max_lag,
        "database.replicaCheckInterval": "100ms",
    }


async def eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``condition`` until it holds (the test's ``fail_after`` bounds the wait)."""
    # What is polled (health, replay positions) signals nothing a test can wait on.
    while not await condition():  # noqa: ASYNC110
        await trio.sleep(0.05)


async def replayed(replica: StreamingReplica) -> None:
    """Wait until the replica has replayed everything written on the primary so far."""
    await eventually(lambda: trio.to_thread.run_sync(replica.replayed))


async def database_details(app: InProcessService) -> dict[str, Any]:
    response = await app.management.get("/health/detailed")
    details: dict[str, Any] = response.json()["components"]["database"]["details"]
    return details


async def replica_state(app: InProcessService, state: str) -> None:
    """Wait until /health/detailed shows the replica in ``state``."""

    async def reached() -> bool:
        return (await database_details(app))["replicas"][0]["state"] == state

    await eventually(reached)


async def reads(app: InProcessService) -> dict[str, float]:
    """``workflow_orchestrator_db_reads_total`` by pool."""
    text = (await app.management.get("/metrics")).text
    return {pool: float(value) for pool, value in _READS.findall(text)}


async def definition_ids(app: InProcessService) -> set[str]:
    response = await app.api.get(DEFINITIONS)
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


async def test_api_reads_are_served_by_the_replica(
    database_name: str, database_url: str, replica: StreamingReplica
) -> None:
    """Instance and definition reads go to the healthy replica; what it has not replayed yet is
    missing from its lists, and a miss on one item is answered by the primary."""
    settings = replica_settings(replica, database_name, max_lag="1h")
    with trio.fail_after(120):
        await replayed(replica)  # the test database exists on the replica
        async with open_service(database_url, settings=settings) as app:
            await register_yaml(app, PRICING)
            started = await app.api.post(
                INSTANCES,
                json={"workflowDefinitionId": "pricing", "input": {"orderId": "O-1", "amount": 21}},
            )
            instance = started.json()["id"]
            done = await app.api.get(f"{INSTANCES}/{instance}", params={"wait": "30s"})
            assert done.json()["status"] == "completed"
            await replayed(replica)
            await replica_state(app, "healthy")
            before = await reads(app)
            answers = [
                await app.api.get(DEFINITIONS),
                await app.api.get(f"{DEFINITIONS}/pricing"),
                await app.api.get(f"{DEFINITIONS}/pricing/versions"),
                await app.api.get(f"{DEFINITIONS}/pricing/versions/1.0.0"),
                await app.api.get(
                    INSTANCES,
                    params={"workflowDefinitionId": "pricing", "status": "completed"},
                ),
                await app.api.get(INSTANCES, params={"input.orderId": "O-1"}),
                await app.api.get(f"{INSTANCES}/{instance}"),
                await app.api.get(f"{INSTANCES}/{instance}/history"),
            ]
            after = await reads(app)
            details = await database_details(app)

            await trio.to_thread.run_sync(replica.pause_replay)
            await register_yaml(app, named("unreplayed"))
            listed_while_paused = await definition_ids(app)
            one_while_paused = await app.api.get(f"{DEFINITIONS}/unreplayed")
            await trio.to_thread.run_sync(replica.resume_replay)
            await replayed(replica)
            listed_after_replay = await definition_ids(app)
    assert [a.status_code for a in answers] == [200] * len(answers), [a.text for a in answers]
    assert [i["id"] for i in answers[4].json()["items"]] == [instance]
    assert [i["id"] for i in answers[5].json()["items"]] == [instance]
    assert answers[6].json()["output"] == {"orderId": "O-1", "total": 42}
    assert answers[7].json()["items"][-1]["kind"] == "workflow.completed"
    assert after.get("primary", 0) == before.get("primary", 0)
    assert after["replica-0"] - before.get("replica-0", 0) == len(answers)
    assert details["readPreference"] == "PREFER_REPLICA"
    assert details["readsFrom"] == ["replica-0"]
    (entry,) = details["replicas"]
    assert entry["endpoint"] == f"127.0.0.1:{replica.port}/{database_name}"
    assert (entry["state"], entry["lag"], entry["servingReads"]) == ("healthy", "0ms", True)
    assert "unreplayed" not in listed_while_paused  # the replica answered the list
    assert one_while_paused.status_code == 200  # its miss was confirmed on the primary
    assert "unreplayed" in listed_after_replay


async def test_reads_leave_a_lagging_replica_and_come_back(
    database_name: str, database_url: str, replica: StreamingReplica
) -> None:
    """A replica further behind than database.maxReplicaLag takes no reads until it catches
    up; meanwhile the primary answers, with what the replica does not have yet."""
    settings = replica_settings(replica, database_name, max_lag="1s")
    with trio.fail_after(120):
        await replayed(replica)
        async with open_service(database_url, settings=settings) as app:
            await register_yaml(app, named("first"))
            await replayed(replica)
            await replica_state(app, "healthy")
            await trio.to_thread.run_sync(replica.pause_replay)
            await register_yaml(app, named("second"))
            await replica_state(app, "lagging")
            lagging = await database_details(app)
            before = await reads(app)
            listed_while_lagging = await definition_ids(app)
            during = await reads(app)
            await trio.to_thread.run_sync(replica.resume_replay)
            await replica_state(app, "healthy")
            listed_after = await definition_ids(app)
            after = await reads(app)
    assert lagging["readsFrom"] == ["primary"]
    (entry,) = lagging["replicas"]
    assert (entry["state"], entry["servingReads"]) == ("lagging", False)
    assert entry["error"].startswith("behind the primary by ")
    assert entry["error"].endswith("more than database.maxReplicaLag (1s)")
    assert {"first", "second"} <= listed_while_lagging
    assert during["primary"] == before.get("primary", 0) + 1
    assert {"first", "second"} <= listed_after
    assert after["replica-0"] == during.get("replica-0", 0) + 1


async def test_reads_survive_a_replica_that_goes_down(
    database_name: str, database_url: str, replica: StreamingReplica
) -> None:
    """A stopped replica costs no failed request: reads go to the primary, health says the
    replica is down, and reads return to it once it is back."""
    settings = replica_settings(replica, database_name, max_lag="1h")
    with trio.fail_after(120):
        await replayed(replica)
        async with open_service(database_url, settings=settings) as app:
            await register_yaml(app, named("kept"))
            await replayed(replica)
            await replica_state(app, "healthy")
            assert "kept" in await definition_ids(app)  # pools a replica connection
            await trio.to_thread.run_sync(replica.stop)
            before = await reads(app)
            listed_while_down = await definition_ids(app)
            during = await reads(app)
            await replica_state(app, "down")
            down = await database_details(app)
            await trio.to_thread.run_sync(replica.start)
            await replica_state(app, "healthy")
            listed_after = await definition_ids(app)
            after = await reads(app)
    assert "kept" in listed_while_down
    assert during["primary"] == before.get("primary", 0) + 1
    assert down["readsFrom"] == ["primary"]
    (entry,) = down["replicas"]
    assert (entry["state"], entry["lag"], entry["servingReads"]) == ("down", None, False)
    assert entry["error"]
    assert "kept" in listed_after
    assert after["replica-0"] == during["replica-0"] + 1
