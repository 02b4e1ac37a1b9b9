"""PostgreSQL access: asyncpg pools living on the trio-asyncio loop, reached from Trio.

asyncpg is an asyncio library. Every public method here crosses the Trio->asyncio bridge exactly
once (~0.1 ms of CPU a crossing), so callers pass a whole unit of work (``run(work)``, where
``work`` is an asyncio coroutine function taking a connection) rather than one query at a time.
Only Trio-friendly values (records, numbers, frozen attrs) come back out.

Invariants: the pools are opened and closed by ``open_database`` only; closing happens in a
shielded, bounded scope so a cancelled service still releases its connections.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import attrs
import trio
import trio_asyncio

from workflow_orchestrator.config import DatabaseLocation, DatabaseSettings, parse_database_url
from workflow_orchestrator.storage._errors import DatabaseUnavailable

__all__ = [
    "Database",
    "PoolStatistics",
    "describe_connect_error",
    "open_database",
    "primary_location",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Connection = Any  # asyncpg.Connection; asyncpg ships no type hints
Work = Callable[[Connection], Awaitable[T]]

_CLOSE_TIMEOUT = 5.0


@attrs.frozen(kw_only=True)
class PoolStatistics:
    """A snapshot of one connection pool: connections open, in use, and the configured maximum."""

    size: int
    used: int
    max_size: int


async def _init_connection(connection: Connection) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(connection: Connection) -> None:
    """The pool's reset on release: nothing beyond asyncpg's own (which rolls back an open
    transaction and drops listeners).

    asyncpg's default sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on
    every release: one more round trip and one more transaction for every ``Database.run``,
    a third of the transactions of starting an instance. Pooled work leaves no session state
    behind: it sets no session settings, opens no cursors, listens to nothing and takes no
    session advisory lock. Work that does (``migrate``, ``dedicated``) passes
    ``session_state=True``/resets itself, and its connection is reset in full (or terminated)
    before the pool gets it back.
    """


async def _reset_or_terminate(connection: Connection) -> None:
    """Clear the session state (advisory locks, settings, cursors, listens) of ``connection``
    before it goes back to the pool; terminate it if that fails or is cancelled."""
    try:
        await connection.reset()
    except BaseException:
        connection.terminate()
        raise


_CONNECTION_ERRORS = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
)


def describe_connect_error(exc: BaseException) -> str:
    """A short, password-free reason for a failed connection attempt."""
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return "the server refused the login (wrong user name or password)"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "the database does not exist (create it, or fix the database name in the URL)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is PostgreSQL running and listening on that host and port?)"
    if isinstance(exc, TimeoutError | trio.TooSlowError):
        return "no answer within the connect timeout"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    detail = str(exc).strip()
    return (
        f"{type(exc).__name__}: {detail}" if detail else f"{type(exc).__name__} (no detail given)"
    )


@attrs.define(eq=False)
class Database:
    """A primary pool and optional read-replica pools.

    Use ``run`` for a unit of work on one connection, ``run_in_transaction`` for one transaction;
    ``read_only=True`` routes to a replica when ``readPreference`` is ``PREFER_REPLICA``.
    """

    location: DatabaseLocation
    _primary: Any
    _replicas: Sequence[Any]
    _prefer_replica: bool
    _max_size: int
    _replica_turn: int = -1

    async def run(
        self, work: Work[T], *, read_only: bool = False, session_state: bool = False
    ) -> T:
        """Run ``work(connection)`` on the asyncio loop with a pooled connection: one crossing.

        ``read_only`` work goes to the replicas in turn when ``readPreference`` is
        ``PREFER_REPLICA``; if the replica's connection fails, it runs again on the primary.
        Work that leaves session state behind (a session advisory lock, ``SET``, a cursor,
        ``LISTEN``) must pass ``session_state=True``: releasing a pooled connection does not
        reset the session (see ``_keep_session``), so this one is reset in full afterwards.
        """
        replica = self._next_replica() if read_only else None

        async def unit() -> T:
            if replica is not None:
                try:
                    connection = await replica.acquire()
                except Exception as exc:  # any failure to get a replica connection
                    logger.warning(
                        "read replica unavailable (%s); reading from the primary",
                        describe_connect_error(exc),
                    )
                else:
                    try:
                        return await work(connection)
                    except _CONNECTION_ERRORS as exc:
                        logger.warning(
                            "read replica connection failed (%s); reading from the primary",
                            describe_connect_error(exc),
                        )
                    finally:
                        await replica.release(connection)
            async with self._primary.acquire() as connection:
                if not session_state:
                    return await work(connection)
                try:
                    return await work(connection)
                finally:
                    await _reset_or_terminate(connection)

        result: T = await trio_asyncio.aio_as_trio(unit)()
        return result

    def _next_replica(self) -> Any:
        if not (self._prefer_replica and self._replicas):
            return None
        self._replica_turn = (self._replica_turn + 1) % len(self._replicas)
        return self._replicas[self._replica_turn]

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

    def statistics(self) -> PoolStatistics:
        """The primary pool's current size and use (no I/O)."""
        return self._pool_statistics(self._primary)

    def all_statistics(self) -> dict[str, PoolStatistics]:
        """Every pool by name: ``primary``, ``replica-0``, ``replica-1``, ... (no I/O)."""
        pools = {"primary": self._primary}
        pools.update({f"replica-{i}": pool for i, pool in enumerate(self._replicas)})
        return {name: self._pool_statistics(pool) for name, pool in pools.items()}

    def _pool_statistics(self, pool: Any) -> PoolStatistics:
        size = pool.get_size()
        return PoolStatistics(size=size, used=size - pool.get_idle_size(), max_size=self._max_size)


async def _create_pool(
    location: DatabaseLocation, settings: DatabaseSettings, max_size: int
) -> Any:
    async def create() -> Any:
        return await asyncpg.create_pool(
            location.dsn(),
            min_size=1,
            max_size=max_size,
            timeout=settings.connect_timeout,
            command_timeout=None,
            init=_init_connection,
            reset=_keep_session,
            server_settings={"application_name": "workflow-orchestrator"},
        )

    try:
        with trio.fail_after(settings.connect_timeout + 1.0):
            return await trio_asyncio.aio_as_trio(create)()
    except (OSError, asyncpg.PostgresError, TimeoutError, trio.TooSlowError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {location.display()}: {describe_connect_error(exc)}",
            database=location.display(),
        ) from exc


async def _close_pool(pool: Any) -> None:
    with trio.move_on_after(_CLOSE_TIMEOUT, shield=True) as scope:
        await trio_asyncio.aio_as_trio(pool.close)()
    if scope.cancelled_caught:
        logger.warning("database pool did not close within %.0fs; terminating it", _CLOSE_TIMEOUT)
        pool.terminate()


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
    ``DatabaseUnavailable`` when the primary cannot be reached; an unreachable replica is logged
    and reads fall back to the primary.
    """
    location = location or primary_location(settings)
    primary = await _create_pool(location, settings, settings.pool_size)
    replicas: list[Any] = []
    try:
        for url in settings.replica_urls:
            replica = parse_database_url(url).with_credentials(
                settings.username or None, settings.password or None
            )
            try:
                replicas.append(await _create_pool(replica, settings, settings.pool_size))
            except DatabaseUnavailable as exc:
                logger.warning("read replica unavailable, reads use the primary: %s", exc)
        yield Database(
            location=location,
            primary=primary,
            replicas=replicas,
            prefer_replica=settings.read_preference == "PREFER_REPLICA",
            max_size=settings.pool_size,
        )
    finally:
        for pool in (*replicas, primary):
            await _close_pool(pool)
