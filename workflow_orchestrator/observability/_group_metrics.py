"""``/metrics`` of a worker group: what every worker answers, the whole group's metrics.

Two kinds of metric, two ways of joining them:

- counters, histograms and the readiness gauge live in prometheus-client's multiprocess files
  (``PROMETHEUS_MULTIPROC_DIR``, set by the parent for each worker): ``MultiProcessCollector``
  sums them over every worker that ever ran in the group, so a counter never goes back when a
  worker is restarted;
- what is read at scrape time (pool connections, instance counts, outbox backlog, the process
  metrics...) cannot be summed by files: each worker writes its own, in the text format, with
  its status (about once a second), and the answering worker joins them with its own, fresh,
  each series labelled ``worker`` with the worker's replica id;
- ``workflow_orchestrator_worker_restarts_total``: how often the parent restarted each worker
  (from the parent's list of the workers, ``members.json``).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from workflow_orchestrator.observability._labels import PREFIX
from workflow_orchestrator.observability._worker_group import WorkerGroup

__all__ = ["WORKER_LABEL", "GroupExposition"]

WORKER_LABEL = "worker"


class _Labelled(Collector):
    """Families of several workers' texts, merged by name, each sample labelled ``worker``."""

    def __init__(self, texts: list[tuple[str, str]]) -> None:
        self._texts = texts

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for replica, text in self._texts:
            for family in text_string_to_metric_families(text):
                target = merged.get(family.name)
                if target is None:
                    target = Metric(family.name, family.documentation, family.type, family.unit)
                    merged[family.name] = target
                elif target.type != family.type:
                    continue  # another release's worker: keep the first kind
                for sample in family.samples:
                    labels = {**sample.labels, WORKER_LABEL: replica}
                    target.samples.append(sample._replace(labels=labels))
        yield from merged.values()


class _Restarts(Collector):
    def __init__(self, group: WorkerGroup) -> None:
        self._group = group

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            f"{PREFIX}_worker_restarts",
            "Times the parent of the worker group restarted the worker (a process that ended)",
            labels=[WORKER_LABEL],
        )
        for member in self._group.members():
            restarts.add_metric([member.replica], member.restarts)
        yield restarts


class GroupExposition:
    """Renders the group's metrics; ``live`` holds this worker's scrape-time collectors."""

    def __init__(self, group: WorkerGroup, live: CollectorRegistry) -> None:
        self._group = group
        self._live = live
        self._files = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(self._files, path=str(group.metrics_directory))  # type: ignore[no-untyped-call]

    def publish(self) -> bytes:
        """This worker's scrape-time metrics, written for the others; returns the text."""
        text = generate_latest(self._live)
        self._group.write_live(text)
        return text

    def render(self) -> bytes:
        """The whole group's metrics in the Prometheus text format."""
        own = (self._group.replica, self.publish().decode())
        joined = CollectorRegistry(auto_describe=False)
        joined.register(_Labelled([own, *self._group.live_texts()]))
        joined.register(_Restarts(self._group))
        return generate_latest(self._files) + generate_latest(joined)
