"""Prometheus metrics of one service: HTTP requests per route, database pools and latency,
events, timers, schedules, readiness and instances (``InstanceMetrics``).

Each service owns a ``ServiceMetrics`` with its own registry (so tests can build several apps in
one process); the exposition joins it with prometheus-client's default registry, which holds the
process metrics and the process-wide counters (actor restarts). In a worker of a group
(``server.workers`` > 1) the exposition is the whole group's (``_group_metrics``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from workflow_orchestrator.observability._group_metrics import GroupExposition
from workflow_orchestrator.observability._instance_metrics import InstanceMetrics
from workflow_orchestrator.observability._labels import PREFIX, BoundedLabel, http_method_label
from workflow_orchestrator.observability._worker_group import WorkerGroup

__all__ = ["CONTENT_TYPE", "PoolReading", "ServiceMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: One unit of database work: from a fraction of a millisecond to a slow batch.
DATABASE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# ``*_created`` series double the exposition for no use on a dashboard.
disable_created_metrics()  # type: ignore[no-untyped-call]


@attrs.frozen(kw_only=True)
class PoolReading:
    """One pool's connections: open, in use, configured maximum."""

    pool: str
    size: int
    used: int
    max_size: int


class _PoolCollector(Collector):
    def __init__(self, read: Callable[[], list[PoolReading]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            f"{PREFIX}_db_pool_connections",
            "Database pool connections by state",
            labels=["pool", "state"],
        )
        maximum = GaugeMetricFamily(
            f"{PREFIX}_db_pool_max_connections",
            "Configured maximum connections of the pool",
            labels=["pool"],
        )
        for reading in self._read():
            connections.add_metric([reading.pool, "used"], reading.used)
            connections.add_metric([reading.pool, "idle"], reading.size - reading.used)
            maximum.add_metric([reading.pool], reading.max_size)
        yield connections
        yield maximum


class _GaugeCollector(Collector):
    def __init__(self, readers: list[Callable[[], Iterator[Metric]]]) -> None:
        self._readers = readers

    def collect(self) -> Iterator[Metric]:
        for read in self._readers:
            yield from read()


class ServiceMetrics:
    """The metrics a service records; ``exposition()`` renders them with the process metrics.

    With ``group`` (a worker of ``server.workers`` > 1) the exposition is the group's: the
    counters and histograms summed over the workers, the scrape-time gauges of each worker
    labelled ``worker``."""

    def __init__(self, group: WorkerGroup | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # The collectors read at scrape time (they cannot be summed by multiprocess files).
        self._live = CollectorRegistry(auto_describe=False)
        # Event types come from whoever sends events: at most 200 of them get their own
        # series (cut to 100 characters), later ones are counted as "other".
        self.event_type = BoundedLabel()
        self.http_requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests handled, by app, method, route template and status code",
            ["app", "method", "route", "status"],
            registry=self.registry,
        )
        self.http_request_duration = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request latency by app, method and route template",
            ["app", "method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self._pool_readers: list[Callable[[], list[PoolReading]]] = []
        pools = _PoolCollector(self._read_pools)
        self.registry.register(pools)
        self._live.register(pools)
        self.db_query_duration = Histogram(
            f"{PREFIX}_db_query_duration_seconds",
            "Time of one unit of database work (waiting for a connection and its queries), by "
            "the pool that ran it",
            ["pool"],
            buckets=DATABASE_BUCKETS,
            registry=self.registry,
        )
        self.ready = Gauge(
            f"{PREFIX}_ready",
            "1 when the service was ready (as /health/ready answers) at this scrape, else 0",
            registry=self.registry,
            # In a group: the answering worker's (the group's readiness) at the last scrape.
            multiprocess_mode="livemostrecent",
        )
        self.instances = InstanceMetrics(self.registry)
        events = ["source", "type"]
        self.events_received = Counter(
            f"{PREFIX}_events_received",
            "CloudEvents received, by source (rabbitmq, database, http) and event type",
            events,
            registry=self.registry,
        )
        self.events_routed = Counter(
            f"{PREFIX}_events_routed",
            "Events committed by the router (delivered, started instances or unmatched)",
            events,
            registry=self.registry,
        )
        self.events_duplicate = Counter(
            f"{PREFIX}_events_duplicate",
            "Events dropped as duplicates of an event routed before (same source and id)",
            events,
            registry=self.registry,
        )
        self.events_unmatched = Counter(
            f"{PREFIX}_events_unmatched",
            "Events that matched no waiting instance and started none, by event type",
            ["type"],
            registry=self.registry,
        )
        self.events_dead_lettered = Counter(
            f"{PREFIX}_events_dead_lettered",
            "Messages rejected as invalid and dead-lettered, by source and event type "
            "('' when the type could not be read)",
            events,
            registry=self.registry,
        )
        self.events_published = Counter(
            f"{PREFIX}_events_published",
            "Outbox events published to the broker, by exchange (RabbitMQ) or topic (Kafka)",
            ["exchange"],
            registry=self.registry,
        )
        self.event_routing_duration = Histogram(
            f"{PREFIX}_event_routing_duration_seconds",
            "Time from receiving an event to committing its routing, by source",
            ["source"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.timer_lateness = Histogram(
            f"{PREFIX}_timer_lateness_seconds",
            "How late durable timers fired after their due time",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.timers_fired = Counter(
            f"{PREFIX}_timers_fired",
            "Durable timers fired (parked instances woken at their due time)",
            registry=self.registry,
        )
        self.schedule_ticks = Counter(
            f"{PREFIX}_schedule_ticks",
            "Schedule ticks by outcome: started, skipped (overlap or catch-up), buffered",
            ["outcome"],
            registry=self.registry,
        )
        self.leadership_changes = Counter(
            f"{PREFIX}_leadership_changes",
            "Times this replica became or stopped being the schedule leader",
            registry=self.registry,
        )
        self.retention_deleted = Counter(
            "workflow_retention_deleted",
            "Rows deleted by the retention sweep of finished instances, by table",
            ["table"],
            registry=self.registry,
        )
        self._gauges: list[Callable[[], Iterator[Metric]]] = []
        gauges = _GaugeCollector(self._gauges)
        self.registry.register(gauges)
        self._live.register(gauges)
        self._group: GroupExposition | None = None
        if group is not None:
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self._live.register(collector)
            self._group = GroupExposition(group, self._live)

    def add_gauges(self, read: Callable[[], Iterator[Metric]]) -> None:
        """Report the gauge families ``read`` yields at every scrape (must not block)."""
        self._gauges.append(read)

    def add_pool_reader(self, read: Callable[[], list[PoolReading]]) -> None:
        """Report the pools returned by ``read`` (called at every scrape, must not block)."""
        self._pool_readers.append(read)

    def _read_pools(self) -> list[PoolReading]:
        return [reading for read in self._pool_readers for reading in read()]

    def observe_request(
        self, *, app: str, method: str, route: str, status: int, seconds: float
    ) -> None:
        """Count one finished request under its route template (never its concrete path)."""
        method = http_method_label(method)
        self.http_requests.labels(app, method, route, str(status)).inc()
        self.http_request_duration.labels(app, method, route).observe(seconds)

    def observe_database(self, pool: str, seconds: float) -> None:
        """One unit of database work that ``pool`` ran in ``seconds`` (called by the storage
        for every unit: no I/O, no lock beyond the histogram's own)."""
        self.db_query_duration.labels(pool).observe(seconds)

    def publish_to_group(self) -> None:
        """In a group, write this worker's scrape-time metrics for the others (no-op alone)."""
        if self._group is not None:
            self._group.publish()

    def exposition(self) -> bytes:
        """The Prometheus text format of the default registry and this service's metrics (in a
        group: of the whole group)."""
        if self._group is not None:
            return self._group.render()
        return generate_latest(REGISTRY) + generate_latest(self.registry)
