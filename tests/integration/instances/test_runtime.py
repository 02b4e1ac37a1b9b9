"""The durable instance runtime in the running service: parking, restarts, runtime faults."""

from __future__ import annotations

import attrs
import pytest
import trio

from tests.support.events import INSTANCES, start, wait_for
from tests.support.service import open_service, register_yaml
from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse

pytestmark = pytest.mark.integration

WAITER = """\
document: {dsl: '1.0.3', namespace: demo, name: waiter, version: '1.0.0'}
do:
  - first:
      set: {step: 1}
  - pause:
      wait: {seconds: 2}
  - last:
      set: {step: 2, done: true}
"""

CALLER = """\
document: {dsl: '1.0.3', namespace: demo, name: caller, version: '1.0.0'}
do:
  - fetch:
      call: http
      with:
        method: get
        endpoint: http://127.0.0.1:9/never-called
"""


async def test_waiting_instance_leaves_memory_and_wakes(database_url: str) -> None:
    """A wait parks the instance (no actor while it waits) and it completes when due."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, WAITER)
            instance_id = await start(app, "waiter")
            waiting = await wait_for(app, instance_id, "waiting")
            tree = (await app.management.get("/supervisor/user/instances")).json()
            done = (await app.api.get(f"{INSTANCES}/{instance_id}", params={"wait": "10s"})).json()
    assert waiting["activeTasks"] == ["/do/1/pause"]
    assert tree["childCount"] == 0
    assert done["status"] == "completed"
    assert done["output"] == {"step": 2, "done": True}


async def test_instance_continues_after_a_restart(database_url: str) -> None:
    """A waiting instance survives a service restart and finishes at its recorded due time."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, WAITER)
            instance_id = await start(app, "waiter")
            await wait_for(app, instance_id, "waiting")
        async with open_service(database_url) as again:
            done = (
                await again.api.get(f"{INSTANCES}/{instance_id}", params={"wait": "10s"})
            ).json()
            history = (await again.api.get(f"{INSTANCES}/{instance_id}/history")).json()
    assert done["status"] == "completed"
    completed = [e["taskRef"] for e in history["items"] if e["kind"] == "task.completed"]
    assert completed == ["/do/0/first", "/do/1/pause", "/do/2/last"]


class Exploding:
    """An HTTP client with a bug: every call fails with an error that is not a workflow error."""

    def __init__(self) -> None:
        self.calls = 0

    async def http(self, request: HttpRequest) -> HttpResponse:
        self.calls += 1
        raise RuntimeError("boom in the runtime")


async def test_runtime_bug_faults_the_instance_after_bounded_retries(database_url: str) -> None:
    """An exception that is not a workflow error is retried a bounded number of times, then
    the instance is faulted with the error recorded; the service keeps running."""
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, CALLER)
            runtime = app.service._runtime
            assert runtime is not None
            exploding = Exploding()
            # The actors started from now on get the exploding HTTP port.
            runtime.ports = attrs.evolve(runtime.ports, http=exploding)
            instance_id = await start(app, "caller")
            faulted = (
                await app.api.get(f"{INSTANCES}/{instance_id}", params={"wait": "30s"})
            ).json()
            alive = await app.management.get("/health/live")
    assert faulted["status"] == "faulted"
    assert faulted["error"]["type"] == "https://serverlessworkflow.io/spec/1.0.0/errors/runtime"
    assert faulted["error"]["detail"].startswith("the instance failed 3 times in the runtime")
    assert "RuntimeError: boom in the runtime" in faulted["error"]["detail"]
    assert exploding.calls == 3
    assert alive.status_code == 200
