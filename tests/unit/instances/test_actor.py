"""The durability contract of an instance actor, with no database: the real interpreter,
``DurableEffects`` and supervisor, the in-memory store and an HTTP port, on Trio's mock clock."""

from __future__ import annotations

import uuid
from datetime import timedelta

import attrs
import pytest
import trio
import trio.testing

from tests.support.instances import (
    EPOCH,
    WAITER,
    Instances,
    ok,
    open_instances,
    open_instances_supervisor,
)
from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse
from workflow_orchestrator.instances import MAX_ATTEMPTS, InstancePorts, start_instance_actor
from workflow_orchestrator.storage.instances import InstanceStatus

TWO_CALLS = """\
do:
  - first:
      call: http
      with: {method: get, endpoint: 'http://example.test/first'}
  - second:
      call: http
      with: {method: get, endpoint: 'http://example.test/second'}
"""

LISTENER = """\
do:
  - hear:
      listen:
        to:
          one:
            with: {type: com.example.ping}
  - after:
      set: {heard: true}
"""

SLOW_CALL = """\
do:
  - slow:
      call: http
      with: {method: get, endpoint: 'http://example.test/slow'}
"""


async def run_to(
    instances: Instances,
    ports: InstancePorts,
    instance_id: uuid.UUID,
    *statuses: InstanceStatus,
) -> None:
    """Run the instance's actor until one of ``statuses`` is committed and it has stopped."""
    with trio.fail_after(3600):
        async with open_instances_supervisor() as supervisor:
            await start_instance_actor(supervisor, ports, instance_id)
            await instances.wait_status(instance_id, *statuses)
            while (actor := ports.live.get(instance_id)) is not None:
                await actor.wait_gone()


async def test_commit_before_each_external_call(autojump_clock: trio.testing.MockClock) -> None:
    """Every HTTP call goes out only after the state before it is committed, and a task that
    called out is committed as completed before the next call."""
    async with open_instances() as instances:
        instances.interpreters.add("calls", TWO_CALLS)
        instance_id = instances.start("calls")
        await run_to(instances, instances.ports(), instance_id, InstanceStatus.COMPLETED)
    first, second = instances.http.calls
    assert first.url.endswith("/first") and second.url.endswith("/second")
    assert first.committed_status is InstanceStatus.RUNNING and first.committed_version == 1
    assert ("task.started", "/do/0/first") in first.committed_history
    assert second.committed_version > first.committed_version
    assert ("task.completed", "/do/0/first") in second.committed_history
    assert ("task.completed", "/do/0/first") not in first.committed_history


async def test_committed_task_never_runs_again_after_a_crash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A crash in the second call restarts the actor from the last commit: the first call,
    committed as completed, is not made again; the second is, with the same idempotency key."""
    crashes = 0

    async def crash_once(request: HttpRequest) -> HttpResponse:
        nonlocal crashes
        if request.url.endswith("/second") and crashes == 0:
            crashes += 1
            raise RuntimeError("crash in the runtime")
        return await ok(request)

    async with open_instances() as instances:
        instances.interpreters.add("calls", TWO_CALLS)
        instances.http.respond = crash_once
        instance_id = instances.start("calls")
        await run_to(instances, instances.ports(), instance_id, InstanceStatus.COMPLETED)
        history = instances.history(instance_id)
    urls = [c.url.rsplit("/", 1)[-1] for c in instances.http.calls]
    assert urls == ["first", "second", "second"]
    assert instances.http.calls[1].idempotency_key == instances.http.calls[2].idempotency_key
    assert history.count(("task.completed", "/do/0/first")) == 1
    assert history.count(("task.completed", "/do/1/second")) == 1


async def test_fault_after_max_attempts(autojump_clock: trio.testing.MockClock) -> None:
    """A bug that crashes every run is retried MAX_ATTEMPTS times, then the instance is
    committed as faulted with a runtime error naming the failure."""

    async def explode(request: HttpRequest) -> HttpResponse:
        raise RuntimeError("boom in the runtime")

    async with open_instances() as instances:
        instances.interpreters.add("calls", TWO_CALLS)
        instances.http.respond = explode
        instance_id = instances.start("calls")
        await run_to(instances, instances.ports(), instance_id, InstanceStatus.FAULTED)
        stored = instances.store.stored(instance_id)
    assert len(instances.http.calls) == MAX_ATTEMPTS
    assert stored.record.error["type"].endswith("/errors/runtime")
    assert stored.record.error["detail"] == (
        f"the instance failed {MAX_ATTEMPTS} times in the runtime (RuntimeError: boom in the "
        "runtime); it is marked faulted instead of being retried again"
    )
    assert stored.record.completed_at is not None
    assert (instance_id, InstanceStatus.FAULTED) in instances.committed
    assert instances.history(instance_id)[-1] == ("workflow.faulted", "")


async def test_long_wait_parks_and_wakes_from_the_snapshot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A wait longer than park_after commits a waiting snapshot with its durable timer and
    the actor stops; run again when due, the instance resumes after the wait."""
    async with open_instances() as instances:
        instances.interpreters.add("waiter", WAITER)
        instance_id = instances.start("waiter")
        ports = instances.ports()
        started = trio.current_time()
        await run_to(instances, ports, instance_id, InstanceStatus.WAITING)
        waiting = instances.store.stored(instance_id)
        timers, wake_text = dict(waiting.timers), (waiting.snapshot or {}).get("wakeAt")
        (parked_id, wake_at), *_ = instances.parked
        await trio.sleep(600)
        await run_to(instances, ports, instance_id, InstanceStatus.COMPLETED)
        done = instances.store.stored(instance_id)
        history = instances.history(instance_id)
    (timer,) = timers.values()
    assert parked_id == instance_id and wake_at == timer.due_at
    assert timer.due_at == EPOCH + timedelta(seconds=started + 600)
    assert timer.kind == "wait"
    assert wake_text == timer.due_at.isoformat()
    assert done.timers == {} and done.record.output == {"step": 2, "done": True}
    assert history.count(("task.completed", "/do/0/first")) == 1


async def test_listen_parks_with_subscriptions_and_takes_the_inbox_event(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A listen with no event parks with its subscription; an event delivered to the inbox
    wakes it, is consumed once (inbox emptied) and the subscriptions are dropped."""
    async with open_instances() as instances:
        instances.interpreters.add("listener", LISTENER)
        instance_id = instances.start("listener")
        ports = instances.ports()
        await run_to(instances, ports, instance_id, InstanceStatus.WAITING)
        (subscription,) = instances.store.stored(instance_id).subscriptions
        instances.store.deliver(
            instance_id,
            {"specversion": "1.0", "id": "e1", "source": "test", "type": "com.example.ping"},
        )
        await run_to(instances, ports, instance_id, InstanceStatus.COMPLETED)
        done = instances.store.stored(instance_id)
    assert (subscription.event_type, subscription.task_ref) == ("com.example.ping", "/do/0/hear")
    assert done.subscriptions == () and done.inbox == []
    assert done.record.output == {"heard": True}


async def test_cancel_interrupts_a_call_and_commits_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelling a running instance stops its call and commits cancelled with a history row;
    nothing of the interrupted task is committed as done."""

    async def hang(request: HttpRequest) -> HttpResponse:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async with open_instances() as instances:
        instances.interpreters.add("slow", SLOW_CALL)
        instances.http.respond = hang
        instance_id = instances.start("slow")
        ports = instances.ports()
        with trio.fail_after(60):
            async with open_instances_supervisor() as supervisor:
                await start_instance_actor(supervisor, ports, instance_id)
                await instances.http.called.wait()
                actor = ports.live.get(instance_id)
                assert actor is not None
                await actor.interrupt(InstanceStatus.CANCELLED)
                await actor.wait_gone()
        stored = instances.store.stored(instance_id)
        history = instances.history(instance_id)
    assert stored.record.status is InstanceStatus.CANCELLED
    assert stored.record.completed_at is not None
    assert history[-1] == ("workflow.cancelled", "")
    assert ("task.completed", "/do/0/slow") not in history


@pytest.mark.parametrize("status", [InstanceStatus.SUSPENDED, InstanceStatus.COMPLETED])
async def test_suspended_or_ended_instance_does_not_run(
    status: InstanceStatus, autojump_clock: trio.testing.MockClock
) -> None:
    """An actor told to run a suspended or terminal instance stops without running it."""
    async with open_instances() as instances:
        instances.interpreters.add("calls", TWO_CALLS)
        instance_id = instances.start("calls")
        stored = instances.store.stored(instance_id)
        stored.record = attrs.evolve(stored.record, status=status)
        ports = instances.ports()
        with trio.fail_after(60):
            async with open_instances_supervisor() as supervisor:
                await start_instance_actor(supervisor, ports, instance_id)
                while (actor := ports.live.get(instance_id)) is not None:
                    await actor.wait_gone()
    assert instances.http.calls == [] and instances.store.writes == []
