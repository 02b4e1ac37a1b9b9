"""Partition leases: which replica drives the instances of which partition, with fencing.

Each row of ``partition_leases`` names an owner, an ``epoch`` and an ``expires_at``. The rules:

- A lease is held while ``owner_id`` is the holder and ``expires_at > now()`` (the database's
  clock, so replicas' clocks do not matter).
- ``epoch`` goes up by one every time a partition is granted (acquired by any owner, including
  the previous one after it expired or released it). It is the fencing token: a write made under
  an older epoch is refused (see ``SnapshotWriter``), so a replica that paused past its lease
  cannot overwrite the work of the replica that took over.
- Renewal extends ``expires_at`` and keeps the epoch; an expired lease cannot be renewed, only
  acquired again (new epoch), because someone else may have held it in between.
- Acquisition takes free or expired partitions with ``FOR UPDATE SKIP LOCKED``, so replicas
  acquiring at once never block one another or take the same partition. Snapshot writes hold a
  share lock on their lease rows, so a takeover waits for in-flight commits to finish.

``PartitionLeases`` keeps the lease set of one owner in memory for the snapshot writer;
``run_lease_keeper`` renews and tops it up in the background.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import attrs
import trio
import trio_asyncio

from workflow_orchestrator.storage._database import Connection, Database
from workflow_orchestrator.storage._errors import OwnerIdInUse

__all__ = [
    "Lease",
    "LeaseSet",
    "PartitionLeases",
    "acquire_partitions",
    "hold_owner_id",
    "partitions_per_owner",
    "release_partitions",
    "renew_partitions",
    "run_lease_keeper",
]

logger = logging.getLogger(__name__)

_RELEASE_TIMEOUT = 5.0
_OWNER_LOCK_ATTEMPTS = 20  # every 0.5 s: 10 s in all

_RENEW = """
UPDATE partition_leases SET expires_at = now() + $2::interval
WHERE owner_id = $1 AND expires_at > now()
RETURNING partition, epoch, expires_at
"""

_ACQUIRE = """
WITH candidates AS (
    SELECT partition FROM partition_leases
    WHERE owner_id IS NULL OR expires_at IS NULL OR expires_at <= now()
    ORDER BY partition
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE partition_leases l
SET owner_id = $1, epoch = l.epoch + 1, expires_at = now() + $2::interval
FROM candidates c
WHERE l.partition = c.partition
RETURNING l.partition, l.epoch, l.expires_at
"""


@attrs.frozen(kw_only=True)
class Lease:
    """One held partition: the epoch it was granted under and when it runs out."""

    partition: int
    epoch: int
    expires_at: datetime


@attrs.frozen(kw_only=True)
class LeaseSet:
    """What one owner holds at one moment: partition -> ``Lease``."""

    owner_id: str
    leases: Mapping[int, Lease] = attrs.field(factory=dict)

    @functools.cached_property
    def partitions(self) -> frozenset[int]:
        """The partitions held (built once: every start asks, ``_creator``)."""
        return frozenset(self.leases)

    def epoch_of(self, partition: int) -> int | None:
        """The epoch under which ``partition`` is held, or None when it is not held."""
        lease = self.leases.get(partition)
        return None if lease is None else lease.epoch


def _lease_set(owner_id: str, rows: Iterable[Any]) -> LeaseSet:
    leases = {
        r["partition"]: Lease(
            partition=r["partition"], epoch=r["epoch"], expires_at=r["expires_at"]
        )
        for r in rows
    }
    return LeaseSet(owner_id=owner_id, leases=dict(sorted(leases.items())))


async def renew_partitions(database: Database, owner_id: str, *, ttl: float) -> LeaseSet:
    """Extend every lease ``owner_id`` still holds by ``ttl`` seconds; returns what it holds.

    A partition missing from the result was lost (expired, perhaps taken over): stop its work.
    """
    rows = await database.run(lambda c: c.fetch(_RENEW, owner_id, timedelta(seconds=ttl)))
    return _lease_set(owner_id, rows)


_MEMBER = """
INSERT INTO cluster_members (owner_id, expires_at) VALUES ($1, now() + $2::interval)
ON CONFLICT (owner_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
"""

_FAIR_SHARE = """
SELECT ceil((SELECT count(*) FROM partition_leases)::numeric
            / greatest((SELECT count(*) FROM cluster_members WHERE expires_at > now()), 1))::int
"""


async def acquire_partitions(
    database: Database, owner_id: str, *, ttl: float, target: int | None = None
) -> LeaseSet:
    """Renew what ``owner_id`` holds, then take free or expired partitions up to ``target``.

    ``target=None`` means a fair share: ``owner_id`` is (re)registered in ``cluster_members``
    and the target is ceil(partitions / live members); partitions held above it are released
    (the highest numbers first), so replicas that join later get theirs at the holders' next
    round instead of when a lease expires. Newly granted partitions get a new epoch. Returns
    the whole set held afterwards; one crossing, one transaction.
    """
    interval = timedelta(seconds=ttl)

    async def work(connection: Connection) -> list[Any]:
        async with connection.transaction():
            held = list(await connection.fetch(_RENEW, owner_id, interval))
            if target is None:
                await connection.execute(_MEMBER, owner_id, interval)
                wanted: int = await connection.fetchval(_FAIR_SHARE)
            else:
                wanted = target
            held.sort(key=lambda r: r["partition"])
            if len(held) > wanted and target is None:
                excess = [r["partition"] for r in held[wanted:]]
                await connection.execute(
                    "UPDATE partition_leases SET owner_id = NULL, expires_at = NULL "
                    "WHERE owner_id = $1 AND partition = ANY($2::int[])",
                    owner_id,
                    excess,
                )
                held = held[:wanted]
            missing = wanted - len(held)
            if missing > 0:
                held.extend(await connection.fetch(_ACQUIRE, owner_id, interval, missing))
            return held

    return _lease_set(owner_id, await database.run(work))


async def release_partitions(
    database: Database, owner_id: str, partitions: Iterable[int] | None = None
) -> frozenset[int]:
    """Give up leases (all when ``partitions`` is None) so others need not wait for expiry.

    Returns the partitions released. Their next owner gets a new epoch.
    """
    chosen = None if partitions is None else sorted(partitions)

    async def work(connection: Connection) -> list[Any]:
        async with connection.transaction():
            if chosen is None:  # leaving: the others' fair share grows at once
                await connection.execute(
                    "DELETE FROM cluster_members WHERE owner_id = $1", owner_id
                )
            rows: list[Any] = await connection.fetch(
                "UPDATE partition_leases SET owner_id = NULL, expires_at = NULL "
                "WHERE owner_id = $1 AND ($2::int[] IS NULL OR partition = ANY($2::int[])) "
                "RETURNING partition",
                owner_id,
                chosen,
            )
            return rows

    rows = await database.run(work)
    return frozenset(r["partition"] for r in rows)


@attrs.define(eq=False)
class PartitionLeases:
    """The lease set of one owner, kept current by ``acquire``/``renew``/``release``.

    The snapshot writer reads ``owner_id`` and ``current()`` from it; the database fences
    anyway, so a stale view can only make a write fail, never let a fenced one through.
    """

    database: Database
    owner_id: str
    ttl: float = 30.0
    target: int | None = None
    _current: LeaseSet = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._current = LeaseSet(owner_id=self.owner_id)

    def current(self) -> LeaseSet:
        """The leases held as of the last acquire/renew/release (no I/O)."""
        return self._current

    def epoch_of(self, partition: int) -> int | None:
        return self._current.epoch_of(partition)

    async def acquire(self) -> LeaseSet:
        self._current = await acquire_partitions(
            self.database, self.owner_id, ttl=self.ttl, target=self.target
        )
        return self._current

    async def renew(self) -> LeaseSet:
        self._current = await renew_partitions(self.database, self.owner_id, ttl=self.ttl)
        return self._current

    async def release(self, partitions: Iterable[int] | None = None) -> frozenset[int]:
        released = await release_partitions(self.database, self.owner_id, partitions)
        self._current = LeaseSet(
            owner_id=self.owner_id,
            leases={p: lease for p, lease in self._current.leases.items() if p not in released},
        )
        return released


async def run_lease_keeper(
    database: Database,
    owner_id: str,
    *,
    ttl: float = 30.0,
    renew_every: float | None = None,
    target: int | None = None,
    task_status: trio.TaskStatus[PartitionLeases] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Hold partitions for ``owner_id`` until cancelled; ``task_status.started(leases)``.

    Acquires up to ``target`` partitions before reporting started, then every ``renew_every``
    seconds (default ``ttl / 3``) renews and tops up. A failed round is logged and retried at the
    next tick; leases lapse only if rounds keep failing for ``ttl``. On cancellation it releases
    its leases (shielded, at most 5 s) so another replica can take over at once.
    """
    leases = PartitionLeases(database=database, owner_id=owner_id, ttl=ttl, target=target)
    period = renew_every if renew_every is not None else ttl / 3
    await leases.acquire()
    task_status.started(leases)
    try:
        while True:
            await trio.sleep(period)
            before = leases.current().partitions
            try:
                with trio.fail_after(max(period, 1.0)):
                    after = (await leases.acquire()).partitions
            except Exception as exc:  # keep trying: one failed round is not yet a lost lease
                logger.warning("lease renewal failed for %s: %s", owner_id, exc)
                continue
            if before - after:
                logger.warning(
                    "lost partition leases",
                    extra={"owner_id": owner_id, "lost": sorted(before - after)},
                )
    finally:
        with trio.move_on_after(_RELEASE_TIMEOUT, shield=True) as scope:
            try:
                await leases.release()
            except Exception as exc:  # the leases expire on their own; do not mask the cause
                logger.warning("releasing partition leases of %s failed: %s", owner_id, exc)
        if scope.cancelled_caught:
            logger.warning("releasing partition leases of %s timed out; they will expire", owner_id)


def _lock_key(owner_id: str) -> int:
    digest = hashlib.sha256(b"workflow-orchestrator owner " + owner_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@asynccontextmanager
async def hold_owner_id(
    database: Database, owner_id: str, *, attempts: int = _OWNER_LOCK_ATTEMPTS
) -> AsyncIterator[None]:
    """Prove, for the whole block, that no other live process uses ``owner_id``.

    A session advisory lock on a dedicated connection: a process that dies loses it at once
    (its connection closes), so a restarted replica keeping its id takes its partitions back
    without waiting for the leases to expire. Raises ``OwnerIdInUse`` if another process holds
    the id now.
    """
    key = _lock_key(owner_id)
    async with database.dedicated() as connection:
        # A process killed a moment ago may still hold it until PostgreSQL notices: retry.
        taken = False
        for _ in range(attempts):
            taken = await trio_asyncio.aio_as_trio(connection.fetchval)(
                "SELECT pg_try_advisory_lock($1)", key
            )
            if taken:
                break
            await trio.sleep(0.5)
        if not taken:
            raise OwnerIdInUse(
                f"another running process already uses replica id {owner_id!r} on this "
                "database; give each replica its own cluster.replicaId (or REPLICA_ID)",
                owner_id=owner_id,
            )
        try:
            yield
        finally:
            with trio.move_on_after(_RELEASE_TIMEOUT, shield=True):
                await trio_asyncio.aio_as_trio(connection.execute)(
                    "SELECT pg_advisory_unlock($1)", key
                )


def partitions_per_owner(partition_count: int, owners: int) -> int:
    """A fair ``target`` for ``owners`` replicas sharing ``partition_count`` partitions."""
    return math.ceil(partition_count / max(owners, 1))
