"""Messaging through ActorRef: tell, tell_nowait, backpressure, ask and its errors."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

from workflow_orchestrator.actors import (
    Actor,
    ActorContext,
    ActorStopped,
    ActorSystem,
    AskFailed,
    AskTimeout,
    MailboxFull,
)
from workflow_orchestrator.supervision import ActorSpec, Restart


@attrs.frozen
class Ping:
    value: int


@attrs.frozen
class Block:
    release: trio.Event


class Recorder(Actor[Any]):
    """Records messages; answers Ping with value + 1; Block waits; 'boom' raises."""

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    async def receive(self, ctx: ActorContext[Any], message: Any) -> Any:
        self.seen.append(message)
        if isinstance(message, Block):
            await message.release.wait()
        if message == "boom":
            raise ValueError("boom")
        if isinstance(message, Ping):
            return message.value + 1
        return None


def recorder(name: str, seen: list[Any], **kwargs: Any) -> ActorSpec[Any]:
    return ActorSpec(name=name, factory=lambda: Recorder(seen), **kwargs)


async def test_tell_delivers_in_order(system: ActorSystem) -> None:
    """Messages sent with tell and tell_nowait are handled one at a time, in order."""
    seen: list[Any] = []
    ref = await system.spawn(recorder("a", seen))
    for i in range(100):
        if i % 2:
            await ref.tell(i)
        else:
            ref.tell_nowait(i)
    await trio.testing.wait_all_tasks_blocked()
    assert seen == list(range(100))


async def test_tell_nowait_full_mailbox_text(system: ActorSystem) -> None:
    """tell_nowait on a full mailbox raises MailboxFull naming the actor and what to do."""
    seen: list[Any] = []
    release = trio.Event()
    ref = await system.spawn(recorder("small", seen, mailbox_capacity=2))
    ref.tell_nowait(Block(release))
    await trio.testing.wait_all_tasks_blocked()
    ref.tell_nowait(1)
    ref.tell_nowait(2)
    with pytest.raises(MailboxFull) as info:
        ref.tell_nowait(Ping(3))
    assert str(info.value) == (
        "mailbox of actor '/user/small' is full (2 messages) and cannot take a 'Ping' "
        "message; use 'await tell()' to wait for space or raise the actor's mailbox_capacity"
    )
    assert isinstance(info.value, trio.WouldBlock)
    assert (info.value.path, info.value.capacity) == ("/user/small", 2)
    release.set()


async def test_tell_waits_for_space(system: ActorSystem) -> None:
    """tell blocks while the mailbox is full and resumes when the actor takes a message."""
    seen: list[Any] = []
    release = trio.Event()
    ref = await system.spawn(recorder("bp", seen, mailbox_capacity=1))
    ref.tell_nowait(Block(release))
    await trio.testing.wait_all_tasks_blocked()
    ref.tell_nowait(1)
    sent = trio.Event()

    async def sender() -> None:
        await ref.tell(2)
        sent.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent.is_set()
        assert ref.statistics().mailbox_depth == 1
        release.set()
    assert sent.is_set()
    await trio.testing.wait_all_tasks_blocked()
    assert seen[1:] == [1, 2]


async def test_ask_returns_reply(system: ActorSystem) -> None:
    """ask returns what receive returned for that message."""
    ref = await system.spawn(recorder("asked", []))
    assert await ref.ask(Ping(41)) == 42


async def test_ask_timeout_names_actor_and_message_type(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """An ask without reply in time raises AskTimeout naming the path and message type."""
    release = trio.Event()
    ref = await system.spawn(recorder("slow", []))
    ref.tell_nowait(Block(release))
    with pytest.raises(AskTimeout) as info:
        await ref.ask(Ping(1), timeout=0.5)
    assert str(info.value) == (
        "ask to actor '/user/slow' with a 'Ping' message got no reply within 0.5s; "
        "raise the timeout or check that the actor is not blocked"
    )
    assert isinstance(info.value, TimeoutError)
    assert info.value.message_type == "Ping"
    release.set()


async def test_ask_failure_names_actor_and_chains_cause(
    system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    """An ask whose handler raises fails with AskFailed, the exception as __cause__."""
    ref = await system.spawn(recorder("fragile", []))
    with pytest.raises(AskFailed) as info:
        await ref.ask("boom")
    assert str(info.value) == (
        "actor '/user/fragile' failed while handling a 'str' message: ValueError: boom; "
        "its supervisor decides whether it restarts"
    )
    assert isinstance(info.value.__cause__, ValueError)
    assert await ref.ask(Ping(1)) == 2  # restarted by the guardian


async def test_send_to_stopped_actor_raises(system: ActorSystem) -> None:
    """Sending to an actor that stopped for good raises ActorStopped with the path."""
    ref = await system.spawn(recorder("gone", [], restart=Restart.TEMPORARY))
    await ref.stop()
    with pytest.raises(ActorStopped) as info:
        ref.tell_nowait(Ping(1))
    assert str(info.value) == (
        "actor '/user/gone' is stopped and cannot take a 'Ping' message; "
        "look it up again or watch it to learn when it stops"
    )
    with pytest.raises(ActorStopped):
        await ref.ask(Ping(1))


async def test_pending_asks_fail_when_actor_stops(system: ActorSystem) -> None:
    """Asks still queued when an actor stops fail with ActorStopped instead of hanging."""
    release = trio.Event()
    ref = await system.spawn(recorder("stopping", [], shutdown_timeout=1.0))
    ref.tell_nowait(Block(release))
    errors: list[BaseException] = []

    async def asker() -> None:
        try:
            await ref.ask(Ping(1))
        except ActorStopped as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(asker)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ref.stop)
        await trio.testing.wait_all_tasks_blocked()
        release.set()
    assert len(errors) == 1


async def test_refs_compare_by_actor(system: ActorSystem) -> None:
    """Two refs to the same actor are equal and hash alike; lookup returns an equal ref."""
    ref = await system.spawn(recorder("same", []))
    assert ref == system.lookup("/user/same")
    assert len({ref, system.lookup("/user/same")}) == 1
    assert repr(ref) == "<ActorRef /user/same running>"
