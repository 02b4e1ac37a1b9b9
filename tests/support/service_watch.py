"""Watch a running service process from threads: /health/live latency and memory (RSS).

``watch_service`` runs two daemon threads for the length of its block:

- the health poller GETs ``/health/live`` every ``interval`` seconds (each probe on its own
  connection, as a kubelet does) and records every probe's status and latency; a probe that
  gets no answer within ``probe_timeout`` is recorded with status 0;
- the memory sampler reads the RSS of the process (and of its children, the sandbox workers)
  every ``interval`` seconds and keeps the peaks. Above ``kill_above`` bytes it kills the
  process, so that a runaway service cannot take the machine down with it (the peak it saw
  stays recorded, and the test fails on it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import attrs
import httpx
import psutil

__all__ = ["HealthProbe", "ServiceWatch", "watch_service"]


@attrs.frozen
class HealthProbe:
    """One ``/health/live`` probe: when it was sent (monotonic), its status (0: no answer)
    and how long the answer took."""

    sent_at: float
    status: int
    seconds: float


@attrs.define(eq=False)
class ServiceWatch:
    """What the watcher threads saw so far (read it while they run: the lists only grow)."""

    pid: int
    probes: list[HealthProbe] = attrs.Factory(list)
    peak_rss: int = 0
    peak_rss_with_children: int = 0
    killed_for_memory: bool = False
    _last_answer: float = attrs.field(factory=time.monotonic)

    def unresponsive_for(self) -> float:
        """Seconds since the last probe that was answered (0 while probes are answered)."""
        return time.monotonic() - self._last_answer

    def record(self, probe: HealthProbe) -> None:
        self.probes.append(probe)
        if probe.status:
            self._last_answer = probe.sent_at + probe.seconds

    def slow_probes(self, bound: float) -> list[HealthProbe]:
        """The probes without an answer, or answered with a status other than 200, or later
        than ``bound`` seconds."""
        return [p for p in self.probes if p.status != 200 or p.seconds >= bound]


def _poll_health(
    watch: ServiceWatch, url: str, interval: float, timeout: float, stop: threading.Event
) -> None:
    while not stop.is_set():
        sent = time.monotonic()
        try:
            status = httpx.get(url, timeout=timeout).status_code
        except httpx.HTTPError:
            status = 0
        watch.record(HealthProbe(sent_at=sent, status=status, seconds=time.monotonic() - sent))
        stop.wait(max(0.0, interval - (time.monotonic() - sent)))


def _sample_memory(
    watch: ServiceWatch, interval: float, kill_above: int, stop: threading.Event
) -> None:
    try:
        process = psutil.Process(watch.pid)
    except psutil.Error:
        return
    while not stop.is_set():
        try:
            rss = process.memory_info().rss
            total = rss
            for child in process.children(recursive=True):
                with suppress(psutil.Error):  # a sandbox worker that just ended
                    total += child.memory_info().rss
        except psutil.Error:
            return  # the process has ended
        watch.peak_rss = max(watch.peak_rss, rss)
        watch.peak_rss_with_children = max(watch.peak_rss_with_children, total)
        if rss > kill_above:
            watch.killed_for_memory = True
            with suppress(psutil.Error):
                process.kill()
            return
        stop.wait(interval)


@contextmanager
def watch_service(
    pid: int,
    live_url: str,
    *,
    interval: float = 0.2,
    probe_timeout: float = 5.0,
    kill_above: int = 3 * 1024**3,
) -> Iterator[ServiceWatch]:
    """Poll ``live_url`` and sample the memory of process ``pid`` until the block exits."""
    watch = ServiceWatch(pid=pid)
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_poll_health,
            args=(watch, live_url, interval, probe_timeout, stop),
            name="health-poller",
            daemon=True,
        ),
        threading.Thread(
            target=_sample_memory,
            args=(watch, interval, kill_above, stop),
            name="memory-sampler",
            daemon=True,
        ),
    ]
    for thread in threads:
        thread.start()
    try:
        yield watch
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=probe_timeout + 5)
