"""Leader election of the schedule-firing loop against the real PostgreSQL.

In-process candidates (failover on cancel, a stalled leader, killed connections) and three real
OS processes firing fenced "ticks" through a SIGKILL, a pg_terminate_backend and a SIGSTOP.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio_asyncio

from tests.support.backends import db_now, process_backends, terminate, wait_for
from tests.support.database import open_test_database
from tests.support.leader_process import CREATE_TICKS
from tests.support.process import REPOSITORY
from workflow_orchestrator.config import DatabaseSettings
from workflow_orchestrator.scheduler._leader import LeaderLease, Leadership, LeadershipLost
from workflow_orchestrator.storage import Database, open_database
from workflow_orchestrator.storage.scheduling import check_fence

pytestmark = pytest.mark.integration

TTL = 1.0
ROLE = "schedules"


async def start_candidate(nursery: trio.Nursery, lease: LeaderLease) -> trio.CancelScope:
    """Run ``lease`` in ``nursery`` in its own cancel scope (cancel it to stop that candidate)."""

    async def campaign(*, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            await lease.run()

    scope: trio.CancelScope = await nursery.start(campaign)
    return scope


async def first_leader(*leases: LeaderLease) -> tuple[LeaderLease, Leadership]:
    """Poll until one of ``leases`` leads; returns it and its grant."""
    while True:
        for lease in leases:
            held = lease.current()
            if held is not None:
                return lease, held
        await trio.sleep(0.005)


async def fence_holds(database: Database, leadership: Leadership) -> bool:
    """``check_fence`` for ``leadership`` as the first statement of a (rolled back) write."""

    async def work(connection: Any) -> bool:
        async with connection.transaction():
            return await check_fence(
                connection, leadership.role, leadership.leader_id, leadership.epoch
            )

    return await database.run(work)


async def fetchrow(database: Database, sql: str, *args: object) -> Any:
    return await database.run(lambda connection: connection.fetchrow(sql, *args))


async def lease_row(database: Database) -> Any:
    return await fetchrow(
        database,
        "SELECT leader_id, epoch, expires_at > now() AS valid, "
        "extract(epoch FROM expires_at - now())::float8 AS remaining "
        "FROM leader_leases WHERE role = $1",
        ROLE,
    )


def test_timings_that_would_let_the_lease_lapse_are_refused() -> None:
    """A renewal period or safety margin that leaves no time to renew is a configuration error."""
    database: Any = None
    with pytest.raises(ValueError, match="renew_every"):
        LeaderLease(database=database, candidate_id="x", ttl=1.0, renew_every=0.9)
    with pytest.raises(ValueError, match="safety_margin"):
        LeaderLease(database=database, candidate_id="x", ttl=1.0, safety_margin=1.0)
    with pytest.raises(ValueError, match="ttl"):
        LeaderLease(database=database, candidate_id="x", ttl=0.0)
    lease = LeaderLease(database=database, candidate_id="x", ttl=30.0)
    assert (lease.period, lease.margin, lease.timeout) == (10.0, 6.0, 10.0)
    assert lease.current() is None and lease.statistics().changes_total == 0


async def test_one_leader_and_failover_when_it_stops(database_url: str) -> None:
    """Exactly one of two candidates leads; when it stops the other leads at a higher epoch."""
    changes: list[tuple[str, bool]] = []
    with trio.fail_after(30):
        async with open_test_database(database_url) as database, trio.open_nursery() as nursery:

            def recorder(name: str) -> Callable[[bool], None]:
                return lambda leader: changes.append((name, leader))

            a, b = (
                LeaderLease(database=database, candidate_id=name, ttl=TTL, on_change=recorder(name))
                for name in ("a", "b")
            )
            scopes = {
                "a": await start_candidate(nursery, a),
                "b": await start_candidate(nursery, b),
            }
            leader, granted = await first_leader(a, b)
            follower = b if leader is a else a
            for _ in range(int(2 * TTL / 0.01)):  # two lease periods: renewed, never shared
                assert leader.current() == granted
                assert follower.current() is None
                await trio.sleep(0.01)
            assert follower.statistics().leader_id == leader.candidate_id
            assert follower.statistics().epoch == granted.epoch
            with pytest.raises(LeadershipLost):
                follower.require()

            stopped_at = trio.current_time()
            scopes[leader.candidate_id].cancel()
            with trio.fail_after(2 * TTL):
                taken = await follower.wait_leadership()
            failover = trio.current_time() - stopped_at
            assert leader.current() is None
            assert taken.epoch > granted.epoch
            assert taken.leader_id == follower.candidate_id
            assert await fence_holds(database, granted) is False
            assert await fence_holds(database, taken) is True
            nursery.cancel_scope.cancel()
    assert changes == [
        (leader.candidate_id, True),
        (leader.candidate_id, False),
        (follower.candidate_id, True),
        (follower.candidate_id, False),
    ]
    assert leader.statistics().changes_total == 2
    print(f"failover after the leader stopped (released): {failover * 1000:.0f} ms")


async def test_a_clock_jump_ends_leadership_and_the_next_grant_has_a_new_epoch(
    database_url: str,
) -> None:
    """A stall seen through an injected clock ends leadership at once; the candidate then takes
    the role back under a new epoch, which fences the old one."""
    offset = [0.0]
    with trio.fail_after(30):
        async with open_test_database(database_url) as database, trio.open_nursery() as nursery:
            lease = LeaderLease(
                database=database,
                candidate_id="solo",
                ttl=TTL,
                clock=lambda: time.monotonic() + offset[0],
            )
            await start_candidate(nursery, lease)
            granted = await lease.wait_leadership()
            offset[0] += TTL  # as if the process had been frozen for a whole ttl
            assert lease.current() is None and not lease.is_leader
            assert (await lease_row(database))["valid"]  # the database lease still stands
            with trio.fail_after(2 * TTL):
                again = await lease.wait_leadership()
            assert again.epoch == granted.epoch + 1
            assert await fence_holds(database, granted) is False
            assert await fence_holds(database, again) is True
            statistics = lease.statistics()
            assert (statistics.is_leader, statistics.epoch, statistics.changes_total) == (
                True,
                again.epoch,
                3,
            )
            nursery.cancel_scope.cancel()
    assert lease.current() is None


@attrs.define(eq=False)
class StallingDatabase:
    """A ``Database`` whose requests can be held up (a hung connection, a frozen network)."""

    inner: Database
    _flowing: trio.Event = attrs.field(factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        self._flowing.set()

    def stall(self) -> None:
        self._flowing = trio.Event()

    def resume(self) -> None:
        self._flowing.set()

    async def run(self, work: Any, **options: Any) -> Any:
        await self._flowing.wait()
        return await self.inner.run(work, **options)

    async def fetchval(self, sql: str, *args: object) -> Any:
        await self._flowing.wait()
        return await self.inner.fetchval(sql, *args)

    async def execute(self, sql: str, *args: object) -> str:
        await self._flowing.wait()
        return await self.inner.execute(sql, *args)


async def test_stalled_leader_stops_before_its_database_lease_expires(database_url: str) -> None:
    """A leader whose renewal hangs stops trusting its lease while the database still grants it;
    another candidate takes over only afterwards, and the stalled epoch's writes are fenced."""
    with trio.fail_after(30):
        async with open_test_database(database_url) as database, trio.open_nursery() as nursery:
            hung = StallingDatabase(database)
            # A request timeout far beyond the ttl: only the local deadline can stop it.
            stalled = LeaderLease(
                database=hung,  # type: ignore[arg-type]
                candidate_id="stalled",
                ttl=TTL,
                request_timeout=30.0,
            )
            await start_candidate(nursery, stalled)
            granted = await stalled.wait_leadership()
            other = LeaderLease(database=database, candidate_id="other", ttl=TTL)
            await start_candidate(nursery, other)
            await trio.sleep(TTL)  # renewed a few times
            assert stalled.current() == granted
            hung.stall()
            stalled_at = trio.current_time()

            while stalled.current() is not None:
                assert other.current() is None
                await trio.sleep(0.002)
            trusted_for = trio.current_time() - stalled_at
            row = await lease_row(database)
            # Its local deadline passed while the database lease still stands: nobody else can
            # have been granted the role yet.
            assert (row["leader_id"], row["epoch"], row["valid"]) == (
                "stalled",
                granted.epoch,
                True,
            )
            assert other.current() is None
            margin_left = row["remaining"]

            with trio.fail_after(2 * TTL):
                taken = await other.wait_leadership()
            takeover = trio.current_time() - stalled_at
            assert taken.epoch == granted.epoch + 1
            assert stalled.current() is None
            assert await fence_holds(database, granted) is False
            assert await fence_holds(database, taken) is True

            hung.resume()  # the hung renewal now reaches the database: refused (epoch moved on)
            await trio.sleep(TTL)
            assert stalled.current() is None and other.current() == taken
            assert stalled.statistics().leader_id == "other"
            nursery.cancel_scope.cancel()
    assert 0 < margin_left <= TTL / 5 + 0.05
    print(
        f"stalled leader trusted its lease {trusted_for * 1000:.0f} ms after the stall and "
        f"stopped {margin_left * 1000:.0f} ms before the database lease expired; "
        f"takeover {takeover * 1000:.0f} ms after the stall"
    )


async def test_takeover_waits_for_a_fenced_write_in_flight(database_url: str) -> None:
    """The fence's row lock makes a takeover wait until the old leader's write commits."""
    with trio.fail_after(30):
        async with open_test_database(database_url) as database, trio.open_nursery() as nursery:
            await database.execute("CREATE TABLE effects (epoch bigint NOT NULL)")
            hung = StallingDatabase(database)
            old = LeaderLease(
                database=hung,  # type: ignore[arg-type]
                candidate_id="old",
                ttl=TTL,
                request_timeout=30.0,
            )
            await start_candidate(nursery, old)
            granted = await old.wait_leadership()
            other = LeaderLease(database=database, candidate_id="other", ttl=TTL)
            await start_candidate(nursery, other)

            async with database.dedicated() as connection:
                # A write that passed the fence, then the old leader hangs for 2 ttl.
                async def begin() -> bool:
                    await connection.execute("BEGIN")
                    return await granted.fence(connection)

                assert await trio_asyncio.aio_as_trio(begin)() is True
                hung.stall()
                await trio.sleep(2 * TTL)
                assert old.current() is None
                assert other.current() is None  # the lease expired, but the write holds the row
                await trio_asyncio.aio_as_trio(connection.execute)(
                    "INSERT INTO effects VALUES ($1)", granted.epoch
                )
                await trio_asyncio.aio_as_trio(connection.execute)("COMMIT")
            with trio.fail_after(2 * TTL):
                taken = await other.wait_leadership()
            # Later than the old epoch; not always the next one: an acquire that timed out on
            # the client while the row was locked may still commit its own epoch, which the
            # next attempt then replaces (epochs only grow, so fencing holds either way).
            assert taken.epoch > granted.epoch
            assert await database.fetch("SELECT epoch FROM effects") == [(granted.epoch,)]
            assert await fence_holds(database, granted) is False
            hung.resume()
            nursery.cancel_scope.cancel()


async def test_a_stalled_fenced_write_cannot_hold_a_takeover_back(database_url: str) -> None:
    """With ``idle_timeout``, PostgreSQL ends a fenced transaction left idle by a stalled leader,
    so the takeover goes ahead and the stalled write is rolled back."""
    failures: list[BaseException] = []
    with trio.fail_after(30):
        async with open_test_database(database_url) as database, trio.open_nursery() as nursery:
            await database.execute("CREATE TABLE effects (epoch bigint NOT NULL)")
            hung = StallingDatabase(database)
            old = LeaderLease(
                database=hung,  # type: ignore[arg-type]
                candidate_id="old",
                ttl=TTL,
                request_timeout=30.0,
            )
            await start_candidate(nursery, old)
            granted = await old.wait_leadership()
            other = LeaderLease(database=database, candidate_id="other", ttl=TTL)
            await start_candidate(nursery, other)
            fenced, done = trio.Event(), trio.Event()

            async def stalled_write(connection: Any) -> None:
                async with connection.transaction():
                    assert await granted.fence(connection, idle_timeout=TTL / 5)
                    fenced.set()  # trio-asyncio runs asyncio callbacks on the Trio thread
                    await asyncio.sleep(3 * TTL)  # the process stalls, its transaction open
                    await connection.execute("INSERT INTO effects VALUES ($1)", granted.epoch)

            async def write() -> None:
                try:
                    await database.run(stalled_write)
                except Exception as exc:
                    failures.append(exc)
                finally:
                    done.set()

            nursery.start_soon(write)
            await fenced.wait()
            hung.stall()
            started = trio.current_time()
            with trio.fail_after(2 * TTL):
                taken = await other.wait_leadership()
            takeover = trio.current_time() - started
            assert taken.epoch == granted.epoch + 1
            with trio.fail_after(3 * TTL):
                await done.wait()
            assert await database.fetch("SELECT epoch FROM effects") == []
            hung.resume()
            nursery.cancel_scope.cancel()
    assert len(failures) == 1
    print(f"takeover {takeover * 1000:.0f} ms after the stall; the write failed: {failures[0]!r}")


async def backend_pids(database: Database, pool_size: int) -> set[int]:
    """The server pids of every connection of ``database``'s pool (``pool_size`` at once)."""
    pids: set[int] = set()

    async def one() -> None:
        pids.add(await database.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.1)"))

    async with trio.open_nursery() as nursery:
        for _ in range(pool_size):
            nursery.start_soon(one)
    return pids


async def test_terminated_connections_never_give_two_leaders(database_url: str) -> None:
    """pg_terminate_backend on the leader's pool: it keeps or loses the lead, never shares it."""
    overlaps: list[tuple[float, int, int]] = []
    outcomes: list[str] = []
    with trio.fail_after(45):
        async with open_test_database(database_url) as admin:
            settings = DatabaseSettings(url=database_url, pool_size=2)
            async with (
                open_database(settings) as pool_a,
                open_database(settings) as pool_b,
                trio.open_nursery() as nursery,
            ):
                leases = {
                    "a": LeaderLease(database=pool_a, candidate_id="a", ttl=TTL),
                    "b": LeaderLease(database=pool_b, candidate_id="b", ttl=TTL),
                }
                pools = {"a": pool_a, "b": pool_b}

                async def sample() -> None:
                    while True:
                        a, b = leases["a"].current(), leases["b"].current()
                        if a is not None and b is not None:
                            overlaps.append((trio.current_time(), a.epoch, b.epoch))
                        await trio.sleep(0.002)

                nursery.start_soon(sample)
                for lease in leases.values():
                    await start_candidate(nursery, lease)
                for in_flight in (False, True, False):
                    leader, before = await first_leader(*leases.values())
                    pids = await backend_pids(pools[leader.candidate_id], 2)
                    assert len(pids) == 2
                    if in_flight:
                        # Hold the row (a fenced write of the leader, say) so that its next
                        # renewal waits in the server, and terminate it there: it must fail.
                        async with admin.dedicated() as blocker:

                            async def block(
                                connection: Any = blocker, grant: Leadership = before
                            ) -> bool:
                                await connection.execute("BEGIN")
                                return await grant.fence(connection)

                            assert await trio_asyncio.aio_as_trio(block)() is True

                            async def renewal_waits(pool_pids: set[int] = pids) -> Any:
                                return await admin.fetchval(
                                    "SELECT count(*) FROM pg_stat_activity "
                                    "WHERE pid = ANY($1::int[]) AND wait_event_type = 'Lock'",
                                    sorted(pool_pids),
                                )

                            await wait_for(
                                renewal_waits,
                                TTL,
                                "a renewal waiting for the row lock",
                                interval=0.005,
                            )
                            assert await terminate(admin, pids) == 2
                            await trio_asyncio.aio_as_trio(blocker.execute)("ROLLBACK")
                        await trio.sleep(0.05)
                        assert leader.current() is None, "a failed renewal must end leadership"
                    else:
                        assert await terminate(admin, pids) == 2
                    await trio.sleep(1.5 * TTL)
                    now, after = await first_leader(*leases.values())
                    outcomes.append(
                        f"{'in flight' if in_flight else 'idle'}: "
                        f"{leader.candidate_id}@{before.epoch} -> {now.candidate_id}@{after.epoch}"
                    )
                await trio.sleep(TTL)
                assert not overlaps, overlaps[:5]
                assert sum(lease.is_leader for lease in leases.values()) == 1
                nursery.cancel_scope.cancel()
    print("after terminating the leader's backends:", "; ".join(outcomes))


# --- three real processes ---------------------------------------------------------------------

PROCESS_TTL = 1.5
CANDIDATES = ("p1", "p2", "p3")


@attrs.define
class Candidate:
    """One ``tests.support.leader_process`` process."""

    candidate_id: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def events(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith('{"event"')]


def spawn(database_url: str, candidate_id: str, folder: Path, run: int) -> Candidate:
    log_path = folder / f"{candidate_id}-{run}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.leader_process",
                database_url,
                candidate_id,
                str(PROCESS_TTL),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPOSITORY,
        )
    return Candidate(candidate_id=candidate_id, log_path=log_path, process=process)


async def last_tick(admin: Database) -> Any:
    return await fetchrow(
        admin, "SELECT tick, candidate_id, epoch, recorded_at FROM ticks ORDER BY tick DESC LIMIT 1"
    )


async def test_three_processes_fire_each_tick_once(database_url: str, tmp_path: Path) -> None:
    """Three processes: SIGKILL, pg_terminate_backend and SIGSTOP of the leader never let two
    leaders fire, and a new leader acts within 2 ttl."""
    ttl = PROCESS_TTL
    figures: dict[str, float] = {}
    processes: dict[str, Candidate] = {}
    retired: list[Candidate] = []
    with trio.fail_after(90):
        async with open_test_database(database_url) as admin:
            await admin.execute(CREATE_TICKS)

            def newer_than(epoch: int) -> Callable[[], Awaitable[Any]]:
                async def probe() -> Any:
                    row = await last_tick(admin)
                    return row if row is not None and row["epoch"] > epoch else None

                return probe

            try:
                for run, candidate_id in enumerate(CANDIDATES):
                    processes[candidate_id] = spawn(database_url, candidate_id, tmp_path, run)

                async def first_tick() -> Any:
                    for candidate in processes.values():
                        assert candidate.process.poll() is None, candidate.log_path.read_text()
                    return await last_tick(admin)

                await wait_for(first_tick, 30, "a first tick")
                await trio.sleep(1.0)

                # (a) SIGKILL the leader: a new leader fires within 2 ttl.
                victim = (await last_tick(admin))["candidate_id"]
                old_epoch = (await last_tick(admin))["epoch"]
                processes[victim].process.kill()
                killed_at = await db_now(admin)
                taken = await wait_for(newer_than(old_epoch), 2 * ttl + 1, "a leader after SIGKILL")
                figures["sigkill_failover"] = (taken["recorded_at"] - killed_at).total_seconds()
                processes[victim].process.wait(timeout=10)
                retired.append(processes[victim])
                processes[victim] = spawn(database_url, victim, tmp_path, len(retired) + 10)
                await trio.sleep(2.0)

                # (b) pg_terminate_backend on every backend of the leader's process.
                leader_row = await last_tick(admin)
                leader = processes[leader_row["candidate_id"]]
                pids = await process_backends(admin, leader.process.pid)
                assert pids, "found no backend of the leader process"
                terminated = await terminate(admin, pids)
                terminated_at = await db_now(admin)

                async def ticked_again() -> Any:
                    row = await last_tick(admin)
                    return row if row["recorded_at"] > terminated_at else None

                after = await wait_for(ticked_again, 2 * ttl + 1, "a tick after the terminate")
                figures["terminate_gap"] = (after["recorded_at"] - terminated_at).total_seconds()
                terminate_outcome = (
                    f"{leader.candidate_id}@{leader_row['epoch']} -> "
                    f"{after['candidate_id']}@{after['epoch']} ({terminated} backends)"
                )
                await trio.sleep(1.0)

                # (c) SIGSTOP the leader for 2 ttl, then SIGCONT: it must not write again.
                stalled_row = await last_tick(admin)
                stalled = processes[stalled_row["candidate_id"]]
                stalled.process.send_signal(signal.SIGSTOP)
                stopped_at = await db_now(admin)
                stopped_clock = time.monotonic()
                taken = await wait_for(
                    newer_than(stalled_row["epoch"]), 2 * ttl + 1, "a leader after SIGSTOP"
                )
                figures["sigstop_failover"] = (taken["recorded_at"] - stopped_at).total_seconds()
                await trio.sleep(max(0.0, 2 * ttl - (time.monotonic() - stopped_clock)))
                resumed_at = await db_now(admin)
                stalled.process.send_signal(signal.SIGCONT)
                await trio.sleep(2.0)
                late = await admin.fetch(
                    "SELECT tick, recorded_at FROM ticks "
                    "WHERE candidate_id = $1 AND epoch = $2 AND recorded_at > $3",
                    stalled.candidate_id,
                    stalled_row["epoch"],
                    resumed_at,
                )
                assert not late, f"the resumed leader wrote under its old epoch: {late}"
                for candidate in processes.values():
                    assert candidate.process.poll() is None, candidate.log_path.read_text()
            finally:
                for candidate in processes.values():
                    if candidate.process.poll() is None:
                        candidate.process.send_signal(signal.SIGCONT)
                        candidate.process.kill()
                    candidate.process.wait(timeout=10)
            ticks = await admin.fetch(
                "SELECT tick, candidate_id, epoch, recorded_at FROM ticks ORDER BY tick"
            )

    events = [event for c in (*retired, *processes.values()) for event in c.events()]
    counts = {kind: sum(e["event"] == kind for e in events) for kind in ("duplicate", "crash")}
    assert counts == {"duplicate": 0, "crash": 0}, [e for e in events if e["event"] in counts]
    # One epoch at a time: by tick and by commit order, the epochs never go back.
    by_tick = [row["epoch"] for row in ticks]
    assert by_tick == sorted(by_tick)
    by_commit = [row["epoch"] for row in sorted(ticks, key=lambda row: row["recorded_at"])]
    assert by_commit == sorted(by_commit)
    epochs = {row["epoch"]: row["candidate_id"] for row in ticks}
    assert len(epochs) == len({(row["epoch"], row["candidate_id"]) for row in ticks})
    gaps = [(b["tick"] - a["tick"]).total_seconds() for a, b in itertools.pairwise(ticks)]
    figures["longest_gap"] = max(gaps)
    assert figures["longest_gap"] <= 2 * ttl + 1.0, figures
    assert figures["sigkill_failover"] <= 2 * ttl, figures
    assert figures["sigstop_failover"] <= 2 * ttl, figures
    stalled_events = [e["event"] for e in stalled.events() if e["at"] > stopped_at.timestamp()]
    print(
        f"{len(ticks)} ticks under epochs {sorted(epochs)}; "
        + ", ".join(f"{name} {value:.2f}s" for name, value in figures.items())
        + f"; terminate: {terminate_outcome}; stalled leader after SIGCONT: {stalled_events}"
    )
