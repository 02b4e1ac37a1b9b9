"""``security.outbound.proxy``: `PooledHttpClient` (and the httpx transport of ``call: mcp``)
through an egress proxy written here.

The proxy (`_Proxy`) serves ``CONNECT host:port`` by opening a tunnel, and a request in
absolute form (``GET http://host:port/path``) by forwarding it as it came to that host; it
records what it was asked. The outbound policy still decides: a refused target is refused by
its name or literal address before the proxy hears of it, and the proxy's own address must be
allowed like any other.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from tests.support.certificates import CertificateAuthority
from tests.support.raw_http import RawServer, serving
from workflow_orchestrator.adapters import PooledHttpClient
from workflow_orchestrator.adapters._outbound_network import policy_transport
from workflow_orchestrator.config import OutboundSettings
from workflow_orchestrator.dsl.errors import WorkflowError
from workflow_orchestrator.dsl.runtime import HttpRequest
from workflow_orchestrator.security import OutboundPolicy, OutboundRefused


@attrs.define(eq=False)
class _Proxy:
    port: int = 0
    asked: list[str] = attrs.field(factory=list)  # request lines, in order

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, client: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await client.receive_some(65536)
            if not chunk:
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode()
        self.asked.append(line)
        method, target, _ = line.split(" ")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = await trio.open_tcp_stream(host, int(port))
            await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            leftover = b""
        else:
            authority = target.split("/")[2]
            host, _, port = authority.rpartition(":")
            upstream = await trio.open_tcp_stream(host, int(port))
            leftover = head
        async with upstream, trio.open_nursery() as nursery:
            if leftover:
                await upstream.send_all(leftover)
            nursery.start_soon(_pipe, client, upstream, nursery.cancel_scope)
            nursery.start_soon(_pipe, upstream, client, nursery.cancel_scope)


async def _pipe(source: trio.abc.Stream, sink: trio.abc.Stream, done: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except trio.BrokenResourceError:
        pass
    done.cancel()


async def _start_proxy(nursery: trio.Nursery, proxy: _Proxy) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    proxy.port = listeners[0].socket.getsockname()[1]
    await nursery.start(trio.serve_listeners, proxy.handle, listeners)


def _client(proxy: _Proxy, allow: tuple[str, ...] = ("127.0.0.0/8",)) -> PooledHttpClient:
    policy = OutboundPolicy.from_settings(OutboundSettings(allow=allow))
    return PooledHttpClient(policy=policy, default_timeout=10, proxy=proxy.url)


async def test_http_calls_go_through_the_proxy_in_absolute_form() -> None:
    """A plain HTTP call is sent to the proxy with the full URL; its connection is reused."""
    target, proxy = RawServer(host="127.0.0.2"), _Proxy()
    async with serving(target), trio.open_nursery() as nursery:
        await _start_proxy(nursery, proxy)
        async with _client(proxy) as client:
            for _ in range(2):
                response = await client.http(HttpRequest(method="GET", url=f"{target.url}/x"))
                assert response.status == 200
        nursery.cancel_scope.cancel()
    assert proxy.asked == [f"GET {target.url}/x HTTP/1.1"]  # one connection, two requests
    assert [seen.target for seen in target.requests] == [f"{target.url}/x"] * 2
    assert target.requests[0].headers["host"] == f"127.0.0.2:{target.port}"


async def test_https_calls_tunnel_through_the_proxy_and_verify_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HTTPS call asks the proxy for a tunnel; TLS runs end to end with the target."""
    authority = CertificateAuthority.create(tmp_path)
    issued = authority.issue("127.0.0.1", hosts=("127.0.0.1",))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.certificate, issued.private_key)
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.certificate_path))
    target, proxy = RawServer(), _Proxy()

    async def handle_tls(stream: trio.SocketStream) -> None:
        await target.handle(trio.SSLStream(stream, context, server_side=True))

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        target.port = listeners[0].socket.getsockname()[1]
        await nursery.start(trio.serve_listeners, handle_tls, listeners)
        await _start_proxy(nursery, proxy)
        async with _client(proxy) as client:
            url = f"https://127.0.0.1:{target.port}/secure"
            bodies = [(await client.http(HttpRequest(method="GET", url=url))).body for _ in "ab"]
        nursery.cancel_scope.cancel()
    assert proxy.asked == [f"CONNECT 127.0.0.1:{target.port} HTTP/1.1"]
    assert bodies == [b"GET /secure #1.1", b"GET /secure #1.2"]


async def test_the_policy_still_decides_with_a_proxy() -> None:
    """A refused target is refused before the proxy is asked; a proxy on a refused address is
    refused too."""
    proxy = _Proxy()
    async with trio.open_nursery() as nursery:
        await _start_proxy(nursery, proxy)
        async with _client(proxy) as client:
            with pytest.raises(WorkflowError) as metadata:
                await client.http(HttpRequest(method="GET", url="http://169.254.169.254/latest"))
        async with _client(proxy, allow=()) as client:
            with pytest.raises(WorkflowError) as loopback_proxy:
                await client.http(HttpRequest(method="GET", url="http://api.example.com/"))
        nursery.cancel_scope.cancel()
    assert metadata.value.problem.status == 403
    assert "169.254.169.254 is a cloud metadata address" in (metadata.value.problem.detail or "")
    assert loopback_proxy.value.problem.status == 403
    assert "127.0.0.1 is a loopback address" in (loopback_proxy.value.problem.detail or "")
    assert proxy.asked == []


async def test_default_deny_through_the_proxy_allows_named_targets_only() -> None:
    """Under ``default: deny`` a target the proxy resolves must be named by ``allow``; the
    proxy's own address is allowed by address."""
    target, proxy = RawServer(host="127.0.0.1"), _Proxy()
    policy = OutboundPolicy.from_settings(
        OutboundSettings(allow=("localhost", "127.0.0.1"), default="deny")
    )
    async with serving(target), trio.open_nursery() as nursery:
        await _start_proxy(nursery, proxy)
        async with PooledHttpClient(policy=policy, default_timeout=10, proxy=proxy.url) as client:
            named = await client.http(
                HttpRequest(method="GET", url=f"http://localhost:{target.port}/named")
            )
            with pytest.raises(WorkflowError) as unnamed:
                await client.http(HttpRequest(method="GET", url="http://unnamed.example/"))
        nursery.cancel_scope.cancel()
    assert named.status == 200
    assert unnamed.value.problem.status == 403
    assert "no entry of security.outbound.allow names the host" in (
        unnamed.value.problem.detail or ""
    )
    assert proxy.asked == [f"GET http://localhost:{target.port}/named HTTP/1.1"]


async def test_the_httpx_transport_goes_through_the_proxy_within_the_policy() -> None:
    """``policy_transport(proxy=...)`` (call: mcp over HTTP): through the proxy, a refused
    target refused by name before the proxy hears of it."""
    target, proxy = RawServer(host="127.0.0.2"), _Proxy()
    policy = OutboundPolicy.from_settings(OutboundSettings(allow=("127.0.0.0/8",)))
    async with serving(target), trio.open_nursery() as nursery:
        await _start_proxy(nursery, proxy)
        transport = policy_transport(policy, proxy=proxy.url)
        async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
            response = await client.get(f"{target.url}/mcp")
            with pytest.raises(OutboundRefused):
                await client.get("http://169.254.169.254/latest")
        nursery.cancel_scope.cancel()
    assert response.status_code == 200
    assert proxy.asked == [f"GET {target.url}/mcp HTTP/1.1"]


def test_a_proxy_must_be_http_host_port() -> None:
    """Anything but http://host:port is refused, naming the setting."""
    for bad in ("https://proxy:3128", "http://proxy", "http://proxy:3128/path", "proxy:3128"):
        with pytest.raises(ValueError, match=r"security\.outbound\.proxy"):
            PooledHttpClient(proxy=bad)
