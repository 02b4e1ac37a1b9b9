"""A subflow survives a SIGKILL of the service between the child's start and its end.

The parent's commit creates its child (by an id derived from the parent and the task, so once)
and parks; the child waits a few seconds. The service process is killed while the child
waits, and started again with the same replica id: it takes its partitions back, the child's
durable timer fires, the child's end goes to its parent's inbox in the child's terminal
commit, and the parent completes once, with the child's output; exactly one child exists.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.process import RunningService, run_service

pytestmark = pytest.mark.e2e

REPLICA_ID = "subflow-crash-replica"
WAIT_TIMEOUT = 60.0

CHILD = """\
document: {dsl: '1.0.3', namespace: crash, name: slow-child, version: '1.0.0'}
do:
  - pause:
      wait: {seconds: 5}
  - answer:
      set:
        answer: ${ .question * 2 }
"""

PARENT = """\
document: {dsl: '1.0.3', namespace: crash, name: patient-parent, version: '1.0.0'}
do:
  - ask:
      run:
        workflow:
          namespace: crash
          name: slow-child
          version: '1.0.0'
          input:
            question: ${ .question }
  - done:
      set:
        childSaid: ${ .answer }
"""


def api(service: RunningService, path: str, **params: str) -> Any:
    response = httpx.get(f"{service.api}/api/v1{path}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait_until(what: str, check: Any, service: RunningService) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen; service log (tail):\n{service.log()[-4000:]}")
        time.sleep(0.1)


def kinds(service: RunningService, instance_id: str) -> list[str]:
    history = api(service, f"/workflow-instances/{instance_id}/history", limit="1000")
    return [item["kind"] for item in history["items"]]


def test_a_subflow_survives_a_sigkill_while_its_child_runs(
    tmp_path: Path, database_url: str
) -> None:
    """Killed while the child waits, the restarted service completes the child and then the
    parent, once, with the child's output, and there is one child."""
    env = {"REPLICA_ID": REPLICA_ID, "LOG_LEVEL": "INFO"}
    args = ("--url", database_url)
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()

    with run_service(tmp_path / "first", args=args, env=env) as first:
        for text in (CHILD, PARENT):
            registered = httpx.post(
                f"{first.api}/api/v1/workflow-definitions",
                content=text,
                headers={"Content-Type": "application/yaml"},
                timeout=30,
            )
            assert registered.status_code == 201, registered.text
        started = httpx.post(
            f"{first.api}/api/v1/workflow-instances",
            json={"workflowDefinitionId": "patient-parent", "input": {"question": 21}},
            timeout=30,
        )
        assert started.status_code == 201, started.text
        parent_id = started.json()["id"]

        def child_waiting() -> dict[str, Any] | None:
            items = api(first, "/workflow-instances", parentId=parent_id)["items"]
            return items[0] if items and items[0]["status"] == "waiting" else None

        child = wait_until("the child's wait", child_waiting, first)
        parent_before = api(first, f"/workflow-instances/{parent_id}")
        code, _ = first.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert parent_before["status"] == "waiting"
    assert parent_before["activeTasks"] == ["/do/0/ask"]

    with run_service(tmp_path / "second", args=args, env=env) as second:

        def parent_ended() -> dict[str, Any] | None:
            body = api(second, f"/workflow-instances/{parent_id}", wait="10s")
            return body if body["status"] in ("completed", "faulted", "cancelled") else None

        done = wait_until("the parent's end", parent_ended, second)
        listed = api(second, "/workflow-instances", parentId=parent_id)["items"]
        all_children = api(second, "/workflow-instances", workflowDefinitionId="slow-child")
        child_after = api(second, f"/workflow-instances/{child['id']}")
        parent_kinds = kinds(second, parent_id)
        child_kinds = kinds(second, child["id"])

    assert done["status"] == "completed", done
    assert done["output"] == {"childSaid": 42}
    assert [c["id"] for c in listed] == [child["id"]]
    assert [c["id"] for c in all_children["items"]] == [child["id"]]
    assert child_after["status"] == "completed" and child_after["output"] == {"answer": 42}
    assert child_after["parentId"] == parent_id
    assert parent_kinds.count("workflow.completed") == 1
    assert parent_kinds.count("subflow.started") == 1
    assert child_kinds.count("workflow.started") == 1
    assert child_kinds.count("workflow.completed") == 1
