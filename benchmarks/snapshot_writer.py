"""Group-commit snapshot writer benchmark: snapshots/s, transactions per snapshot, latency.

Run: ``.venv/bin/python benchmarks/snapshot_writer.py [--seconds 3] [--max-delay 0.002]
[--compare-statements]``. It creates a scratch database on ``BENCH_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), drops it afterwards, and prints figures;
it asserts nothing.

Each of C concurrent writers (C = 1, 10, 100, 1000) owns one instance and writes snapshot after
snapshot (each with one history row), waiting for each to be durable, like an actor at task
boundaries. Transactions are counted twice: by the writer (``statistics().batches``) and by
PostgreSQL (``pg_stat_database.xact_commit`` of the scratch database, which also counts the
benchmark's own few queries).

``--compare-statements`` times one batch of 500 snapshots written as the writer does (one
``unnest`` statement with data-modifying CTEs) against ``executemany`` (fence check + UPDATE +
history INSERT, three round trips), on the asyncio side without the writer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import urllib.parse
import uuid
from typing import Any

import asyncpg
import trio
import trio_asyncio

from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import DatabaseSettings
from workflow_orchestrator.storage import Database, PartitionLeases, migrate, open_database
from workflow_orchestrator.storage.definitions import register_definition
from workflow_orchestrator.storage.instances import (
    HistoryRow,
    InstanceSnapshot,
    InstanceStatus,
    SnapshotWriter,
    partition_of,
)
from workflow_orchestrator.storage.instances._snapshot_statement import (
    WRITE_SQL,
    plan_batch,
    statement_arguments,
)

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def url_for(database: str) -> str:
    parts = urllib.parse.urlsplit(ADMIN_URL)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))


async def admin(sql: str) -> None:
    async def work() -> None:
        connection = await asyncpg.connect(ADMIN_URL)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    await trio_asyncio.aio_as_trio(work)()


async def make_instances(database: Database, count: int) -> list[tuple[uuid.UUID, int]]:
    ids = [uuid.uuid4() for _ in range(count)]
    made = [(i, partition_of(i)) for i in ids]
    await database.execute(
        "INSERT INTO workflow_instances (instance_id, definition_id, definition_version, status, "
        "partition) SELECT i, 'bench', '1', 'running', p FROM unnest($1::uuid[], $2::int[]) "
        "AS t(i, p)",
        [i for i, _ in made],
        [p for _, p in made],
    )
    return made


async def xact_commits(database: Database, name: str) -> int:
    value: int = await database.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", name
    )
    return value


async def run_level(
    database: Database, name: str, concurrency: int, seconds: float, max_delay: float
) -> None:
    instances = await make_instances(database, concurrency)
    leases = PartitionLeases(database=database, owner_id="bench")
    await leases.acquire()
    writer = SnapshotWriter(database=database, leases=leases, max_delay=max_delay)
    latencies: list[float] = []
    payload = {"position": "/do/1/step", "data": {"orderId": "ORD-12345", "items": [1, 2, 3]}}
    await trio.sleep(1.1)  # let the statistics collector catch up before the baseline
    commits_before = await xact_commits(database, name)

    async def actor(instance_id: uuid.UUID, partition: int, deadline: float) -> None:
        version = 0
        while trio.current_time() < deadline:
            version += 1
            started = time.perf_counter()
            await writer.write(
                InstanceSnapshot(
                    instance_id=instance_id,
                    partition=partition,
                    snapshot_version=version,
                    status="running",
                    snapshot=payload,
                    history=(HistoryRow(kind="task.completed", task_ref="/do/1/step"),),
                )
            )
            latencies.append(time.perf_counter() - started)

    async with trio.open_nursery() as service:
        await service.start(writer.run)
        began = time.perf_counter()
        deadline = trio.current_time() + seconds
        async with trio.open_nursery() as actors:
            for instance_id, partition in instances:
                actors.start_soon(actor, instance_id, partition, deadline)
        elapsed = time.perf_counter() - began
        service.cancel_scope.cancel()
    stats = writer.statistics()
    await trio.sleep(1.1)
    commits = await xact_commits(database, name) - commits_before
    latencies.sort()
    count = len(latencies)
    print(
        f"{concurrency:>5} writers: {count / elapsed:>8.0f} snapshots/s  "
        f"tx/snapshot {stats.batches / count:.3f} (pg_stat {commits / count:.3f})  "
        f"mean batch {count / max(stats.batches, 1):>6.1f}  "
        f"p50 {statistics.median(latencies) * 1000:6.2f} ms  "
        f"p99 {latencies[int(count * 0.99) - 1] * 1000:6.2f} ms"
    )
    await database.execute("DELETE FROM workflow_instances")


async def compare_statements(database: Database, batch: int = 500, rounds: int = 10) -> None:
    await database.execute("DELETE FROM workflow_instances")
    instances = await make_instances(database, batch)
    leases = PartitionLeases(database=database, owner_id="bench")
    held = await leases.acquire()
    payload = {"position": "/do/1/step", "data": {"orderId": "ORD-12345"}}
    snapshot = json.dumps(payload)
    details = json.dumps({})

    async def with_unnest(connection: Any, version: int) -> None:
        # The writer's own statement and arguments, built from the same row types.
        history = (
            HistoryRow(kind="task.completed", task_ref="/do/1/step", at=time_now()),
            HistoryRow(kind="task.completed", task_ref="/do/1/step", at=time_now()),
        )
        snapshots = [
            InstanceSnapshot(
                instance_id=i,
                partition=p,
                snapshot_version=version,
                status=InstanceStatus.RUNNING,
                snapshot=payload,
                history=history,
            )
            for i, p in instances
        ]
        plan = plan_batch(snapshots, held.epoch_of)
        await connection.fetch(WRITE_SQL, *statement_arguments("bench", plan.rows))

    async def with_executemany(connection: Any, version: int) -> None:
        async with connection.transaction():
            rows = await connection.fetch(
                "SELECT partition, epoch FROM partition_leases WHERE owner_id = $1 "
                "AND partition = ANY($2::int[]) AND expires_at > now() FOR SHARE",
                "bench",
                sorted({p for _, p in instances}),
            )
            live = {r["partition"] for r in rows}
            await connection.executemany(
                "UPDATE workflow_instances SET status = $2, snapshot = $3::text::jsonb, "
                "snapshot_version = $4, updated_at = now(), history_seq = history_seq + 2 "
                "WHERE instance_id = $1 AND snapshot_version < $4",
                [(i, "running", snapshot, version) for i, p in instances if p in live],
            )
            await connection.executemany(
                "INSERT INTO workflow_instance_history (instance_id, seq, task_ref, kind, at, "
                "details) VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)",
                [
                    (i, 2 * version - k, "/do/1/step", "task.completed", time_now(), details)
                    for i, p in instances
                    if p in live
                    for k in (1, 0)
                ],
            )

    version = 0
    for label, method in (("unnest", with_unnest), ("executemany", with_executemany)):
        timings = []
        for _ in range(rounds):
            version += 1
            started = time.perf_counter()
            await database.run(lambda c, v=version, m=method: m(c, v))
            timings.append(time.perf_counter() - started)
        print(
            f"batch of {batch} with {label:<12}: median {statistics.median(timings) * 1000:6.1f} ms"
            f"  (min {min(timings) * 1000:.1f} ms over {rounds} rounds)"
        )


def time_now() -> Any:
    import datetime

    return datetime.datetime.now(datetime.UTC)


async def main(args: argparse.Namespace) -> None:
    name = f"wo_bench_{uuid.uuid4().hex[:8]}"
    async with open_asyncio_bridge():
        await admin(f'CREATE DATABASE "{name}"')
        try:
            settings = DatabaseSettings(url=url_for(name), pool_size=4)
            async with open_database(settings) as database:
                await migrate(database)
                await register_definition(
                    database,
                    definition_id="bench",
                    version="1",
                    namespace="bench",
                    name="bench",
                    document={"document": {"name": "bench"}},
                    source_text="",
                )
                print(f"max_delay {args.max_delay * 1000:g} ms, {args.seconds:g} s per level")
                for concurrency in args.concurrency:
                    await run_level(database, name, concurrency, args.seconds, args.max_delay)
                if args.compare_statements:
                    await compare_statements(database)
        finally:
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--max-delay", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--compare-statements", action="store_true")
    trio.run(main, parser.parse_args())
