"""The HTTP clients (`PooledHttpClient`, `HttpxClient`) under the outbound policy, against real
local servers; every test runs with both.

The servers are minimal HTTP/1.1 responders on 127.0.0.1 and 127.0.0.2 in the test's own Trio
run. Trio's own test hooks stand in for the outside world where the test cannot own it: a
hostname resolver gives names the addresses a hostile DNS server would, and a socket factory
records every socket opened, to prove that a refused call never connects.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

from tests.support.certificates import CertificateAuthority
from workflow_orchestrator.adapters import HttpxClient, PooledHttpClient
from workflow_orchestrator.config import OutboundSettings
from workflow_orchestrator.dsl.errors import WorkflowError
from workflow_orchestrator.dsl.runtime import HttpRequest
from workflow_orchestrator.security import OutboundPolicy


@attrs.define(eq=False)
class _Server:
    """A responder on ``host``: ``/hello`` answers who it is, ``/go?<url>`` redirects there."""

    host: str
    port: int = 0
    connections: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def handle(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            data += chunk
        target = data.split(b" ", 2)[1].decode()
        if target.startswith("/go?"):
            head = f"HTTP/1.1 302 Found\r\nLocation: {target[4:]}\r\nContent-Length: 0\r\n"
            body = b""
        else:
            body = f"hello from {self.host}".encode()
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n"
        await stream.send_all(head.encode() + b"Connection: close\r\n\r\n" + body)
        await stream.aclose()


@asynccontextmanager
async def _serving(*hosts: str) -> AsyncIterator[list[_Server]]:
    servers = [_Server(host) for host in hosts]
    async with trio.open_nursery() as nursery:
        for server in servers:
            listeners = await trio.open_tcp_listeners(0, host=server.host)
            server.port = listeners[0].socket.getsockname()[1]
            await nursery.start(trio.serve_listeners, server.handle, listeners)
        yield servers
        nursery.cancel_scope.cancel()


class _Resolver(trio.abc.HostnameResolver):
    """Answers for the names it knows (as a DNS server under an attacker's control would)."""

    def __init__(self, names: Mapping[str, Sequence[str]]) -> None:
        self._names = names

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        name = (host or b"").decode()
        if name not in self._names:
            raise socket.gaierror(socket.EAI_NONAME, f"{name} is not known")
        port_number = int(port or 0)
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port_number, 0, 0) if ":" in address else (address, port_number),
            )
            for address in self._names[name]
        ]

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
        raise NotImplementedError


class _RecordingSockets(trio.abc.SocketFactory):
    """Records every socket opened in this Trio run."""

    def __init__(self) -> None:
        self.opened = 0

    def socket(
        self, family: int | None = None, type: int | None = None, proto: int | None = None
    ) -> trio.socket.SocketType:
        self.opened += 1
        return trio.socket.from_stdlib_socket(
            socket.socket(family or socket.AF_INET, type or socket.SOCK_STREAM, proto or 0)
        )


Client = PooledHttpClient | HttpxClient
_clients: list[type[Client]] = [PooledHttpClient]


@pytest.fixture(autouse=True, params=[PooledHttpClient, HttpxClient])
def client_class(request: pytest.FixtureRequest) -> type[Client]:
    """The client `_client` builds in this test."""
    _clients[0] = request.param
    return _clients[0]


def _client(
    allow: tuple[str, ...] = (), deny: tuple[str, ...] | None = None, *, default: bool = False
) -> Client:
    if default:
        return _clients[0]()
    policy = OutboundPolicy.from_settings(OutboundSettings(allow=allow, deny=deny or ()))
    return _clients[0](policy=policy, default_timeout=10)


async def _refusal(client: Client, url: str, *, follow_redirects: bool = False) -> str:
    with pytest.raises(WorkflowError) as caught:
        await client.http(HttpRequest(method="GET", url=url, follow_redirects=follow_redirects))
    problem = caught.value.problem
    assert (problem.type, problem.status, problem.title) == (
        "https://serverlessworkflow.io/spec/1.0.0/errors/communication",
        403,
        "Outbound Call Refused",
    )
    assert problem.detail is not None
    return problem.detail


async def test_loopback_is_refused_by_default() -> None:
    """127.0.0.1 is refused without a connection; the error names the setting."""
    with trio.fail_after(30):
        async with _serving("127.0.0.1") as (server,), _client(default=True) as client:
            detail = await _refusal(client, f"{server.url}/hello")
        assert detail == (
            f"GET {server.url}/hello: the outbound policy refuses 127.0.0.1 port {server.port}: "
            "127.0.0.1 is a loopback address; add 127.0.0.1 or a range holding it (a host name "
            "does not open it) to security.outbound.allow if workflows must reach it"
        )
        assert server.connections == 0


async def test_localhost_is_refused_by_its_resolved_address() -> None:
    """``localhost`` resolves to loopback, so it is refused like 127.0.0.1."""
    with trio.fail_after(30):
        async with _serving("127.0.0.1") as (server,), _client() as client:
            detail = await _refusal(client, f"http://localhost:{server.port}/hello")
        assert f"refuses localhost (127.0.0.1) port {server.port}" in detail
        assert "security.outbound.allow" in detail
        assert server.connections == 0


async def test_metadata_address_is_refused_without_opening_a_socket() -> None:
    """169.254.169.254 is refused before any socket exists."""
    sockets = _RecordingSockets()
    trio.socket.set_custom_socket_factory(sockets)
    try:
        with trio.fail_after(30):
            async with _client() as client:
                detail = await _refusal(client, "http://169.254.169.254/latest/meta-data/")
                assert "169.254.169.254 is a cloud metadata address" in detail
                detail = await _refusal(client, "http://metadata.google.internal/computeMetadata")
                assert "it is a cloud metadata service" in detail
        assert sockets.opened == 0
    finally:
        trio.socket.set_custom_socket_factory(None)


async def test_allowed_loopback_is_reached() -> None:
    """With allow: [127.0.0.1] the call goes through, by address and by localhost."""
    with trio.fail_after(30):
        async with _serving("127.0.0.1") as (server,), _client(allow=("127.0.0.1",)) as client:
            response = await client.http(HttpRequest(method="GET", url=f"{server.url}/hello"))
            assert (response.status, response.body) == (200, b"hello from 127.0.0.1")
            response = await client.http(
                HttpRequest(method="GET", url=f"http://localhost:{server.port}/hello")
            )
            assert response.body == b"hello from 127.0.0.1"


async def test_deny_inside_allow_is_refused() -> None:
    """A denied address inside an allowed range is refused, naming security.outbound.deny."""
    with trio.fail_after(30):
        async with (
            _serving("127.0.0.1", "127.0.0.2") as (one, two),
            _client(allow=("127.0.0.0/8",), deny=("127.0.0.2",)) as client,
        ):
            assert (await client.http(HttpRequest(method="GET", url=f"{one.url}/hello"))).body
            detail = await _refusal(client, f"{two.url}/hello")
        assert detail.endswith(
            "security.outbound.deny holds '127.0.0.2'; remove '127.0.0.2' from "
            "security.outbound.deny if workflows must reach it"
        )
        assert two.connections == 0


async def test_redirect_to_a_refused_address_is_refused() -> None:
    """An allowed server cannot redirect the call to loopback."""
    with trio.fail_after(30):
        async with (
            _serving("127.0.0.1", "127.0.0.2") as (inside, allowed),
            _client(allow=("127.0.0.2/32",)) as client,
        ):
            url = f"{allowed.url}/go?{inside.url}/hello"
            detail = await _refusal(client, url, follow_redirects=True)
            # Without following, the redirect itself is the answer.
            response = await client.http(HttpRequest(method="GET", url=url))
        assert detail.startswith(f"GET {url}: the outbound policy refuses 127.0.0.1 port")
        assert response.status == 302
        assert allowed.connections == 2
        assert inside.connections == 0


async def test_a_name_cannot_be_rebound_to_loopback() -> None:
    """An allowed name that resolves to loopback is refused; the loopback address opens it."""
    trio.socket.set_custom_hostname_resolver(_Resolver({"api.partner.example": ["127.0.0.1"]}))
    try:
        with trio.fail_after(30):
            async with _serving("127.0.0.1") as (server,):
                url = f"http://api.partner.example:{server.port}/hello"
                async with _client(allow=("api.partner.example",)) as client:
                    detail = await _refusal(client, url)
                assert "refuses api.partner.example (127.0.0.1)" in detail
                assert server.connections == 0
                async with _client(allow=("127.0.0.1",)) as client:
                    response = await client.http(HttpRequest(method="GET", url=url))
                assert response.body == b"hello from 127.0.0.1"
    finally:
        trio.socket.set_custom_hostname_resolver(None)


async def test_only_the_allowed_addresses_of_a_name_are_connected_to() -> None:
    """A name resolving to a refused and an allowed address reaches the allowed one only."""
    with trio.fail_after(30):
        async with _serving("127.0.0.1", "127.0.0.2") as (refused, allowed):
            resolver = _Resolver({"mixed.example": ["127.0.0.1", "169.254.169.254", "127.0.0.2"]})
            trio.socket.set_custom_hostname_resolver(resolver)
            try:
                async with _client(allow=("127.0.0.2",)) as client:
                    # Both servers listen on their own port; only 127.0.0.2's is asked for.
                    url = f"http://mixed.example:{allowed.port}/hello"
                    response = await client.http(HttpRequest(method="GET", url=url))
            finally:
                trio.socket.set_custom_hostname_resolver(None)
        assert response.body == b"hello from 127.0.0.2"
        assert refused.connections == 0


async def test_proxy_from_the_environment_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY cannot carry a refused call past the policy."""
    with trio.fail_after(30):
        async with _serving("127.0.0.1", "127.0.0.2") as (target, proxy):
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            monkeypatch.setenv("ALL_PROXY", proxy.url)
            async with _client(allow=("127.0.0.2",)) as client:
                await _refusal(client, f"{target.url}/hello")
        assert (target.connections, proxy.connections) == (0, 0)


def test_a_policy_and_a_client_of_ones_own_do_not_mix() -> None:
    """A caller that brings its own client cannot believe a policy applies to it."""
    with pytest.raises(ValueError, match="give a policy or a client of your own, not both"):
        HttpxClient(httpx.AsyncClient(), policy=OutboundPolicy())


def _certificates(folder: Path, name: str) -> tuple[Path, ssl.SSLContext]:
    """A CA file trusting a fresh CA, and a server context with a certificate for ``name``."""
    authority = CertificateAuthority.create(folder)
    server = authority.issue(name, hosts=(name,))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server.certificate, server.private_key)
    return authority.certificate_path, context


async def test_tls_verifies_the_host_name_not_the_address_connected_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTPS through the checked address still verifies the certificate for the URL's name."""
    name = "api.partner.example"
    ca_file, server_context = _certificates(tmp_path, name)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    server = _Server("127.0.0.1")

    async def handle_tls(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, server_context, server_side=True)
        with contextlib.suppress(trio.BrokenResourceError):  # the client refused our certificate
            await server.handle(tls)

    trio.socket.set_custom_hostname_resolver(_Resolver({name: ["127.0.0.1"]}))
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
                server.port = listeners[0].socket.getsockname()[1]
                await nursery.start(trio.serve_listeners, handle_tls, listeners)
                async with _client(allow=("127.0.0.1",)) as client:
                    url = f"https://{name}:{server.port}/hello"
                    response = await client.http(HttpRequest(method="GET", url=url))
                    # The same server by address: its certificate does not name 127.0.0.1.
                    with pytest.raises(WorkflowError) as caught:
                        await client.http(
                            HttpRequest(method="GET", url=f"https://127.0.0.1:{server.port}/")
                        )
                nursery.cancel_scope.cancel()
    finally:
        trio.socket.set_custom_hostname_resolver(None)
    assert response.body == b"hello from 127.0.0.1"
    assert caught.value.problem.status == 503
    assert "CERTIFICATE_VERIFY_FAILED" in (caught.value.problem.detail or "")
