"""emit and listen: CloudEvent attributes, strategies, filters, correlation, consumption."""

from __future__ import annotations

import trio
import trio.testing

from tests.unit.dsl.runtime_support import run
from workflow_orchestrator.dsl.runtime import CloudEvent, InMemoryEffects


def event(event_id: str, event_type: str, data: object, source: str = "https://src") -> CloudEvent:
    """A CloudEvent for scripting."""
    return CloudEvent(
        attributes={
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": event_type,
            "data": data,
        }
    )


async def test_emit_builds_a_complete_cloudevent(autojump_clock: trio.testing.MockClock) -> None:
    """emit fills id, specversion, time and datacontenttype and keeps extensions."""
    result, effects = await run(
        """
        do:
          - tell:
              emit:
                event:
                  with:
                    source: https://orders
                    type: com.example.placed.v1
                    region: eu
                    data:
                      id: ${ .id }
        """,
        {"id": 5},
    )
    emitted = [r.data for r in effects.log if r.kind == "emit"]
    assert emitted == [result.output]
    assert result.output["specversion"] == "1.0"
    assert result.output["time"] == "2026-01-01T00:00:00Z"
    assert result.output["datacontenttype"] == "application/json"
    assert result.output["region"] == "eu"
    assert result.output["data"] == {"id": 5}
    assert len(result.output["id"]) == 36


async def test_emitted_event_id_is_stable_per_instance_and_task() -> None:
    """Re-running the same instance's emit task gives the same event id (dedup downstream)."""
    body = "do:\n  - tell:\n      emit:\n        event:\n          with: {source: https://s, type: t}\n"
    first, _ = await run(body)
    second, _ = await run(body)
    assert first.output["id"] == second.output["id"]


async def test_listen_waits_for_a_future_event(autojump_clock: trio.testing.MockClock) -> None:
    """listen sleeps until a matching event arrives and records it as consumed."""
    effects = InMemoryEffects(events=[(42, event("e1", "com.example.go.v1", {"go": True}))])
    result, _ = await run(
        "do:\n  - hold:\n      listen:\n        to:\n          one:\n            with: {type: com.example.go.v1}\n",
        effects=effects,
    )
    assert result.output == [{"go": True}]
    assert effects.now().isoformat() == "2026-01-01T00:00:42+00:00"
    assert result.state.consumed == ["https://src#e1"]


async def test_listen_all_collects_one_event_per_filter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``all`` completes when every filter matched once, in arrival order."""
    effects = InMemoryEffects(
        events=[
            (5, event("b1", "b", "B")),
            (1, event("b0", "b", "B-early")),
            (9, event("a1", "a", "A")),
        ]
    )
    result, _ = await run(
        """
        do:
          - both:
              listen:
                to:
                  all:
                    - with: {type: a}
                    - with: {type: b}
        """,
        effects=effects,
    )
    assert result.output == ["B-early", "A"]


async def test_consumed_event_is_not_consumed_twice(autojump_clock: trio.testing.MockClock) -> None:
    """Two listens never consume the same event (same source and id)."""
    effects = InMemoryEffects(events=[(1, event("x", "t", 1)), (2, event("y", "t", 2))])
    result, _ = await run(
        """
        do:
          - first: {listen: {to: {one: {with: {type: t}}}}}
          - second: {listen: {to: {one: {with: {type: t}}}}}
        """,
        effects=effects,
    )
    assert result.output == [2]
    assert result.state.consumed == ["https://src#x", "https://src#y"]


async def test_correlation_rejects_other_instances_events(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Events whose correlation value differs from the expected one are skipped, not consumed."""
    effects = InMemoryEffects(
        events=[
            (1, event("o1", "shipped", {"order": 1})),
            (2, event("o2", "shipped", {"order": 2})),
        ]
    )
    result, _ = await run(
        """
        do:
          - wait:
              listen:
                to:
                  one:
                    with: {type: shipped}
                    correlate:
                      order: {from: '${ .data.order }', expect: '${ .order }'}
        """,
        {"order": 2},
        effects=effects,
    )
    assert result.output == [{"order": 2}]
    assert result.state.consumed == ["https://src#o2"]


async def test_listen_checkpoints_before_waiting(autojump_clock: trio.testing.MockClock) -> None:
    """A waiting listen is in the state (active task, frame) so it can be passivated."""
    effects = InMemoryEffects(record_snapshots=True)
    with trio.move_on_after(60):
        await run("do:\n  - hold: {listen: {to: {one: {with: {type: never}}}}}\n", effects=effects)
    waiting = effects.snapshots[-1]
    assert waiting["active"] == {"/do/0/hold": "/do/0/hold"}
    assert waiting["frames"]["/do/0/hold"]["events"] == []
