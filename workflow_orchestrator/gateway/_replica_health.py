"""The read replicas' part of ``/health/detailed``: under ``components.database.details``.

Nothing is added when no replica is configured, so the guide's document stays as it is. Replicas
never change the database component's status or readiness: a replica that is down or behind
only moves the reads to the primary (or the other replicas), which the details show.
"""

from __future__ import annotations

from typing import Any

from workflow_orchestrator.storage import Database, ReplicaStatus

__all__ = ["replica_details"]


def _duration_ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _replica(status: ReplicaStatus) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": status.name,
        "endpoint": status.endpoint,
        "state": str(status.state),
        "lag": None if status.lag is None else _duration_ms(status.lag),
        "servingReads": status.serving_reads,
        "connectionPool": f"{status.pool.used}/{status.pool.max_size}",
        "reads": status.reads,
    }
    if status.error is not None:
        entry["error"] = status.error
    return entry


def replica_details(database: Database) -> dict[str, Any]:
    """``readPreference``, ``readsFrom`` (the pools reads use now) and one entry per replica
    (no I/O: the replica checks keep the states current); empty without replicas."""
    reads = database.read_statistics()
    if not reads.replicas:
        return {}
    return {
        "readPreference": reads.read_preference,
        "readsFrom": list(reads.reads_from),
        "replicas": [_replica(r) for r in reads.replicas],
    }
