"""PostgreSQL access: asyncpg pools living on the trio-asyncio loop, reached from Trio.

asyncpg is an asyncio library. Every public method here crosses the Trio->asyncio bridge exactly
once (~0.1 ms of CPU a crossing), so callers pass a whole unit of work (``run(work)``, where
``work`` is an asyncio coroutine function taking a connection) rather than one query at a time.
Only Trio-friendly values (records, numbers, frozen attrs) come back out.

Invariants: the pools are opened and closed by ``open_database`` only; closing happens in a
shielded, bounded scope so a cancelled service still releases its connections. Writes, and every
read that must see this process's own writes, use the primary; only work passed with
``read_only=True`` may go to a read replica (see ``_replicas`` for which one and when).

The API's reads use ``Database.api_reads()``: the same primary and replicas, but its own small
pool (``database.apiPoolSize``) whose connections carry ``statement_timeout``
(``database.apiStatementTimeout``), so slow or abusive reads cannot take the connections the
snapshot writer and the instances need. A read past the timeout, or one that waits that long for
a connection, raises ``ReadTimedOut``.

Timing: with ``observe_work(observe)``, every unit of work of ``run`` (and of the API view) is
reported as ``observe(pool, seconds)``: the pool that ran it (``primary``, ``api``, or the
replica's name) and the time from asking for a connection to the end of the work, seen from
Trio (the bridge crossing included), also when the work raised. A cancelled unit is not
reported.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import asyncpg
import attrs
import trio
import trio_asyncio

from workflow_orchestrator.config import DatabaseLocation, DatabaseSettings, parse_database_url
from workflow_orchestrator.storage._errors import ReadTimedOut
from workflow_orchestrator.storage._pools import (
    CONNECTION_ERRORS,
    Connection,
    PoolStatistics,
    close_pool,
    create_pool,
    describe_connect_error,
    endpoint_label,
    pool_statistics,
)
from workflow_orchestrator.storage._replicas import (
    PRIMARY,
    ReadStatistics,
    Replica,
    ReplicaSet,
)

__all__ = [
    "Connection",
    "Database",
    "PoolStatistics",
    "describe_connect_error",
    "open_database",
    "primary_location",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[Connection], Awaitable[T]]

_CLOSE_TIMEOUT = 5.0
_FALLBACK: Any = object()  # "run it on the primary instead"


async def _reset_or_terminate(connection: Connection) -> None:
    """Clear the session state (advisory locks, settings, cursors, listens) of ``connection``
    before it goes back to the pool; terminate it if that fails or is cancelled."""
    try:
        await connection.reset()
    except BaseException:
        connection.terminate()
        raise


@attrs.define(eq=False)
class Database:
    """A primary pool and the read replicas' pools.

    Use ``run`` for a unit of work on one connection, ``run_in_transaction`` for one transaction;
    ``read_only=True`` lets the work go to a healthy replica when ``readPreference`` is
    ``PREFER_REPLICA``. Replica health is known only while ``run_replica_checks`` runs (the
    service's storage part runs it); without it every read uses the primary.
    """

    location: DatabaseLocation
    _primary: Any
    _primary_max_size: int
    _replicas: ReplicaSet
    _read_preference: str = "PRIMARY"
    _api: Database | None = None
    # Set on the API view only: the wait for a connection, and what a timeout says.
    _read_timeout: float | None = None
    # The ``pool`` of this view's own units ("primary", or "api" for the API view).
    _pool_name: str = PRIMARY
    _observe: Callable[[str, float], None] | None = None

    def observe_work(self, observe: Callable[[str, float], None] | None) -> None:
        """Report every unit of work of this database and its API view to ``observe(pool,
        seconds)`` (None: stop); it is called on the Trio side and must not block."""
        self._observe = observe
        if self._api is not None:
            self._api.observe_work(observe)

    def api_reads(self) -> Database:
        """The view the API reads through (see the module docstring); ``self`` when this
        database was opened without an API pool."""
        return self._api if self._api is not None else self

    async def run(
        self, work: Work[T], *, read_only: bool = False, session_state: bool = False
    ) -> T:
        """Run ``work(connection)`` on the asyncio loop with a pooled connection: one crossing.

        ``read_only`` work goes to a healthy replica (in turn) when ``readPreference`` is
        ``PREFER_REPLICA``, and runs again on the primary when that replica cannot be reached
        (the replica is then marked down), when the replica answers with an error (a conflict
        with recovery, a migration not replayed yet), or when the work raises ``LookupError``
        (``DefinitionNotFound``, ``InstanceNotFound``): what was created moments ago may not be
        replayed yet, so a miss is confirmed on the primary. Read-only work must be safe to run
        twice.

        Work that leaves session state behind (a session advisory lock, ``SET``, a cursor,
        ``LISTEN``) must pass ``session_state=True``: releasing a pooled connection does not
        reset the session (see ``_pools._keep_session``), so this one is reset in full afterwards.
        """
        replica = self._replicas.choose() if read_only else None
        pool = self._pool_name

        async def unit() -> T:
            nonlocal pool
            if replica is not None:
                result = await self._on_replica(replica, work)
                if result is not _FALLBACK:
                    pool = replica.name
                    return cast(T, result)
            if read_only:
                self._replicas.primary_reads += 1
            async with self._primary.acquire(timeout=self._read_timeout) as connection:
                if not session_state:
                    return await work(connection)
                try:
                    return await work(connection)
                finally:
                    await _reset_or_terminate(connection)

        crossing = unit if self._read_timeout is None else self._timed(unit)
        observe = self._observe
        if observe is None:
            result: T = await trio_asyncio.aio_as_trio(crossing)()
            return result
        started = time.perf_counter()
        try:
            timed: T = await trio_asyncio.aio_as_trio(crossing)()
        except Exception:
            observe(pool, time.perf_counter() - started)
            raise
        observe(pool, time.perf_counter() - started)
        return timed

    def _timed(self, unit: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """``unit`` raising ``ReadTimedOut`` for a statement timeout or a pool wait that ran
        out (asyncio side)."""
        timeout = self._read_timeout or 0.0

        async def timed() -> T:
            try:
                return await unit()
            except (TimeoutError, asyncpg.QueryCanceledError) as exc:
                raise ReadTimedOut(
                    f"the read did not finish within database.apiStatementTimeout "
                    f"({timeout:g}s), or waited that long for a connection of the API pool "
                    "(database.apiPoolSize); retry later, narrow the request (filters, a "
                    "smaller limit), or raise those settings",
                    timeout=timeout,
                ) from exc

        return timed

    async def _on_replica(self, replica: Replica, work: Work[T]) -> Any:
        """``work``'s result on ``replica``, or ``_FALLBACK`` (asyncio side)."""
        try:
            connection = await replica.pool.acquire()
        except Exception as exc:  # any failure to get a replica connection: read elsewhere
            self._replicas.mark_down(replica, describe_connect_error(exc))
            return _FALLBACK
        try:
            result = await work(connection)
        except CONNECTION_ERRORS as exc:
            self._replicas.mark_down(replica, describe_connect_error(exc))
            return _FALLBACK
        except asyncpg.PostgresError as exc:
            # A conflict with recovery cancelled it, or the replica has not replayed the latest
            # migration yet (an undefined table or column): the primary answers correctly.
            logger.info("read on %s failed (%s); reading from the primary", replica.name, exc)
            return _FALLBACK
        except LookupError:
            return _FALLBACK
        finally:
            # A reset that fails on release has terminated the connection: nothing to do.
            with contextlib.suppress(*CONNECTION_ERRORS):
                await replica.pool.release(connection)
        replica.reads += 1
        return result

    async def run_in_transaction(self, work: Work[T]) -> T:
        """Run ``work(connection)`` inside one transaction on the primary: one crossing."""

        async def unit(connection: Connection) -> T:
            async with connection.transaction():
                return await work(connection)

        return await self.run(unit)

    @asynccontextmanager
    async def dedicated(self) -> AsyncIterator[Connection]:
        """A primary connection kept for the whole block (for session state such as an
        advisory lock); use it with ``trio_asyncio.aio_as_trio``. Released shielded."""
        connection = await trio_asyncio.aio_as_trio(self._primary.acquire)()

        async def release() -> None:
            try:
                await _reset_or_terminate(connection)
            finally:
                await self._primary.release(connection)

        try:
            yield connection
        finally:
            # A reset that fails or is cut short terminates the connection: its session (and
            # its advisory locks) is never handed to another user of the pool.
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await trio_asyncio.aio_as_trio(release)()

    async def fetch(self, sql: str, *args: object, read_only: bool = False) -> list[Any]:
        """All rows of one query."""
        return await self.run(lambda c: c.fetch(sql, *args), read_only=read_only)

    async def fetchval(self, sql: str, *args: object, read_only: bool = False) -> Any:
        """The first column of the first row of one query."""
        return await self.run(lambda c: c.fetchval(sql, *args), read_only=read_only)

    async def execute(self, sql: str, *args: object) -> str:
        """Run one statement on the primary; returns its status tag."""
        result: str = await self.run(lambda c: c.execute(sql, *args))
        return result

    async def ping(self) -> float:
        """Round-trip time of ``SELECT 1`` on the primary, in seconds."""
        started = time.perf_counter()
        await self.fetchval("SELECT 1")
        return time.perf_counter() - started

    async def run_replica_checks(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Check the replicas now, report readiness, then every ``replicaCheckInterval``;
        runs until cancelled (returns at once when there are none). Reads use a replica only
        while this runs: start it in the nursery of the part that owns the database."""
        if not self._replicas.replicas:
            task_status.started()
            return
        await self._replicas.run(task_status=task_status)

    def statistics(self) -> PoolStatistics:
        """The primary pool's current size and use (no I/O)."""
        return pool_statistics(self._primary, self._primary_max_size)

    def all_statistics(self) -> dict[str, PoolStatistics]:
        """Every pool by name: ``primary``, ``api``, ``replica-0``, ``replica-1``, ... (no I/O)."""
        pools = {PRIMARY: self.statistics()}
        if self._api is not None:
            pools["api"] = self._api.statistics()
        pools.update({r.name: pool_statistics(r.pool, r.max_size) for r in self._replicas.replicas})
        return pools

    def read_statistics(self) -> ReadStatistics:
        """Replica health, where reads go now and where they went (no I/O)."""
        return self._replicas.statistics(self._read_preference)


def primary_location(settings: DatabaseSettings) -> DatabaseLocation:
    """The primary's location with ``database.username``/``password`` applied."""
    location = parse_database_url(settings.primary_url)
    return location.with_credentials(settings.username or None, settings.password or None)


@asynccontextmanager
async def open_database(
    settings: DatabaseSettings, *, location: DatabaseLocation | None = None
) -> AsyncIterator[Database]:
    """Open the pools (must run inside ``trio_asyncio.open_loop()``) and close them on exit.

    ``location`` overrides ``database.url`` (the embedded database passes its own). Raises
    ``DatabaseUnavailable`` when the primary cannot be reached. Replica pools connect on first
    use, so a replica that is down does not stop this; its reads go to the primary.
    """
    location = location or primary_location(settings)
    primary = await create_pool(
        location, max_size=settings.primary_pool_size, connect_timeout=settings.connect_timeout
    )
    replicas: list[Replica] = []
    api_pool: Any = None
    try:
        api_pool = await create_pool(
            location,
            max_size=settings.api_pool_size,
            connect_timeout=settings.connect_timeout,
            min_size=0,
            statement_timeout=settings.api_statement_timeout,
            application_name="workflow-orchestrator-api",
        )
        for index, endpoint in enumerate(settings.replica_endpoints):
            where = parse_database_url(endpoint.url).with_credentials(
                settings.username or None, settings.password or None
            )
            max_size = endpoint.pool_size or settings.pool_size
            pool = await create_pool(
                where, max_size=max_size, connect_timeout=settings.connect_timeout, min_size=0
            )
            replicas.append(
                Replica(
                    name=f"replica-{index}",
                    endpoint=endpoint_label(where),
                    pool=pool,
                    max_size=max_size,
                )
            )
        replica_set = ReplicaSet(
            replicas=replicas,
            prefer_replica=settings.read_preference == "PREFER_REPLICA",
            max_lag=settings.max_replica_lag,
            check_interval=settings.replica_check_interval,
            check_timeout=settings.connect_timeout,
        )
        api = Database(
            location=location,
            primary=api_pool,
            primary_max_size=settings.api_pool_size,
            replicas=replica_set,
            read_preference=settings.read_preference,
            read_timeout=settings.api_statement_timeout,
            pool_name="api",
        )
        yield Database(
            location=location,
            primary=primary,
            primary_max_size=settings.primary_pool_size,
            replicas=replica_set,
            read_preference=settings.read_preference,
            api=api,
        )
    finally:
        for pool in (*(r.pool for r in replicas), api_pool, primary):
            if pool is not None:
                await close_pool(pool)
