"""Edge cases of supervised lifecycles: nesting, stops during backoff, cancellation."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from workflow_orchestrator.actors import (
    Actor,
    ActorContext,
    ActorNotFound,
    ActorSystem,
    LifecycleState,
    open_actor_system,
)
from workflow_orchestrator.supervision import (
    ActorSpec,
    Backoff,
    ChildStartFailed,
    RestartIntensityExceeded,
    SupervisorSpec,
)


class Worker(Actor[str]):
    def __init__(self, fail_start: bool = False) -> None:
        self.fail_start = fail_start

    async def on_start(self, ctx: ActorContext[str]) -> None:
        if self.fail_start:
            raise KeyError("missing snapshot")

    async def receive(self, ctx: ActorContext[str], message: str) -> str:
        if message == "crash":
            raise RuntimeError("crash")
        return ctx.name


async def test_nested_start_failure_names_both_levels(system: ActorSystem) -> None:
    """A nested supervisor whose child fails to start fails to start itself."""
    spec = SupervisorSpec(
        name="sup",
        children=[
            ActorSpec(name="ok", factory=Worker),
            ActorSpec(name="bad", factory=lambda: Worker(True)),
        ],
    )
    with pytest.raises(ChildStartFailed) as info:
        await system.start_child(spec)
    assert info.value.path == "/user/sup"
    cause = info.value.__cause__
    assert isinstance(cause, ChildStartFailed)
    assert cause.path == "/user/sup/bad"
    assert isinstance(cause.__cause__, KeyError)
    with pytest.raises(ActorNotFound):
        system.lookup_supervisor("/user/sup")


async def test_escalation_restarts_the_subtree_fresh(system: ActorSystem) -> None:
    """A permanent nested supervisor that gives up is restarted by its parent with its
    initial children only (dynamic children are lost, as in OTP)."""
    spec = SupervisorSpec(
        name="sup",
        max_restarts=0,
        backoff=Backoff.none(),
        children=[ActorSpec(name="static", factory=Worker)],
    )
    await system.start_child(SupervisorSpec(name="mid", backoff=Backoff.none(), children=[spec]))
    first = system.lookup_supervisor("/user/mid/sup")
    await first.start_child(ActorSpec(name="dynamic", factory=Worker))
    system.lookup("/user/mid/sup/static").tell_nowait("crash")
    await trio.testing.wait_all_tasks_blocked()
    second = system.lookup_supervisor("/user/mid/sup")
    assert second is not first
    assert [c.name for c in second.child_records()] == ["static"]
    node = system.statistics("/user/mid/sup")
    assert node.restart_count == 1
    assert node.last_failure is not None
    assert node.last_failure.type == "RestartIntensityExceeded"
    assert first.state is LifecycleState.STOPPED
    assert RestartIntensityExceeded.__name__ == node.last_failure.type


async def test_stop_during_backoff_cancels_the_restart(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """Stopping a child while it waits out its backoff removes it; it never restarts."""
    starts: list[float] = []

    class Counting(Worker):
        async def on_start(self, ctx: ActorContext[str]) -> None:
            starts.append(trio.current_time())

    await system.start_child(
        SupervisorSpec(
            name="sup",
            backoff=Backoff(initial=10, jitter=0),
            children=[ActorSpec(name="w", factory=Counting)],
        )
    )
    ref = system.lookup("/user/sup/w")
    ref.tell_nowait("crash")
    await trio.sleep(1)
    assert ref.statistics().state == "restarting"
    await ref.stop()
    await trio.sleep(20)
    assert len(starts) == 1
    assert system.statistics("/user/sup").child_count == 0


async def test_many_actors_passivate_together(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """A thousand idle actors all passivate; the tree counts them per state."""
    await system.start_child(SupervisorSpec(name="instances"))
    sup = system.lookup_supervisor("/user/instances")
    refs = [
        await sup.start_child(ActorSpec(name=str(i), factory=Worker, passivate_after=60 + i % 7))
        for i in range(1000)
    ]
    for ref in refs:
        ref.tell_nowait("hello")
    await trio.sleep(30)
    assert sup.statistics(depth=0).child_states == {"running": 1000}
    await trio.sleep(60)
    assert sup.statistics(depth=0).child_states == {"passivated": 1000}
    assert await refs[5].ask("again") == "5"
    assert sup.statistics(depth=0).child_states == {"passivated": 999, "running": 1}


async def test_outer_cancellation_still_drains(autojump_clock: trio.testing.MockClock) -> None:
    """Cancelling the block that owns the system still stops actors with on_stop, bounded."""
    stopped: list[str] = []

    class Tidy(Worker):
        async def on_stop(self, ctx: ActorContext[str], reason: Any) -> None:
            await trio.sleep(1)
            stopped.append(ctx.name)

    with trio.move_on_after(5):
        async with open_actor_system(shutdown_timeout=10) as system:
            await system.spawn(ActorSpec(name="a", factory=Tidy))
            await system.spawn(ActorSpec(name="b", factory=Tidy))
            await trio.sleep_forever()
    assert stopped == ["b", "a"]
    assert trio.current_time() == pytest.approx(7)


async def test_shutdown_timeout_bounds_the_drain(autojump_clock: trio.testing.MockClock) -> None:
    """A system whose children will not stop in time is cancelled at shutdown_timeout."""

    class Stubborn(Worker):
        async def on_stop(self, ctx: ActorContext[str], reason: Any) -> None:
            await trio.sleep(100)

    async with open_actor_system(shutdown_timeout=3) as system:
        await system.spawn(ActorSpec(name="a", factory=Stubborn, shutdown_timeout=50))
    assert trio.current_time() == pytest.approx(3)


async def test_guardian_start_failure_raises_plainly() -> None:
    """An initial child that fails to start makes open_actor_system raise ChildStartFailed."""
    guardian = SupervisorSpec(
        name="user", children=[ActorSpec(name="bad", factory=lambda: Worker(True))]
    )
    with pytest.raises(ChildStartFailed) as info:
        async with open_actor_system(guardian=guardian):
            pytest.fail("the block must not run")
    assert info.value.path == "/user/bad"
