"""Read replicas without I/O: how one check is judged, and which replica a read uses."""

from __future__ import annotations

import pytest

from workflow_orchestrator.storage import ReplicaProbe, ReplicaState, assess_replica
from workflow_orchestrator.storage._replicas import Replica, ReplicaSet


def probe(
    *,
    in_recovery: bool = True,
    streaming: bool = True,
    caught_up: bool | None = False,
    replay_age: float | None = 3.0,
) -> ReplicaProbe:
    return ReplicaProbe(
        in_recovery=in_recovery, streaming=streaming, caught_up=caught_up, replay_age=replay_age
    )


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        # An idle primary: the last replayed transaction is old, but nothing is missing.
        (probe(caught_up=True, replay_age=3600.0), (ReplicaState.HEALTHY, 0.0)),
        (probe(caught_up=True, replay_age=None), (ReplicaState.HEALTHY, 0.0)),
        (probe(replay_age=3.0), (ReplicaState.HEALTHY, 3.0)),
        (probe(replay_age=10.0), (ReplicaState.HEALTHY, 10.0)),
        (probe(replay_age=10.5), (ReplicaState.LAGGING, 10.5)),
        # Received == replayed proves nothing once the replica stopped streaming.
        (probe(streaming=False, caught_up=True, replay_age=60.0), (ReplicaState.LAGGING, 60.0)),
        (probe(streaming=False, caught_up=None, replay_age=None), (ReplicaState.LAGGING, None)),
        (probe(replay_age=-0.2), (ReplicaState.HEALTHY, 0.0)),  # clocks a little apart
        (probe(in_recovery=False, caught_up=None), (ReplicaState.NOT_IN_RECOVERY, None)),
    ],
)
def test_assess_replica(found: ReplicaProbe, expected: tuple[ReplicaState, float | None]) -> None:
    """Lag is 0 while streaming and caught up, else the age of the last replayed transaction,
    judged against the bound; a server not in recovery is never read from."""
    assert assess_replica(found, max_lag=10.0) == expected


def replica_set(states: list[ReplicaState], *, prefer_replica: bool = True) -> ReplicaSet:
    replicas = [
        Replica(name=f"replica-{i}", endpoint=f"r{i}:5432/wf", pool=None, max_size=5, state=s)
        for i, s in enumerate(states)
    ]
    return ReplicaSet(
        replicas=replicas,
        prefer_replica=prefer_replica,
        max_lag=10.0,
        check_interval=2.0,
        check_timeout=10.0,
    )


def chosen(replicas: ReplicaSet, reads: int) -> list[str | None]:
    return [(r.name if (r := replicas.choose()) else None) for _ in range(reads)]


def test_healthy_replicas_take_reads_in_turn() -> None:
    """Reads go round robin over the healthy replicas and skip the others."""
    replicas = replica_set([ReplicaState.HEALTHY, ReplicaState.LAGGING, ReplicaState.HEALTHY])
    assert chosen(replicas, 4) == ["replica-0", "replica-2", "replica-0", "replica-2"]


def test_reads_use_the_primary_without_a_healthy_replica_or_preference() -> None:
    """None (the primary) when no replica is healthy, before any check, or with PRIMARY."""
    assert chosen(replica_set([ReplicaState.DOWN, ReplicaState.UNKNOWN]), 2) == [None, None]
    assert chosen(replica_set([ReplicaState.HEALTHY], prefer_replica=False), 1) == [None]
    assert chosen(replica_set([]), 1) == [None]


def test_a_replica_marked_down_takes_no_more_reads() -> None:
    """A read that cannot reach a replica takes it out of the rotation at once."""
    replicas = replica_set([ReplicaState.HEALTHY, ReplicaState.HEALTHY])
    replicas.mark_down(replicas.replicas[0], "connection refused")
    assert chosen(replicas, 3) == ["replica-1"] * 3
    assert (replicas.replicas[0].state, replicas.replicas[0].error) == (
        ReplicaState.DOWN,
        "connection refused",
    )
