"""Finding and terminating another OS process's PostgreSQL backends, and polling for a state."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

import trio

from workflow_orchestrator.storage import Database


def backend_ports(pid: int) -> set[int]:
    """Local TCP ports of the sockets process ``pid`` holds open (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def process_backends(admin: Database, pid: int) -> set[int]:
    """Server pids of process ``pid``'s connections to ``admin``'s database (not ``admin``'s)."""
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND client_port = ANY($1::int[])",
        sorted(backend_ports(pid)),
    )
    return {row["pid"] for row in rows}


async def terminate(admin: Database, pids: Iterable[int]) -> int:
    """``pg_terminate_backend`` each of ``pids``; returns how many it terminated."""
    terminated: int = await admin.fetchval(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM unnest($1::int[]) pid",
        sorted(pids),
    )
    return terminated


async def db_now(admin: Database) -> datetime:
    """The database server's clock (``clock_timestamp()``)."""
    moment: datetime = await admin.fetchval("SELECT clock_timestamp()")
    return moment


async def wait_for(
    probe: Callable[[], Awaitable[Any]], within: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``probe`` until it returns something truthy; fails after ``within`` seconds."""
    with trio.move_on_after(within):
        while True:
            found = await probe()
            if found:
                return found
            await trio.sleep(interval)
    raise AssertionError(f"not within {within}s: {what}")
