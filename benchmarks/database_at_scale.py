"""The service's hot queries against 1,000,000 workflow instances: plans, sizes, churn, vacuum.

Run: ``.venv/bin/python benchmarks/database_at_scale.py [--instances 1000000] [--keep]``
against ``--server`` (default ``$BENCH_POSTGRES_URL`` or
``postgresql://postgres@127.0.0.1:5432``). Prints its figures; asserts nothing. It takes about
five minutes on the 2-core box (most of it the seed); the figures of
``docs/implementation/database_optimization.md`` come from it. ``--drop-index NAME``
(repeatable) drops an index after the seed, to measure without it (the figures "before
V006" were taken with the three indexes of ``V006__hot_query_indexes.sql`` dropped).
``--partition-history N`` turns the history table into N hash partitions after the seed
(``_scale_seed.partition_history_sql``, the recipe of the document) and measures everything
on that.

1. **Schema and seed.** A scratch database (``--database``, dropped at the end unless
   ``--keep``) gets the schema from the service's own ``migrate``, the definitions from its
   ``register_definition``, then N instances with their history, timers, subscriptions, outbox,
   events and audit rows (``_scale_seed.py``: proportions, sizes, how it loads fast). Then
   ``VACUUM (ANALYZE)`` of every table; each step is timed, and the tables' sizes are printed.
2. **Plans.** The storage functions the service calls on its hot paths (API reads and lists,
   starts, commands, the snapshot group commit, recovery, timers, routing, wake-up sweep,
   outbox, retention, also with an outbox backlog of 50,000 rows as while the broker is away,
   audit) are called unchanged through ``_explain.ExplainingDatabase``,
   which explains every statement they send as a prepared statement, the way asyncpg runs it:
   the plan of the first execution and the one PostgreSQL settles on at the sixth (custom or
   generic), each with its time, rows, buffers and tree. Nothing of it is committed. The
   replica the scenarios stand for holds 32 of the 64 partitions (one of two replicas).
3. **Recovery.** Every page of ``list_recoverable`` for those 32 partitions, as a replica that
   starts (or takes them over, or drains its activation backlog) reads them; twice, since the
   first pass also pays for reading the rows into memory.
4. **Churn.** ``--churn`` (5,000) active instances are committed twice each (running, then
   completed with a lifecycle event in the outbox) through a real ``SnapshotWriter``, 100
   writes in flight, right after a ``CHECKPOINT``: commits per second, WAL bytes per snapshot
   (the server's, and those of this database's pages with their share of full-page images,
   from ``pg_walinspect``), the share of HOT updates, the dead tuples left. Then again for
   other instances with ``wal_compression = lz4`` (set on the scratch database only).
5. **Retention.** ``delete_expired_instances`` runs for real, batch after batch of
   ``retention.batchSize`` (500), until the instances older than 30 days (about a day's worth)
   are gone: instances and history rows deleted per second.
6. **Vacuum.** Dead tuples and free space (``pgstattuple_approx``), then ``VACUUM`` of
   ``workflow_instances`` and ``workflow_instance_history``, timed: what autovacuum has to do.
7. **A queue table.** ``--queue-rows`` (200,000) outbox rows published and deleted, then the
   relay's read of a page: the first time, again, and after ``VACUUM``.
8. **Connections.** The whole ``Service`` starts on a second, empty scratch database, once per
   ``--pool-sizes`` value of ``database.poolSize`` (5, 10, 20): the connections it holds when
   idle (by use), and during a burst of ``--burst`` (2,000) in-process starts run to
   completion, the most it held at once (``pg_stat_activity``) and the time to complete them.
   ``--no-service`` skips this.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

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
from _explain import ExplainingDatabase, print_statement, timed
from _scale_seed import (
    DEFINITIONS,
    PAYMENT_EVENT,
    TABLES,
    partition_history,
    register_definitions,
    seed,
    vacuum_analyze,
)

from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import DatabaseSettings
from workflow_orchestrator.instances import StartRequest
from workflow_orchestrator.service import Service
from workflow_orchestrator.storage import (
    Connection,
    Database,
    PartitionLeases,
    acquire_partitions,
    delete_audit_entries_before,
    list_audit_entries,
    migrate,
    open_database,
    renew_partitions,
)
from workflow_orchestrator.storage.definitions import list_definitions
from workflow_orchestrator.storage.events import (
    EventToRoute,
    claim_events,
    count_outbox,
    count_subscribed_instances,
    definitions_stamp,
    instances_to_wake,
    oldest_event_age,
    purge_event_records,
    read_outbox,
    route_batch,
)
from workflow_orchestrator.storage.instances import (
    HistoryRow,
    InstanceCreator,
    InstanceSnapshot,
    InstanceStatus,
    NewInstance,
    OutgoingEvent,
    SnapshotWriter,
    create_instance,
    delete_expired_instances,
    get_instance,
    instance_history,
    list_instances,
    list_recoverable,
    load_instance,
    set_status,
)
from workflow_orchestrator.storage.scheduling import (
    claim_due_timers,
    count_due_timers,
    load_schedules,
    release_timer_claims,
)

OWNER = "bench-replica"
HALF = tuple(range(32))  # the partitions of one of two replicas
DAY = 86_400.0
RETENTION = 30 * DAY  # retention.completedInstances' default
LIFECYCLE = "io.serverlessworkflow.workflow.completed.v1"
OUTAGE_BACKLOG = 50_000  # outbox rows waiting while the broker is away

SERVICE_DEFINITION = """\
document: {dsl: '1.0.3', namespace: bench, name: three-tasks, version: '1.0.0'}
do:
  - price:
      set:
        orderId: ${ .orderId }
        total: ${ (.amount // 0) + 1 }
  - decide:
      switch:
        - big:
            when: ${ .total > 100 }
            then: flag
        - default:
            then: exit
  - flag:
      set:
        orderId: ${ .orderId }
        flagged: true
"""


def step(label: str, seconds: float) -> None:
    print(f"  {label:<58} {seconds:8.1f} s", flush=True)


# -- the machine and the tables -----------------------------------------------------------------


async def print_machine(database: Database) -> None:
    settings = await database.fetch(
        "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[]) ORDER BY name",
        [
            "shared_buffers",
            "work_mem",
            "maintenance_work_mem",
            "effective_cache_size",
            "random_page_cost",
            "max_connections",
            "autovacuum",
            "max_wal_size",
            "jit",
        ],
    )
    version = await database.fetchval("SHOW server_version")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"machine: {os.cpu_count()} cores, {memory:.0f} GiB, {platform.platform()}")
    print(f"PostgreSQL {version}: " + ", ".join(f"{r[0]}={r[1]}{r[2] or ''}" for r in settings))


async def print_sizes(database: Database) -> None:
    rows = await database.fetch(
        """
        SELECT c.relname, sum(greatest(p.reltuples, 0))::bigint AS estimate,
               sum(pg_relation_size(p.oid))::bigint AS heap,
               sum(pg_indexes_size(p.oid))::bigint AS indexes,
               sum(coalesce(pg_total_relation_size(p.reltoastrelid), 0))::bigint AS toast,
               sum(pg_total_relation_size(p.oid))::bigint AS total
        FROM pg_class c
        CROSS JOIN LATERAL (SELECT relid FROM pg_partition_tree(c.oid) UNION SELECT c.oid) AS t
        JOIN pg_class p ON p.oid = t.relid AND p.relkind = 'r'
        WHERE c.relname = ANY($1::text[]) AND c.relkind IN ('r', 'p')
        GROUP BY c.relname
        ORDER BY 6 DESC
        """,
        list(TABLES),
    )
    print(f"\n  {'table':<28}{'rows':>12}{'heap':>10}{'indexes':>10}{'toast':>9}{'total':>10}")
    for r in rows:
        print(
            f"  {r['relname']:<28}{r['estimate']:>12,}{mb(r['heap']):>10}{mb(r['indexes']):>10}"
            f"{mb(r['toast']):>9}{mb(r['total']):>10}"
        )
    indexes = await database.fetch(
        """
        SELECT c.relname, coalesce((SELECT sum(pg_relation_size(relid))::bigint
                                    FROM pg_partition_tree(c.oid)), pg_relation_size(c.oid))
               AS size
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = ANY(ARRAY['workflow_instances'::regclass,
                                     'workflow_instance_history'::regclass,
                                     'workflow_timers'::regclass])
        ORDER BY 2 DESC
        """
    )
    print("\n  indexes of workflow_instances, its history and timers:")
    for r in indexes:
        print(f"    {r['relname']:<50}{mb(r['size']):>10}")


def mb(size: int) -> str:
    return f"{size / 2**20:,.0f} MB" if size >= 2**20 else f"{size / 1024:,.0f} kB"


# -- the scenarios ------------------------------------------------------------------------------


async def samples(database: Database) -> dict[str, Any]:
    """Ids and values the scenarios use, read from the seeded tables."""

    async def work(connection: Connection) -> dict[str, Any]:
        found: dict[str, Any] = {}
        found["completed"] = await connection.fetchval(
            "SELECT instance_id FROM workflow_instances TABLESAMPLE SYSTEM (1) "
            "WHERE status = 'completed' LIMIT 1"
        )
        listener = await connection.fetchrow(
            "SELECT s.instance_id, s.corr_key FROM event_subscriptions s "
            "JOIN instance_inbox i USING (instance_id) LIMIT 1"
        )
        found["listener"], found["corr_key"] = listener["instance_id"], listener["corr_key"]
        found["waiting"] = await connection.fetchval(
            "SELECT t.instance_id FROM workflow_timers t JOIN workflow_instances w "
            "USING (instance_id) WHERE t.kind = 'wait' AND w.status = 'waiting' LIMIT 1"
        )
        found["running"] = list(
            await connection.fetch(
                "SELECT instance_id, partition, snapshot_version, snapshot, input "
                "FROM workflow_instances WHERE status = 'running' LIMIT 100"
            )
        )
        found["recovery_after"] = await connection.fetchval(
            "SELECT instance_id FROM workflow_instances "
            "WHERE status NOT IN ('completed', 'cancelled', 'faulted') "
            "AND partition = ANY($1::int[]) ORDER BY instance_id "
            "OFFSET (SELECT count(*) / 2 FROM workflow_instances "
            "        WHERE status NOT IN ('completed', 'cancelled', 'faulted')"
            "          AND partition = ANY($1::int[])) LIMIT 1",
            list(HALF),
        )
        return found

    found = await database.run(work)
    found["cursor"] = (await list_instances(database, limit=50)).next_cursor
    found["stamp"] = await definitions_stamp(database)
    return found


async def run_scenarios(database: Database, explaining: ExplainingDatabase, shape_id: int) -> None:
    """Call each storage function of a hot path through ``explaining``."""
    ex = cast(Database, explaining)
    found = await samples(database)
    top = DEFINITIONS[0][0]
    rare = DEFINITIONS[-1][0]
    now = datetime.now(UTC)

    async def scenario(label: str, call: Any) -> None:
        explaining.scenario = label
        await call

    # The API's reads (GET /workflow-instances..., the audit log, definitions).
    await scenario("API: one instance", get_instance(ex, found["completed"]))
    await scenario("API: one instance and its inbox", load_instance(ex, found["listener"]))
    await scenario("API: an instance's history", instance_history(ex, found["completed"]))
    await scenario("API: list, first page", list_instances(ex, limit=50))
    await scenario("API: list, next page", list_instances(ex, cursor=found["cursor"]))
    await scenario(
        f"API: list, definition {top} + completed",
        list_instances(ex, definition_id=top, status="completed"),
    )
    await scenario(
        f"API: list, definition {rare} + faulted",
        list_instances(ex, definition_id=rare, status="faulted"),
    )
    await scenario("API: list, status running", list_instances(ex, status="running"))
    # Fewer than 10,000 match: the total is then counted exactly (see list_instances).
    await scenario("API: list, status suspended", list_instances(ex, status="suspended"))
    await scenario(
        "API: list, status waiting or suspended",
        list_instances(ex, status=["waiting", "suspended"]),
    )
    await scenario(
        "API: list, businessKey contains",
        list_instances(ex, business_key_contains="ORD-0012345"),
    )
    await scenario(
        "API: list, input contains",
        list_instances(ex, input_contains={"customerId": "CUST-123"}),
    )
    await scenario(
        "API: list, one namespace (a restricted principal)",
        list_instances(ex, namespaces={"support"}),
    )
    await scenario(
        "API: list, created in the last hour",
        list_instances(ex, created_after=now - timedelta(hours=1)),
    )
    await scenario("API: audit log, first page", list_audit_entries(ex))
    await scenario("API: audit log, one principal", list_audit_entries(ex, principal="alice"))
    await scenario("API: definitions, first page", list_definitions(ex))

    # Starts and commands.
    await scenario(
        "API: start one instance (create_instance)",
        create_instance(
            ex,
            definition_id=top,
            definition_version=None,
            input={"orderId": "NEW-1"},
            idempotency_key=f"bench-{uuid.uuid4()}",
        ),
    )
    explaining.scenario = "API: 100 starts, group-committed (InstanceCreator)"
    creator = InstanceCreator(database=ex)
    async with trio.open_nursery() as nursery:
        await nursery.start(creator.run)
        async with trio.open_nursery() as starts:
            for i in range(100):
                starts.start_soon(
                    creator.create,
                    NewInstance(
                        definition_id=top,
                        definition_version="1.1.0",
                        latest=True,
                        input={"orderId": f"NEW-{i}"},
                        idempotency_key=f"bench-{uuid.uuid4()}",
                    ),
                )
        nursery.cancel_scope.cancel()
    await scenario(
        "API: cancel an instance at rest (set_status)",
        set_status(
            ex,
            found["waiting"],
            InstanceStatus.CANCELLED,
            allowed_from={InstanceStatus.WAITING},
            history_kind="workflow.cancelled",
        ),
    )

    # The engine: the snapshot group commit and recovery.
    explaining.scenario = "engine: snapshot batch of 100 instances completing (SnapshotWriter)"
    leases = PartitionLeases(database=database, owner_id=OWNER, ttl=3600, target=64)
    await leases.renew()
    writer = SnapshotWriter(database=ex, leases=leases)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        async with trio.open_nursery() as writes:
            for row in found["running"]:
                writes.start_soon(writer.write, completing(row))
        nursery.cancel_scope.cancel()
    await scenario(
        "engine: recovery, first page (list_recoverable, 32 partitions)",
        list_recoverable(ex, partitions=HALF),
    )
    await scenario(
        "engine: recovery, a middle page",
        list_recoverable(ex, partitions=HALF, after=found["recovery_after"]),
    )

    # The scheduler and the leases.
    await scenario(
        "scheduler: claim due timers (every pollInterval)",
        claim_due_timers(ex, HALF, lookahead=5.0, limit=1000, claim_for=30.0),
    )
    await scenario("scheduler: due timers (health)", count_due_timers(ex, HALF))
    await scenario(
        "scheduler: clear timer claims (partitions granted)", release_timer_claims(ex, HALF)
    )
    await scenario("scheduler: load schedules (every round)", load_schedules(ex))
    await scenario(
        "leases: lease round (acquire_partitions, fair share)",
        acquire_partitions(ex, OWNER, ttl=30.0),
    )
    await scenario("leases: renewal", renew_partitions(ex, OWNER, ttl=30.0))

    # Events.
    event_id = str(uuid.uuid4())
    corr_key = found["corr_key"]
    order_id = json.loads(corr_key)[0]
    await scenario(
        "events: route one event that one waiting instance listens for (route_batch)",
        route_batch(
            ex,
            [
                EventToRoute(
                    source="https://payments.example.com",
                    id=event_id,
                    type=PAYMENT_EVENT,
                    event={
                        "specversion": "1.0",
                        "id": event_id,
                        "source": "https://payments.example.com",
                        "type": PAYMENT_EVENT,
                        "data": {"orderId": order_id},
                    },
                    # What events._matching.subscription_keys computes for it: the plain and
                    # wildcard keys, and the shape's '' key and correlation key.
                    keys=(
                        (PAYMENT_EVENT, 0, ""),
                        ("", 0, ""),
                        (PAYMENT_EVENT, shape_id, ""),
                        (PAYMENT_EVENT, shape_id, corr_key),
                    ),
                )
            ],
            shapes_version=shape_id,
            definitions_stamp=found["stamp"],
            local_partitions=HALF,
            keep_unmatched=False,
        ),
    )
    await scenario("events: wake-up sweep (every 5 s)", instances_to_wake(ex, HALF, older_than=5.0))
    await scenario(
        "events: housekeeping (purge_event_records)",
        purge_event_records(ex, deduplication_window=DAY, keep_unmatched_for=0.0),
    )
    await scenario(
        "events: claim from the database source",
        claim_events(ex, owner_id=OWNER, claim_ttl=30.0, limit=100),
    )
    await scenario("events: oldest event age (metrics)", oldest_event_age(ex))
    await scenario("outbox: read a page (relay)", read_outbox(ex, HALF, 100))
    await scenario("outbox: backlog of this replica (metrics)", count_outbox(ex, HALF))
    await scenario("health: subscribed instances", count_subscribed_instances(ex))

    # Retention.
    await scenario(
        "retention: one batch of 500 finished instances",
        delete_expired_instances(
            ex,
            default_age=RETENTION,
            overrides=[("order-cancellation", version, 7 * DAY) for version in ("1.0.0", "1.1.0")],
            batch_size=500,
        ),
    )
    # The same batch while the broker is away: the outbox holds a backlog (committed here,
    # removed after), which the batch's NOT EXISTS checks for every candidate.
    await database.execute(
        "INSERT INTO outbox (partition, instance_id, exchange, routing_key, event_id, body) "
        "SELECT i % 64, gen_random_uuid(), 'system', $2, i::text, repeat('x', 400) "
        "FROM generate_series(1, $1::int) AS i",
        OUTAGE_BACKLOG,
        "outage",
    )
    await database.execute("ANALYZE outbox")
    await scenario(
        f"retention: one batch of 500, outbox backlog of {OUTAGE_BACKLOG:,} (broker away)",
        delete_expired_instances(ex, default_age=RETENTION, batch_size=500),
    )
    await database.execute("DELETE FROM outbox WHERE routing_key = $1", "outage")
    await database.execute("VACUUM ANALYZE outbox")
    await scenario(
        "retention: one batch of 500 audit rows older than 30 days",
        delete_audit_entries_before(ex, now - timedelta(days=30), 500),
    )


def completing(row: Any, *, running: bool = False) -> InstanceSnapshot:
    """The snapshot that ends (or, with ``running``, advances) a seeded active instance."""
    snapshot = dict(row["snapshot"] or {"state": {}})
    state = dict(snapshot.get("state") or {})
    status = InstanceStatus.RUNNING if running else InstanceStatus.COMPLETED
    state["status"] = str(status)
    snapshot["state"] = state
    output = None if running else {"orderId": row["input"].get("orderId"), "status": "fulfilled"}
    return InstanceSnapshot(
        instance_id=row["instance_id"],
        partition=row["partition"],
        snapshot_version=row["snapshot_version"] + (1 if running else 2),
        status=status,
        snapshot=snapshot,
        output=output,
        started_at=datetime.now(UTC) if running else None,
        completed_at=None if running else datetime.now(UTC),
        history=(
            HistoryRow(kind="task.started", task_ref="/do/2/chooseFulfilment"),
            HistoryRow(
                kind="task.completed" if running else "workflow.completed",
                task_ref="/do/2/chooseFulfilment" if running else "",
            ),
        ),
        outgoing=()
        if running
        else (
            OutgoingEvent(
                destination="system",
                routing_key=LIFECYCLE,
                event_id=str(uuid.uuid4()),
                body=json.dumps({"type": LIFECYCLE, "data": output}),
            ),
        ),
        timers=(),
    )


# -- churn, retention, vacuum -------------------------------------------------------------------


#: The tables holding the rows of table $1: itself, or its partitions.
_LEAVES = (
    "SELECT relid FROM pg_partition_tree($1::regclass) WHERE isleaf "
    "UNION SELECT $1::regclass::oid WHERE (SELECT relkind FROM pg_class "
    "WHERE oid = $1::regclass) = 'r'"
)


async def table_counters(database: Database, table: str) -> dict[str, int]:
    """The table's statistics counters (summed over its partitions when it has some)."""
    rows = await database.fetch(
        "SELECT sum(n_tup_ins)::bigint AS n_tup_ins, sum(n_tup_upd)::bigint AS n_tup_upd, "
        "sum(n_tup_hot_upd)::bigint AS n_tup_hot_upd, sum(n_tup_del)::bigint AS n_tup_del, "
        "sum(n_dead_tup)::bigint AS n_dead_tup FROM pg_stat_user_tables "
        f"WHERE relid IN ({_LEAVES})",
        table,
    )
    return dict(rows[0].items())


async def wal_lsn(database: Database) -> str:
    lsn: str = await database.fetchval("SELECT pg_current_wal_lsn()::text")
    return lsn


async def wal_since(database: Database, lsn: str) -> int:
    size: int = await database.fetchval(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::bigint", lsn
    )
    return size


async def settle_statistics() -> None:
    """Idle backends report their table statistics after at most 10 s (PostgreSQL 15)."""
    await trio.sleep(11)


async def recovery_pass(database: Database, label: str) -> None:
    """What a replica taking half the partitions reads: every page of ``list_recoverable``."""
    clock = timed()
    after: uuid.UUID | None = None
    found = pages = 0
    while True:
        page = await list_recoverable(database, partitions=HALF, after=after, limit=500)
        pages += 1
        found += len(page)
        if len(page) < 500:
            break
        after = page[-1].record.instance_id
    seconds = clock()
    print(
        f"  {label}: {found:,} non-terminal instances of 32 partitions in {pages} pages of "
        f"500, {seconds:.2f} s ({1000 * seconds / pages:.1f} ms a page)"
    )


async def wal_of_this_database(database: Database, lsn: str) -> str:
    """The WAL records since ``lsn`` that change this database's pages (``pg_walinspect``;
    the server may be shared, so the LSN difference alone also counts other databases'), or
    why that could not be read."""
    try:
        await database.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        row = (
            await database.fetch(
                "SELECT count(*) AS records, coalesce(sum(record_length), 0)::bigint AS bytes, "
                "coalesce(sum(fpi_length), 0)::bigint AS images "
                "FROM pg_get_wal_records_info($1::text::pg_lsn, pg_current_wal_flush_lsn()) "
                "WHERE block_ref LIKE '%/' || (SELECT oid FROM pg_database "
                "WHERE datname = current_database()) || '/%'",
                lsn,
            )
        )[0]
    except Exception as exc:  # contrib may be missing, or a checkpoint recycled the segments
        return f"not read ({type(exc).__name__}: {exc})"
    return (
        f"{row['bytes'] / 2**20:,.1f} MB in {row['records']:,} records, "
        f"{100 * row['images'] / max(row['bytes'], 1):.0f} % of it full-page images"
    )


async def churn(database: Database, count: int, label: str) -> None:
    """Two snapshots for each of ``count`` active instances, committed for real, right after
    a checkpoint (so every page's first change writes a full-page image, as after any
    checkpoint)."""
    rows = await database.fetch(
        "SELECT instance_id, partition, snapshot_version, snapshot, input "
        "FROM workflow_instances WHERE status IN ('running', 'pending') LIMIT $1",
        count,
    )
    leases = PartitionLeases(database=database, owner_id=OWNER, ttl=3600, target=64)
    await leases.renew()
    writer = SnapshotWriter(database=database, leases=leases)
    await settle_statistics()
    before = await table_counters(database, "workflow_instances")
    await database.execute("CHECKPOINT")
    lsn = await wal_lsn(database)
    clock = timed()
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for running in (True, False):

            async def write(i: int, running: bool = running) -> None:
                await writer.write(completing(rows[i], running=running))

            await run_concurrently(len(rows), 100, write)
        nursery.cancel_scope.cancel()
    seconds = clock()
    wal = await wal_since(database, lsn)
    ours = await wal_of_this_database(database, lsn)
    await settle_statistics()
    after = await table_counters(database, "workflow_instances")
    stats = writer.statistics()
    updated = after["n_tup_upd"] - before["n_tup_upd"]
    hot = after["n_tup_hot_upd"] - before["n_tup_hot_upd"]
    print(f"\n  {label}:")
    print(
        f"  {stats.snapshots:,} snapshots of {len(rows):,} instances in {stats.batches:,} "
        f"commits ({stats.failed} failed), {seconds:.1f} s: {stats.snapshots / seconds:,.0f} "
        f"snapshots/s, {stats.batches / seconds:,.1f} commits/s"
    )
    print(
        f"  WAL of the whole server {wal / 2**20:,.1f} MB, "
        f"{wal / max(stats.snapshots, 1) / 1024:,.1f} kB per snapshot (with its history rows, "
        "and an outbox row for each completion)"
    )
    print(f"  WAL of this database's pages (pg_walinspect): {ours}")
    print(
        f"  workflow_instances: {updated:,} updates, {hot:,} HOT "
        f"({100 * hot / max(updated, 1):.1f} %), dead tuples now {after['n_dead_tup']:,}"
    )


async def retention(database: Database) -> None:
    clock = timed()
    totals: dict[str, int] = {}
    batches = 0
    while True:
        batch = await delete_expired_instances(database, default_age=RETENTION, batch_size=500)
        batches += 1
        for table, count in batch.deleted.items():
            totals[table] = totals.get(table, 0) + count
        if batch.instances < 500:
            break
    seconds = clock()
    instances = totals.get("workflow_instances", 0)
    history = totals.get("workflow_instance_history", 0)
    print(
        f"\n  {instances:,} instances and {history:,} history rows in {batches} batches, "
        f"{seconds:.1f} s: {instances / seconds:,.0f} instances/s, "
        f"{history / seconds:,.0f} history rows/s, "
        f"{1000 * seconds / batches:,.0f} ms per batch of 500"
    )


async def vacuum_after(database: Database) -> None:
    await settle_statistics()
    await database.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
    for table in ("workflow_instances", "workflow_instance_history"):
        counters = await table_counters(database, table)
        bloat = (
            await database.fetch(
                "SELECT 100 * sum(s.dead_tuple_len)::float8 / sum(s.table_len) "
                "AS dead_tuple_percent, "
                "100 * sum(s.approx_free_space)::float8 / sum(s.table_len) AS approx_free_percent "
                f"FROM ({_LEAVES}) AS t(relid) "
                "CROSS JOIN LATERAL pgstattuple_approx(t.relid) AS s",
                table,
            )
        )[0]
        print(
            f"  {table}: {bloat['dead_tuple_percent']:.1f} % dead tuples, "
            f"{bloat['approx_free_percent']:.1f} % free space (pgstattuple_approx)"
        )
        clock = timed()
        await database.execute(f"VACUUM {table}")
        print(f"  VACUUM {table}: {counters['n_dead_tup']:,} dead tuples, {clock():.1f} s")


async def queue_table(database: Database, rows: int) -> None:
    """The outbox as a queue: emptied and vacuumed, then ``rows`` rows inserted and deleted
    (published) in order and 1,000 more inserted (the backlog); then the relay's read of a
    page, the first time, again, and after VACUUM."""
    insert = (
        "INSERT INTO outbox (partition, instance_id, exchange, routing_key, event_id, body) "
        "SELECT i % 64, gen_random_uuid(), 'system', $2, i::text, repeat('x', 400) "
        "FROM generate_series(1, $1::int) AS i"
    )
    await database.execute("DELETE FROM outbox")
    await database.execute("VACUUM outbox")
    await database.execute(insert, rows, "published")
    await database.execute("DELETE FROM outbox WHERE routing_key = $1", "published")
    await database.execute(insert, 1_000, "backlog")
    figures = []
    for when in ("first read after the deletes", "second read", "after VACUUM"):
        if when == "after VACUUM":
            await database.execute("VACUUM outbox")
        clock = timed()
        await read_outbox(database, HALF, 100)
        figures.append(f"{when} {1000 * clock():.1f} ms")
    print(
        f"\n  {rows:,} outbox rows published and deleted, 1,000 waiting; the relay's page of "
        "100: " + ", ".join(figures)
    )


# -- connections of one service ----------------------------------------------------------------


async def connections(args: argparse.Namespace) -> None:
    for pool_size in args.pool_sizes:
        await connections_of(args, pool_size)


async def connections_of(args: argparse.Namespace, pool_size: int) -> None:
    """One service with ``database.poolSize`` ``pool_size`` on an empty database: what it holds
    idle, and during a burst of starts run to completion."""
    name = f"{args.database}_service"
    async with scratch_database(args.server, name, replace=True) as url:
        loaded, port, _ = service_config(url, pool_size=pool_size, replica_id="bench-pool")
        service = Service(loaded)
        count_sql = (
            "SELECT CASE WHEN query LIKE 'LISTEN%' THEN query "
            "WHEN query LIKE '%advisory_lock%' THEN 'an advisory lock (replica id)' "
            "ELSE 'pooled' END AS use, count(*) AS n FROM pg_stat_activity "
            "WHERE datname = $1 AND application_name LIKE 'workflow-orchestrator%' "
            "GROUP BY 1 ORDER BY 1"
        )
        async with trio.open_nursery() as nursery:
            runtime = await start_service(nursery, service)
            await register_definition(f"http://127.0.0.1:{port}/api", SERVICE_DEFINITION)
            await trio.sleep(2)
            idle = await sql(url, count_sql, name)
            print(
                f"\n  poolSize {pool_size}, idle: "
                + ", ".join(f"{r['use']} {r['n']}" for r in idle)
            )
            peak = 0
            done = trio.Event()

            async def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    rows = await sql(
                        url,
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                        "AND application_name LIKE 'workflow-orchestrator%'",
                        name,
                    )
                    peak = max(peak, int(rows[0][0]))
                    await trio.sleep(0.05)

            async def start(i: int) -> None:
                await runtime.start_instance(
                    StartRequest(definition_id="three-tasks", input={"orderId": f"P-{i}"})
                )

            clock = timed()
            async with trio.open_nursery() as sampling:
                sampling.start_soon(sample)
                await run_concurrently(args.burst, 64, start)
                with trio.move_on_after(120):
                    while True:
                        rows = await sql(
                            url,
                            "SELECT count(*) FROM workflow_instances WHERE status = 'completed'",
                        )
                        if int(rows[0][0]) >= args.burst:
                            break
                        await trio.sleep(0.05)
                seconds = clock()
                done.set()
            finished = int(
                (
                    await sql(
                        url, "SELECT count(*) FROM workflow_instances WHERE status = 'completed'"
                    )
                )[0][0]
            )
            pools = service._database.all_statistics() if service._database else {}
            print(
                f"  burst of {args.burst:,} starts (64 in flight): {finished:,} completed in "
                f"{seconds:.1f} s ({finished / seconds:,.0f}/s); at most {peak} connections at "
                "once; pools after: "
                + ", ".join(f"{k} {v.size}/{v.max_size}" for k, v in pools.items())
            )
            nursery.cancel_scope.cancel()


# -- main ---------------------------------------------------------------------------------------


async def benchmark(args: argparse.Namespace) -> None:
    async with (
        scratch_database(args.server, args.database, replace=True, keep=args.keep) as url,
        open_asyncio_bridge(),
        open_database(DatabaseSettings(url=url, pool_size=4)) as database,
    ):
        await print_machine(database)
        print(f"\nschema and seed ({args.instances:,} instances):")
        clock = timed()
        report = await migrate(database)
        step(f"migrate (V{report.current_version:03d})", clock())
        clock = timed()
        shape_id = await register_definitions(database)
        step(f"{len(DEFINITIONS) * 2} definitions (register_definition)", clock())
        total = timed()
        await seed(database, args.instances, shape_id, step)
        await vacuum_analyze(database, step)
        step("seed and VACUUM (ANALYZE) in all", total())
        if args.partition_history:
            await partition_history(database, args.partition_history, step)
        for name in args.drop_index:
            await database.execute(f"DROP INDEX IF EXISTS {name}")
            print(f"  dropped index {name} (--drop-index)")
        await print_sizes(database)
        await acquire_partitions(database, OWNER, ttl=3600.0, target=64)

        print("\nplans (EXPLAIN (ANALYZE, BUFFERS) as prepared statements, rolled back):")
        async with database.dedicated() as connection:
            explaining = ExplainingDatabase(database=database, connection=connection)
            await run_scenarios(database, explaining, shape_id)
        for record in explaining.explained:
            print_statement(record)
        print_overview(explaining.explained)

        print("\nrecovery of 32 partitions (list_recoverable, pages of 500):")
        await recovery_pass(database, "first pass")
        await recovery_pass(database, "second pass")
        print(f"\nchurn ({args.churn:,} active instances, two snapshots each):")
        await churn(database, args.churn, "wal_compression off (the default)")
        try:  # a superuser setting, and a server built with lz4
            await database.execute(f'ALTER DATABASE "{args.database}" SET wal_compression = lz4')
        except Exception as exc:
            print(f"\n  wal_compression = lz4: not measured ({type(exc).__name__}: {exc})")
        else:
            async with open_database(DatabaseSettings(url=url, pool_size=4)) as compressed:
                await churn(compressed, args.churn, "wal_compression = lz4")
        print("\nretention (retention.completedInstances 30d, batches of 500):")
        await retention(database)
        print("\nvacuum after the churn and the retention:")
        await vacuum_after(database)
        print("\na queue table (the outbox):")
        await queue_table(database, args.queue_rows)
        if args.keep:
            print(f"\nkept: {url}")
    if args.service:
        print(f"\nconnections of one service (apiPoolSize 5, {args.burst:,} starts):")
        await connections(args)


def print_overview(records: Sequence[Any]) -> None:
    print("\noverview (first run; * = the sixth run used a different plan):")
    for r in records:
        if r.custom is None:
            print(f"  {r.scenario[:70]:<72} not explained")
            continue
        scans = ", ".join(r.custom.indexes) or "-"
        seq = (" SEQ " + ", ".join(r.custom.seq_scans)) if r.custom.seq_scans else ""
        changed = " *" if r.steady is not None and r.steady.shape != r.custom.shape else ""
        print(
            f"  {r.scenario[:70]:<72}{r.custom.execution_ms:9.2f} ms {r.custom.rows:>6} rows"
            f"  {scans}{seq}{changed}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instances", type=int, default=1_000_000, help="instances to seed")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--churn", type=int, default=5_000, help="instances of the churn phase")
    parser.add_argument("--burst", type=int, default=2_000, help="starts of the pool phase")
    parser.add_argument(
        "--pool-sizes",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[5, 10, 20],
        help="database.poolSize values of the connections phase (comma-separated)",
    )
    parser.add_argument(
        "--queue-rows", type=int, default=200_000, help="rows of the outbox queue phase"
    )
    parser.add_argument(
        "--partition-history",
        type=int,
        default=0,
        metavar="N",
        help="turn workflow_instance_history into N hash partitions after the seed",
    )
    parser.add_argument(
        "--drop-index",
        action="append",
        default=[],
        metavar="NAME",
        help="drop this index after the seed (to measure without it); repeatable",
    )
    parser.add_argument(
        "--no-service", dest="service", action="store_false", help="skip the connections phase"
    )
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--database", default="wo_bench_scale", help="scratch database name")
    args = parser.parse_args()
    trio.run(benchmark, args)


if __name__ == "__main__":
    main()
