"""The outbound HTTP clients compared for the service's ``call: http`` path (issue 18).

``durable_steps.py --client NAME`` runs the whole service with one of them in place of its own
(`PooledHttpClient`, ``pooled``). The others are kept here so the comparison can be rerun:

- ``httpx``: `HttpxClient` as it was the service's client (httpx's default pool: 100
  connections, 20 kept alive);
- ``httpx-sized``: the same with a pool sized for the load (256 connections, all kept alive;
  httpcore still scans every pooled connection for every request);
- ``pooled-h11``: `PooledHttpClient` with connections that parse (and write) HTTP with h11
  (pure Python) instead of llhttp (httptools);
- ``aiohttp``: aiohttp's client (C-accelerated parser) on the service's asyncio loop
  (trio-asyncio), one crossing of the bridge per call, the policy checked in the connector's
  resolution (for the measurement only: it overrides a private aiohttp method, and aiohttp is
  not a dependency of the service: ``pip install aiohttp`` to run it).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping
from typing import Any

import h11
import httpx
import trio

import workflow_orchestrator.service as service_module
from workflow_orchestrator.adapters import HttpxClient, PooledHttpClient
from workflow_orchestrator.adapters._http_connection import (
    MAX_HEAD_BYTES,
    RECEIVE_BYTES,
    ConnectionBroken,
    HttpConnection,
    Origin,
    ResponseHead,
    describe,
    open_connection,
)
from workflow_orchestrator.adapters._http_problems import (
    DEFAULT_MAX_RESPONSE_SIZE,
    TooLarge,
    failed,
    refused,
    timed_out,
    too_large,
)
from workflow_orchestrator.adapters._outbound_addresses import allowed_addresses, mapped_url
from workflow_orchestrator.adapters._outbound_network import policy_client
from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse
from workflow_orchestrator.security import OutboundPolicy, OutboundRefused

Factory = Callable[..., Any]


def _httpx_sized(*, policy: OutboundPolicy, **options: Any) -> HttpxClient:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    return HttpxClient(policy_client(policy, limits=limits), **options)


class AiohttpClient:
    """`HttpRequest` -> `HttpResponse` with aiohttp on the trio-asyncio loop."""

    def __init__(
        self,
        *,
        policy: OutboundPolicy | None = None,
        host_map: Mapping[str, str] | None = None,
        default_timeout: float = 30.0,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
    ) -> None:
        self._policy = policy or OutboundPolicy()
        self._host_map = dict(host_map or {})
        self._timeout = default_timeout
        self._limit = max_response_size
        self._session: Any = None

    async def __aenter__(self) -> AiohttpClient:
        import trio_asyncio

        self._session = await trio_asyncio.aio_as_trio(self._open)()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        import trio_asyncio

        with trio.move_on_after(5, shield=True):
            await trio_asyncio.aio_as_trio(self._session.close)()

    async def _open(self) -> Any:
        import aiohttp

        policy = self._policy

        class PolicyConnector(aiohttp.TCPConnector):
            async def _resolve_host(self, host: str, port: int, traces: Any = None) -> Any:
                # The policy's check, run on the trio side would need a crossing; resolving
                # and checking here is what production code would have to do.
                addresses = await _check_on_asyncio(policy, host, port)
                return [
                    {
                        "hostname": host,
                        "host": address,
                        "port": port,
                        "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                        "proto": 0,
                        "flags": socket.AI_NUMERICHOST,
                    }
                    for address in addresses
                ]

        connector = PolicyConnector(limit=256, limit_per_host=128, use_dns_cache=False)
        return aiohttp.ClientSession(connector=connector, trust_env=False)

    async def http(self, request: HttpRequest) -> HttpResponse:
        import aiohttp
        import trio_asyncio

        timeout = request.timeout or self._timeout
        method, url = request.method, request.url
        try:
            with trio.fail_after(timeout + 1):
                response: HttpResponse = await trio_asyncio.aio_as_trio(self._call)(
                    request, timeout
                )
                return response
        except (TimeoutError, trio.TooSlowError):
            raise timed_out(method, url, timeout) from None
        except OutboundRefused as error:
            raise refused(method, url, error) from None
        except TooLarge as error:
            raise too_large(method, url, error, self._limit) from None
        except aiohttp.ClientError as error:
            raise failed(method, url, error) from None

    async def _call(self, request: HttpRequest, seconds: float) -> HttpResponse:
        import aiohttp

        headers = dict(request.headers)
        if request.idempotency_key:
            headers.setdefault("idempotency-key", request.idempotency_key)
        async with self._session.request(
            request.method,
            mapped_url(self._host_map, request.url),
            headers=headers,
            data=request.body,
            allow_redirects=request.follow_redirects,
            max_redirects=20,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            if response.content_length is not None and response.content_length > self._limit:
                raise TooLarge(response.content_length, declared=True)
            chunks, received = [], 0
            async for chunk in response.content.iter_chunked(65536):
                received += len(chunk)
                if received > self._limit:
                    response.close()
                    raise TooLarge(self._limit, declared=False)
                chunks.append(chunk)
            return HttpResponse(
                status=response.status,
                headers={k.lower(): v for k, v in response.headers.items()},
                body=b"".join(chunks),
            )


async def _check_on_asyncio(policy: OutboundPolicy, host: str, port: int) -> list[str]:
    """`allowed_addresses` for asyncio code: the check itself is synchronous except for
    resolving, which asyncio's resolver does here."""
    from workflow_orchestrator.security import normalize_address

    refusal = policy.check_name(host, port)
    if refusal is not None:
        raise OutboundRefused(refusal)
    literal = normalize_address(host)
    if literal is not None:
        found = [(str(literal), literal)]
    else:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found = []
        for *_, sockaddr in infos:
            address = normalize_address(str(sockaddr[0]))
            if address is not None:
                found.append((str(sockaddr[0]), address))
    allowed, refusals = [], []
    for text, address in found:
        refusal = policy.check(host, address, port)
        if refusal is None:
            allowed.append(text)
        else:
            refusals.append(refusal)
    if not allowed and refusals:
        raise OutboundRefused(refusals[0])
    return allowed


class H11Connection(HttpConnection):
    """`HttpConnection` speaking HTTP/1.1 through h11 (the first version of the pool's)."""

    __slots__ = ("_h11",)

    def __init__(
        self, origin: Origin, stream: trio.abc.Stream, socket: trio.socket.SocketType
    ) -> None:
        super().__init__(origin, stream, socket)
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)

    async def send_request(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes | None
    ) -> None:
        self._received = False
        connection = self._h11
        data = connection.send(h11.Request(method=method, target=target, headers=headers))
        assert data is not None
        if body:
            more = connection.send(h11.Data(data=body))
            assert more is not None
            data += more
        end = connection.send(h11.EndOfMessage())
        assert end is not None
        try:
            await self._stream.send_all(data + end)
        except (trio.BrokenResourceError, OSError) as error:
            raise ConnectionBroken(f"sending failed: {describe(error)}", received=False) from None

    async def receive_head(self) -> ResponseHead:
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Response):
                return ResponseHead(event.status_code, list(event.headers))
            if not isinstance(event, h11.InformationalResponse):
                raise ConnectionBroken(f"unexpected {type(event).__name__}", received=True)

    async def receive_chunk(self) -> bytes | None:
        event = await self._next_event()
        if isinstance(event, h11.Data):
            return bytes(event.data)
        if isinstance(event, h11.EndOfMessage):
            self.exchanges += 1
            return None
        raise ConnectionBroken(f"unexpected {type(event).__name__}", received=True)

    def next_cycle(self) -> bool:
        connection = self._h11
        if connection.our_state is h11.DONE and connection.their_state is h11.DONE:
            connection.start_next_cycle()
            return True
        return False

    async def _next_event(self) -> object:
        connection = self._h11
        try:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    data = bytes(await self._stream.receive_some(RECEIVE_BYTES))
                    if data:
                        self._received = True
                    connection.receive_data(data)
                else:
                    return event
        except h11.RemoteProtocolError as error:
            raise ConnectionBroken(str(error), received=self._received) from None
        except (trio.BrokenResourceError, OSError) as error:
            raise ConnectionBroken(describe(error), received=self._received) from None


class H11PooledClient(PooledHttpClient):
    """`PooledHttpClient` over `H11Connection`s."""

    async def _connect(self, origin: Origin) -> HttpConnection:
        return await open_connection(origin, self._policy, self._ssl_context, H11Connection)


CLIENTS: dict[str, Factory] = {
    "pooled": PooledHttpClient,
    "pooled-h11": H11PooledClient,
    "httpx": HttpxClient,
    "httpx-sized": _httpx_sized,
    "aiohttp": AiohttpClient,
}


def install(name: str) -> None:
    """Make the service build client ``name`` (a key of `CLIENTS`) for its outbound HTTP."""
    factory = CLIENTS[name]

    def build(*, proxy: str = "", **options: Any) -> Any:
        if proxy:
            raise SystemExit("the benchmark's candidates take no proxy")
        return factory(**options)

    setattr(service_module, "PooledHttpClient", build)  # noqa: B010 (a monkeypatch)


__all__ = ["CLIENTS", "AiohttpClient", "allowed_addresses", "install"]


# -- the clients alone ------------------------------------------------------------------------


async def _calls_alone(name: str, stub_url: str, n: int, concurrency: int) -> dict[str, Any]:
    """``n`` GETs of the stub through client ``name``, ``concurrency`` at a time, in a Trio run
    of their own (with the asyncio bridge, which ``aiohttp`` needs)."""
    import time

    from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
    from workflow_orchestrator.config import OutboundSettings

    policy = OutboundPolicy.from_settings(OutboundSettings(allow=("127.0.0.1",)))
    async with open_asyncio_bridge(), CLIENTS[name](policy=policy) as client:
        request = HttpRequest(method="GET", url=stub_url, idempotency_key="bench/do/0/call")
        for _ in range(200):  # warm up: connections open, code paths taken
            await client.http(request)
        left = n

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                response = await client.http(request)
                assert response.status == 200

        cpu0, t0 = time.process_time(), time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "client": name,
        "calls": n,
        "concurrency": concurrency,
        "calls_per_s": round(n / wall, 1),
        "process_cpu_us_per_call": round(cpu * 1e6 / n, 1),
    }


def main() -> None:
    """``python benchmarks/outbound_clients.py [--n 20000] [--concurrency 64] [NAME...]``: the
    clients alone against the benchmark's stub (no database, no workflows)."""
    import argparse
    import json
    import os

    from durable_steps import Stub

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("clients", nargs="*", default=list(CLIENTS))
    args = parser.parse_args()
    with Stub() as stub:
        for name in args.clients:
            result = trio.run(_calls_alone, name, stub.url, args.n, args.concurrency)
            print(json.dumps({**result, "load": os.getloadavg()[0]}), flush=True)


if __name__ == "__main__":
    main()
