"""The scheduler in real ``serve`` processes: schedule failover and durable ``wait`` timers.

Three replicas share one database with leader election on. While an ``every: 3s`` schedule
ticks, the leader is SIGKILLed (then restarted), the next leader's PostgreSQL connections are
terminated, and the leader after that is frozen (SIGSTOP) for two election intervals. Every tick
from the first to the last must start exactly once, each failover must be fast enough that
``catchUp: one`` skips nothing, and every scheduled instance must complete (those of a dead
replica's partitions after their lease ran out). Each disruption lands just before a tick is
due, so that tick measures the failover: it must start within 2 election intervals plus a poll
after its due time. ``cluster.leaseTtl`` is 2 s, shorter than the 3.5 s freeze, so that the frozen
replica's partitions are taken over by another replica before it resumes (see the last test).

A single replica shows that a parked ``wait`` survives SIGKILL, restarted before or after its
due time. Two regressions are covered too: a short in-place ``wait`` cut by SIGKILL resumes (its
timer is durable like a parked one), and a replica frozen past its lease that takes its own
partitions back (under a new epoch) resumes the instances it fenced.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import yaml

from tests.support.backends import db_now, process_backends, terminate
from tests.support.backends import wait_for as poll_for
from tests.support.database import open_test_database
from tests.support.http_stub import run_http_stub
from tests.support.process import RunningService, run_service
from tests.support.service import ALLOW_LOOPBACK
from workflow_orchestrator.storage import Database

pytestmark = pytest.mark.integration

ELECTION = 1.75  # scheduler.distributed.leaderElectionInterval
LEASE = 2.0  # cluster.leaseTtl
POLL = 0.2  # scheduler.pollInterval
EVERY = 3.0  # the schedule's interval: longer than a failover, so catch-up `one` skips nothing
REPLICAS = ("replica-a", "replica-b", "replica-c")
FAILOVER_BOUND = 2 * ELECTION + POLL
BEFORE_TICK = 0.3  # each disruption lands this long before a tick is due

TICKER = """\
document: {dsl: '1.0.3', namespace: e2e, name: replicated-ticker, version: '1.0.0'}
schedule:
  every: {seconds: 3}
do:
  - rest:
      wait: {milliseconds: 1500}
  - note:
      set: {ticked: true}
"""

SLEEPER = """\
document: {dsl: '1.0.3', namespace: e2e, name: sleeper, version: '1.0.0'}
do:
  - nap:
      wait: {seconds: 8}
  - done:
      set: {woke: true}
"""

TICKS_SQL = """
SELECT idempotency_key, created_at, status, completed_at FROM workflow_instances
WHERE definition_id = 'replicated-ticker' ORDER BY created_at
"""


def write_config(folder: Path, replica_id: str, **scheduler: Any) -> Path:
    """An application.yaml for one replica: fast polls, short leases, the given scheduler keys."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "scheduler": {"pollInterval": f"{POLL}s", **scheduler},
        "cluster": {"replicaId": replica_id, "leaseTtl": f"{LEASE}s"},
        "logging": {"level": "INFO"},
        # The stalling test's workflow calls a stub on loopback.
        "security": {"outbound": {"allow": ALLOW_LOOPBACK}},
    }
    path = folder / "application.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def replica(
    folder: Path, database_url: str, replica_id: str, **scheduler: Any
) -> Iterator[RunningService]:
    """``run_service`` for one replica; the process is SIGCONTed and killed on the way out."""
    config = write_config(folder, replica_id, **scheduler)
    args = ("--config", str(config), "--url", database_url)
    with run_service(folder, args=args, env={"REPLICA_ID": replica_id}) as service:
        try:
            yield service
        finally:
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGCONT)


async def start_replica(
    stack: ExitStack, folder: Path, database_url: str, replica_id: str, **scheduler: Any
) -> tuple[RunningService, float]:
    """Start a replica (in a thread: readiness polling blocks); returns it and its start time."""
    started = time.monotonic()
    service = await trio.to_thread.run_sync(
        stack.enter_context, replica(folder, database_url, replica_id, **scheduler)
    )
    return service, time.monotonic() - started


async def register(client: httpx.AsyncClient, service: RunningService, document: str) -> None:
    response = await client.post(
        f"{service.api}/api/v1/workflow-definitions",
        content=document,
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status_code == 201, response.text


async def is_leader(client: httpx.AsyncClient, service: RunningService) -> bool | None:
    """What the replica's ``/health/detailed`` says (None: no answer, e.g. stopped)."""
    try:
        response = await client.get(f"{service.management}/health/detailed", timeout=1.0)
    except httpx.TransportError:
        return None
    leader: bool = response.json()["components"]["scheduler"]["details"]["leader"]
    return leader


async def wait_for(probe: Callable[[], Awaitable[Any]], within: float, what: str) -> Any:
    """``backends.wait_for`` polling every 0.1 s."""
    return await poll_for(probe, within, what, interval=0.1)


async def find_leader(
    client: httpx.AsyncClient, admin: Database, services: dict[str, RunningService]
) -> str:
    """The replica id that alone says it leads, agreeing with the lease row."""

    async def probe() -> str | None:
        answers = {rid: await is_leader(client, s) for rid, s in services.items()}
        leaders = [rid for rid, answer in answers.items() if answer]
        row = await fetchrow(
            admin,
            "SELECT leader_id FROM leader_leases WHERE role = 'schedules' AND expires_at > now()",
        )
        if len(leaders) == 1 and row is not None and row["leader_id"] == leaders[0]:
            return leaders[0]
        return None

    found: str = await wait_for(probe, 4 * ELECTION, "exactly one leader, as in the database")
    return found


def tick_of(key: str) -> datetime:
    """The tick time in ``schedule:<definition>:<version>:<tick iso>``."""
    return datetime.fromisoformat(key.split(":", 3)[3])


async def fetchrow(admin: Database, sql: str, *args: object) -> Any:
    rows = await admin.fetch(sql, *args)
    return rows[0] if rows else None


async def started_after(admin: Database, moment: datetime) -> Any:
    """The first tick instance created after ``moment`` (None yet)."""
    return await fetchrow(
        admin,
        "SELECT idempotency_key, created_at FROM workflow_instances "
        "WHERE definition_id = 'replicated-ticker' AND created_at > $1 "
        "ORDER BY created_at LIMIT 1",
        moment,
    )


async def until_just_before_the_next_tick(admin: Database) -> datetime:
    """Sleep until ``BEFORE_TICK`` seconds before the next tick is due; returns that tick."""
    last = max(tick_of(row["idempotency_key"]) for row in await admin.fetch(TICKS_SQL))
    now = await db_now(admin)
    due = last + timedelta(seconds=EVERY)
    while (due - now).total_seconds() < BEFORE_TICK + 0.1:
        due += timedelta(seconds=EVERY)
    await trio.sleep((due - now).total_seconds() - BEFORE_TICK)
    return due


async def leader_row(admin: Database) -> Any:
    return await fetchrow(
        admin, "SELECT leader_id, epoch, changed_at FROM leader_leases WHERE role = 'schedules'"
    )


async def failover_after(admin: Database, disrupted_at: datetime) -> float:
    """Seconds from the later of the disruption and the tick's due time to the first tick
    instance created after the disruption."""
    row = await wait_for(
        lambda: started_after(admin, disrupted_at), EVERY + 2 * FAILOVER_BOUND, "a tick"
    )
    due = max(tick_of(row["idempotency_key"]), disrupted_at)
    created: datetime = row["created_at"]
    return (created - due).total_seconds()


async def test_three_replicas_start_every_tick_once_through_kill_terminate_and_stop(
    tmp_path: Path, database_url: str
) -> None:
    """SIGKILL, pg_terminate_backend and SIGSTOP of the leader: each tick starts once, on time."""
    distributed = {"enabled": True, "leaderElectionInterval": f"{ELECTION}s"}
    figures: dict[str, float] = {}
    began = time.monotonic()
    with trio.fail_after(100), ExitStack() as stack:
        async with (
            open_test_database(database_url) as admin,
            httpx.AsyncClient(timeout=10) as client,
        ):
            services: dict[str, RunningService] = {}

            async def start(replica_id: str, run: int) -> float:
                folder = tmp_path / f"{replica_id}-{run}"
                service, took = await start_replica(
                    stack, folder, database_url, replica_id, catchUp="one", distributed=distributed
                )
                services[replica_id] = service
                return took

            for replica_id in REPLICAS:
                await start(replica_id, 0)
            await register(client, services[REPLICAS[0]], TICKER)

            async def two_ticks() -> bool:
                return len(await admin.fetch(TICKS_SQL)) >= 2

            await wait_for(two_ticks, 2 * EVERY + 2, "the first two ticks")

            async def takeover(before: Any, disrupted_at: datetime, name: str) -> None:
                """Record how long after the disruption a new epoch was granted (if any)."""
                row = await leader_row(admin)
                if row["epoch"] != before["epoch"]:
                    figures[f"{name} new leader"] = (
                        row["changed_at"] - disrupted_at
                    ).total_seconds()

            # (a) SIGKILL the leader just before a tick; restart it (same replica id) after.
            victim = await find_leader(client, admin, services)
            before = await leader_row(admin)
            await until_just_before_the_next_tick(admin)
            services[victim].process.kill()
            killed_at = await db_now(admin)
            services[victim].process.wait(timeout=10)
            figures["sigkill"] = await failover_after(admin, killed_at)
            await takeover(before, killed_at, "sigkill")
            figures["restart took"] = await start(victim, 1)

            # (b) pg_terminate_backend on every connection of the new leader's process.
            leader = await find_leader(client, admin, services)
            before = await leader_row(admin)
            await until_just_before_the_next_tick(admin)
            pids = await process_backends(admin, services[leader].process.pid)
            assert pids, f"found no backend of {leader}'s process"
            terminated = await terminate(admin, pids)
            terminated_at = await db_now(admin)
            figures["terminate"] = await failover_after(admin, terminated_at)
            await takeover(before, terminated_at, "terminate")

            # (c) SIGSTOP the leader just before a tick for two election intervals; SIGCONT.
            stalled = await find_leader(client, admin, services)
            before = await leader_row(admin)
            await until_just_before_the_next_tick(admin)
            services[stalled].process.send_signal(signal.SIGSTOP)
            stopped_at = await db_now(admin)
            await trio.sleep(2 * ELECTION)
            services[stalled].process.send_signal(signal.SIGCONT)
            figures["sigstop"] = await failover_after(admin, stopped_at)
            await takeover(before, stopped_at, "sigstop")
            after_stop = await find_leader(client, admin, services)

            # One more tick after everything, then stop counting.
            last_disruption = await db_now(admin)
            await wait_for(
                lambda: started_after(admin, last_disruption + timedelta(seconds=EVERY)),
                2 * EVERY + 2,
                "a tick after the disruptions",
            )
            for replica_id, service in services.items():
                assert service.process.poll() is None, f"{replica_id} died:\n{service.log()}"
            rows = await admin.fetch(TICKS_SQL)

            # Every instance completes; those of a dead replica's partitions after takeover.
            keys = [row["idempotency_key"] for row in rows]

            async def all_completed() -> bool:
                statuses = await admin.fetch(
                    "SELECT status FROM workflow_instances WHERE idempotency_key = ANY($1)", keys
                )
                return all(row["status"] == "completed" for row in statuses)

            try:
                await wait_for(all_completed, 2 * LEASE + 5, "every scheduled instance completed")
            except AssertionError:
                stuck = await admin.fetch(
                    "SELECT w.instance_id, w.idempotency_key, w.status, w.partition, "
                    "w.lease_owner, w.lease_epoch, w.snapshot_version, w.updated_at, "
                    "t.due_at, t.claimed_until, t.lease_epoch AS timer_epoch, "
                    "p.owner_id, p.epoch AS partition_epoch "
                    "FROM workflow_instances w "
                    "LEFT JOIN workflow_timers t ON t.instance_id = w.instance_id "
                    "LEFT JOIN partition_leases p ON p.partition = w.partition "
                    "WHERE w.definition_id = 'replicated-ticker' AND w.status <> 'completed'"
                )
                logs = "\n".join(f"--- {r}\n{s.log()[-3000:]}" for r, s in services.items())
                pytest.fail(f"instances not completed: {[dict(r) for r in stuck]}\n{logs}")

    ticks = sorted(tick_of(key) for key in keys)
    assert len(set(ticks)) == len(ticks), "a tick started more than once"
    gaps = sorted({(later - earlier).total_seconds() for earlier, later in pairwise(ticks)})
    assert gaps == [EVERY], f"ticks not {EVERY}s apart (a gap or a duplicate): {gaps}; {ticks}"
    assert ticks[-1] > last_disruption, "the run ended before the last disruption was covered"
    for name in ("sigkill", "terminate", "sigstop"):
        assert figures[name] <= FAILOVER_BOUND, (name, figures)
    # A killed or frozen leader must have been replaced (a terminated one may keep its lead).
    assert {"sigkill new leader", "sigstop new leader"} <= set(figures), figures
    print(
        f"{len(ticks)} ticks {EVERY:g}s apart, each started once; leaders: {victim} (killed), "
        f"{leader} ({terminated} backends terminated), {stalled} (stopped) -> {after_stop}; "
        + ", ".join(f"{name} {value:.2f}s" for name, value in figures.items())
        + f"; {time.monotonic() - began:.1f}s in all"
    )


async def wait_status(admin: Database, instance_id: str, status: str, within: float) -> Any:
    async def probe() -> Any:
        row = await fetchrow(
            admin,
            "SELECT status, created_at, completed_at FROM workflow_instances "
            "WHERE instance_id = $1::uuid",
            instance_id,
        )
        return row if row is not None and row["status"] == status else None

    return await wait_for(probe, within, f"instance {instance_id} {status}")


@pytest.mark.parametrize("restart", ["before-due", "after-due"])
async def test_wait_survives_sigkill_of_the_real_process(
    tmp_path: Path, database_url: str, restart: str
) -> None:
    """An 8 s ``wait`` across a SIGKILL completes once: on time, or at once if restarted late."""
    with trio.fail_after(60), ExitStack() as stack:
        async with (
            open_test_database(database_url) as admin,
            httpx.AsyncClient(timeout=10) as client,
        ):
            first, _ = await start_replica(stack, tmp_path / "first", database_url, "sleeper-1")
            await register(client, first, SLEEPER)
            response = await client.post(
                f"{first.api}/api/v1/workflow-instances",
                json={"workflowDefinitionId": "sleeper", "input": {}},
            )
            assert response.status_code in (200, 201), response.text
            instance_id = response.json()["id"]
            await wait_status(admin, instance_id, "waiting", 10)
            due: datetime = await admin.fetchval(
                "SELECT due_at FROM workflow_timers WHERE instance_id = $1::uuid", instance_id
            )
            first.process.kill()
            first.process.wait(timeout=10)
            killed_at = await db_now(admin)
            assert killed_at < due - timedelta(seconds=4), "the kill came too late to matter"
            if restart == "after-due":
                await trio.sleep((due - killed_at).total_seconds() + 1.0)
            launched_at = await db_now(admin)
            second, took = await start_replica(
                stack, tmp_path / "second", database_url, "sleeper-1"
            )
            ready_at = await db_now(admin)
            done = await wait_status(admin, instance_id, "completed", 15)
            response = await client.get(
                f"{second.api}/api/v1/workflow-instances/{instance_id}/history"
            )
            assert response.status_code == 200, response.text
            history = response.json()["items"]
    completed_at: datetime = done["completed_at"]
    lateness = (completed_at - due).total_seconds()
    since_launch = (completed_at - launched_at).total_seconds()
    print(
        f"{restart}: restart took {took:.2f}s, ready {(ready_at - due).total_seconds():+.2f}s "
        f"from the due time; completed {lateness:+.2f}s from the due time, "
        f"{since_launch:.2f}s after the restart began"
    )
    assert lateness >= -0.05, f"the wait ended {-lateness:.2f}s early"
    if restart == "before-due":
        assert ready_at < due, f"the restart took {took:.1f}s, past the due time"
        assert lateness <= 1.0, lateness
    else:
        assert launched_at > due
        assert 0 < since_launch <= took + 1.0, (since_launch, took)
    entries = [(item["kind"], (item["taskRef"] or "").rsplit("/", 1)[-1]) for item in history]
    assert entries.count(("workflow.completed", "")) == 1, entries
    assert entries.count(("task.completed", "nap")) == 1, entries


NAPPER = """\
document: {dsl: '1.0.3', namespace: e2e, name: napper, version: '1.0.0'}
do:
  - doze:
      wait: {milliseconds: 950}
  - done:
      set: {woke: true}
"""


async def test_short_wait_survives_sigkill_of_the_real_process(
    tmp_path: Path, database_url: str
) -> None:
    """A wait shorter than the park threshold, cut by SIGKILL, completes after the restart."""
    with trio.fail_after(60), ExitStack() as stack:
        async with (
            open_test_database(database_url) as admin,
            httpx.AsyncClient(timeout=10) as client,
        ):
            # The kill must land inside the 950 ms nap; on a loaded machine it may come after
            # it, then the attempt proves nothing and a new instance tries again.
            registered = False
            for attempt in range(3):
                replica, _ = await start_replica(
                    stack, tmp_path / f"attempt-{attempt}", database_url, "napper-1"
                )
                if not registered:
                    await register(client, replica, NAPPER)
                    registered = True
                response = await client.post(
                    f"{replica.api}/api/v1/workflow-instances",
                    json={"workflowDefinitionId": "napper", "input": {}},
                )
                assert response.status_code in (200, 201), response.text
                instance_id = response.json()["id"]
                await wait_status(admin, instance_id, "waiting", 10)
                replica.process.kill()
                replica.process.wait(timeout=10)
                status = await admin.fetchval(
                    "SELECT status FROM workflow_instances WHERE instance_id = $1::uuid",
                    instance_id,
                )
                if status == "waiting":
                    break
            else:
                raise AssertionError("in 3 attempts the SIGKILL never landed inside the nap")
            await start_replica(stack, tmp_path / "second", database_url, "napper-1")
            await wait_status(admin, instance_id, "completed", 10)


CALLER = """\
document: {{dsl: '1.0.3', namespace: e2e, name: caller, version: '1.0.0'}}
do:
  - ask:
      call: http
      with:
        method: post
        endpoint: {url}/slow
        body: {{}}
  - done:
      set: {{answered: true}}
"""


async def test_instance_survives_its_replica_stalling_past_its_lease(
    tmp_path: Path, database_url: str
) -> None:
    """A replica frozen past its lease takes its partitions back and resumes its instances."""
    with trio.fail_after(60), ExitStack() as stack, run_http_stub(delay=(1.0, 1.0)) as stub:
        async with (
            open_test_database(database_url) as admin,
            httpx.AsyncClient(timeout=10) as client,
        ):
            service, _ = await start_replica(stack, tmp_path / "only", database_url, "staller-1")
            await register(client, service, CALLER.format(url=stub.url))
            response = await client.post(
                f"{service.api}/api/v1/workflow-instances",
                json={"workflowDefinitionId": "caller", "input": {}},
            )
            assert response.status_code in (200, 201), response.text
            instance_id = response.json()["id"]
            await trio.to_thread.run_sync(stub.wait_for_total, 1, 10)
            service.process.send_signal(signal.SIGSTOP)
            await trio.sleep(2 * LEASE)
            service.process.send_signal(signal.SIGCONT)
            await wait_status(admin, instance_id, "completed", 10)
