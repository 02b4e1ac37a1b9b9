"""asyncpg connection pools: how they are created, closed and described.

Shared by the primary (``_database``) and the read replicas (``_replicas``). A primary pool opens
one connection at creation, so a wrong URL or password fails startup; a replica pool opens none
(``min_size=0``), so a replica that is down at startup only shows as ``down`` until it answers.
Closing happens in a shielded, bounded scope so a cancelled service still releases its
connections.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg
import attrs
import trio
import trio_asyncio

from workflow_orchestrator.config import DatabaseLocation
from workflow_orchestrator.storage._errors import DatabaseUnavailable
from workflow_orchestrator.storage._json_codec import decode_json

__all__ = [
    "CONNECTION_ERRORS",
    "Connection",
    "PoolStatistics",
    "close_pool",
    "create_pool",
    "describe_connect_error",
    "endpoint_label",
    "pool_statistics",
]

logger = logging.getLogger(__name__)

Connection = Any  # asyncpg.Connection; asyncpg ships no type hints

_CLOSE_TIMEOUT = 5.0

#: Errors that mean "this connection (or server) is gone", not "this query is wrong".
CONNECTION_ERRORS = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
)


@attrs.frozen(kw_only=True)
class PoolStatistics:
    """A snapshot of one connection pool: connections open, in use, and the configured maximum."""

    size: int
    used: int
    max_size: int


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


def endpoint_label(location: DatabaseLocation) -> str:
    """``host:port/database``: names a server in health reports, with no user or password."""
    host = f"[{location.host}]" if ":" in location.host else location.host
    return f"{host}:{location.port}/{location.database}"


async def _init_connection(connection: Connection) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=json.dumps, decoder=decode_json, schema="pg_catalog"
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


async def create_pool(
    location: DatabaseLocation,
    *,
    max_size: int,
    connect_timeout: float,
    min_size: int = 1,
    statement_timeout: float | None = None,
    application_name: str = "workflow-orchestrator",
) -> Any:
    """An asyncpg pool of at most ``max_size`` connections holding ``min_size`` open.

    With ``min_size=1`` the first connection is opened now: raises ``DatabaseUnavailable``
    (naming the server, never the password) when that fails within ``connect_timeout``.
    ``statement_timeout`` (seconds) is set on every connection of the pool as it connects.
    """
    server_settings = {"application_name": application_name}
    if statement_timeout is not None:
        server_settings["statement_timeout"] = str(max(1, round(statement_timeout * 1000)))

    async def create() -> Any:
        return await asyncpg.create_pool(
            location.dsn(),
            min_size=min_size,
            max_size=max_size,
            timeout=connect_timeout,
            command_timeout=None,
            init=_init_connection,
            reset=_keep_session,
            server_settings=server_settings,
        )

    try:
        with trio.fail_after(connect_timeout + 1.0):
            return await trio_asyncio.aio_as_trio(create)()
    except (OSError, asyncpg.PostgresError, TimeoutError, trio.TooSlowError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {location.display()}: {describe_connect_error(exc)}",
            database=location.display(),
        ) from exc


async def close_pool(pool: Any) -> None:
    """Close ``pool`` gracefully within a few seconds (shielded), else terminate it."""
    with trio.move_on_after(_CLOSE_TIMEOUT, shield=True) as scope:
        await trio_asyncio.aio_as_trio(pool.close)()
    if scope.cancelled_caught:
        logger.warning("database pool did not close within %.0fs; terminating it", _CLOSE_TIMEOUT)
        pool.terminate()


def pool_statistics(pool: Any, max_size: int) -> PoolStatistics:
    """The current size and use of ``pool`` (no I/O)."""
    size: int = pool.get_size()
    return PoolStatistics(size=size, used=size - pool.get_idle_size(), max_size=max_size)
