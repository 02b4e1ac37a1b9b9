"""Supervisor semantics: strategies, restart types, intensity, backoff, stop order."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing
from prometheus_client import REGISTRY

from workflow_orchestrator.actors import (
    Actor,
    ActorContext,
    ActorSystem,
    StopReason,
    open_actor_system,
)
from workflow_orchestrator.supervision import (
    ActorSpec,
    Backoff,
    DuplicateChild,
    Restart,
    RestartIntensityExceeded,
    RestartStrategy,
    SupervisorSpec,
)

NO_BACKOFF = Backoff.none()


class Child(Actor[str]):
    """Logs (event, name) for start and stop; 'crash' raises, 'exit' stops normally."""

    def __init__(self, log: list[tuple[str, str]], name: str) -> None:
        self.log = log
        self.name = name

    async def on_start(self, ctx: ActorContext[str]) -> None:
        self.log.append(("start", self.name))

    async def receive(self, ctx: ActorContext[str], message: str) -> str:
        if message == "crash":
            raise RuntimeError(f"{self.name} crashed")
        if message == "exit":
            ctx.stop()
        return self.name

    async def on_stop(self, ctx: ActorContext[str], reason: StopReason) -> None:
        self.log.append((f"stop:{reason.kind.value}", self.name))


def child(log: list[tuple[str, str]], name: str, **kwargs: Any) -> ActorSpec[str]:
    return ActorSpec(name=name, factory=lambda: Child(log, name), **kwargs)


async def group(
    system: ActorSystem,
    log: list[tuple[str, str]],
    strategy: RestartStrategy,
    names: str = "abc",
    **kwargs: Any,
) -> None:
    kwargs.setdefault("backoff", NO_BACKOFF)
    await system.start_child(
        SupervisorSpec(
            name="sup",
            strategy=strategy,
            children=[child(log, name) for name in names],
            **kwargs,
        )
    )
    log.clear()


async def crash(system: ActorSystem, name: str, message: str = "crash") -> None:
    system.lookup(f"/user/sup/{name}").tell_nowait(message)
    await trio.testing.wait_all_tasks_blocked()


async def test_one_for_one_restarts_only_the_failed_child(system: ActorSystem) -> None:
    """one_for_one: only the crashed child stops and starts again."""
    log: list[tuple[str, str]] = []
    await group(system, log, RestartStrategy.ONE_FOR_ONE)
    await crash(system, "b")
    assert log == [("stop:failure", "b"), ("start", "b")]
    assert system.statistics("/user/sup/b").restart_count == 1
    assert system.statistics("/user/sup/a").restart_count == 0


async def test_one_for_all_restarts_everyone_in_order(system: ActorSystem) -> None:
    """one_for_all: siblings stop in reverse start order, then all start in order."""
    log: list[tuple[str, str]] = []
    await group(system, log, RestartStrategy.ONE_FOR_ALL)
    await crash(system, "b")
    assert log == [
        ("stop:restart", "c"),
        ("stop:restart", "a"),
        ("stop:failure", "b"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
    ]


async def test_rest_for_one_restarts_the_younger_siblings(system: ActorSystem) -> None:
    """rest_for_one: the failed child and those started after it restart; older ones stay."""
    log: list[tuple[str, str]] = []
    await group(system, log, RestartStrategy.REST_FOR_ONE)
    await crash(system, "b")
    assert log == [
        ("stop:restart", "c"),
        ("stop:failure", "b"),
        ("start", "b"),
        ("start", "c"),
    ]


async def test_one_for_all_drops_temporary_siblings(system: ActorSystem) -> None:
    """A temporary sibling stopped by a one_for_all restart is not started again (OTP)."""
    log: list[tuple[str, str]] = []
    await system.start_child(
        SupervisorSpec(
            name="sup",
            strategy=RestartStrategy.ONE_FOR_ALL,
            backoff=NO_BACKOFF,
            children=[child(log, "a"), child(log, "t", restart=Restart.TEMPORARY)],
        )
    )
    log.clear()
    await crash(system, "a")
    assert log == [("stop:restart", "t"), ("stop:failure", "a"), ("start", "a")]
    assert [c.name for c in system.statistics("/user/sup").children] == ["a"]


@pytest.mark.parametrize(
    ("restart", "message", "restarted"),
    [
        (Restart.PERMANENT, "crash", True),
        (Restart.PERMANENT, "exit", True),
        (Restart.TRANSIENT, "crash", True),
        (Restart.TRANSIENT, "exit", False),
        (Restart.TEMPORARY, "crash", False),
        (Restart.TEMPORARY, "exit", False),
    ],
)
async def test_restart_types(
    system: ActorSystem, restart: Restart, message: str, restarted: bool
) -> None:
    """permanent always restarts, transient only after a crash, temporary never."""
    log: list[tuple[str, str]] = []
    await system.start_child(
        SupervisorSpec(name="sup", backoff=NO_BACKOFF, children=[child(log, "x", restart=restart)])
    )
    log.clear()
    await crash(system, "x", message)
    names = [c.name for c in system.statistics("/user/sup").children]
    assert names == (["x"] if restarted else [])
    assert (log[-1] == ("start", "x")) is restarted


async def test_intensity_escalates_to_parent(system: ActorSystem) -> None:
    """More than max_restarts within within_seconds: the supervisor stops its children
    and fails to its parent with RestartIntensityExceeded."""
    log: list[tuple[str, str]] = []
    await group(
        system,
        log,
        RestartStrategy.ONE_FOR_ONE,
        max_restarts=2,
        within_seconds=10,
        restart=Restart.TEMPORARY,
    )
    sup = system.lookup_supervisor("/user/sup")
    for _ in range(2):
        await crash(system, "b")
    assert system.statistics("/user/sup/b").restart_count == 2
    watcher = trio.Event()
    record = system.guardian.child("sup")
    assert record is not None
    reasons: list[StopReason] = []

    def notify(reason: StopReason) -> None:
        reasons.append(reason)
        watcher.set()

    record.add_watcher(notify)
    await crash(system, "b")
    await watcher.wait()
    assert log[-3:] == [("stop:failure", "b"), ("stop:shutdown", "c"), ("stop:shutdown", "a")]
    error = reasons[0].error
    assert isinstance(error, RestartIntensityExceeded)
    assert str(error) == (
        "supervisor '/user/sup' gave up after more than 2 restarts within 10s (last failure "
        "in '/user/sup/b'); fix the failing child or raise max_restarts/within_seconds"
    )
    assert isinstance(error.__cause__, RuntimeError)
    assert sup.state.value == "stopped"


async def test_restarts_outside_the_window_do_not_escalate(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """Restarts spread wider than within_seconds never trip the intensity limit."""
    log: list[tuple[str, str]] = []
    await group(system, log, RestartStrategy.ONE_FOR_ONE, max_restarts=1, within_seconds=5)
    for _ in range(4):
        await crash(system, "a")
        await trio.sleep(6)
    assert system.statistics("/user/sup/a").restart_count == 4


async def test_guardian_escalation_ends_the_system(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When the root supervisor gives up, open_actor_system raises the escalation."""
    log: list[tuple[str, str]] = []
    guardian = SupervisorSpec(
        name="user", max_restarts=0, backoff=NO_BACKOFF, children=[child(log, "only")]
    )
    with pytest.RaisesGroup(RestartIntensityExceeded):
        async with open_actor_system(guardian=guardian) as system:
            system.lookup("/user/only").tell_nowait("crash")
            await trio.sleep_forever()


async def test_backoff_is_exponential_capped_and_resets(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """Restart delays double up to the cap and start over after a quiet period."""
    starts: list[float] = []

    class Timed(Actor[str]):
        async def on_start(self, ctx: ActorContext[str]) -> None:
            starts.append(trio.current_time())

        async def receive(self, ctx: ActorContext[str], message: str) -> None:
            raise RuntimeError(message)

    backoff = Backoff(initial=1, multiplier=2, maximum=5, jitter=0, reset_after=30)
    await system.start_child(
        SupervisorSpec(
            name="sup",
            backoff=backoff,
            max_restarts=100,
            children=[ActorSpec(name="t", factory=Timed)],
        )
    )
    ref = system.lookup("/user/sup/t")
    for _ in range(5):
        crashed_at = trio.current_time()
        ref.tell_nowait("crash")
        await trio.sleep(10)
        starts[-1] -= crashed_at
    assert starts[1:] == [1, 2, 4, 5, 5]
    await trio.sleep(31)
    crashed_at = trio.current_time()
    ref.tell_nowait("crash")
    await trio.sleep(10)
    assert starts[-1] - crashed_at == 1


async def test_shutdown_stops_children_in_reverse_start_order() -> None:
    """Leaving the system block stops children last-started-first, nested ones too."""
    log: list[tuple[str, str]] = []
    async with open_actor_system() as system:
        await system.spawn(child(log, "first"))
        await system.start_child(
            SupervisorSpec(name="sup", children=[child(log, "n1"), child(log, "n2")])
        )
        await system.spawn(child(log, "last"))
    assert [entry for entry in log if entry[0].startswith("stop")] == [
        ("stop:shutdown", "last"),
        ("stop:shutdown", "n2"),
        ("stop:shutdown", "n1"),
        ("stop:shutdown", "first"),
    ]


async def test_dynamic_children(system: ActorSystem) -> None:
    """Children are added and removed at run time; names must be unique."""
    await system.start_child(SupervisorSpec(name="instances"))
    sup = system.lookup_supervisor("/user/instances")
    log: list[tuple[str, str]] = []
    refs = [await sup.start_child(child(log, str(i), restart=Restart.TRANSIENT)) for i in range(50)]
    assert await refs[7].ask("hi") == "7"
    with pytest.raises(DuplicateChild) as info:
        await sup.start_child(child(log, "7"))
    assert str(info.value) == (
        "supervisor '/user/instances' already has a child named '7'; "
        "pick a unique name or stop the existing child first"
    )
    await sup.stop_child("7")
    assert sup.statistics(depth=0).child_count == 49


async def test_crash_is_logged_with_path(
    system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """Every crash is logged at ERROR with the actor path and the exception."""
    log: list[tuple[str, str]] = []
    await group(system, log, RestartStrategy.ONE_FOR_ONE)
    with caplog.at_level(logging.ERROR, logger="workflow_orchestrator.actors"):
        await crash(system, "a")
    [record] = [r for r in caplog.records if r.message.startswith("child")]
    assert record.message == "child /user/sup/a crashed: RuntimeError: a crashed"
    assert record.name == "workflow_orchestrator.actors._supervisor"
    assert record.actor_path == "/user/sup/a"  # type: ignore[attr-defined]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    failure = system.statistics("/user/sup/a").last_failure
    assert failure is not None
    assert (failure.type, failure.message) == ("RuntimeError", "a crashed")


async def test_restarts_are_counted_by_supervisor_and_strategy(system: ActorSystem) -> None:
    """Restarts increment the Prometheus counter labelled by supervisor path and strategy."""
    log: list[tuple[str, str]] = []
    labels = {"supervisor": "/user/sup", "strategy": "rest_for_one"}
    name = "workflow_orchestrator_actor_restarts_total"
    before = REGISTRY.get_sample_value(name, labels) or 0.0
    await group(system, log, RestartStrategy.REST_FOR_ONE)
    await crash(system, "b")
    assert REGISTRY.get_sample_value(name, labels) == before + 2  # b and c


async def test_permanent_normal_exit_restarts_with_normal_reason(system: ActorSystem) -> None:
    """A permanent actor that stops itself is restarted; its on_stop sees a normal stop."""
    log: list[tuple[str, str]] = []
    await group(system, log, RestartStrategy.ONE_FOR_ONE)
    await crash(system, "a", "exit")
    assert log == [("stop:normal", "a"), ("start", "a")]
