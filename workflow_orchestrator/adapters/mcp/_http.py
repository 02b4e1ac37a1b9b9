"""The streamable HTTP transport of ``call: mcp``: the SDK's client over our own httpx client.

The client is built for the call: its connections go through the outbound policy
(`policy_transport`: the resolved address of every connection is checked, redirects
included), it never reads proxies or ``.netrc`` from the environment, it sends the task's
headers, and every response it reads is capped at ``max_message_size`` bytes
(``workflows.maxResponseSize``): past it the call ends at once with an error naming the
setting (the SDK would log the failure and wait for an answer that never comes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import trio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage

from workflow_orchestrator.adapters._outbound_network import policy_transport
from workflow_orchestrator.security import OutboundPolicy

_CLOSE_WAIT = 5.0

ReadStream = MemoryObjectReceiveStream[SessionMessage | Exception]
WriteStream = MemoryObjectSendStream[SessionMessage]


class _ResponseTooLarge(httpx.ReadError):
    """A response past the cap (an httpx error, so the SDK treats it as a failed read)."""


class _CappedStream(httpx.AsyncByteStream):
    """``inner``'s chunks while their total stays within ``limit``. An iterator object, not
    an async generator: one left unfinished (the SDK stops reading an SSE stream once it has
    its answer) is then nothing for trio's finalizer to find."""

    def __init__(
        self, inner: httpx.AsyncByteStream, limit: int, exceeded: Callable[[], None]
    ) -> None:
        self._inner = inner
        self._limit = limit
        self._exceeded = exceeded
        self._chunks: AsyncIterator[bytes] | None = None
        self._received = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._chunks = aiter(self._inner)
        return self

    async def __anext__(self) -> bytes:
        if self._chunks is None:
            self._chunks = aiter(self._inner)
        chunk = await anext(self._chunks)
        self._received += len(chunk)
        if self._received > self._limit:
            self._exceeded()
            raise _ResponseTooLarge(f"the response is larger than {self._limit} bytes")
        return chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class CappedTransport(httpx.AsyncBaseTransport):
    """Passes requests to ``inner``; a response body past ``limit`` bytes (declared or
    received) calls ``exceeded`` and fails the read."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, *, limit: int, exceeded: Callable[[], None]
    ) -> None:
        self._inner = inner
        self._limit = limit
        self._exceeded = exceeded

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._limit:
            await response.aclose()
            self._exceeded()
            raise _ResponseTooLarge(f"the response declares {declared} bytes", request=request)
        stream = response.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            raise TypeError("an async transport answered with a sync stream")  # a bug
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CappedStream(stream, self._limit, self._exceeded),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def open_http_transport(
    url: str,
    *,
    headers: dict[str, str],
    policy: OutboundPolicy,
    read_timeout: float,
    max_message_size: int,
    exceeded: Callable[[], None],
    proxy: str = "",
) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
    """The session's streams to the MCP server at ``url``; leaving the block ends the MCP
    session (a ``DELETE`` when the server gave one) and closes the connections."""
    transport = CappedTransport(
        policy_transport(policy, proxy=proxy), limit=max_message_size, exceeded=exceeded
    )
    client = httpx.AsyncClient(
        transport=transport,
        headers=headers,
        timeout=httpx.Timeout(read_timeout),
        trust_env=False,
    )
    try:
        async with streamable_http_client(url, http_client=client) as (read, write, _):
            yield read, write
    finally:
        with trio.move_on_after(_CLOSE_WAIT, shield=True):
            await client.aclose()
