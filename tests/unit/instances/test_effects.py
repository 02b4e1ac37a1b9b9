"""``DurableEffects`` on the in-memory store: when commits happen and what they carry."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
import trio
import trio.testing

from tests.support.instances import Instances, open_instances, trio_clock
from workflow_orchestrator.config import SecretGrant
from workflow_orchestrator.dsl import WorkflowError
from workflow_orchestrator.dsl.runtime import CloudEvent, ExecutionState, ListenRequest
from workflow_orchestrator.instances import DurableEffects, EventOptions
from workflow_orchestrator.security import EnvironmentSecrets, NamespacePolicy
from workflow_orchestrator.storage import LeaseLost
from workflow_orchestrator.storage.instances import InboxEvent, InstanceStatus

SETTER = """\
do:
  - first:
      set: {step: 1}
"""


@asynccontextmanager
async def open_effects(
    **ports: object,
) -> AsyncIterator[tuple[Instances, DurableEffects, ExecutionState]]:
    """Effects of a new instance of a one-task definition, started from its new state."""
    async with open_instances() as instances:
        instances.interpreters.add("setter", SETTER)
        instance_id = instances.start("setter")
        record = instances.store.stored(instance_id).record
        interpreter = await instances.interpreters.interpreter("setter", "1.0.0")
        state = interpreter.new_state({}, instance_id=str(instance_id))
        effects = DurableEffects(
            ports=instances.ports(**ports),
            instance_id=instance_id,
            partition=record.partition,
            lease_epoch=instances.store.epoch_of(record.partition),
            version=record.snapshot_version,
        )
        effects.start_from(state)
        yield instances, effects, state


def event(number: int, event_type: str = "com.example.done") -> CloudEvent:
    return CloudEvent(
        attributes={"specversion": "1.0", "id": f"e{number}", "source": "test", "type": event_type}
    )


async def test_flush_with_nothing_pending_writes_nothing() -> None:
    """A flush before any checkpoint, event or park commits nothing (no write at all)."""
    async with open_effects() as (instances, effects, _):
        await effects.flush()
    assert instances.store.writes == [] and instances.committed == []


async def test_checkpoint_is_committed_by_the_next_flush() -> None:
    """A checkpoint is only remembered; the next flush commits it as the next version and
    tells the owner the committed status."""
    async with open_effects() as (instances, effects, state):
        state.status = InstanceStatus.RUNNING
        await effects.checkpoint(state)
        written_before_flush = len(instances.store.writes)
        await effects.flush()
        stored = instances.store.stored(effects.instance_id)
    assert written_before_flush == 0
    assert stored.record.snapshot_version == 1 == effects.version
    assert stored.record.status is InstanceStatus.RUNNING
    assert instances.committed == [(effects.instance_id, InstanceStatus.RUNNING)]


async def test_emit_commits_the_event_with_its_history_before_returning() -> None:
    """An emitted event is written with the snapshot that records it, before emit returns."""
    async with open_effects() as (instances, effects, state):
        await effects.checkpoint(state)
        await effects.emit(event(1))
        (write,) = instances.store.writes
        events = list(instances.store.events)
    assert [h.kind for h in write.history] == ["event.emitted"]
    assert [e["id"] for e in events] == ["e1"]
    assert write.outgoing[0].destination == "events"


async def test_lifecycle_events_go_to_the_outbox_when_configured() -> None:
    """With lifecycle events to the outbox, each becomes a history row and a system outbox
    row of the same commit; without, only the history row."""
    options = EventOptions(emit_destination="business", lifecycle_to_outbox=True)
    async with open_effects(events=options) as (instances, effects, state):
        await effects.checkpoint(state)
        effects.add_lifecycle_event(event(2, "io.serverlessworkflow.workflow.started.v1"))
        await effects.flush()
        (write,) = instances.store.writes
    assert [h.kind for h in write.history] == ["workflow.started"]
    assert [(o.destination, o.routing_key) for o in write.outgoing] == [
        ("system", "io.serverlessworkflow.workflow.started.v1")
    ]
    assert json.loads(write.outgoing[0].body)["id"] == "e2"


async def test_short_wait_sleeps_in_place_with_a_durable_timer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A wait shorter than park_after sleeps in memory, but its timer is committed while it
    sleeps (a crash then still wakes the instance); the next commit consumes it."""
    async with open_effects(park_after=1.0) as (instances, effects, state):
        await effects.checkpoint(state)
        due = trio_clock() + timedelta(seconds=0.5)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: effects.sleep_until(due, key="nap"))
            await trio.testing.wait_all_tasks_blocked()
            sleeping = dict(instances.store.stored(effects.instance_id).timers)
        await effects.checkpoint(state)
        await effects.flush()
        awake = dict(instances.store.stored(effects.instance_id).timers)
    assert list(sleeping) == ["nap"] and sleeping["nap"].due_at == due
    assert awake == {}


async def test_fenced_commit_raises_lease_lost() -> None:
    """A commit after another replica took the partition over fails with LeaseLost."""
    async with open_effects() as (instances, effects, state):
        instances.store.take_over(effects.partition)
        await effects.checkpoint(state)
        with pytest.raises(LeaseLost):
            await effects.flush()
        stored = instances.store.stored(effects.instance_id)
    assert stored.record.snapshot_version == 0 and stored.history == []


async def test_commit_final_writes_the_status_on_the_last_checkpoint() -> None:
    """A status decided outside the interpreter is committed on the last checkpoint, with a
    ``workflow.<status>`` history row."""
    async with open_effects() as (instances, effects, state):
        await effects.checkpoint(state)
        await effects.flush()
        await effects.commit_final(InstanceStatus.SUSPENDED, state)
        stored = instances.store.stored(effects.instance_id)
    assert stored.record.status is InstanceStatus.SUSPENDED
    assert stored.snapshot is not None and stored.snapshot["state"]["status"] == "suspended"
    assert stored.history[-1].kind == "workflow.suspended"


async def test_missing_secret_names_the_variable_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """$secrets come from WORKFLOW_SECRET_<NAME> (JSON when it parses); a granted secret
    that is missing is an authorization error naming the variable looked in."""
    monkeypatch.setenv("WORKFLOW_SECRET_API_KEY", '{"token": "t"}')
    monkeypatch.setenv("WORKFLOW_SECRET_PLAIN", "not json")
    assert await EnvironmentSecrets().read("api-key") == {"token": "t"}
    assert await EnvironmentSecrets().read("plain") == "not json"
    policy = NamespacePolicy.from_grants([SecretGrant(namespace="*", secrets=("db.password",))])
    async with open_effects(policy=policy) as (_, effects, _state):
        with pytest.raises(WorkflowError) as missing:
            await effects.get_secret("db.password")
    assert missing.value.problem.detail == (
        "secret 'db.password' is not defined; looked in: env WORKFLOW_SECRET_DB_PASSWORD "
        "(security.secrets.providers lists where secrets come from)"
    )


async def test_a_listen_keeps_its_subscriptions_until_it_ends() -> None:
    """A listen that took an event from the inbox stores its subscriptions with the next
    commit and keeps them through the commits of its iterations (the snapshot names it); the
    first commit after ``listen_ended`` drops them. Another listen's end changes nothing."""
    request = ListenRequest(filters=({"type": "com.example.done"},), task_ref="/do/0/hear")
    async with open_effects() as (instances, effects, state):
        effects.start_from(
            state, inbox=(InboxEvent(seq=1, event=dict(event(1).attributes), key="test#e1"),)
        )
        taken = await effects.wait_event(request)
        await effects.checkpoint(state)
        await effects.flush()
        stored = instances.store.stored(effects.instance_id)
        after_event = (stored.subscriptions, (stored.snapshot or {}).get("listening"))
        state.context = {"iteration": 1}
        await effects.checkpoint(state)
        await effects.flush()
        during = instances.store.stored(effects.instance_id).subscriptions
        effects.listen_ended("/do/1/other")
        state.context = {"iteration": 2}
        await effects.checkpoint(state)
        await effects.flush()
        other_ended = instances.store.stored(effects.instance_id).subscriptions
        effects.listen_ended("/do/0/hear")
        state.context = {"done": True}
        await effects.checkpoint(state)
        await effects.flush()
        stored = instances.store.stored(effects.instance_id)
    assert taken.key == event(1).key
    (row,) = after_event[0]
    assert (row.task_ref, row.event_type) == ("/do/0/hear", "com.example.done")
    assert after_event[1] == "/do/0/hear"
    assert during == other_ended == (row,)
    assert stored.subscriptions == () and "listening" not in (stored.snapshot or {})
