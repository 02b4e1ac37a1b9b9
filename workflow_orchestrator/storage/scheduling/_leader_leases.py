"""Leader leases (``leader_leases``): one row per elected role, with a fencing epoch.

The row names the leader, an ``epoch`` and an ``expires_at`` (the database's clock). A grant
(``acquire_leadership``) raises the epoch by one, also for the previous leader; a renewal
(``renew_leadership``) extends an unexpired lease and keeps the epoch; ``release_leadership``
frees it at once. ``check_fence`` is the first statement of every write of a leader: it
share-locks the row until the write's transaction ends, so a takeover (an ``UPDATE`` of the row)
waits for the writes in flight and refuses the ones after it. The election's rules (when to
renew, how long to trust a grant locally) are the scheduler's (``scheduler/_leader.py``).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import attrs

from workflow_orchestrator.storage._database import Connection, Database

__all__ = [
    "Fence",
    "LeaderGrant",
    "LeaderObservation",
    "acquire_leadership",
    "check_fence",
    "release_leadership",
    "renew_leadership",
]

Fence = Callable[[Connection], Awaitable[bool]]
"""A write transaction's first statement (asyncio side): False when the writer was fenced."""

_ACQUIRE = """
UPDATE leader_leases
SET leader_id = $2, epoch = epoch + 1, expires_at = now() + $3::interval, changed_at = now()
WHERE role = $1
  AND (leader_id IS NULL OR expires_at IS NULL OR expires_at <= now() OR leader_id = $2)
RETURNING epoch, changed_at
"""

_OBSERVE = """
SELECT leader_id, epoch, extract(epoch FROM expires_at - now())::float8 AS remaining
FROM leader_leases WHERE role = $1
"""

_CREATE_ROLE = "INSERT INTO leader_leases (role) VALUES ($1) ON CONFLICT (role) DO NOTHING"

_RENEW = """
UPDATE leader_leases SET expires_at = now() + $4::interval
WHERE role = $1 AND leader_id = $2 AND epoch = $3 AND expires_at > now()
RETURNING epoch
"""

_RELEASE = """
UPDATE leader_leases SET leader_id = NULL, expires_at = NULL, changed_at = now()
WHERE role = $1 AND leader_id = $2 AND epoch = $3
"""

_FENCE = """
SELECT 1 FROM leader_leases
WHERE role = $1 AND leader_id = $2 AND epoch = $3 AND expires_at > now()
FOR SHARE
"""

_FENCE_LIMITED = """
SELECT set_config('idle_in_transaction_session_timeout', $4, true) FROM leader_leases
WHERE role = $1 AND leader_id = $2 AND epoch = $3 AND expires_at > now()
FOR SHARE
"""


@attrs.frozen(kw_only=True)
class LeaderGrant:
    """The role was granted: its new fencing ``epoch`` and when the database granted it."""

    epoch: int
    granted_at: datetime


@attrs.frozen(kw_only=True)
class LeaderObservation:
    """The role was not granted: who holds it (None when nobody), under which epoch, and the
    seconds its lease has left by the database's clock (None when it is free)."""

    leader_id: str | None
    epoch: int
    remaining: float | None


async def acquire_leadership(
    database: Database, role: str, candidate_id: str, ttl: float
) -> LeaderGrant | LeaderObservation | None:
    """Grant ``role`` to ``candidate_id`` for ``ttl`` seconds when it is free, expired or held
    by ``candidate_id`` (new epoch either way), creating the role's row on first use; else what
    holds it. None only when the row vanished between the statements. One crossing."""
    interval = timedelta(seconds=ttl)

    async def work(connection: Connection) -> LeaderGrant | LeaderObservation | None:
        granted = await connection.fetchrow(_ACQUIRE, role, candidate_id, interval)
        if granted is not None:
            return LeaderGrant(epoch=granted["epoch"], granted_at=granted["changed_at"])
        seen = await connection.fetchrow(_OBSERVE, role)
        if seen is None:  # a role without its row yet: create it, then try again
            await connection.execute(_CREATE_ROLE, role)
            granted = await connection.fetchrow(_ACQUIRE, role, candidate_id, interval)
            if granted is not None:
                return LeaderGrant(epoch=granted["epoch"], granted_at=granted["changed_at"])
            seen = await connection.fetchrow(_OBSERVE, role)
        if seen is None:
            return None
        return LeaderObservation(
            leader_id=seen["leader_id"], epoch=seen["epoch"], remaining=seen["remaining"]
        )

    return await database.run(work)


async def renew_leadership(
    database: Database, role: str, candidate_id: str, epoch: int, ttl: float
) -> bool:
    """Extend ``candidate_id``'s unexpired lease of ``role`` under ``epoch`` to ``ttl`` seconds
    from now; False when it expired or was taken over (then nothing changed). One statement."""
    renewed = await database.fetchval(_RENEW, role, candidate_id, epoch, timedelta(seconds=ttl))
    return renewed is not None


async def release_leadership(database: Database, role: str, candidate_id: str, epoch: int) -> None:
    """Free ``role`` if ``candidate_id`` still holds it under ``epoch``; one statement."""
    await database.execute(_RELEASE, role, candidate_id, epoch)


async def check_fence(
    connection: Connection,
    role: str,
    leader_id: str,
    epoch: int,
    *,
    idle_timeout: float | None = None,
) -> bool:
    """True when ``leader_id`` still holds ``role`` under ``epoch``; False when fenced.

    Call it on the asyncio side (inside ``Database.run`` work), INSIDE the caller's transaction,
    as its first statement, and roll back when it returns False. It share-locks the lease row
    until the transaction ends, so a takeover waits for this write and every write after the
    takeover sees the new epoch and is refused.

    ``idle_timeout`` (seconds) sets ``idle_in_transaction_session_timeout`` for this transaction:
    if the process stalls with the transaction open, PostgreSQL ends the session after that long
    and the row lock no longer holds a takeover back (the stalled write is rolled back).
    """
    if idle_timeout is None:
        row = await connection.fetchrow(_FENCE, role, leader_id, epoch)
    else:
        milliseconds = f"{max(1, math.ceil(idle_timeout * 1000))}ms"
        row = await connection.fetchrow(_FENCE_LIMITED, role, leader_id, epoch, milliseconds)
    return row is not None
