"""Metrics of workflow instances by definition: starts, ends by status, task durations.

The instance runtime reports here where the thing happens: a start or an end once its commit is
durable, a task's duration when its completion or fault is recorded. Definition ids are
registered by users, so only the first ``MAX_LABEL_VALUES`` of them get their own series
(``BoundedLabel``); later ones are counted as ``other``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from workflow_orchestrator.observability._labels import PREFIX, BoundedLabel

__all__ = ["TASK_DURATION_BUCKETS", "InstanceMetrics"]

#: From a ``set`` task (microseconds) to a call near the HTTP timeout or a short wait.
TASK_DURATION_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)


class InstanceMetrics:
    """The counters and the histogram of instances, registered on ``registry`` (a registry of
    their own when None, for runtimes built without a service)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.definition = BoundedLabel()
        self._started = Counter(
            f"{PREFIX}_instances_started",
            "Instances that began running on this replica (their first commit), by definition",
            ["definition"],
            registry=registry,
        )
        self._ended = Counter(
            f"{PREFIX}_instances_ended",
            "Instances that reached a terminal status (completed, faulted, cancelled) on this "
            "replica, by definition and status",
            ["definition", "status"],
            registry=registry,
        )
        self._task_duration = Histogram(
            f"{PREFIX}_task_duration_seconds",
            "Time from a task's start to its completion or fault within one run of its "
            "instance (a task that parked: from the run that resumed it), by definition and "
            "outcome (completed, faulted)",
            ["definition", "outcome"],
            buckets=TASK_DURATION_BUCKETS,
            registry=registry,
        )

    def started(self, definition: str) -> None:
        """An instance of ``definition`` left ``pending``: its first commit is durable."""
        self._started.labels(self.definition(definition)).inc()

    def ended(self, definition: str, status: str) -> None:
        """An instance of ``definition`` committed the terminal ``status``."""
        self._ended.labels(self.definition(definition), status).inc()

    def task_finished(self, definition: str, outcome: str, seconds: float) -> None:
        """A task of an instance of ``definition`` ended with ``outcome`` after ``seconds``."""
        self._task_duration.labels(self.definition(definition), outcome).observe(max(seconds, 0.0))
