"""Durable timers: how late 100,000 parked ``wait`` instances wake when due over one minute.

Run: ``.venv/bin/python benchmarks/timers.py [--timers 100000] [--window 60]
[--poll-interval 1s] [--lead 20]`` against ``--server`` (default ``$BENCH_POSTGRES_URL`` or
``postgresql://postgres@127.0.0.1:5432``). Prints a table; asserts nothing. Target (this
2-core machine): p99 fire lateness under 100 ms.

It creates a scratch database, runs the whole ``Service`` in this Trio process (as
``tests/support/service.py`` does) and registers a definition that waits
``${ .delay }`` seconds (``nap``) and then sets its output (``done``). Then:

1. warm-up and calibration: ``--calibrate`` instances of a copy of the definition (2 s
   waits) are started with ``InstanceRuntime.start_instance`` (64 in flight) and run to
   completion; their start rate gives the expected creation time of the N timers;
2. the window (``--window`` seconds) is placed ``--lead`` seconds after the start of the
   creation, or later when the calibrated creation time (plus 30 % and 5 s) would run into
   it, and instance ``i`` (in creation order) gets the due time ``window start + (i + 0.5) *
   window / N``: its input ``delay`` is that due time minus the wall clock just before its
   start call, so each instance parks (a ``wait`` longer than ``park_after`` = 1 s) with a
   ``workflow_timers`` row and the due time recorded in its state frame
   (``snapshot->'state'->'frames'->'<task key>/!wait'->>'due'``, the start of the wait plus
   ``delay``, so a few ms after the intended time). The creation time (start of the first
   call to all N ``waiting``) is printed, and how long before the window it ended;
3. the N instances wake: the ``TimerService`` claims the rows due within the lookahead
   (``max(5 s, 3 x scheduler.pollInterval)``) every poll interval and arms the in-memory
   ``WakeTimers``, which fire them and activate the instances, which complete.

Two lateness figures are printed, p50/p99/max in ms:

- ``fire``: what ``WakeTimers`` reports when it pops a due timer off its heap (``on_fire``'s
  argument: wall clock at firing minus the due time, before the wake-up activates the
  instance); collected by wrapping the ``on_fire`` callback the scheduler installs (which
  feeds ``workflow_orchestrator_timer_lateness_seconds``). This is the figure of the target.
- ``complete``: the database's ``completed_at`` minus the due time of the instance's frame,
  i.e. firing plus activation (snapshot read, actor start), running ``done`` and building the
  completing snapshot (``completed_at`` is taken before its commit).

Timers/s is the number fired divided by the time from the first to the last firing; the
completion rate is the same over ``completed_at``. The process's CPU use (cores) and the
machine's busy fraction over the window tell whether the box, rather than the timer path,
bounds the lateness. The scratch database is dropped at the end, also when interrupted
(SIGINT, or SIGTERM as ``timeout(1)`` sends).

Measured on the 2-core box (PG 15, noisy, shared with other runs). Lateness counts to the
moment a wake-up starts, after it waited for one of the ``scheduler.threadPoolSize`` slots
(each held until the instance's activation is queued; the runs themselves are bounded by
``workflows.maxActiveInstances``). Before the batched activation loads, the thresholds of the
garbage collector and the short slot hold, ``--timers 30000 --window 20`` gave 618
completions/s with fire p99 40.8 s (0.94 cores, the replica saturated at about 1.5 ms of CPU
per wake); after: 1,500/s with fire p50 0.6 ms / p99 5.7 ms, completion p99 32 ms (0.89
cores, about 0.6 ms per wake). The default (100,000 over 60 s, 1,667 timers/s): every timer
fires at 1,666/s, fire p50 1.9 ms / p99 451 ms, completion p99 645 ms at 0.84 cores (load
average 2.6-3.0 from other runs); before, about 930 instances/s and fire p99 72 s. Alone on
the machine (``benchmarks/targets.py``, two runs): fire p50 0.7 ms / p99 6.1-6.9 ms,
completion p99 38-41 ms at 0.92 cores.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import trio
from _common import (
    DEFAULT_SERVER,
    busy_fraction,
    machine_jiffies,
    pct,
    post_from_client_process,
    register_definition,
    run_concurrently,
    scratch_database,
    service_config,
    sql,
    start_service,
)
from _served import Served as ServedService
from _served import served_service

from workflow_orchestrator.config import LoadedConfig
from workflow_orchestrator.instances import InstanceRuntime, StartRequest
from workflow_orchestrator.scheduler import Scheduler
from workflow_orchestrator.service import Service

TARGET_P99_MS = 100.0
CONCURRENCY = 64
DEFINITION_ID = "timers"
WARMUP_ID = "timers-warmup"
# The frame key of the ``nap`` task's timer: ``<task key>/!wait`` (see ``run_wait``).
WAIT_KEY = "/do/0/nap/!wait"
# Parked, or already through (a timer due before the count saw it waiting).
PARKED = ("waiting", "completed")

DEFINITION = """\
document: {{dsl: '1.0.3', namespace: bench, name: {name}, version: '1.0.0'}}
do:
  - nap:
      wait: ${{ .delay }}
  - done:
      set:
        n: ${{ .n }}
        woke: true
"""


# -- the run ----------------------------------------------------------------------------------


class Firings:
    """What ``WakeTimers.on_fire`` is told: (monotonic time, lateness seconds) per firing."""

    def __init__(self) -> None:
        self.fired: list[tuple[float, float]] = []

    def install(self, runtime: InstanceRuntime) -> None:
        """Wrap the callback the service gave the runtime's timers (keeps its metrics)."""
        original = runtime.timers.on_fire
        fired = self.fired

        def on_fire(lateness: float) -> None:
            fired.append((time.monotonic(), lateness))
            if original is not None:
                original(lateness)

        runtime.timers.on_fire = on_fire


class Bench:
    def __init__(self, args: argparse.Namespace, url: str) -> None:
        self.args = args
        self.url = url
        self.api = ""

    def config(self) -> LoadedConfig:
        loaded, port, _ = service_config(
            self.url,
            pool_size=self.args.pool_size,
            replica_id="bench-timers",
            settings={"scheduler.pollInterval": self.args.poll_interval},
            sets=self.args.set,
        )
        self.api = f"http://127.0.0.1:{port}/api"
        return loaded

    async def register(self, name: str) -> None:
        await register_definition(self.api, DEFINITION.format(name=name))

    async def count(self, definition: str, statuses: tuple[str, ...]) -> int:
        rows = await sql(
            self.url,
            "SELECT count(*) FROM workflow_instances "
            "WHERE definition_id = $1 AND status = ANY($2::text[])",
            definition,
            list(statuses),
        )
        return int(rows[0][0])

    async def wait_count(
        self, definition: str, statuses: tuple[str, ...], n: int, seconds: float
    ) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await self.count(definition, statuses) >= n:
                return True
            await trio.sleep(0.5)
        return False


async def start_all(
    runtime: InstanceRuntime, definition: str, n: int, due: Callable[[int], float]
) -> int:
    """Start ``n`` instances, ``CONCURRENCY`` calls in flight; instance ``i`` waits until the
    epoch time ``due(i)``. Returns how many were started with less than 1.5 s to go (they may
    not park)."""
    short = 0

    async def start(i: int) -> None:
        nonlocal short
        delay = due(i) - time.time()
        if delay < 1.5:
            short += 1
        await runtime.start_instance(
            StartRequest(definition_id=definition, input={"n": i, "delay": round(delay, 6)})
        )

    await run_concurrently(n, CONCURRENCY, start)
    return short


class Driver:
    """How ``run`` starts instances and reads fire lateness: in this process (``measure``)
    or against ``serve --workers N`` (``measure_served``)."""

    async def start(self, definition: str, n: int, due: Callable[[int], float], rate: float) -> int:
        """Start ``n`` instances of ``definition`` that wait until about ``due(i)``; return
        how many had less than 1.5 s to go. ``rate`` is the expected starts per second."""
        raise NotImplementedError

    async def mark(self) -> None:
        """The window begins: lateness is counted from here."""

    async def fire(self) -> dict[str, Any]:
        """What fired since ``mark``: ``fired``, ``fire`` (ms each, or None), ``fire_per_s``,
        ``fire_buckets_ms`` (histogram bounds by percentile, when ``fire`` is None)."""
        raise NotImplementedError

    def cpu_seconds(self) -> float:
        raise NotImplementedError

    def claimed(self) -> int:
        """Timer rows claimed so far (-1: not known from outside the service)."""
        return -1


class InProcess(Driver):
    def __init__(self, runtime: InstanceRuntime, firings: Firings, timers: Any) -> None:
        self.runtime, self.firings, self.timers = runtime, firings, timers

    async def start(self, definition: str, n: int, due: Callable[[int], float], rate: float) -> int:
        return await start_all(self.runtime, definition, n, due)

    async def mark(self) -> None:
        self.firings.fired.clear()

    async def fire(self) -> dict[str, Any]:
        fired = self.firings.fired
        span = fired[-1][0] - fired[0][0] if len(fired) > 1 else math.nan
        return {
            "fired": len(fired),
            "fire": [lateness * 1000 for _, lateness in fired],
            "fire_per_s": len(fired) / span if span > 0 else math.nan,
        }

    def cpu_seconds(self) -> float:
        return time.process_time()

    def claimed(self) -> int:
        return int(self.timers.claimed_total)


class Served(Driver):
    def __init__(self, served: ServedService) -> None:
        self.served = served
        self.before: dict[float, float] = {}

    async def start(self, definition: str, n: int, due: Callable[[int], float], rate: float) -> int:
        return await start_all_http(self.served, definition, n, due, rate)

    async def mark(self) -> None:
        self.before = lateness_buckets(await self.served.metrics())

    async def fire(self) -> dict[str, Any]:
        after = lateness_buckets(await self.served.metrics())
        fired = after.get(math.inf, 0.0) - self.before.get(math.inf, 0.0)
        return {
            "fired": int(fired),
            "fire": None,
            "fire_per_s": math.nan,
            "fire_buckets_ms": {p: bucket_percentile(self.before, after, p) for p in (50, 99, 100)},
        }

    def cpu_seconds(self) -> float:
        return self.served.cpu_seconds()


async def run(bench: Bench, driver: Driver) -> dict[str, Any]:
    args = bench.args
    n: int = args.timers
    window: float = args.window

    # 1. Warm-up and calibration of the creation rate (same path: create, park, wake).
    await bench.register(WARMUP_ID)
    await bench.register(DEFINITION_ID)
    calibrate = min(args.calibrate, n)
    began = time.monotonic()
    await driver.start(WARMUP_ID, calibrate, lambda i: time.time() + 5.0, 1000.0)
    await bench.wait_count(WARMUP_ID, PARKED, calibrate, 120)
    rate = calibrate / (time.monotonic() - began)
    if not await bench.wait_count(WARMUP_ID, ("completed",), calibrate, 120):
        raise RuntimeError("the warm-up instances did not complete")
    claimed0 = driver.claimed()
    expected = n / rate
    lead = max(args.lead, expected * 1.3 + 5.0)
    print(
        f"warm-up: {calibrate:,} instances at ~{rate:,.0f}/s; expecting ~{expected:.0f}s to "
        f"create {n:,}; window starts {lead:.0f}s after the first start",
        file=sys.stderr,
        flush=True,
    )

    # 2. Create the N timers.
    t0_wall = time.time()
    t0 = time.monotonic()
    window_start = t0_wall + lead
    short = await driver.start(
        DEFINITION_ID, n, lambda i: window_start + (i + 0.5) * window / n, rate
    )
    calls_done = time.monotonic() - t0
    if not await bench.wait_count(DEFINITION_ID, PARKED, n, lead + window):
        print("not every instance reached 'waiting' before the window ended", file=sys.stderr)
    created = time.monotonic() - t0
    print(
        f"created: {n:,} in {created:.1f}s (start calls {calls_done:.1f}s); window starts "
        f"{lead - created:.1f}s later",
        file=sys.stderr,
        flush=True,
    )
    # The completing snapshot drops the frames: read the recorded due times while parked.
    read0 = time.monotonic()
    dues = {
        row[0]: float(row[1])
        for row in await sql(
            bench.url,
            "SELECT instance_id, extract(epoch FROM "
            "(snapshot->'state'->'frames'->$2->>'due')::timestamptz) "
            "FROM workflow_instances WHERE definition_id = $1 AND status = 'waiting'",
            DEFINITION_ID,
            WAIT_KEY,
        )
        if row[1] is not None
    }
    print(
        f"read {len(dues):,} due times in {time.monotonic() - read0:.1f}s",
        file=sys.stderr,
        flush=True,
    )

    # 3. The window: wait for every completion.
    until_window = window_start - time.time()
    if until_window > 0:
        await trio.sleep(until_window)
    await driver.mark()
    cpu0, machine0 = driver.cpu_seconds(), machine_jiffies()
    w0 = time.monotonic()
    done = await bench.wait_count(DEFINITION_ID, ("completed",), n, window + max(120.0, n / 200))
    cpu = driver.cpu_seconds() - cpu0
    busy = busy_fraction(machine0, machine_jiffies())
    wall = time.monotonic() - w0
    fire = await driver.fire()

    rows = await sql(
        bench.url,
        "SELECT instance_id, extract(epoch FROM completed_at) "
        "FROM workflow_instances WHERE definition_id = $1 AND status = 'completed'",
        DEFINITION_ID,
    )
    completed_at = [float(r[1]) for r in rows]
    complete = [(float(r[1]) - dues[r[0]]) * 1000 for r in rows if r[0] in dues]
    complete_span = max(completed_at) - min(completed_at) if len(completed_at) > 1 else math.nan
    claimed = driver.claimed()
    return {
        "timers": n,
        "window_s": window,
        "created_s": created,
        "creation_per_s": n / created,
        "slack_s": lead - created,
        "short": short,
        "complete": done,
        "completed": len(rows),
        "without_due": len(rows) - len(complete),
        **fire,
        "end_to_end": complete,
        "complete_per_s": len(rows) / complete_span if complete_span > 0 else math.nan,
        "claimed": claimed - claimed0 if claimed >= 0 else -1,
        "cpu_cores": cpu / wall if wall > 0 else math.nan,
        "machine_busy": busy,
        "workers": args.workers,
    }


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    database = f"bench_timers_{uuid.uuid4().hex[:8]}"
    async with scratch_database(args.server, database) as url:
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async with trio.open_nursery() as outer:

                async def on_sigterm() -> None:
                    async for _ in signals:
                        raise KeyboardInterrupt  # a SIGTERM (timeout(1)) cleans up as SIGINT

                outer.start_soon(on_sigterm)
                result = await (measure_served if args.workers else measure)(args, url)
                outer.cancel_scope.cancel()
        return result


async def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Run the service on the scratch database at ``url`` and the benchmark against it."""
    bench = Bench(args, url)
    service = Service(bench.config())
    async with trio.open_nursery() as nursery:
        runtime = await start_service(nursery, service)
        firings = Firings()
        firings.install(runtime)
        try:
            scheduler: Scheduler | None = service._scheduler
            assert scheduler is not None, "the scheduler did not start"
            timers = scheduler.timers
            result = await run(bench, InProcess(runtime, firings, timers))
            result["lookahead_s"] = timers.lookahead
        finally:
            service.request_shutdown()
    return result


async def measure_served(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """The same run against ``serve --workers N`` in a child process: instances are started
    over the HTTP API, fire lateness comes from the service's lateness histogram (all workers,
    bucket upper bounds), completion lateness from the database as in process."""
    bench = Bench(args, url)
    settings = {"scheduler.pollInterval": args.poll_interval, "database.poolSize": args.pool_size}
    async with served_service(
        url, workers=args.workers, replica_id="bench-timers", settings=settings, sets=args.set
    ) as served:
        bench.api = served.api
        return await run(bench, Served(served))


LATENESS_BUCKET = "workflow_orchestrator_timer_lateness_seconds_bucket"


def lateness_buckets(metrics_text: str) -> dict[float, float]:
    """The cumulative counts of the timer lateness histogram by upper bound (seconds), summed
    over every series (all workers)."""
    buckets: dict[float, float] = {}
    for line in metrics_text.splitlines():
        if not line.startswith(LATENESS_BUCKET + "{"):
            continue
        labels, _, value = line.rpartition(" ")
        bound = labels.split('le="', 1)[1].split('"', 1)[0]
        upper = math.inf if bound == "+Inf" else float(bound)
        buckets[upper] = buckets.get(upper, 0.0) + float(value)
    return buckets


def bucket_percentile(before: dict[float, float], after: dict[float, float], p: float) -> float:
    """The upper bound (ms) of the bucket holding the ``p``-th percentile of what was observed
    between ``before`` and ``after`` (NaN if nothing was)."""
    delta = {b: after[b] - before.get(b, 0.0) for b in sorted(after)}
    total = delta.get(math.inf, 0.0)
    if total <= 0:
        return math.nan
    for bound, cumulative in delta.items():
        if cumulative >= total * p / 100:
            return bound * 1000
    return math.inf


async def start_all_http(
    served: ServedService, definition: str, n: int, due: Callable[[int], float], rate: float
) -> int:
    """Start ``n`` instances over the HTTP API from a client process; instance ``i`` waits
    until about the epoch time ``due(i)``: its delay is computed for the moment its request is
    expected to be sent (``i / rate`` after now), so the recorded due time (start of the wait
    plus delay, which the lateness is measured against) is near, not at, ``due(i)``."""
    now = time.time()
    short = 0
    bodies = []
    for i in range(n):
        delay = due(i) - (now + i / rate)
        short += delay < 1.5
        bodies.append(
            {"workflowDefinitionId": definition, "input": {"n": i, "delay": round(delay, 6)}}
        )
    await post_from_client_process(served.api + "/v1/workflow-instances", CONCURRENCY, bodies)
    return short


def print_table(r: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"{r['timers']:,} timers due over {r['window_s']:.0f}s, scheduler.pollInterval "
        f"{args.poll_interval}, lookahead {r.get('lookahead_s', math.nan):.0f}s"
    )
    print(
        f"creation: {r['created_s']:.1f}s ({r['creation_per_s']:,.0f} instances/s to "
        f"'waiting'), {r['slack_s']:.1f}s before the window"
        + (f"; {r['short']:,} started with < 1.5 s to go" if r["short"] else "")
    )
    header = f"{'lateness':<34} {'n':>8} {'p50':>9} {'p99':>9} {'max':>9} {'per s':>8}"
    print(header)
    print("-" * len(header))
    if r["fire"] is not None:
        lines: list[tuple[str, list[float], float]] = [
            ("fire (WakeTimers on_fire)", r["fire"], r["fire_per_s"])
        ]
    else:
        buckets = r["fire_buckets_ms"]
        print(
            f"{'fire (histogram, bucket bounds)':<34} {r['fired']:>8,} {buckets[50]:>7.1f}ms "
            f"{buckets[99]:>7.1f}ms {buckets[100]:>7.1f}ms {'':>8}"
        )
        lines = []
    lines.append(("complete (completed_at - due)", r["end_to_end"], r["complete_per_s"]))
    for name, values, rate in lines:
        print(
            f"{name:<34} {len(values):>8,} {pct(values, 50):>7.1f}ms {pct(values, 99):>7.1f}ms "
            f"{max(values, default=math.nan):>7.1f}ms {rate:>8,.0f}"
        )
    print(
        f"completed {r['completed']:,} of {r['timers']:,}"
        + ("" if r["complete"] else " (timed out)")
        + (
            f"; claimed by the timer service {r['claimed']:,} (a row claimed again counts again)"
            if r["claimed"] >= 0
            else f"; {r['workers']} worker processes"
        )
        + f"; service {r['cpu_cores']:.2f} cores, machine {r['machine_busy']:.0%} busy "
        "from the window start to the last completion"
    )
    p99 = pct(r["fire"], 99) if r["fire"] is not None else r["fire_buckets_ms"][99]
    verdict = "met" if p99 < TARGET_P99_MS else "NOT met"
    print(f"target: p99 fire lateness < {TARGET_P99_MS:.0f} ms: {p99:.1f} ms ({verdict})")
    if r["without_due"]:
        print(
            f"{r['without_due']:,} completed instances had no due time "
            "(not parked when the due times were read)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--timers", type=int, default=100_000, help="instances (one timer each)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds the dues spread over")
    parser.add_argument(
        "--lead",
        type=float,
        default=20.0,
        help="seconds from the first start to the window (more if creation is expected slower)",
    )
    parser.add_argument(
        "--poll-interval", default="1s", help="scheduler.pollInterval (a duration such as 1s)"
    )
    parser.add_argument("--calibrate", type=int, default=3_000, help="warm-up instances")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run `serve --workers N` in a child process and start the instances over the "
        "HTTP API (default: the service in this process, started in process)",
    )
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a service setting (dotted YAML key), e.g. scheduler.threadPoolSize=32",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print_table(trio.run(benchmark, args), args)


if __name__ == "__main__":
    main()
