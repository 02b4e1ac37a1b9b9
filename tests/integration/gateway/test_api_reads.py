"""The API's reads: their own pool with a statement timeout (503, never 500), and long polls
that wake on the instance's commit."""

from __future__ import annotations

import httpx
import pytest
import trio
import trio_asyncio

from tests.support.database import open_test_database
from tests.support.service import open_service, register_yaml

pytestmark = pytest.mark.integration

INSTANCES = "/v1/workflow-instances"

QUICK = """\
document: {dsl: '1.0.3', namespace: shop, name: quick, version: '1.0.0'}
do:
  - only:
      set: {done: true}
"""

PARKING = """\
document: {dsl: '1.0.3', namespace: shop, name: parking, version: '1.0.0'}
do:
  - pause:
      wait: {seconds: 2}
  - last:
      set: {step: 2}
"""


async def hold_table_lock(
    url: str, table: str, go: trio.Event, release: trio.Event, locked: trio.Event
) -> None:
    """Once ``go`` is set, hold an ACCESS EXCLUSIVE lock on ``table`` until ``release``."""
    async with open_test_database(url, migrated=False) as database:
        await go.wait()
        async with database.dedicated() as connection:
            await trio_asyncio.aio_as_trio(connection.execute)(
                f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
            )
            locked.set()
            await release.wait()
            await trio_asyncio.aio_as_trio(connection.execute)("ROLLBACK")


async def test_a_read_past_the_statement_timeout_answers_503(database_url: str) -> None:
    """A read blocked past database.apiStatementTimeout, and one that finds no free
    connection of the API pool meanwhile, answer 503 problem+json with Retry-After; the
    writer's pool keeps working, and the read answers 200 once it can run."""
    go, release, locked = trio.Event(), trio.Event(), trio.Event()
    settings = {"database.apiStatementTimeout": "1s", "database.apiPoolSize": 1}
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                hold_table_lock, database_url, "workflow_instance_history", go, release, locked
            )
            async with open_service(database_url, settings=settings) as app:
                await register_yaml(app, QUICK)
                started = await app.api.post(INSTANCES, json={"workflowDefinitionId": "quick"})
                instance_id = started.json()["id"]
                done = await app.api.get(f"{INSTANCES}/{instance_id}", params={"wait": "20s"})
                assert done.json()["status"] == "completed"
                go.set()
                await locked.wait()
                answers: list[httpx.Response] = []

                async def read_history() -> None:
                    answers.append(await app.api.get(f"{INSTANCES}/{instance_id}/history"))

                async with trio.open_nursery() as readers:
                    readers.start_soon(read_history)
                    readers.start_soon(read_history)
                # The writer's pool is not the API's: instances still start and complete.
                other = await app.api.post(INSTANCES, json={"workflowDefinitionId": "quick"})
                release.set()
                after = await app.api.get(f"{INSTANCES}/{instance_id}/history")
    assert [a.status_code for a in answers] == [503, 503]
    for answer in answers:
        body = answer.json()
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.headers["Retry-After"] == "1"
        assert body["type"] == "https://workflow-orchestrator.dev/problems/read-timeout"
        assert body["detail"].startswith(
            "the read did not finish within database.apiStatementTimeout (1s), or waited that "
            "long for a connection of the API pool (database.apiPoolSize)"
        )
    assert other.status_code == 201
    assert after.status_code == 200 and after.json()["items"][-1]["kind"] == "workflow.completed"


async def test_a_long_poll_wakes_on_the_commit(database_url: str) -> None:
    """With the fallback re-check at 60s, a ?wait=30s poll on a parked instance returns
    completed within a client timeout of 20s: only the instance's commit can have woken it."""
    settings = {"server.longPollRecheckInterval": "60s"}
    with trio.fail_after(90):
        async with open_service(database_url, settings=settings) as app:
            await register_yaml(app, PARKING)
            started = await app.api.post(INSTANCES, json={"workflowDefinitionId": "parking"})
            instance_id = started.json()["id"]
            done = await app.api.get(
                f"{INSTANCES}/{instance_id}", params={"wait": "30s"}, timeout=20
            )
    assert started.json()["status"] in {"pending", "running", "waiting"}
    assert done.status_code == 200
    assert done.json()["status"] == "completed" and done.json()["output"] == {"step": 2}
