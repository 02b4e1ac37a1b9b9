"""`ConnectionPool` with stand-in connections: caps, first-come first-served waiters,
cancellation, eviction and expiry (no sockets; the integration tests use real servers)."""

from __future__ import annotations

from typing import cast

import pytest
import trio
import trio.testing

from workflow_orchestrator.adapters._http_connection import HttpConnection, Origin
from workflow_orchestrator.adapters._http_pool import ConnectionPool

A = Origin("http", "a.example", 80)
B = Origin("http", "b.example", 80)


class _Fake:
    """What the pool uses of an `HttpConnection`."""

    def __init__(self, origin: Origin, number: int) -> None:
        self.origin = origin
        self.number = number
        self.exchanges = 0
        self.idle_since = 0.0
        self.closed = False
        self.server_closed = False

    def looks_closed(self) -> bool:
        return self.server_closed

    def close(self) -> None:
        self.closed = True


def _pool(**options: float) -> tuple[ConnectionPool, list[_Fake]]:
    opened: list[_Fake] = []

    async def connect(origin: Origin) -> HttpConnection:
        await trio.lowlevel.checkpoint()
        opened.append(_Fake(origin, len(opened) + 1))
        return cast(HttpConnection, opened[-1])

    return ConnectionPool(connect, **options), opened  # type: ignore[arg-type]


def _number(connection: HttpConnection) -> int:
    return cast(_Fake, connection).number


async def test_waiters_are_served_first_come_first_served() -> None:
    """At the total cap, a connection given back goes to the first waiter: for its own origin
    directly, for another origin as a place (the connection is closed for it)."""
    pool, opened = _pool(max_connections=1)
    first = await pool.acquire(A)
    served: list[str] = []

    async def wait(name: str, origin: Origin) -> None:
        connection = await pool.acquire(origin)
        served.append(f"{name}:{_number(connection)}")
        await trio.sleep(0.01)
        pool.release(connection, reusable=True)

    async with trio.open_nursery() as nursery:
        for name, origin in (("b1", B), ("a1", A), ("b2", B)):
            nursery.start_soon(wait, name, origin)
            await trio.testing.wait_all_tasks_blocked()
        pool.release(first, reusable=True)
    assert served == ["b1:2", "a1:3", "b2:4"]
    assert [fake.closed for fake in opened] == [True, True, True, False]
    assert pool.open_connections == 1


async def test_a_connection_given_back_goes_to_a_waiter_for_its_origin() -> None:
    """Under the per-origin cap, a waiter for the origin gets the connection itself."""
    pool, opened = _pool(max_per_origin=1)
    first = await pool.acquire(A)
    got: list[HttpConnection] = []

    async def wait() -> None:
        got.append(await pool.acquire(A))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        pool.release(first, reusable=True)
    assert got == [first]
    assert len(opened) == 1


async def test_a_cancelled_waiter_leaves_no_trace() -> None:
    """A waiter cancelled before it is served is forgotten; one cancelled after is served
    back to the pool, so no place leaks either way."""
    pool, _ = _pool(max_connections=1)
    first = await pool.acquire(A)
    with trio.move_on_after(0.01):
        await pool.acquire(B)
    pool.release(first, reusable=True)
    assert (pool.open_connections, pool.idle_connections) == (1, 1)
    # Served (given a place) and cancelled at once: the place is given back.
    first = await pool.acquire(A)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pool.acquire, B)
        await trio.testing.wait_all_tasks_blocked()
        pool.release(first, reusable=True)
        nursery.cancel_scope.cancel()
    assert (pool.open_connections, pool.idle_connections) == (0, 0)


async def test_a_failed_connect_gives_its_place_back() -> None:
    """A connect that fails frees its place for the next caller."""

    async def refuse(origin: Origin) -> HttpConnection:
        await trio.lowlevel.checkpoint()
        raise OSError("no")

    pool = ConnectionPool(refuse, max_connections=1)
    for _ in range(3):
        with pytest.raises(OSError, match="no"):
            await pool.acquire(A)
    assert pool.open_connections == 0


async def test_expired_closed_and_unusable_connections_are_not_reused(
    mock_clock: trio.testing.MockClock,
) -> None:
    """An idle connection past its expiry, or one the server closed, is replaced; one given
    back as not reusable is closed at once."""
    pool, opened = _pool(idle_expiry=10)
    connection = await pool.acquire(A)
    pool.release(connection, reusable=True)
    mock_clock.jump(11)
    assert _number(await pool.acquire(A)) == 2
    assert opened[0].closed
    pool.release(opened[1], reusable=True)  # type: ignore[arg-type]
    opened[1].server_closed = True
    assert _number(await pool.acquire(A)) == 3
    pool.release(opened[2], reusable=False)  # type: ignore[arg-type]
    assert opened[2].closed
    assert pool.open_connections == 0


async def test_idle_connections_are_swept(mock_clock: trio.testing.MockClock) -> None:
    """Idle connections of an origin nobody calls again are closed once they expire."""
    pool, opened = _pool(idle_expiry=10)
    pool.release(await pool.acquire(A), reusable=True)
    mock_clock.jump(12)
    pool.release(await pool.acquire(B), reusable=True)
    assert opened[0].closed
    assert (pool.open_connections, pool.idle_connections) == (1, 1)


def test_a_pool_needs_room() -> None:
    """Caps below one are refused."""
    with pytest.raises(ValueError, match="at least one connection"):
        _pool(max_connections=0)


async def test_a_fresh_connection_is_new_even_under_the_cap() -> None:
    """``fresh`` skips idle connections; at the per-origin cap it waits for a place, which a
    connection given back frees instead of being handed over."""
    pool, opened = _pool(max_per_origin=1)
    first = await pool.acquire(A)
    pool.release(first, reusable=True)
    second = await pool.acquire(A, fresh=True)
    assert _number(second) == 2  # a new connection, the idle one closed for its place
    assert opened[0].closed
    got: list[HttpConnection] = []

    async def wait() -> None:
        got.append(await pool.acquire(A, fresh=True))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        pool.release(second, reusable=True)
    assert [_number(connection) for connection in got] == [3]
    assert opened[1].closed
    assert pool.open_connections == 1
