"""`plan_sweep` and `parse_inspect`: which containers a sweep removes or kills, from their
labels alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from workflow_orchestrator.adapters.containers import (
    ContainerState,
    SweepPlan,
    parse_inspect,
    plan_sweep,
)

ENDED_AT = 1_800_000_000.0


def state(cid: str, *, running: bool = False, **labels: str) -> ContainerState:
    """A container with ``labels`` (``cleanup_after`` for cleanup-after) ended at ENDED_AT."""
    return ContainerState(
        id=cid,
        running=running,
        finished_at=None if running else ENDED_AT,
        labels={f"io.workflow-orchestrator.{k.replace('_', '-')}": v for k, v in labels.items()},
    )


def test_ended_eventually_containers_go_after_their_time() -> None:
    """eventually: removed once after has passed since the end; never and always: kept."""
    states = [
        state("e", cleanup="eventually", cleanup_after="60", deadline="0"),
        state("n", cleanup="never", deadline="0"),
        state("a", cleanup="always", deadline="0"),
    ]
    assert plan_sweep(states, ENDED_AT + 59) == SweepPlan()
    assert plan_sweep(states, ENDED_AT + 60) == SweepPlan(remove=("e",))


def test_running_containers_stop_past_their_deadline() -> None:
    """Past its deadline and the grace, a running container is removed (always) or killed
    (kept); before it, nothing happens."""
    states = [
        state("a", running=True, cleanup="always", deadline="1000"),
        state("n", running=True, cleanup="never", deadline="1000"),
        state("e", running=True, cleanup="eventually", cleanup_after="5", deadline="1000"),
    ]
    assert plan_sweep(states, 1030) == SweepPlan()
    assert plan_sweep(states, 1031) == SweepPlan(remove=("a",), kill=("n", "e"))


def test_foreign_and_unreadable_containers_are_left_alone() -> None:
    """No cleanup label, no deadline or a broken one: not ours to sweep."""
    states = [
        ContainerState(id="x", running=True, finished_at=None, labels={}),
        state("y", running=True, cleanup="never"),
        state("z", running=True, cleanup="never", deadline="soon"),
        state("w", cleanup="eventually", cleanup_after="later"),
    ]
    assert plan_sweep(states, 10**12) == SweepPlan()


def test_inspect_output_of_podman_and_docker() -> None:
    """The fields both CLIs print: nanosecond times, the zero time of a running container."""
    output = json.dumps(
        [
            {
                "Id": "abc",
                "State": {"Running": False, "FinishedAt": "2027-01-15T08:00:00.123456789Z"},
                "Config": {"Labels": {"io.workflow-orchestrator.cleanup": "never"}},
            },
            {
                "Id": "def",
                "State": {"Running": True, "FinishedAt": "0001-01-01T00:00:00Z"},
                "Config": {"Labels": None},
            },
            {"State": {}},
            "junk",
        ]
    )
    ended, running = parse_inspect(output)
    assert ended == ContainerState(
        id="abc",
        running=False,
        finished_at=datetime(2027, 1, 15, 8, 0, 0, 123456, tzinfo=UTC).timestamp(),
        labels={"io.workflow-orchestrator.cleanup": "never"},
    )
    assert running == ContainerState(id="def", running=True, finished_at=None, labels={})
    assert parse_inspect("not json") == [] and parse_inspect("") == []
