"""The chaos suite's network faults (`tests.support.fault_proxy.FaultProxy`) between a client
and the real PostgreSQL: forwarding, latency, a reset, a half-open network, refusals."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
import trio
import trio_asyncio

from tests.support.fault_proxy import FaultProxy
from tests.support.services import POSTGRES_URL, require_postgres
from workflow_orchestrator.errors import exception_leaves

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def _through(proxy: FaultProxy) -> str:
    parts = urllib.parse.urlsplit(POSTGRES_URL)
    host = (
        f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else f"127.0.0.1:{proxy.port}"
    )
    return urllib.parse.urlunsplit(parts._replace(netloc=host, path="/postgres"))


@asynccontextmanager
async def _proxy_to_postgres(**faults: object) -> AsyncIterator[FaultProxy]:
    require_postgres()
    parts = urllib.parse.urlsplit(POSTGRES_URL)
    proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5432, **faults)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        yield proxy
        nursery.cancel_scope.cancel()


async def _query(url: str, sql: str, seconds: float = 10) -> object:
    """``sql``'s value on a connection of its own through ``url``; asyncpg's own timeouts."""

    async def work() -> object:
        connection = await asyncpg.connect(url, timeout=seconds)
        try:
            return await connection.fetchval(sql, timeout=seconds)
        finally:
            await connection.close(timeout=2)

    async with trio_asyncio.open_loop():
        return await trio_asyncio.aio_as_trio(work)()


async def _failure(url: str, sql: str, seconds: float = 10) -> BaseException:
    """The error ``_query`` ends with (unwrapped from the groups Trio puts it in)."""
    try:
        await _query(url, sql, seconds)
    except BaseException as error:
        leaves = exception_leaves(error) if isinstance(error, BaseExceptionGroup) else [error]
        return leaves[0]
    raise AssertionError(f"{sql} did not fail")


async def test_a_query_goes_through_the_proxy() -> None:
    """With no fault the proxy forwards a PostgreSQL session both ways."""
    async with _proxy_to_postgres() as proxy:
        assert await _query(_through(proxy), "SELECT 41 + 1") == 42
    assert proxy.accepted == 1
    assert proxy.forwarded > 0


async def test_latency_delays_but_does_not_break_a_session() -> None:
    """Added latency: the session still answers, every chunk went through the delay."""
    async with _proxy_to_postgres(latency=0.02) as proxy:
        assert await _query(_through(proxy), "SELECT 'slow but fine'") == "slow but fine"
    assert proxy.forwarded > 0


async def test_a_drop_resets_open_sessions_and_new_ones_work() -> None:
    """``drop`` closes open connections: the session in progress fails, a new one works."""
    async with _proxy_to_postgres() as proxy:
        url = _through(proxy)

        failures: list[BaseException] = []

        async def long_query() -> None:
            failures.append(await _failure(url, "SELECT pg_sleep(30)"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(long_query)
            await proxy.wait_for_traffic(1)
            await trio.sleep(0.3)  # the login is done and the query on its way
            assert proxy.drop() == 1
        assert proxy.connections == 0
        assert isinstance(failures[0], asyncpg.ConnectionDoesNotExistError | ConnectionError)
        assert await _query(url, "SELECT 'again'") == "again"


async def test_a_half_open_network_hangs_a_session_until_its_timeout() -> None:
    """``blackhole``: the connection stays open and nothing comes back, so the client's own
    timeout is what ends the wait (the service must have one on every database call)."""
    async with _proxy_to_postgres(blackhole=True) as proxy:
        failure = await _failure(_through(proxy), "SELECT 1", seconds=1)
        assert isinstance(failure, TimeoutError), repr(failure)
        assert proxy.accepted == 1
        assert proxy.forwarded == 0  # the login itself never got through
        proxy.blackhole = False
        assert await _query(_through(proxy), "SELECT 'back'") == "back"


async def test_refused_connections_close_at_once() -> None:
    """``refuse``: a new connection is closed as soon as it is accepted."""
    async with _proxy_to_postgres(refuse=True) as proxy:
        failure = await _failure(_through(proxy), "SELECT 1", seconds=5)
        assert isinstance(failure, ConnectionError), repr(failure)
    assert proxy.accepted >= 1
    assert proxy.forwarded == 0
