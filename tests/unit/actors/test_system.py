"""ActorSystem: spawn, lookup, lifecycle hooks, stop, death watch, passivation, leaks."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from workflow_orchestrator.actors import (
    Actor,
    ActorContext,
    ActorNotFound,
    ActorRef,
    ActorSystem,
    LifecycleState,
    StopKind,
    StopReason,
    Terminated,
    open_actor_system,
)
from workflow_orchestrator.actors.testing import _all_tasks, leaks
from workflow_orchestrator.supervision import (
    ActorSpec,
    ChildStartFailed,
    Restart,
    SupervisorSpec,
)


class Lifecycle(Actor[Any]):
    """Logs its hooks into ``log``; some messages block, sleep, stop or passivate it."""

    def __init__(self, log: list[Any], *, fail_start: bool = False) -> None:
        self.log = log
        self.fail_start = fail_start

    async def on_start(self, ctx: ActorContext[Any]) -> None:
        self.log.append(("start", ctx.path))
        if self.fail_start:
            raise RuntimeError("cannot load state")

    async def receive(self, ctx: ActorContext[Any], message: Any) -> Any:
        self.log.append(("msg", message))
        if message == "block":
            await trio.sleep_forever()
        if message == "slow":
            await trio.sleep(1)
        if message == "stop":
            ctx.stop()
        if message == "passivate":
            ctx.passivate()
        if isinstance(message, ActorRef):
            ctx.watch(message)
        return message

    async def on_stop(self, ctx: ActorContext[Any], reason: StopReason) -> None:
        self.log.append(("stop", reason.kind))


def spec(name: str, log: list[Any], **kwargs: Any) -> ActorSpec[Any]:
    fail_start = kwargs.pop("fail_start", False)
    return ActorSpec(name=name, factory=lambda: Lifecycle(log, fail_start=fail_start), **kwargs)


async def test_lookup_by_path(system: ActorSystem) -> None:
    """Actors under nested supervisors are found by their full path."""
    await system.start_child(SupervisorSpec(name="instances"))
    ref = await system.spawn(spec("42", []), parent="/user/instances")
    assert ref.path == "/user/instances/42"
    assert system.lookup("/user/instances/42") == ref
    assert system.lookup_supervisor("/user/instances").path == "/user/instances"


async def test_lookup_unknown_path_text(system: ActorSystem) -> None:
    """An unknown path raises ActorNotFound (a LookupError) listing the siblings."""
    await system.start_child(SupervisorSpec(name="instances"))
    await system.spawn(spec("1", []), parent="/user/instances")
    with pytest.raises(ActorNotFound) as info:
        system.lookup("/user/instances/2")
    assert isinstance(info.value, LookupError)
    assert str(info.value) == (
        "no actor at path '/user/instances/2'; children of its parent: ['1']; "
        "check the path or whether the actor has stopped"
    )


async def test_on_start_failure_surfaces_from_spawn(system: ActorSystem) -> None:
    """A failing on_start makes spawn raise ChildStartFailed and leaves no child behind."""
    log: list[Any] = []
    with pytest.raises(ChildStartFailed) as info:
        await system.spawn(spec("bad", log, fail_start=True))
    assert str(info.value) == (
        "child '/user/bad' failed to start: RuntimeError: cannot load state; fix its "
        "start-up (on_start, or the service before task_status.started())"
    )
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ActorNotFound):
        system.lookup("/user/bad")


async def test_hooks_run_in_order(system: ActorSystem) -> None:
    """on_start runs before the first message and on_stop after the last, once each."""
    log: list[Any] = []
    ref = await system.spawn(spec("hooks", log))
    await ref.ask("hello")
    await ref.stop()
    assert log == [("start", "/user/hooks"), ("msg", "hello"), ("stop", StopKind.NORMAL)]


async def test_stop_is_graceful_then_forced(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """stop lets the current message finish within shutdown_timeout, else cancels it."""
    log: list[Any] = []
    patient = await system.spawn(spec("patient", log, shutdown_timeout=5))
    patient.tell_nowait("slow")
    await trio.testing.wait_all_tasks_blocked()
    start = trio.current_time()
    await patient.stop()
    assert trio.current_time() - start == pytest.approx(1)  # finished its message

    stuck = await system.spawn(spec("stuck", log, shutdown_timeout=2))
    stuck.tell_nowait("block")
    await trio.testing.wait_all_tasks_blocked()
    start = trio.current_time()
    await stuck.stop()
    assert trio.current_time() - start == pytest.approx(2)  # cancelled at the bound
    assert log.count(("stop", StopKind.NORMAL)) == 2


async def test_self_stop_of_transient_actor_removes_it(system: ActorSystem) -> None:
    """ctx.stop() is a normal exit: a transient actor is removed, watchers learn why."""
    log: list[Any] = []
    ref = await system.spawn(spec("done", log, restart=Restart.TRANSIENT))
    ref.tell_nowait("stop")
    reason = await ref.wait_stopped()
    assert reason == StopReason(kind=StopKind.NORMAL)
    assert log[-1] == ("stop", StopKind.NORMAL)
    with pytest.raises(ActorNotFound):
        system.lookup("/user/done")


async def test_death_watch_delivers_terminated(system: ActorSystem) -> None:
    """A watching actor receives Terminated with the watched actor's path and reason."""
    watcher_log: list[Any] = []
    watcher = await system.spawn(spec("watcher", watcher_log))
    target = await system.spawn(spec("target", [], restart=Restart.TEMPORARY))
    await watcher.ask(target)  # the watcher calls ctx.watch(target)
    await target.stop()
    await trio.testing.wait_all_tasks_blocked()
    assert watcher_log[-1] == (
        "msg",
        Terminated(path="/user/target", reason=StopReason(kind=StopKind.NORMAL)),
    )


async def test_watch_after_stop_is_told_at_once(system: ActorSystem) -> None:
    """Watching an actor that already stopped delivers Terminated immediately."""
    log: list[Any] = []
    watcher = await system.spawn(spec("watcher", log))
    target = await system.spawn(spec("target", [], restart=Restart.TEMPORARY))
    await target.stop()
    system.watch(target, watcher)
    await trio.testing.wait_all_tasks_blocked()
    assert log[-1] == (
        "msg",
        Terminated(path="/user/target", reason=StopReason(kind=StopKind.NORMAL)),
    )


async def test_passivation_and_reactivation(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """An idle actor passivates after its timeout; the next message re-activates it."""
    log: list[Any] = []
    ref = await system.spawn(spec("lazy", log, passivate_after=10))
    await ref.ask(1)
    await trio.sleep(9)
    assert ref.statistics().state == "running"
    await trio.sleep(2)
    assert ref.statistics().state == "passivated"
    assert log[-1] == ("stop", StopKind.PASSIVATION)
    assert await ref.ask(2) == 2  # the sender does not notice
    assert log[-2:] == [("start", "/user/lazy"), ("msg", 2)]
    assert ref.statistics().state == "running"
    assert ref.statistics().restart_count == 0


async def test_explicit_passivation(system: ActorSystem) -> None:
    """ctx.passivate() drops the instance after the current message; tell brings it back."""
    log: list[Any] = []
    ref = await system.spawn(spec("waiting", log))
    ref.tell_nowait("passivate")
    await trio.testing.wait_all_tasks_blocked()
    assert ref.statistics().state == LifecycleState.PASSIVATED.value
    ref.tell_nowait("event")
    await trio.testing.wait_all_tasks_blocked()
    assert log[-3:] == [
        ("stop", StopKind.PASSIVATION),
        ("start", "/user/waiting"),
        ("msg", "event"),
    ]


async def test_statistics_snapshot(system: ActorSystem) -> None:
    """statistics() reports path, kind, state, mailbox and children counts per state."""
    await system.start_child(SupervisorSpec(name="instances"))
    for i in range(3):
        await system.spawn(spec(str(i), [], mailbox_capacity=8), parent="/user/instances")
    snapshot = system.statistics(depth=1)
    assert snapshot.path == "/user"
    assert snapshot.kind == "supervisor"
    assert [child.name for child in snapshot.children] == ["instances"]
    assert snapshot.children[0].child_count == 3
    assert snapshot.children[0].child_states == {"running": 3}
    assert snapshot.children[0].children == ()  # depth exhausted
    actor = system.statistics("/user/instances/1")
    assert (actor.kind, actor.state, actor.mailbox_depth, actor.mailbox_capacity) == (
        "actor",
        "running",
        0,
        8,
    )


async def test_leak_check_sees_live_actors() -> None:
    """The leak checker reports actors and tasks still alive (it is not vacuous)."""
    async with open_actor_system() as system:
        system.tracked = []
        before = _all_tasks()
        ref = await system.spawn(spec("alive", [], shutdown_timeout=0))
        ref.tell_nowait("block")
        await trio.testing.wait_all_tasks_blocked()
        found = leaks(system, before)
        assert "/user/alive is running, not stopped" in found
        assert any(problem.startswith("task ") for problem in found)


async def test_get_or_start_child_reuses_or_creates(system: ActorSystem) -> None:
    """get_or_start_child returns the live actor of that name, or starts a new one."""
    log: list[Any] = []
    first = await system.guardian.get_or_start_child(spec("v", log))
    again = await system.guardian.get_or_start_child(spec("v", log))
    assert first == again
    assert log.count(("start", "/user/v")) == 1
    await first.stop()
    third = await system.guardian.get_or_start_child(spec("v", log))
    assert third != first
    assert log.count(("start", "/user/v")) == 2


async def test_stopped_watcher_unregisters_its_watches(system: ActorSystem) -> None:
    """A watcher that stops no longer sits in the watched actor's watcher list."""
    watcher = await system.spawn(spec("watcher", [], restart=Restart.TEMPORARY))
    target = await system.spawn(spec("target", []))
    system.watch(target, watcher)
    assert target._cell.watchers
    await watcher.stop()
    assert not target._cell.watchers
