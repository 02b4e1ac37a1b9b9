"""ActorContext: the actor's own view, separate from its supervisor's record."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from workflow_orchestrator.actors import (
    Actor,
    ActorContext,
    ActorRef,
    ActorSystem,
    StopKind,
    StopReason,
    Terminated,
)
from workflow_orchestrator.supervision import ActorSpec, Backoff, Restart, SupervisorSpec


class Recorder(Actor[Any]):
    """Keeps every context it is given and answers questions about it."""

    def __init__(self, seen: list[ActorContext[Any]]) -> None:
        self.seen = seen

    async def on_start(self, ctx: ActorContext[Any]) -> None:
        self.seen.append(ctx)

    async def receive(self, ctx: ActorContext[Any], message: Any) -> Any:
        self.seen.append(ctx)
        if message == "crash":
            raise RuntimeError("boom")
        if message == "stop":
            ctx.stop()
        if message == "passivate":
            ctx.passivate()
        if isinstance(message, ActorRef):
            ctx.watch(message)
        if isinstance(message, tuple) and message[0] == "unwatch":
            ctx.unwatch(message[1])
        return message

    async def on_stop(self, ctx: ActorContext[Any], reason: StopReason) -> None:
        self.seen.append(ctx)


def recorder(name: str, seen: list[ActorContext[Any]], **kwargs: Any) -> ActorSpec[Any]:
    return ActorSpec(name=name, factory=lambda: Recorder(seen), **kwargs)


async def test_context_identifies_its_actor(system: ActorSystem) -> None:
    """path, name, self_ref and system describe the actor the hooks run for."""
    seen: list[ActorContext[Any]] = []
    ref = await system.spawn(recorder("ctx", seen))
    [ctx] = seen
    assert (ctx.path, ctx.name) == ("/user/ctx", "ctx")
    assert ctx.self_ref == ref
    assert ctx.system is system
    assert (ctx.restart_count, ctx.last_failure) == (0, None)
    assert repr(ctx) == "<ActorContext /user/ctx>"


async def test_contexts_of_one_actor_are_equal(system: ActorSystem) -> None:
    """Each hook call gets a context; those of one actor are equal and hash alike."""
    seen: list[ActorContext[Any]] = []
    other: list[ActorContext[Any]] = []
    ref = await system.spawn(recorder("a", seen))
    await system.spawn(recorder("b", other))
    await ref.ask("hello")
    assert seen[0] == seen[1]
    assert len({*seen, *other}) == 2
    assert seen[0] != other[0]
    assert seen[0] != "a"


async def test_context_is_not_the_supervisor_record(system: ActorSystem) -> None:
    """The context exposes the actor's API only, none of its supervisor's bookkeeping."""
    seen: list[ActorContext[Any]] = []
    await system.spawn(recorder("plain", seen))
    ctx = seen[0]
    for internal in ("generation", "mailbox", "state", "attempts", "parent", "spec", "actor"):
        assert not hasattr(ctx, internal), internal
    assert system.guardian.child("plain") is not ctx


async def test_restart_count_and_last_failure_after_a_crash(system: ActorSystem) -> None:
    """A restarted actor's context says how often and why it was restarted."""
    seen: list[ActorContext[Any]] = []
    sup = await system.start_child(SupervisorSpec(name="sup", backoff=Backoff.none()))
    ref = await sup.start_child(recorder("phoenix", seen))
    ref.tell_nowait("crash")
    await trio.testing.wait_all_tasks_blocked()
    ctx = seen[-1]
    assert ctx.restart_count == 1
    assert ctx.last_failure is not None
    assert (ctx.last_failure.type, ctx.last_failure.message) == ("RuntimeError", "boom")


async def test_stop_and_passivate_take_effect_after_the_message(system: ActorSystem) -> None:
    """ctx.stop() ends the actor and ctx.passivate() idles it, each after its message."""
    seen: list[ActorContext[Any]] = []
    stopping = await system.spawn(recorder("stopping", seen, restart=Restart.TEMPORARY))
    assert await stopping.ask("stop") == "stop"
    assert (await stopping.wait_stopped()).kind is StopKind.NORMAL
    resting = await system.spawn(recorder("resting", seen))
    assert await resting.ask("passivate") == "passivate"
    await trio.testing.wait_all_tasks_blocked()
    assert resting.statistics().state == "passivated"


async def test_watch_and_unwatch_through_the_context(system: ActorSystem) -> None:
    """watch delivers Terminated when the target stops; unwatch cancels that."""
    log: list[Any] = []

    class Watcher(Recorder):
        async def receive(self, ctx: ActorContext[Any], message: Any) -> Any:
            if isinstance(message, Terminated):
                log.append(message)
            return await super().receive(ctx, message)

    seen: list[ActorContext[Any]] = []
    watcher = await system.spawn(ActorSpec(name="watcher", factory=lambda: Watcher(seen)))
    first = await system.spawn(recorder("first", seen))
    second = await system.spawn(recorder("second", seen))
    await watcher.ask(first)
    await watcher.ask(second)
    await watcher.ask(("unwatch", second))
    await second.stop()
    await first.stop()
    await watcher.ask("sync")
    assert log == [Terminated(path="/user/first", reason=StopReason(kind=StopKind.NORMAL))]


class FirstThings(Actor[Any]):
    """Blocks on "block" until released; after a restart tells itself "recover" first."""

    def __init__(self, handled: list[Any], release: trio.Event, done: trio.Event) -> None:
        self.handled = handled
        self.release = release
        self.done = done

    async def on_start(self, ctx: ActorContext[Any]) -> None:
        if ctx.restart_count:
            ctx.tell_self_first(("recover", ctx.restart_count))

    async def receive(self, ctx: ActorContext[Any], message: Any) -> None:
        self.handled.append(message)
        if message == "b":
            self.done.set()
        if message == "block":
            await self.release.wait()
            raise RuntimeError("crash with a full mailbox")


async def test_tell_self_first_jumps_a_full_mailbox(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """A restarted actor whose mailbox is full still gets its first message, ahead of the
    queued ones; the queued ones follow in order."""
    handled: list[Any] = []
    release, done = trio.Event(), trio.Event()
    ref = await system.spawn(
        ActorSpec(
            name="first",
            factory=lambda: FirstThings(handled, release, done),
            mailbox_capacity=2,
        )
    )
    ref.tell_nowait("block")
    await trio.sleep(0.1)
    ref.tell_nowait("a")
    ref.tell_nowait("b")
    release.set()
    await done.wait()
    assert handled == ["block", ("recover", 1), "a", "b"]


async def test_notify_stopped_fires_once_on_the_final_stop(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """A stop callback is not called by a restart, once by the final stop, and at once for
    an actor that has stopped already."""
    seen: list[ActorContext[Any]] = []
    ref = await system.spawn(recorder("watched", seen, restart=Restart.TRANSIENT))
    reasons: list[StopKind] = []
    ref.notify_stopped(lambda reason: reasons.append(reason.kind))
    ref.tell_nowait("crash")
    assert await ref.ask("after the restart") == "after the restart"
    assert ref.statistics().restart_count == 1
    assert reasons == []
    await ref.ask("stop")
    await ref.wait_stopped()
    assert reasons == [StopKind.NORMAL]
    ref.notify_stopped(lambda reason: reasons.append(reason.kind))
    assert reasons == [StopKind.NORMAL, StopKind.NORMAL]
