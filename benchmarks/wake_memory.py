"""Memory of one event that wakes every waiting instance (issue 13, "capacity with backpressure").

Run: ``.venv/bin/python benchmarks/wake_memory.py [--instances 100000] [--max-active 10000]``
against ``--server`` (default ``$BENCH_POSTGRES_URL`` or ``postgresql://postgres@127.0.0.1:5432``).
Prints figures; asserts nothing.

It creates a scratch database, runs the whole ``Service`` in this process with the database
event source, registers a definition that parks on a ``listen`` for ``bench.wake`` (no
correlation, so one event matches every instance) and then sets its output, and starts
``--instances`` of it with ``InstanceRuntime.start_instance`` (``--concurrency`` in flight)
until all are ``waiting``. Then it publishes ONE ``bench.wake`` event into the ``events`` table
(``workflow_publish_event``) and waits until every instance is ``completed``.

Printed: the creation time, the resident memory (VmRSS) before the event, the peak VmRSS
sampled every 100 ms while the instances wake, the process's peak (VmHWM) over the whole run,
the time from the publication to the last completion, and the peak of live actors. The
router delivers the event in the database (one statement), activates a page of instances and
the runtime drains the rest in pages behind ``workflows.maxActiveInstances``, so the peak
during the wake-up should not grow with the number of instances.

Measured here (2 shared cores, default settings, 100,000 instances): VmRSS 87 MiB before the
event, peak 157 MiB while waking, 321 s from the event to the last completion, at most 2,507
live actors.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

import trio
from _common import (
    DEFAULT_SERVER,
    register_definition,
    run_concurrently,
    scratch_database,
    service_config,
    sql,
    start_service,
)

from workflow_orchestrator.instances import StartRequest
from workflow_orchestrator.service import Service

LISTENER = """\
document: {dsl: '1.0.3', namespace: bench, name: parked-listener, version: '1.0.0'}
do:
  - hear:
      listen:
        to:
          one:
            with: {type: bench.wake}
  - done:
      set: {done: true}
"""


def rss_mib(field: str = "VmRSS") -> float:
    """This process's ``field`` of /proc/self/status in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def count(url: str, status: str) -> int:
    rows = await sql(url, "SELECT count(*) AS n FROM workflow_instances WHERE status = $1", status)
    n: int = rows[0]["n"]
    return n


async def wait_count(url: str, status: str, n: int, every: float = 0.5) -> None:
    while True:
        if await count(url, status) >= n:
            return
        await trio.sleep(every)


async def benchmark(args: argparse.Namespace) -> None:
    database = f"bench_wake_{uuid.uuid4().hex[:8]}"
    async with scratch_database(args.server, database) as url:
        loaded, port, _ = service_config(
            url,
            pool_size=20,
            replica_id="bench-wake",
            settings={"workflows.maxActiveInstances": args.max_active},
        )
        service = Service(loaded)
        async with trio.open_nursery() as nursery:
            runtime = await start_service(nursery, service)
            await register_definition(f"http://127.0.0.1:{port}/api", LISTENER)
            started = time.monotonic()

            async def start_one(_: int) -> None:
                await runtime.start_instance(StartRequest(definition_id="parked-listener"))

            await run_concurrently(args.instances, args.concurrency, start_one)
            await wait_count(url, "waiting", args.instances)
            created = time.monotonic() - started
            before = rss_mib()
            peak = before
            live_peak = 0

            async def sample() -> None:
                nonlocal peak, live_peak
                while True:
                    peak = max(peak, rss_mib())
                    live_peak = max(live_peak, len(runtime.live))
                    await trio.sleep(0.1)

            async with trio.open_nursery() as sampling:
                sampling.start_soon(sample)
                event = {"specversion": "1.0", "id": "wake-1", "source": "/bench"}
                event["type"] = "bench.wake"
                published = time.monotonic()
                await sql(url, "SELECT workflow_publish_event($1::jsonb)", json.dumps(event))
                await wait_count(url, "completed", args.instances)
                woken = time.monotonic() - published
                sampling.cancel_scope.cancel()
            print(f"instances                 {args.instances}")
            print(f"maxActiveInstances        {args.max_active}")
            print(f"creation                  {created:.1f} s")
            print(f"VmRSS before the event    {before:.0f} MiB")
            print(f"peak VmRSS while waking   {peak:.0f} MiB")
            print(f"peak VmHWM of the run     {rss_mib('VmHWM'):.0f} MiB")
            print(f"event to last completion  {woken:.1f} s")
            print(f"peak live actors          {live_peak}")
            service.request_shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--max-active", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    trio.run(benchmark, parser.parse_args())


if __name__ == "__main__":
    main()
