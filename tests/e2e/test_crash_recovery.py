"""Crash recovery of the real service: SIGKILL mid-run, restart, every instance finishes once.

The durability contract under test (architecture.md, issue 5): a snapshot is committed before
each externally visible effect, outbound HTTP calls carry an ``Idempotency-Key`` that is stable
for the same task attempt, and a restarted replica with the same id takes its partitions back
and resumes every running instance from its last snapshot. Seen from the called service that
means: every task's call arrives under one key, a completed task never calls again, and only
the call that was in flight at the kill may arrive a second time (under the same key).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.http_stub import HttpStub, run_http_stub
from tests.support.process import RunningService, loopback_config, run_service

pytestmark = pytest.mark.e2e

INSTANCES = 500
START_CONCURRENCY = 20
ENDPOINTS = ("/reserve", "/charge", "/ship")
EXPECTED_CALLS = INSTANCES * len(ENDPOINTS)
KILL_AFTER_CALLS = EXPECTED_CALLS // 3
COMPLETION_TIMEOUT = 120.0
REPLICA_ID = "crash-recovery-replica"
DEFINITION_ID = "crash-recovery"

# Each call task sends the data so far; the `set` task after it takes the stub's echo back and
# appends what the stub saw (the endpoint and the Idempotency-Key) to the output, so the output
# of a completed instance names the exact request whose answer it used.
WORKFLOW = """\
document:
  dsl: '1.0.3'
  namespace: tests
  name: crash-recovery
  version: '1.0.0'
do:
  - prepare:
      set:
        orderId: ${{ .orderId }}
        amount: ${{ .amount }}
        steps: []
        keys: []
{steps}"""
STEP = """\
  - {name}:
      call: http
      with:
        method: post
        endpoint: {url}{path}
        body:
          orderId: ${{ .orderId }}
          amount: ${{ .amount }}
          steps: ${{ .steps }}
          keys: ${{ .keys }}
  - after{title}:
      set: '${{ .received + {{ steps: (.received.steps + [.endpoint]), keys: (.received.keys + [.idempotencyKey]) }} }}'
"""


def workflow_yaml(stub: HttpStub) -> str:
    """The definition: `prepare`, then per endpoint a `call: http` task and a `set` task."""
    steps = "".join(
        STEP.format(name=path[1:], title=path[1:].title(), url=stub.url, path=path)
        for path in ENDPOINTS
    )
    return WORKFLOW.format(steps=steps)


def order_input(index: int) -> dict[str, Any]:
    return {"orderId": f"ORD-{index:04d}", "amount": index * 3 + 1}


def start_all(
    api: str, indexes: list[int], on_started: Callable[[int, str], None]
) -> tuple[list[int], list[str]]:
    """POST one instance per index (``START_CONCURRENCY`` at a time), keyed by its index.

    Returns the indexes whose request got no answer (the service was killed) and the
    unexpected answers; ``on_started`` receives each index with its instance id.
    """
    unanswered: list[int] = []
    unexpected: list[str] = []

    def start(client: httpx.Client, index: int) -> None:
        try:
            response = client.post(
                f"{api}/api/v1/workflow-instances",
                json={"workflowDefinitionId": DEFINITION_ID, "input": order_input(index)},
                headers={"Idempotency-Key": f"crash-recovery-{index}"},
            )
        except httpx.TransportError:
            unanswered.append(index)
            return
        if response.status_code not in (200, 201):
            unexpected.append(f"start {index}: {response.status_code} {response.text}")
            return
        on_started(index, response.json()["id"])

    limits = httpx.Limits(max_connections=START_CONCURRENCY)
    with (
        httpx.Client(timeout=30, limits=limits) as client,
        ThreadPoolExecutor(max_workers=START_CONCURRENCY) as pool,
    ):
        list(pool.map(lambda index: start(client, index), indexes))
    return sorted(unanswered), unexpected


def all_instances(api: str) -> list[dict[str, Any]]:
    """Every instance of the definition, through the paginated list."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"workflowDefinitionId": DEFINITION_ID, "limit": "500"}
        if cursor:
            params["cursor"] = cursor
        response = httpx.get(f"{api}/api/v1/workflow-instances", params=params, timeout=30)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["nextCursor"]
        if not cursor:
            return items


def wait_all_completed(service: RunningService, timeout: float) -> list[dict[str, Any]]:
    """Poll until every instance is terminal; fail listing the statuses if not in time."""
    deadline = time.monotonic() + timeout
    while True:
        instances = all_instances(service.api)
        statuses = Counter(item["status"] for item in instances)
        if statuses["completed"] == INSTANCES or (
            len(instances) == INSTANCES
            and all(s in ("completed", "faulted", "cancelled") for s in statuses)
        ):
            return instances
        if time.monotonic() > deadline:
            stuck = [f"{i['id']} {i['status']} {i['activeTasks']}" for i in instances][:10]
            pytest.fail(
                f"not every instance finished within {timeout:g}s after the restart: "
                f"{dict(statuses)} of {len(instances)} instances; some: {stuck}\n"
                f"service log (tail):\n{service.log()[-4000:]}"
            )
        time.sleep(0.5)


def expected_output(index: int) -> dict[str, Any]:
    """The output without ``keys`` (checked against the stub separately)."""
    return {**order_input(index), "steps": list(ENDPOINTS)}


def test_sigkill_mid_run_then_restart_completes_every_instance_once(
    tmp_path: Path, database_url: str
) -> None:
    """500 instances survive a SIGKILL: all complete, no completed task's call runs again."""
    started_at = time.monotonic()
    ids: dict[int, str] = {}
    env = {"REPLICA_ID": REPLICA_ID, "LOG_LEVEL": "INFO"}
    args = ("--url", database_url, "--config", str(loopback_config(tmp_path)))
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()

    with run_http_stub(delay=(0.005, 0.03)) as stub:
        with run_service(tmp_path / "first", args=args, env=env) as first:
            registered = httpx.post(
                f"{first.api}/api/v1/workflow-definitions",
                content=workflow_yaml(stub),
                headers={"Content-Type": "application/yaml"},
                timeout=30,
            )
            assert registered.status_code == 201, registered.text
            assert registered.json()["id"] == DEFINITION_ID

            with ThreadPoolExecutor(max_workers=1) as background:
                starting = background.submit(
                    start_all, first.api, list(range(INSTANCES)), ids.__setitem__
                )
                calls_at_kill = stub.wait_for_total(KILL_AFTER_CALLS, timeout=60)
                code, _ = first.stop(signal.SIGKILL)
                killed_at = time.monotonic()
                unanswered, unexpected = starting.result()
            assert code == -signal.SIGKILL
            assert not unexpected, unexpected
        calls_after_kill = stub.total()
        print(
            f"killed after {killed_at - started_at:.1f}s at {calls_at_kill} stub calls "
            f"({calls_after_kill} once the process was gone); {len(ids)} starts answered, "
            f"{len(unanswered)} unanswered"
        )
        # Otherwise the kill proved nothing: the run must have been cut in the middle.
        assert KILL_AFTER_CALLS <= calls_at_kill < EXPECTED_CALLS, (
            f"the kill was meant to land mid-run, after {KILL_AFTER_CALLS} of {EXPECTED_CALLS} "
            f"calls; the stub had seen {calls_at_kill}"
        )

        with run_service(tmp_path / "second", args=args, env=env) as second:
            # Starts cut off by the kill are sent again with the same key: the instance is
            # created once, whether or not the first request got as far as the database.
            retry_unanswered, unexpected = start_all(second.api, unanswered, ids.__setitem__)
            assert not retry_unanswered and not unexpected, (retry_unanswered, unexpected)
            assert len(ids) == INSTANCES

            instances = wait_all_completed(second, COMPLETION_TIMEOUT)
            finished_at = time.monotonic()
            assert "recovered" in second.log(), second.log()[-4000:]
            by_id = {item["id"]: item for item in instances}
            assert len(by_id) == INSTANCES, "an idempotent start created a second instance"
            assert set(by_id) == set(ids.values())

            problems = [
                f"{index}: {by_id[instance_id]['status']} {by_id[instance_id]['error']}"
                for index, instance_id in sorted(ids.items())
                if by_id[instance_id]["status"] != "completed"
            ]
            assert not problems, f"{len(problems)} instances did not complete: {problems[:10]}"
            for index, instance_id in ids.items():
                output = dict(by_id[instance_id]["output"])
                keys = output.pop("keys")
                assert output == expected_output(index), (index, instance_id)
                assert len(keys) == len(ENDPOINTS) and all(keys), (instance_id, keys)

            calls = stub.calls()
            check_calls(calls, by_id)
            for index in (0, INSTANCES - 1):
                check_history(second, ids[index], repeated=_duplicates_of(by_id[ids[index]], calls))
            rerun = max(by_id, key=lambda i: _duplicates_of(by_id[i], calls))
            check_history(second, rerun, repeated=_duplicates_of(by_id[rerun], calls))

    duplicated = sum(1 for count in calls.values() if count == 2)
    print(
        f"{INSTANCES} instances completed {finished_at - killed_at:.1f}s after the kill "
        f"({finished_at - started_at:.1f}s in all); {sum(calls.values())} stub calls for "
        f"{EXPECTED_CALLS} tasks; {duplicated} in-flight calls ran again under their key"
    )


def _instance_keys(instance: dict[str, Any]) -> list[tuple[str, str]]:
    return list(zip(instance["output"]["steps"], instance["output"]["keys"], strict=True))


def _duplicates_of(instance: dict[str, Any], calls: dict[tuple[str, str | None], int]) -> int:
    return sum(1 for pair in _instance_keys(instance) if calls.get(pair, 0) > 1)


def check_calls(
    calls: dict[tuple[str, str | None], int], instances: dict[str, dict[str, Any]]
) -> None:
    """What the stub saw matches exactly-once execution with at most one in-flight repeat."""
    used = {pair for item in instances.values() for pair in _instance_keys(item)}
    assert len(used) == EXPECTED_CALLS, "two tasks (or two instances) shared an idempotency key"
    # Every request the stub saw belongs to a task attempt whose answer an instance used: a
    # key outside this set means a task ran again under a new key (a completed task re-ran).
    strays = sorted(pair for pair in calls if pair not in used)
    assert not strays, f"{len(strays)} calls under keys no completed task used: {strays[:5]}"
    missing = sorted(used - set(calls))
    assert not missing, f"outputs name calls the stub never saw: {missing[:5]}"
    too_many = {pair: count for pair, count in calls.items() if count > 2}
    assert not too_many, f"calls repeated more than once under the same key: {too_many}"
    per_instance = {
        instance_id: _duplicates_of(item, calls) for instance_id, item in instances.items()
    }
    repeated = {i: n for i, n in per_instance.items() if n > 1}
    assert not repeated, f"instances with more than one repeated call: {repeated}"
    assert sum(per_instance.values()) <= INSTANCES


def check_history(service: RunningService, instance_id: str, *, repeated: int) -> None:
    """The history reads as one run: started, each task started and completed in order, then
    completed; a task re-run after the kill shows one more `task.started`, nothing else."""
    response = httpx.get(
        f"{service.api}/api/v1/workflow-instances/{instance_id}/history", timeout=30
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    seqs = [item["seq"] for item in items]
    assert seqs == sorted(set(seqs)), seqs
    moments = [datetime.fromisoformat(item["at"]) for item in items]
    assert moments == sorted(moments), moments
    entries = [(item["kind"], (item["taskRef"] or "").rsplit("/", 1)[-1]) for item in items]
    distinct = [e for i, e in enumerate(entries) if i == 0 or e != entries[i - 1]]
    tasks = ["prepare", *(t for p in ENDPOINTS for t in (p[1:], f"after{p[1:].title()}"))]
    expected = [
        ("workflow.started", ""),
        *[(f"task.{kind}", task) for task in tasks for kind in ("started", "completed")],
        ("workflow.completed", ""),
    ]
    assert distinct == expected, entries
    # A call the stub saw twice re-ran its task; a task can also re-run without a second
    # call (killed after the snapshot before the call, before the request left).
    assert repeated <= len(entries) - len(distinct) <= 1, (repeated, entries)
