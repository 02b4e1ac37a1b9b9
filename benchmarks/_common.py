"""Helpers the service benchmarks share (``events.py``, ``timers.py``, ``throughput.py``).

The benchmarks run as scripts (``.venv/bin/python benchmarks/timers.py``), so this directory is
``sys.path[0]`` and they import this module as ``_common``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import sys
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import trio
import trio_asyncio

from workflow_orchestrator.config import LoadedConfig, load_config
from workflow_orchestrator.instances import InstanceRuntime
from workflow_orchestrator.service import Service

HERE = Path(__file__).resolve().parent
DEFAULT_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")


# -- ports, percentiles, CPU --------------------------------------------------------------------


def url_with_database(server: str, database: str) -> str:
    """``server``'s URL with its path set to ``database``."""
    parts = urllib.parse.urlsplit(server)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile of ``values`` (nearest rank; NaN when empty)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))]


def machine_jiffies() -> tuple[float, float]:
    """(total, idle) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(x) for x in stat.readline().split()[1:]]
    return float(sum(values)), float(values[3] + values[4])


def busy_fraction(
    before: tuple[float, float], after: tuple[float, float], empty: float = math.nan
) -> float:
    """The machine's busy fraction between two ``machine_jiffies`` (``empty`` if none passed)."""
    total = after[0] - before[0]
    return 1 - (after[1] - before[1]) / total if total else empty


def postgres_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this machine's ``postgres`` processes.

    Only meaningful when the benchmark's PostgreSQL runs on this machine (it does here): the
    scaling model in docs/operations/scaling.md divides it by the instances of a run. Backends
    that exit during a run take their CPU with them, so runs keep their connections open.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        if name != "postgres":
            continue
        fields = text[text.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks


async def wal_bytes(server: str) -> int:
    """The server's current WAL position in bytes (differences give the WAL a run wrote)."""
    rows = await sql(
        url_with_database(server, "postgres"),
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint",
    )
    return int(rows[0][0])


# -- asyncio work in a thread (the scratch database, the results) ------------------------------


async def on_asyncio(work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run asyncio ``work`` on a private loop in a worker thread (not the service's loop)."""
    # The service's trio-asyncio loop belongs to its tasks; a second one in this Trio run
    # would be entered by whichever task calls the runtime.
    return await trio.to_thread.run_sync(lambda: asyncio.run(work()))


async def sql(url: str, query: str, *args: Any) -> list[Any]:
    """The rows of one ``query`` on a connection of its own to ``url``."""

    async def work() -> list[Any]:
        connection = await asyncpg.connect(url)
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    result: list[Any] = await on_asyncio(work)
    return result


@asynccontextmanager
async def scratch_database(
    server: str, database: str, *, replace: bool = False, keep: bool = False
) -> AsyncIterator[str]:
    """Create ``database`` on ``server`` (dropped first if ``replace``) and yield its URL;
    it is dropped when the block ends, also when cancelled, unless ``keep``."""
    admin = url_with_database(server, "postgres")
    if replace:
        await sql(admin, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    await sql(admin, f'CREATE DATABASE "{database}"')
    try:
        yield url_with_database(server, database)
    finally:
        if not keep:
            with trio.move_on_after(30, shield=True):
                await sql(admin, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


# -- the service --------------------------------------------------------------------------------


def with_sets(settings: Mapping[str, Any], sets: Iterable[str] | None) -> dict[str, Any]:
    """``settings`` (dotted keys) overridden by ``sets`` (``KEY=VALUE``, as ``--set`` gives)."""
    merged = dict(settings)
    for item in sets or ():
        key, _, value = item.partition("=")
        merged[key] = value
    return merged


def service_config(
    url: str,
    *,
    pool_size: int,
    replica_id: str,
    settings: Mapping[str, Any] | None = None,
    sets: Iterable[str] | None = None,
) -> tuple[LoadedConfig, int, int]:
    """The service's configuration on free ports: (config, API port, management port).

    ``settings`` (dotted keys) are added to the common ones, then ``sets`` (``KEY=VALUE``,
    as ``--set`` gives them) override both.
    """
    port, management_port = free_port(), free_port()
    merged: dict[str, Any] = {
        "database.url": url,
        "database.poolSize": pool_size,
        "server.port": port,
        "server.managementPort": management_port,
        "server.host": "127.0.0.1",
        "server.shutdownGracePeriod": "2s",
        "cluster.replicaId": replica_id,
        **(settings or {}),
    }
    merged = with_sets(merged, sets)
    loaded = load_config(
        environ={}, overrides={k: ("bench", v) for k, v in merged.items()}, cwd=HERE
    )
    return loaded, port, management_port


async def start_service(nursery: trio.Nursery, service: Service) -> InstanceRuntime:
    """Start ``service`` in ``nursery`` and point this task at its trio-asyncio loop."""
    await nursery.start(service.run)
    runtime = service._runtime
    assert runtime is not None, "the instance runtime did not start"
    # The runtime's database calls cross into the service's trio-asyncio loop, which its own
    # tasks find in a context variable; this task was not started by the service, so point it
    # at that loop (the pool knows it).
    database = service._database
    assert database is not None, "the database is not open"
    trio_asyncio.current_loop.set(database._primary._loop)
    return runtime


async def register_definition(
    api: str, document: str, client: httpx.AsyncClient | None = None
) -> None:
    """POST the YAML ``document`` to ``{api}/v1/workflow-definitions``; raise unless accepted."""
    if client is None:
        async with httpx.AsyncClient() as own:
            await register_definition(api, document, own)
        return
    response = await client.post(
        f"{api}/v1/workflow-definitions",
        content=document,
        headers={"Content-Type": "application/yaml"},
    )
    if response.status_code not in (200, 201):
        raise RuntimeError(f"registration failed: {response.text}")


async def run_concurrently(
    n: int, concurrency: int, job: Callable[[int], Awaitable[object]]
) -> None:
    """Await ``job(i)`` for ``i`` in ``range(n)`` in order, ``concurrency`` calls in flight."""
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < n:
            i = next_i
            next_i += 1
            await job(i)

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)


async def post_from_client_process(
    url: str, concurrency: int, bodies: list[dict[str, Any]]
) -> dict[uuid.UUID, float]:
    """POST each of ``bodies`` to ``url`` from a child process (``_http_load.py``),
    ``concurrency`` at a time; return ``{id of the answer: perf_counter() before the POST}``.

    ``time.perf_counter`` is CLOCK_MONOTONIC on Linux, the same clock in both processes.
    """
    stdin = "\n".join(json.dumps(body) for body in bodies).encode()
    command = [sys.executable, str(HERE / "_http_load.py"), url, str(concurrency)]
    result = await trio.run_process(command, stdin=stdin, capture_stdout=True, check=True)
    return {uuid.UUID(json.loads(body)["id"]): before for before, body in json.loads(result.stdout)}


async def wait_ended(url: str, n: int, seconds: float = 600, poll: float = 0.2) -> None:
    """Until ``n`` instances of the database at ``url`` ended (completed, faulted or
    cancelled); raise ``RuntimeError`` after ``seconds``."""
    with trio.move_on_after(seconds):
        while True:
            rows = await sql(
                url,
                "SELECT count(*) FROM workflow_instances WHERE status = ANY($1::text[])",
                ["completed", "faulted", "cancelled"],
            )
            if int(rows[0][0]) >= n:
                return
            await trio.sleep(poll)
    raise RuntimeError(f"fewer than {n} instances ended within {seconds:.0f}s")
