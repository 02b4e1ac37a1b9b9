"""A raw HTTP/1.1 server for client tests: it parses requests far enough for a test (request
line, headers, a ``Content-Length`` body) and answers what the test's ``respond`` returns, raw
bytes (None: close without answering), keeping the connection open unless the answer says
``Connection: close`` or ``close_after_answer`` is set. It records every request and counts
connections, and how many were open at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import attrs
import trio

__all__ = ["RawServer", "Seen", "ok", "serving"]


@attrs.frozen
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int  # the server's count of connections when this one opened (1, 2, ...)
    number: int  # the request's number on its connection (1, 2, ...)


Respond = Callable[[Seen], Awaitable[bytes | None]]


def ok(body: bytes = b"ok", *extra: str) -> bytes:
    head = "".join(f"{line}\r\n" for line in extra)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


async def answer_ok(seen: Seen) -> bytes:
    return ok(f"{seen.method} {seen.target} #{seen.connection}.{seen.number}".encode())


@attrs.define(eq=False)
class RawServer:
    respond: Respond = answer_ok
    host: str = "127.0.0.1"
    close_after_answer: bool = False
    port: int = 0
    connections: int = 0
    active: int = 0
    most_active: int = 0
    requests: list[Seen] = attrs.field(factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def handle(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        connection, number = self.connections, 0
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, rest = buffer.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, target, _ = lines[0].split(" ")
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                while len(rest) < length:
                    rest += await stream.receive_some(65536)
                body, buffer = rest[:length], rest[length:]
                number += 1
                seen = Seen(method, target, headers, body, connection, number)
                self.requests.append(seen)
                answer = await self.respond(seen)
                if answer is None:
                    return
                await stream.send_all(answer)
                if self.close_after_answer:
                    return
                if (
                    b"\r\nconnection: close\r\n"
                    in answer.partition(b"\r\n\r\n")[0].lower() + b"\r\n"
                ):
                    return
        except trio.BrokenResourceError:
            return
        finally:
            self.active -= 1
            await trio.aclose_forcefully(stream)


@asynccontextmanager
async def serving(*servers: RawServer) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        for server in servers:
            listeners = await trio.open_tcp_listeners(0, host=server.host)
            server.port = listeners[0].socket.getsockname()[1]
            await nursery.start(trio.serve_listeners, server.handle, listeners)
        yield
        nursery.cancel_scope.cancel()
