"""A JWKS endpoint on a real socket, in the test's own trio run, for the OIDC tests.

`serve_jwks` listens on a free 127.0.0.1 port and answers every GET with the current
``document`` (swap it to rotate keys), ``status`` (set it to 503 to fail), counting the
requests in ``fetches``; with ``declare_length`` False the body is sent chunked. Setting ``gate`` to an unset `trio.Event` holds every answer until
the test sets it, and ``request_arrived`` is set when a request comes in. `close` stops
listening (connections are refused) while the test goes on. A minimal HTTP/1.1
server over h11, one request per connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import h11
import trio

__all__ = ["JwksServer", "serve_jwks"]


@attrs.define(eq=False)
class JwksServer:
    """The endpoint's state; the test changes it between requests."""

    url: str
    document: bytes
    status: int = 200
    declare_length: bool = True
    fetches: int = 0
    gate: trio.Event | None = None
    request_arrived: trio.Event = attrs.field(factory=trio.Event)
    _scope: trio.CancelScope = attrs.field(factory=trio.CancelScope, init=False)

    def close(self) -> None:
        """Stop listening: connections to the port are refused from now on."""
        self._scope.cancel()

    async def _serve(self, *, task_status: trio.TaskStatus[list[trio.SocketListener]]) -> None:
        with self._scope:
            await trio.serve_tcp(self._handle, 0, host="127.0.0.1", task_status=task_status)

    async def _handle(self, stream: trio.SocketStream) -> None:
        # The client may go away mid-answer (a size cap or a timeout did its job).
        with contextlib.suppress(
            trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError
        ):
            await self._answer(stream)

    async def _answer(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    connection.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(event, h11.Request):
                    break
                if isinstance(event, h11.ConnectionClosed):
                    return
            self.fetches += 1
            self.request_arrived.set()
            if self.gate is not None:
                await self.gate.wait()
            body = self.document if self.status == 200 else b'{"error": "unavailable"}'
            headers = [("Content-Type", "application/json"), ("Connection", "close")]
            if self.declare_length:
                headers.append(("Content-Length", str(len(body))))
            response = h11.Response(status_code=self.status, headers=headers)
            await stream.send_all(connection.send(response) or b"")
            await stream.send_all(connection.send(h11.Data(data=body)) or b"")
            await stream.send_all(connection.send(h11.EndOfMessage()) or b"")


@asynccontextmanager
async def serve_jwks(document: bytes, path: str = "/jwks") -> AsyncIterator[JwksServer]:
    """Serve ``document`` at ``server.url`` until the block exits or `JwksServer.close`."""
    server = JwksServer(url="", document=document)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server._serve)
        port = listeners[0].socket.getsockname()[1]
        server.url = f"http://127.0.0.1:{port}{path}"
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()
