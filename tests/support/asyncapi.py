"""What ``call: asyncapi`` tests talk to: a local WebSocket broker, AsyncAPI documents naming
the local brokers under ``*.fake.com`` host names, and the adapter opened with a host map and
an outbound policy that allows loopback (as the CTK tests do).

``WebSocketBroker`` (trio-websocket, 127.0.0.1, a free port): a client connecting to a path
first receives what ``outbox[path]`` holds (JSON text), then every message it sends is kept in
``received[path]``; with ``token`` set a handshake without ``Authorization: Bearer <token>``
is refused with 401. ``changed`` is set (and replaced) on every connection and message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio_websocket

from workflow_orchestrator.adapters.asyncapi import AsyncApiAdapter, open_asyncapi_adapter
from workflow_orchestrator.config import AsyncApiCallSettings, OutboundSettings
from workflow_orchestrator.security import OutboundPolicy

__all__ = [
    "DOC_URI",
    "LOOPBACK",
    "WebSocketBroker",
    "open_adapter",
    "open_ws_broker",
]

DOC_URI = "https://fake.com/docs/asyncapi.json"
LOOPBACK = OutboundPolicy.from_settings(OutboundSettings(allow=("127.0.0.0/8", "::1")))


@attrs.define(eq=False)
class WebSocketBroker:
    """See the module docstring."""

    token: str | None = None
    port: int = 0
    outbox: dict[str, list[Any]] = attrs.field(factory=dict)
    received: dict[str, list[str]] = attrs.field(factory=dict)
    connections: list[tuple[str, str | None]] = attrs.field(factory=list)
    changed: trio.Event = attrs.field(factory=trio.Event)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, predicate: Any) -> None:
        """Wait until ``predicate()`` is true."""
        while not predicate():
            await self.changed.wait()

    async def handle(self, request: trio_websocket.WebSocketRequest) -> None:
        headers = {bytes(k).lower(): bytes(v).decode() for k, v in request.headers}
        authorization = headers.get(b"authorization")
        path = request.path
        self.connections.append((path, authorization))
        self._changed()
        if self.token is not None and authorization != f"Bearer {self.token}":
            await request.reject(401)
            return
        websocket = await request.accept()
        for message in self.outbox.get(path, []):
            await websocket.send_message(json.dumps(message))
        try:
            while True:
                text = await websocket.get_message()
                self.received.setdefault(path, []).append(str(text))
                self._changed()
        except trio_websocket.ConnectionClosed:
            pass


@asynccontextmanager
async def open_ws_broker(token: str | None = None) -> AsyncIterator[WebSocketBroker]:
    """A `WebSocketBroker` serving on 127.0.0.1 for the block."""
    broker = WebSocketBroker(token=token)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            trio_websocket.serve_websocket, broker.handle, "127.0.0.1", 0, None
        )
        broker.port = server.port
        yield broker
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_adapter(
    host_map: Mapping[str, str], *, policy: OutboundPolicy = LOOPBACK, **settings: Any
) -> AsyncIterator[AsyncApiAdapter]:
    """The AsyncAPI adapter with ``host_map`` (``scheme://host:port`` prefixes) and
    ``settings`` (``AsyncApiCallSettings`` fields); run inside ``open_asyncio_bridge()``."""

    def mapped(url: str) -> str:
        for prefix, target in host_map.items():
            if url.startswith(prefix):
                return target + url[len(prefix) :]
        return url

    async with open_asyncapi_adapter(
        AsyncApiCallSettings(timeout=10.0, **settings), policy, mapped
    ) as adapter:
        yield adapter
