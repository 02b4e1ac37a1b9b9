"""A workflow that loops without waiting, on the real service: the service stays responsive,
the instance ends faulted naming its limit, and shutdown does not wait for it."""

from __future__ import annotations

import logging

import pytest
import trio

from tests.support.events import INSTANCES, start
from tests.support.service import open_service, register_yaml

pytestmark = pytest.mark.integration

TIGHT_LOOP = """\
document: {dsl: '1.0.3', namespace: test, name: tight-loop, version: '1.0.0'}
do:
  - again:
      set:
        n: ${ .n + 1 }
      then: again
"""


async def test_a_tight_loop_leaves_the_service_responsive_and_faults_naming_its_limit(
    database_url: str,
) -> None:
    """While the loop runs, /health/live and the API answer; the instance then ends faulted
    with a limit-exceeded error naming workflows.limits.tasksPerRun."""
    settings = {"workflows.limits.tasksPerRun": 20000, "workflows.limits.commitEvery": 500}
    seen: list[tuple[int, str]] = []
    with trio.fail_after(300):
        async with open_service(database_url, settings=settings) as app:
            await register_yaml(app, TIGHT_LOOP)
            instance_id = await start(app, "tight-loop", {"n": 0})
            while True:
                live = await app.management.get("/health/live")
                body = (await app.api.get(f"{INSTANCES}/{instance_id}")).json()
                seen.append((live.status_code, body["status"]))
                if body["status"] == "faulted":
                    break
                await trio.sleep(0.02)
    assert {code for code, _ in seen} == {200}
    assert (200, "running") in seen  # answered while the loop ran
    error = body["error"]
    assert error["type"].endswith("limit-exceeded")
    assert error["detail"] == (
        "the instance ran 20,000 tasks in one run without waiting, over the limit "
        "workflows.limits.tasksPerRun; raise it or add a wait"
    )


async def test_shutdown_does_not_wait_for_a_looping_instance(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With every limit off, a looping instance runs until the service is asked to stop; the
    service then cancels its run instead of waiting for it, and the instance keeps its last
    commit (running), to resume from it at the next start."""
    caplog.set_level(logging.INFO, logger="workflow_orchestrator.instances")
    settings = {
        "workflows.limits.tasksPerRun": 0,
        "workflows.limits.totalTasks": 0,
        "workflows.limits.historyRows": 0,
        "workflows.limits.loopIterations": 0,
        "workflows.limits.commitEvery": 200,
    }
    with trio.fail_after(120):
        async with open_service(database_url, settings=settings) as app:
            await register_yaml(app, TIGHT_LOOP)
            instance_id = await start(app, "tight-loop", {"n": 0})
            while True:
                body = (await app.api.get(f"{INSTANCES}/{instance_id}")).json()
                if body["status"] == "running" and (body.get("context") is not None):
                    break
                await trio.sleep(0.02)
            asked = trio.current_time()
        stopped = trio.current_time()
    print(f"shutdown with a looping instance took {stopped - asked:.2f}s (grace period 2s)")
    assert body["status"] == "running"
    assert (
        "stopped the runs of 1 workflow instances; they resume from their last commit"
        in caplog.messages
    )
