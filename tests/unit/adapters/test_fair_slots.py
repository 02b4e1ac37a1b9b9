"""FairSlots: owners take turns for the slots, each owner's admissions are bounded, and
cancelled callers leave nothing behind."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from workflow_orchestrator.adapters._fair_slots import FairSlots


async def _use(slots: FairSlots, owner: str, name: str, order: list[str], go: trio.Event) -> None:
    async with slots.admitted(owner), slots.slot(owner):
        order.append(name)
        await go.wait()


async def test_owners_take_turns_for_a_freed_slot() -> None:
    """With one slot, four queued callers of A and two of B are served A, B, A, B, A, A: B
    does not wait for all of A."""
    slots = FairSlots(1, 100)
    order: list[str] = []
    go = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_use, slots, "A", "a0", order, go)
        await trio.testing.wait_all_tasks_blocked()
        for index in range(1, 5):
            nursery.start_soon(_use, slots, "A", f"a{index}", order, go)
            await trio.testing.wait_all_tasks_blocked()
        for index in range(2):
            nursery.start_soon(_use, slots, "B", f"b{index}", order, go)
            await trio.testing.wait_all_tasks_blocked()
        assert (slots.waiting("A"), slots.waiting("B")) == (4, 2)
        go.set()
    assert order == ["a0", "a1", "b0", "a2", "b1", "a3", "a4"]
    assert (slots.waiting("A"), slots.waiting("B")) == (0, 0)


async def test_an_owner_has_a_bounded_number_of_admissions() -> None:
    """Callers beyond per_owner wait for room before they queue for a slot; another owner is
    not held back by them."""
    slots = FairSlots(1, 3)
    order: list[str] = []
    go = trio.Event()
    async with trio.open_nursery() as nursery:
        for index in range(10):
            nursery.start_soon(_use, slots, "A", f"a{index}", order, go)
        # Trio runs new tasks in no fixed order: let A's settle before B asks.
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(_use, slots, "B", "b0", order, go)
        await trio.testing.wait_all_tasks_blocked()
        # A: one holds the slot and two wait for it; the seven others wait for room.
        assert slots.waiting("A") == 2
        assert slots.waiting("B") == 1
        go.set()
    assert sorted(order) == sorted([f"a{index}" for index in range(10)] + ["b0"])
    assert order.index("b0") <= 2


async def test_cancelled_waiters_leave_their_lane_and_pass_on_a_slot() -> None:
    """A caller cancelled while it waits leaves its lane; the slot goes to the next one and
    is returned at the end (a later caller gets it at once)."""
    slots = FairSlots(1, 10)
    order: list[str] = []
    go = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_use, slots, "A", "a0", order, go)
        await trio.testing.wait_all_tasks_blocked()
        with trio.CancelScope() as doomed:
            cancelled = trio.CancelScope()

            async def waits_then_is_cancelled() -> None:
                with cancelled:
                    await _use(slots, "B", "never", order, go)

            nursery.start_soon(waits_then_is_cancelled)
            await trio.testing.wait_all_tasks_blocked()
            assert slots.waiting("B") == 1
            cancelled.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert slots.waiting("B") == 0
        assert not doomed.cancelled_caught
        nursery.start_soon(_use, slots, "C", "c0", order, go)
        await trio.testing.wait_all_tasks_blocked()
        go.set()
    assert order == ["a0", "c0"]
    with trio.fail_after(1):  # the slot is free again
        async with slots.admitted("D"), slots.slot("D"):
            pass


def test_capacity_and_per_owner_must_be_positive() -> None:
    """Zero slots or zero admissions would block every caller forever."""
    with pytest.raises(ValueError, match="must be >= 1"):
        FairSlots(0, 1)
    with pytest.raises(ValueError, match="must be >= 1"):
        FairSlots(1, 0)
