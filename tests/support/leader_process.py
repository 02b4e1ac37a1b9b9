"""A leader-election candidate in its own OS process that "fires ticks" while it leads.

    python -m tests.support.leader_process <database_url> <candidate_id> <ttl>

It runs a ``LeaderLease`` for the ``schedules`` role and, while ``current()`` says it leads,
inserts one row per 0.2 s slot into the test's ``ticks`` table (``tick`` is the primary key)
inside a transaction whose first statement is ``check_fence``. A tick recorded twice makes the
insert fail (no ``ON CONFLICT``): that is reported, never hidden. Every event is one JSON line
on stdout (``{"event": ..., "at": <unix time>, ...}``): ``started``, ``leader``, ``lost``,
``tick``, ``fenced`` (the fence refused the write), ``write-failed`` (an expected connection
error: a terminated backend, a timeout), ``duplicate`` and ``crash`` (exits with status 3).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import traceback
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import asyncpg
import trio

from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import DatabaseSettings
from workflow_orchestrator.scheduler._leader import LeaderLease, Leadership
from workflow_orchestrator.storage import Database, open_database

SLOT = 0.2  # seconds per tick
WRITE_TIMEOUT = 1.0
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EXPECTED_WRITE_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,  # pg_terminate_backend: AdminShutdownError
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
    OSError,
    trio.TooSlowError,
)

CREATE_TICKS = """
CREATE TABLE ticks (
    tick          timestamptz PRIMARY KEY,
    candidate_id  text        NOT NULL,
    epoch         bigint      NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "at": time.time(), **fields}), flush=True)


def tick_of(slot: int) -> datetime:
    """The moment slot number ``slot`` starts (exact: whole milliseconds)."""
    return _UNIX_EPOCH + timedelta(milliseconds=round(SLOT * 1000) * slot)


async def write_tick(database: Database, leadership: Leadership, slot: int, *, ttl: float) -> bool:
    """Insert the tick of ``slot`` under ``leadership``; False when the fence refused it."""
    tick = tick_of(slot)

    async def work(connection: Any) -> bool:
        async with connection.transaction():
            # A stall with the transaction open must not hold a takeover back for long.
            if not await leadership.fence(connection, idle_timeout=ttl / 3):
                return False
            await connection.execute(
                "INSERT INTO ticks (tick, candidate_id, epoch) VALUES ($1, $2, $3)",
                tick,
                leadership.leader_id,
                leadership.epoch,
            )
            return True

    with trio.fail_after(WRITE_TIMEOUT):
        return await database.run(work)


async def fire_ticks(database: Database, lease: LeaderLease, *, ttl: float) -> None:
    """Once per slot, while leading: record the slot's tick (never the same slot twice)."""
    last_slot: int | None = None
    while True:
        await trio.sleep(max(0.0, (math.floor(time.time() / SLOT) + 1) * SLOT - time.time()))
        slot = math.floor(time.time() / SLOT)
        if last_slot is not None and slot <= last_slot:
            continue
        leadership = lease.current()
        if leadership is None:
            continue
        last_slot = slot
        try:
            written = await write_tick(database, leadership, slot, ttl=ttl)
        except asyncpg.UniqueViolationError as exc:
            emit("duplicate", slot=slot, epoch=leadership.epoch, error=str(exc))
            continue
        except _EXPECTED_WRITE_ERRORS as exc:
            emit("write-failed", slot=slot, epoch=leadership.epoch, error=type(exc).__name__)
            continue
        emit("tick" if written else "fenced", slot=slot, epoch=leadership.epoch)


async def main(url: str, candidate_id: str, ttl: float) -> None:
    settings = DatabaseSettings(url=url, pool_size=3, connect_timeout=5.0)
    async with open_asyncio_bridge(), open_database(settings) as database:

        def changed(leader: bool) -> None:
            held = lease.current()
            emit("leader" if leader else "lost", epoch=held.epoch if held else None)

        lease = LeaderLease(
            database=database, candidate_id=candidate_id, ttl=ttl, on_change=changed
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(lease.run)
            emit("started", pid=os.getpid())
            nursery.start_soon(partial(fire_ticks, database, lease, ttl=ttl))


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    database_url, candidate, lease_ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
    try:
        trio.run(main, database_url, candidate, lease_ttl)
    except Exception as error:
        traceback.print_exc()
        emit("crash", error=f"{type(error).__name__}: {error!r}")
        raise SystemExit(3) from error
