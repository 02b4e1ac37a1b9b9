"""A TCP proxy that injects network faults between the service and PostgreSQL or RabbitMQ.

`FaultProxy` listens on a free port of 127.0.0.1 and forwards every connection to
``target_host:target_port``; the test points the service (or a client) at ``proxy.port`` and
then changes the network under it while it runs:

- ``latency``: seconds added before each chunk is forwarded, in both directions;
- ``drop()``: every open connection is closed at once, on both sides (a network that resets);
- ``blackhole``: connections stay open and accept bytes, but nothing is forwarded in either
  direction and nothing is closed (a half-open network: a peer gone without a FIN or RST),
  until it is turned off; what was sent meanwhile is lost, as on such a network;
- ``refuse``: new connections are closed as soon as they are accepted.

``connections`` is how many are open, ``accepted`` how many were accepted since the start, and
``forwarded`` the bytes forwarded, so tests assert what happened without asserting timings.
Run it in a nursery with ``await nursery.start(proxy.run)``; cancelling the nursery closes
everything.
"""

from __future__ import annotations

import attrs
import trio

__all__ = ["FaultProxy"]

_CHUNK = 65536


@attrs.define(eq=False)
class FaultProxy:
    target_host: str
    target_port: int
    latency: float = 0.0
    blackhole: bool = False
    refuse: bool = False
    port: int = 0
    accepted: int = 0
    forwarded: int = 0
    _open: set[trio.CancelScope] = attrs.field(factory=set)
    _traffic: trio.Event = attrs.field(factory=trio.Event)

    @property
    def connections(self) -> int:
        return len(self._open)

    async def wait_for_traffic(self, forwarded: int = 1) -> None:
        """Return once at least ``forwarded`` bytes went through (since the start)."""
        while self.forwarded < forwarded:
            await self._traffic.wait()

    def drop(self) -> int:
        """Close every open connection on both sides; return how many there were."""
        dropped = len(self._open)
        for scope in list(self._open):
            scope.cancel()
        return dropped

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on 127.0.0.1 (``port``, a free one when 0) until cancelled."""
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started(self.port)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        async with client:
            if self.refuse:
                return
            try:
                upstream = await trio.open_tcp_stream(self.target_host, self.target_port)
            except OSError:
                return
            async with upstream:
                with trio.CancelScope() as scope:
                    self._open.add(scope)
                    try:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(self._pipe, client, upstream, nursery.cancel_scope)
                            nursery.start_soon(self._pipe, upstream, client, nursery.cancel_scope)
                    finally:
                        self._open.discard(scope)

    async def _pipe(
        self, source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope
    ) -> None:
        try:
            while True:
                data = await source.receive_some(_CHUNK)
                if not data:
                    break  # the peer closed its side: close the connection on both
                if self.blackhole:
                    continue  # accepted and lost, nothing closed
                if self.latency > 0:
                    await trio.sleep(self.latency)
                await sink.send_all(data)
                self.forwarded += len(data)
                self._traffic.set()
                self._traffic = trio.Event()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        done.cancel()
