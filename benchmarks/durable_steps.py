"""Durable calls: instances of three ``call: http`` tasks, against DBOS with HTTP steps.

Run: ``.venv/bin/python benchmarks/durable_steps.py [--n 2000] [--peer]``.

Real workflows call services. This benchmark starts a small HTTP server of its own in a child
process (``_stub_server.py``: answers every request with a small JSON body, keep-alive), runs
the whole ``Service`` in this Trio process against a scratch database (as ``throughput.py``
does), registers a definition of three ``call: http`` tasks that GET the stub (each call's
response is recorded before the next task runs: a durable call) and measures:

1. ``in-process``: N instances started with ``InstanceRuntime.start_instance``, ``--concurrency``
   (64) starters in flight;
2. ``http``: N instances started with ``POST /api/v1/workflow-instances`` by ``--http-concurrency``
   (16) clients in a child process (its CPU shares the machine, not this process).

Instances/s is N over the time from the first start to the last completion (the terminal
snapshot committed). ``--peer`` then runs ``../shared/bench/peers/bench_dbos.py --mode start
--step-url`` against the same stub (DBOS Transact in ``/tmp/dbos-venv``, created if missing):
each of its three steps GETs the stub, so both sides do three durable HTTP calls per workflow.
It prints both figures, the ratios and the issue's targets next to them: in process at least
10x DBOS, over the HTTP API at least 5x.

Both sides keep their connections to the stub alive. The service calls it through its
outbound policy (``security.outbound.allow: [127.0.0.1]`` here), as production calls would.
``--set KEY=VALUE`` passes a service setting. ``--client NAME`` swaps the service's outbound HTTP
client for one of the candidates of ``outbound_clients.py`` (``pooled``, the service's own, by
default; ``httpx``, ``httpx-sized``, ``aiohttp``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from _common import (
    DEFAULT_SERVER,
    HERE,
    busy_fraction,
    free_port,
    machine_jiffies,
    post_from_client_process,
    postgres_cpu_seconds,
    register_definition,
    scratch_database,
    service_config,
    sql,
    start_service,
    wait_ended,
)
from _served import served_service
from outbound_clients import CLIENTS, install
from throughput import (
    Completions,
    Started,
    start_inline,
)
from throughput import run_burst as measure_burst
from throughput import run_peer as run_throughput_peer

from workflow_orchestrator.instances import InstanceRuntime, StartRequest
from workflow_orchestrator.service import Service

DEFINITION_ID = "three-calls"
TASKS = 3
TARGET_IN_PROCESS = 10.0
TARGET_HTTP = 5.0


def definition(stub_url: str) -> str:
    tasks = "\n".join(
        f"  - call{k}:\n"
        f"      call: http\n"
        f"      with:\n"
        f"        method: get\n"
        f"        endpoint: {stub_url}?step={k}\n"
        for k in range(1, TASKS + 1)
    )
    return (
        "document: {dsl: '1.0.3', namespace: bench, name: three-calls, version: '1.0.0'}\n"
        "do:\n" + tasks
    )


def instance_input(i: int) -> dict[str, Any]:
    return {"orderId": f"D-{i}"}


# -- the stub -------------------------------------------------------------------------------


class Stub:
    """``_stub_server.py`` in a child process on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/step"
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Stub:
        self._process = subprocess.Popen(
            [sys.executable, str(HERE / "_stub_server.py"), str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != "ready":
            raise RuntimeError("the stub server did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)


# -- the runs -------------------------------------------------------------------------------


async def start_from_client_process(base_url: str, n: int, concurrency: int) -> Started:
    return await post_from_client_process(
        base_url + "/v1/workflow-instances",
        concurrency,
        [{"workflowDefinitionId": DEFINITION_ID, "input": instance_input(i)} for i in range(n)],
    )


async def run_burst(
    name: str,
    n: int,
    concurrency: int,
    drive: Callable[[], Awaitable[Started]],
    completions: Completions,
    args: argparse.Namespace,
    service_url: str,
) -> dict[str, Any]:
    """``throughput.run_burst`` of the durable-call definition, with the client's name."""
    result = await measure_burst(
        name,
        n,
        concurrency,
        drive,
        completions,
        args,
        service_url,
        tasks=TASKS,
        patience=max(120.0, n / 10),
    )
    return report({"run": result.pop("run"), "client": args.client, **result})


async def benchmark(args: argparse.Namespace, stub: Stub) -> list[dict[str, Any]]:
    completions = Completions()
    completions.install()
    results: list[dict[str, Any]] = []
    async with scratch_database(args.server, args.database, replace=True) as service_url:
        loaded, port, _ = service_config(
            service_url,
            pool_size=args.pool_size,
            replica_id="bench-durable-steps",
            settings={"security.outbound.allow": ["127.0.0.1"]},
            sets=args.set,
        )
        service = Service(loaded)
        async with trio.open_nursery() as nursery:
            runtime: InstanceRuntime = await start_service(nursery, service)
            base_url = f"http://127.0.0.1:{port}/api"
            await register_definition(base_url, definition(stub.url))

            async def start_direct(i: int) -> uuid.UUID:
                record, _ = await runtime.start_instance(
                    StartRequest(definition_id=DEFINITION_ID, input=instance_input(i))
                )
                return record.instance_id

            warm = min(200, args.n)
            completions.expect(warm)
            await start_inline(warm, 16, start_direct)
            await completions.wait_all(seconds=60)
            if completions.statuses.get("completed", 0) != warm:
                raise RuntimeError(f"the warm-up did not complete: {completions.statuses}")

            runs = args.runs.split(",")
            for run in runs:
                if run == "inprocess":

                    async def drive_direct() -> Started:
                        return await start_inline(args.n, args.concurrency, start_direct)

                    results.append(
                        await run_burst(
                            "in-process",
                            args.n,
                            args.concurrency,
                            drive_direct,
                            completions,
                            args,
                            service_url,
                        )
                    )
                elif run == "http" and args.workers:
                    pass  # against serve --workers N, after this service stops
                elif run == "http":

                    async def drive_http() -> Started:
                        return await start_from_client_process(
                            base_url, args.n, args.http_concurrency
                        )

                    results.append(
                        await run_burst(
                            "http (client in its own process)",
                            args.n,
                            args.http_concurrency,
                            drive_http,
                            completions,
                            args,
                            service_url,
                        )
                    )
                else:
                    raise SystemExit(f"unknown run {run!r}: give inprocess and/or http")
            service.request_shutdown()
    return results


async def served_http_run(args: argparse.Namespace, stub: Stub) -> dict[str, Any]:
    """The ``http`` run against ``serve --workers N`` in a child process (``--workers``), on a
    scratch database of its own. Completions are read from the database (``completed_at``;
    the same clock as this process's ``time.time``)."""
    database = f"{args.database}_served"
    async with scratch_database(args.server, database, replace=True) as url:
        settings: dict[str, Any] = {
            "security.outbound.allow": ["127.0.0.1"],
            "database.poolSize": args.pool_size,
        }
        async with served_service(
            url,
            workers=args.workers,
            replica_id="bench-durable-steps",
            settings=settings,
            sets=args.set,
        ) as served:
            await register_definition(served.api, definition(stub.url))
            starts = served.api + "/v1/workflow-instances"
            warm = min(200, args.n)
            await post_from_client_process(
                starts, 16, [{"workflowDefinitionId": DEFINITION_ID, "input": {}}] * warm
            )
            await wait_ended(url, warm)
            cpu0, machine0 = served.cpu_seconds(), machine_jiffies()
            pg_cpu0 = postgres_cpu_seconds()
            wall0 = time.time()
            bodies = [
                {"workflowDefinitionId": DEFINITION_ID, "input": instance_input(i)}
                for i in range(args.n)
            ]
            started = await post_from_client_process(starts, args.http_concurrency, bodies)
            t_started = time.time()
            await wait_ended(url, warm + args.n)
            rows = await sql(
                url,
                "SELECT instance_id, extract(epoch FROM completed_at), status "
                "FROM workflow_instances WHERE instance_id = ANY($1::uuid[])",
                list(started),
            )
            cpu = served.cpu_seconds() - cpu0
            pg_cpu = postgres_cpu_seconds() - pg_cpu0
            machine_busy = round(busy_fraction(machine0, machine_jiffies(), empty=0.0), 3)
    done = [float(r[1]) for r in rows if r[2] == "completed"]
    wall = max(done, default=time.time()) - wall0
    return report(
        {
            "run": f"http (serve --workers {args.workers}, client in its own process)",
            "n": args.n,
            "completed": len(done),
            "concurrency": args.http_concurrency,
            "wall_s": round(wall, 3),
            "starts_per_s": round(args.n / (t_started - wall0), 1),
            "instances_per_s": round(len(done) / wall, 1),
            "tasks_per_s": round(len(done) * TASKS / wall, 1),
            "service_cpu_cores": round(cpu / wall, 2),
            "service_cpu_ms_per_instance": round(cpu * 1000 / max(len(done), 1), 3),
            "postgres_cpu_ms_per_instance": round(pg_cpu * 1000 / max(len(done), 1), 3),
            "machine_busy_frac": machine_busy,
        }
    )


def report(result: dict[str, Any]) -> dict[str, Any]:
    print(json.dumps(result), flush=True)
    return result


def run_peer(args: argparse.Namespace, stub: Stub) -> dict[str, Any] | None:
    """DBOS with each of its three steps a GET of the stub (``--step-url``)."""
    return run_throughput_peer(
        args, ("--step-url", stub.url), name="dbos (peer, --mode start --step-url)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="instances per run")
    parser.add_argument("--concurrency", type=int, default=64, help="in-process starts in flight")
    parser.add_argument("--http-concurrency", type=int, default=16, help="HTTP starts in flight")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--database", default=f"bench_durable_steps_{os.getpid()}")
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("--runs", default="inprocess,http", help="inprocess and/or http, in order")
    parser.add_argument("--stats-wait", type=float, default=11.0)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a service setting"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run the http run against `serve --workers N` in a child process (default: the "
        "service in this process)",
    )
    parser.add_argument(
        "--client",
        default="pooled",
        choices=sorted(CLIENTS),
        help="the outbound HTTP client of the in-process runs (not of --workers)",
    )
    parser.add_argument("--peer", action="store_true", help="also run DBOS with --step-url")
    parser.add_argument("--peer-n", type=int, default=2000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    install(args.client)
    with Stub() as stub:
        results = trio.run(benchmark, args, stub)
        if args.workers and "http" in args.runs.split(","):
            results.append(trio.run(served_http_run, args, stub))
        peer = run_peer(args, stub) if args.peer else None
    if peer is None or not peer.get("wf_per_s"):
        return
    dbos = float(peer["wf_per_s"])
    for result in results:
        ratio = result["instances_per_s"] / dbos
        target = TARGET_IN_PROCESS if result["run"] == "in-process" else TARGET_HTTP
        print(
            f"target: durable calls, {result['run']} >= {target:g}x DBOS --step-url: "
            f"{ratio:.1f}x ({result['instances_per_s']:,.1f} against {dbos:,.1f} workflows/s) "
            f"({'met' if ratio >= target else 'NOT met'})",
            flush=True,
        )


if __name__ == "__main__":
    main()
