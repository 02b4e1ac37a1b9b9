"""``server.workers``: several service processes on one machine, under a small parent."""

from workflow_orchestrator.workers._count import usable_cpus, worker_count
from workflow_orchestrator.workers._parent import (
    EXIT_CONFIGURATION,
    MAX_START_FAILURES,
    WorkerParent,
    worker_replica_id,
)

__all__ = [
    "EXIT_CONFIGURATION",
    "MAX_START_FAILURES",
    "WorkerParent",
    "usable_cpus",
    "worker_count",
    "worker_replica_id",
]
