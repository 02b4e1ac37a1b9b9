"""Read replicas: how healthy each one is, which one a read uses, and the check that keeps both
current.

Invariants:

- A read goes to a replica only when ``database.readPreference`` is ``PREFER_REPLICA`` and the
  replica's last check found it ``healthy``: in recovery (a standby), answering, and behind the
  primary by at most ``database.maxReplicaLag``. Otherwise it goes to the primary: a read never
  fails because a replica is down or behind.
- Healthy replicas take reads in turn (round robin).
- Lag is 0 while the replica streams from the primary and has replayed everything it received
  (``pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()``): on an idle primary the last
  replayed transaction grows old although nothing is missing. Otherwise the lag is the age of
  the last replayed transaction (``now() - pg_last_xact_replay_timestamp()``), which overstates
  a lag that follows an idle period: on the safe side.
- A replica's state changes in ``ReplicaSet.run`` (one query per replica every
  ``database.replicaCheckInterval``, all replicas at once, each bounded by the connect timeout)
  and when a read fails to reach it (``mark_down``: down at once, until a check finds it healthy
  again). Before the first check a replica is ``unknown`` and takes no reads.
- Labels are bounded by the configuration: ``replica-0``, ``replica-1``, ... and
  ``host:port/database`` (never a user name or password).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from typing import Any

import attrs
import trio
import trio_asyncio

from workflow_orchestrator.storage._pools import (
    Connection,
    PoolStatistics,
    describe_connect_error,
    pool_statistics,
)

__all__ = [
    "ReadStatistics",
    "Replica",
    "ReplicaProbe",
    "ReplicaSet",
    "ReplicaState",
    "ReplicaStatus",
    "assess_replica",
]

logger = logging.getLogger(__name__)

PRIMARY = "primary"

_PROBE_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver) AS streaming,
       pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() AS caught_up,
       EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 AS replay_age
"""


class ReplicaState(enum.StrEnum):
    """What the last check (or read) found; only ``HEALTHY`` replicas take reads."""

    UNKNOWN = "unknown"  # not checked yet
    HEALTHY = "healthy"
    LAGGING = "lagging"  # behind by more than database.maxReplicaLag, or by an unknown time
    DOWN = "down"  # no connection, or the check failed
    NOT_IN_RECOVERY = "not-in-recovery"  # a primary (promoted, or not a standby at all)


@attrs.frozen(kw_only=True)
class ReplicaProbe:
    """What one check query returned.

    ``caught_up`` is None when the server has received no WAL by streaming since it started;
    ``replay_age`` is None when it has replayed no transaction since it started.
    """

    in_recovery: bool
    streaming: bool
    caught_up: bool | None
    replay_age: float | None


@attrs.frozen(kw_only=True)
class ReplicaStatus:
    """A snapshot of one replica, for health reports and metrics.

    ``lag`` is in seconds (None when unknown); ``reads`` counts the reads it served.
    """

    name: str
    endpoint: str
    state: ReplicaState
    lag: float | None
    serving_reads: bool
    error: str | None
    reads: int
    pool: PoolStatistics


@attrs.frozen(kw_only=True)
class ReadStatistics:
    """Where read-only work goes now, and where it went.

    ``reads_from`` names the pools that take reads now (``primary``, or the healthy replicas);
    ``reads`` counts read-only units of work by the pool that served them, since startup.
    """

    read_preference: str
    reads_from: tuple[str, ...]
    replicas: tuple[ReplicaStatus, ...]
    reads: dict[str, int]


def assess_replica(probe: ReplicaProbe, max_lag: float) -> tuple[ReplicaState, float | None]:
    """The state and lag (seconds, None when unknown) of a replica from one probe."""
    if not probe.in_recovery:
        return ReplicaState.NOT_IN_RECOVERY, None
    if probe.streaming and probe.caught_up:
        return ReplicaState.HEALTHY, 0.0
    if probe.replay_age is None:
        return ReplicaState.LAGGING, None
    lag = max(probe.replay_age, 0.0)
    return (ReplicaState.HEALTHY if lag <= max_lag else ReplicaState.LAGGING), lag


async def _probe(pool: Any) -> ReplicaProbe:
    """One check query on a connection of ``pool`` (asyncio side)."""
    connection: Connection
    async with pool.acquire() as connection:
        row = await connection.fetchrow(_PROBE_SQL)
    return ReplicaProbe(
        in_recovery=row["in_recovery"],
        streaming=row["streaming"],
        caught_up=row["caught_up"],
        replay_age=row["replay_age"],
    )


@attrs.define(eq=False)
class Replica:
    """One read replica: its pool and what is known of its health."""

    name: str
    endpoint: str
    pool: Any
    max_size: int
    state: ReplicaState = ReplicaState.UNKNOWN
    lag: float | None = None
    error: str | None = None
    reads: int = 0


@attrs.define(eq=False)
class ReplicaSet:
    """The replicas of one ``Database``, their checks and the choice of the one a read uses.

    Not thread-safe and needs none: it is used from the Trio side and from the asyncio side of
    the one trio-asyncio loop, which run in one thread.
    """

    replicas: Sequence[Replica]
    prefer_replica: bool
    max_lag: float
    check_interval: float
    check_timeout: float
    primary_reads: int = 0
    _turn: int = -1

    def choose(self) -> Replica | None:
        """The replica the next read uses, or None for the primary (no I/O)."""
        if not self.prefer_replica:
            return None
        healthy = [r for r in self.replicas if r.state is ReplicaState.HEALTHY]
        if not healthy:
            return None
        self._turn = (self._turn + 1) % len(healthy)
        return healthy[self._turn]

    def mark_down(self, replica: Replica, error: str) -> None:
        """A read could not reach ``replica``: no more reads go there until a check finds it
        healthy again."""
        self._update(replica, ReplicaState.DOWN, None, error)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check every replica now, report readiness, then again every ``check_interval``;
        runs until cancelled. A replica's failure is its state, never an error here."""
        await self.check_all()
        task_status.started()
        while True:
            await trio.sleep(self.check_interval)
            await self.check_all()

    async def check_all(self) -> None:
        """Check every replica at once; returns when every check ended (each is bounded)."""
        async with trio.open_nursery() as nursery:
            for replica in self.replicas:
                nursery.start_soon(self._check, replica)

    async def _check(self, replica: Replica) -> None:
        try:
            with trio.fail_after(self.check_timeout):
                probe = await trio_asyncio.aio_as_trio(_probe)(replica.pool)
        except trio.TooSlowError:
            self._update(
                replica, ReplicaState.DOWN, None, f"no answer within {self.check_timeout:g}s"
            )
            return
        except Exception as exc:  # a replica's failure of any kind is its state, not ours
            self._update(replica, ReplicaState.DOWN, None, describe_connect_error(exc))
            return
        state, lag = assess_replica(probe, self.max_lag)
        error = None
        if state is ReplicaState.LAGGING:
            error = (
                f"behind the primary by {lag:.1f}s, more than database.maxReplicaLag "
                f"({self.max_lag:g}s)"
                if lag is not None
                else "has replayed no transaction since it started and is not streaming"
            )
        elif state is ReplicaState.NOT_IN_RECOVERY:
            error = (
                "the server is not in recovery (a primary, not a standby); point this "
                "replica's url at a streaming standby"
            )
        self._update(replica, state, lag, error)

    def _update(
        self, replica: Replica, state: ReplicaState, lag: float | None, error: str | None
    ) -> None:
        before = replica.state
        replica.state, replica.lag, replica.error = state, lag, error
        if state is before:
            return
        if state is ReplicaState.HEALTHY:
            logger.info(
                "read replica %s (%s) is healthy; it takes reads again",
                replica.name,
                replica.endpoint,
            )
        else:
            logger.warning(
                "read replica %s (%s) is %s (%s); reads use %s",
                replica.name,
                replica.endpoint,
                state,
                error,
                "the other replicas or the primary" if len(self.replicas) > 1 else "the primary",
            )

    def statistics(self, read_preference: str) -> ReadStatistics:
        """A snapshot for health reports and metrics (no I/O)."""
        serving = {
            r.name for r in self.replicas if self.prefer_replica and r.state is ReplicaState.HEALTHY
        }
        replicas = tuple(
            ReplicaStatus(
                name=r.name,
                endpoint=r.endpoint,
                state=r.state,
                lag=r.lag,
                serving_reads=r.name in serving,
                error=r.error,
                reads=r.reads,
                pool=pool_statistics(r.pool, r.max_size),
            )
            for r in self.replicas
        )
        reads = {PRIMARY: self.primary_reads} | {r.name: r.reads for r in self.replicas}
        return ReadStatistics(
            read_preference=read_preference,
            reads_from=tuple(r.name for r in self.replicas if r.name in serving) or (PRIMARY,),
            replicas=replicas,
            reads=reads,
        )
