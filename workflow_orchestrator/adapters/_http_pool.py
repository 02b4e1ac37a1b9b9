"""Pooled outbound connections: kept alive per origin, capped per origin and in total.

`ConnectionPool.acquire` takes the most recently used idle connection of the origin (O(1): a
deque per origin) or opens a new one when the caps allow, evicting the oldest idle connection
of another origin when only the total cap is in the way. Otherwise the caller waits in one
first-come, first-served queue: a connection given back goes straight to the first waiter for
its origin, a freed place to the first waiter that may use it. `release` takes a connection
back, idle if it may carry another request, closed otherwise (any error, a ``Connection:
close``, a body left unread).

Idle connections expire ``idle_expiry`` seconds after their last use (checked when taken, and
swept at most once a second); one the server has closed meanwhile is noticed when taken (its
socket is readable) and replaced. The pool owns no task: all of this happens in the calls.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

import trio

from workflow_orchestrator.adapters._http_connection import HttpConnection, Origin

DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_MAX_PER_ORIGIN = 128
DEFAULT_IDLE_EXPIRY = 5.0
_SWEEP_EVERY = 1.0


class _Waiter:
    __slots__ = ("connection", "event", "fresh", "granted", "origin")

    def __init__(self, origin: Origin, *, fresh: bool) -> None:
        self.origin = origin
        self.fresh = fresh  # wants a place to open a new connection, not an idle one
        self.event = trio.Event()
        self.granted = False  # a connection or a place to open one is now this waiter's
        self.connection: HttpConnection | None = None


class ConnectionPool:
    """Connections opened by ``connect``, reused per origin within the caps."""

    def __init__(
        self,
        connect: Callable[[Origin], Awaitable[HttpConnection]],
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_per_origin: int = DEFAULT_MAX_PER_ORIGIN,
        idle_expiry: float = DEFAULT_IDLE_EXPIRY,
    ) -> None:
        if max_connections < 1 or max_per_origin < 1:
            raise ValueError("a pool needs room for at least one connection")
        self._connect = connect
        self._max = max_connections
        self._max_per_origin = max_per_origin
        self._idle_expiry = idle_expiry
        self._idle: dict[Origin, deque[HttpConnection]] = {}
        self._counts: dict[Origin, int] = {}  # open or opening, idle or not
        self._total = 0
        self._waiters: deque[_Waiter] = deque()
        self._next_sweep = 0.0
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections open or being opened (idle or in use)."""
        return self._total

    @property
    def idle_connections(self) -> int:
        return sum(len(idle) for idle in self._idle.values())

    async def acquire(self, origin: Origin, *, fresh: bool = False) -> HttpConnection:
        """A connection to ``origin``: an idle one, a new one, or the next one given back;
        ``fresh``: a new one (waiting for a place if the caps are reached)."""
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        if not fresh:
            connection = self._take_idle(origin)
            if connection is not None:
                await trio.lowlevel.checkpoint()
                return connection
        if self._make_room(origin):
            self._reserve(origin)
        else:
            connection = await self._wait(origin, fresh=fresh)
            if connection is not None:
                return connection
        try:
            return await self._connect(origin)
        except BaseException:
            self._forget(origin)
            raise

    def release(self, connection: HttpConnection, *, reusable: bool) -> None:
        """Take ``connection`` back: idle if ``reusable`` (its exchange is complete), else
        closed."""
        origin = connection.origin
        if reusable and not self._closed and self._keep(connection):
            return
        connection.close()
        self._forget(origin)  # its place goes to the first waiter that may use it

    def _keep(self, connection: HttpConnection) -> bool:
        """Hand ``connection`` to the first waiter for its origin, or keep it idle; False
        when its place is worth more to a waiter (then it is closed)."""
        origin = connection.origin
        if self._waiters:
            if self._serve_first_elsewhere(origin):
                return False
            for waiter in self._waiters:
                if waiter.origin == origin:
                    if waiter.fresh:  # it wants a new connection: this one's place
                        return False
                    self._waiters.remove(waiter)
                    self._grant(waiter, connection)
                    return True
            if self._total >= self._max:
                return False
        now = trio.current_time()
        connection.idle_since = now
        self._idle.setdefault(origin, deque()).append(connection)
        if now >= self._next_sweep:
            self._sweep(now)
        return True

    def _serve_first_elsewhere(self, origin: Origin) -> bool:
        """Whether the first waiter, for another origin, needs this connection's place (only
        the total cap holds it back): then it goes first, not a later waiter for ``origin``."""
        first = self._waiters[0]
        return (
            first.origin != origin
            and self._total >= self._max
            and self._counts.get(first.origin, 0) < self._max_per_origin
        )

    def close(self) -> None:
        """Close the idle connections; those in use are closed when given back."""
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
                self._total -= 1
        self._idle.clear()

    def _take_idle(self, origin: Origin) -> HttpConnection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        oldest_kept = trio.current_time() - self._idle_expiry
        while idle:
            connection = idle.pop()
            if connection.idle_since >= oldest_kept and not connection.looks_closed():
                return connection
            connection.close()
            self._forget(origin)
        return None

    def _make_room(self, origin: Origin) -> bool:
        """Whether a connection to ``origin`` may be opened now, after closing the oldest idle
        connection of ``origin`` if its cap is in the way (a caller that wants a fresh one) or
        of another origin if only the total cap is."""
        if self._counts.get(origin, 0) >= self._max_per_origin:
            idle = self._idle.get(origin)
            if not idle:
                return False
            self._close_idle(idle[0])
            return True
        if self._total < self._max:
            return True
        oldest: HttpConnection | None = None
        for other, idle in self._idle.items():
            if other == origin or not idle:
                continue
            if oldest is None or idle[0].idle_since < oldest.idle_since:
                oldest = idle[0]
        if oldest is None:
            return False
        self._close_idle(oldest)
        return True

    def _close_idle(self, connection: HttpConnection) -> None:
        """Close ``connection``, the oldest idle one of its origin (its place is reused at
        once, so no waiter is told)."""
        origin = connection.origin
        self._idle[origin].popleft()
        connection.close()
        left = self._counts[origin] - 1
        if left:
            self._counts[origin] = left
        else:
            del self._counts[origin], self._idle[origin]
        self._total -= 1

    def _reserve(self, origin: Origin) -> None:
        self._counts[origin] = self._counts.get(origin, 0) + 1
        self._total += 1

    def _forget(self, origin: Origin) -> None:
        """A connection to ``origin`` is gone: its place goes to the waiters."""
        left = self._counts[origin] - 1
        if left:
            self._counts[origin] = left
        else:
            del self._counts[origin]
            if not self._idle.get(origin, True):
                del self._idle[origin]
        self._total -= 1
        if self._waiters:
            self._grant_places()

    def _grant_places(self) -> None:
        for waiter in list(self._waiters):
            if self._make_room(waiter.origin):
                self._waiters.remove(waiter)
                self._reserve(waiter.origin)
                self._grant(waiter, None)
            elif self._total >= self._max:
                return

    @staticmethod
    def _grant(waiter: _Waiter, connection: HttpConnection | None) -> None:
        waiter.granted = True
        waiter.connection = connection
        waiter.event.set()

    async def _wait(self, origin: Origin, *, fresh: bool) -> HttpConnection | None:
        """Queue for ``origin``: a connection given back, or None for a place to open one."""
        waiter = _Waiter(origin, fresh=fresh)
        self._waiters.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if not waiter.granted:
                self._waiters.remove(waiter)
            elif waiter.connection is not None:
                self.release(waiter.connection, reusable=True)
            else:
                self._forget(origin)
            raise
        return waiter.connection

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + _SWEEP_EVERY
        oldest_kept = now - self._idle_expiry
        for origin, idle in list(self._idle.items()):
            while idle and idle[0].idle_since < oldest_kept:
                idle.popleft().close()
                self._forget(origin)
