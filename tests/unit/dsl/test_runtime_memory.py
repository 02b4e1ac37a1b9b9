"""InMemoryEffects: virtual clock, scripted events, secrets, the side-effect log."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from workflow_orchestrator.dsl.errors import WorkflowError
from workflow_orchestrator.dsl.runtime import (
    CloudEvent,
    HttpRequest,
    InMemoryEffects,
    ListenRequest,
)
from workflow_orchestrator.dsl.runtime._time import plus_seconds


async def test_clock_follows_the_trio_clock(autojump_clock: trio.testing.MockClock) -> None:
    """sleep_until returns at the virtual time asked for, instantly under autojump."""
    effects = InMemoryEffects()
    start = effects.now()
    await effects.sleep_until(plus_seconds(start, 3600))
    assert (effects.now() - start).total_seconds() == 3600
    assert effects.log[0].kind == "timer"


async def test_wait_event_skips_excluded_and_unmatched(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The first event matching a filter and not excluded is returned when it arrives."""
    first = CloudEvent(attributes={"id": "1", "source": "s", "type": "a"})
    second = CloudEvent(attributes={"id": "2", "source": "s", "type": "a"})
    other = CloudEvent(attributes={"id": "3", "source": "s", "type": "b"})
    effects = InMemoryEffects(events=[(1, other), (2, first), (3, second)])
    got = await effects.wait_event(
        ListenRequest(filters=({"type": "a"},), exclude=frozenset({"s#1"}))
    )
    assert got is second
    assert effects.log[-1].kind == "consume"


async def test_published_event_wakes_a_listener(autojump_clock: trio.testing.MockClock) -> None:
    """publish() during a wait delivers the event to the waiting listener."""
    effects = InMemoryEffects()
    event = CloudEvent(attributes={"id": "1", "source": "s", "type": "a"})
    async with trio.open_nursery() as nursery:
        received: list[CloudEvent] = []

        async def listen() -> None:
            received.append(await effects.wait_event(ListenRequest(filters=({"type": "a"},))))

        nursery.start_soon(listen)
        await trio.testing.wait_all_tasks_blocked()
        effects.publish(event)
    assert received == [event]


async def test_unknown_secret_is_an_authorization_error() -> None:
    """A missing secret raises the spec's authorization error (403) naming the secret."""
    with pytest.raises(WorkflowError) as caught:
        await InMemoryEffects().get_secret("apiKey")
    assert caught.value.problem.status == 403
    assert caught.value.problem.detail == "secret 'apiKey' does not exist or is not accessible"


async def test_http_without_handler_answers_404_and_logs() -> None:
    """Requests are logged with their idempotency key; no handler means 404."""
    effects = InMemoryEffects()
    response = await effects.http(HttpRequest(method="GET", url="https://x", idempotency_key="k"))
    assert response.status == 404
    assert effects.log[0].identity == "k"


def test_ids_are_deterministic_per_seed() -> None:
    """Two effects with the same seed produce the same ids (comparable runs)."""
    assert InMemoryEffects(seed=3).new_id() == InMemoryEffects(seed=3).new_id()
