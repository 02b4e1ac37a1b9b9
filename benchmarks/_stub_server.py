"""A small HTTP/1.1 server the durable-call benchmarks call: ``python _stub_server.py PORT``.

It answers every request with ``200`` and a small JSON body, keeps connections alive and
prints ``ready`` once it listens. It runs in a process of its own (asyncio, one thread), so
that our service and the DBOS peer call the same server and neither pays for it in its own
process. Requests are parsed only as far as the benchmark needs: the request line and headers
up to the blank line, then ``Content-Length`` bytes of body (no chunked request bodies).
"""

from __future__ import annotations

import asyncio
import sys

BODY = b'{"ok":true,"service":"stub"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


class StubProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answers = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buffer[:end].lower()
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                line_end = head.find(b"\r\n", marker)
                length = int(head[marker + 15 : line_end if line_end >= 0 else None].strip())
            if len(self.buffer) < end + 4 + length:
                break
            self.buffer = self.buffer[end + 4 + length :]
            answers.append(RESPONSE)
        if answers and self.transport is not None:
            self.transport.write(b"".join(answers))


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StubProtocol, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
