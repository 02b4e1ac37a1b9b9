"""The network under `HttpxClient`: every TCP connection is checked by the outbound policy.

httpcore opens each connection through a *network backend*. `PolicyNetworkBackend` wraps
httpcore's AnyIO backend: ``connect_tcp`` resolves the host itself (trio's ``getaddrinfo``),
asks `OutboundPolicy.check` about every address, and connects only to an allowed one, by its
address, so the address checked is the address connected to (no DNS-rebinding gap between a
check and a second resolution). TLS still verifies the certificate against the host *name*:
httpcore passes the URL's host as the server name to ``start_tls``, not what we connected to.

Redirects need nothing more: httpx follows them through the same transport, so a redirect to
another origin opens a new connection here and is checked like the first request; a pooled
connection is only reused for the origin it was checked for.

`policy_client` installs the backend in an httpx client's transport. httpx has no public way
to hand a network backend to ``AsyncHTTPTransport``, so the transport's connection pool is
replaced by one built with it (``tests/integration/adapters/test_outbound_calls.py`` fails
loudly if an httpx release changes that). Proxies and ``.netrc`` from the environment are
never used (``trust_env=False`` on the client): a proxy would connect on our behalf, past the
check. The configured egress proxy (``security.outbound.proxy``) is: the policy then checks
each request's host name before it goes to the proxy, and the proxy's addresses when
connecting to it. ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` still choose the CAs TLS trusts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import httpcore
import httpx
import trio

from workflow_orchestrator.adapters._outbound_addresses import (
    AddressUnavailable,
    allowed_addresses,
    refused,
)
from workflow_orchestrator.security import OutboundPolicy, OutboundRefused

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class PolicyNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only where ``policy`` allows.

    A refused connection raises `OutboundRefused` (not an httpcore error, so no retry and no
    mapping to a transport error hides it). A host that resolves to several addresses is
    connected to through the allowed ones, in the resolver's order; it is refused only when
    none is allowed.
    """

    def __init__(
        self, policy: OutboundPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = trio.current_time() + (math.inf if timeout is None else timeout)
        allowed: list[str] = []
        with trio.move_on_at(deadline):
            try:
                allowed = await allowed_addresses(self._policy, host, port)
            except AddressUnavailable as error:
                raise httpcore.ConnectError(str(error)) from None
        if not allowed:
            raise httpcore.ConnectTimeout(f"resolving {host} took more than {timeout}s")
        last_error: httpcore.ConnectError | None = None
        for text in allowed:
            remaining = None if timeout is None else max(deadline - trio.current_time(), 0.0)
            try:
                return await self._inner.connect_tcp(
                    text, port, remaining, local_address, socket_options
                )
            except httpcore.ConnectError as error:
                last_error = error
        assert last_error is not None  # allowed is not empty
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # Never configured (the transport has no ``uds``): a socket file is past the policy.
        raise httpcore.ConnectError(f"connections to unix sockets ({path}) are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PolicyTransport(httpx.AsyncHTTPTransport):
    """``AsyncHTTPTransport`` whose connection pool opens connections through ``backend``;
    with ``proxy``, every request goes through that proxy (a ``CONNECT`` tunnel for https),
    the policy checking the target's name (the proxy resolves it) and ``backend`` the proxy's
    addresses."""

    def __init__(
        self,
        backend: PolicyNetworkBackend,
        limits: httpx.Limits,
        *,
        policy: OutboundPolicy,
        proxy: str = "",
    ) -> None:
        super().__init__(trust_env=False, limits=limits)
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError(
                "this httpx release builds its transport differently; the outbound policy "
                "cannot be installed (see adapters/_outbound_network.py)"
            )
        self._policy = policy
        self._proxied = bool(proxy)
        # SSL_CERT_FILE / SSL_CERT_DIR still choose the trusted CAs (that is not a bypass).
        ssl_context = httpx.create_ssl_context(trust_env=True)
        if proxy:
            self._pool = httpcore.AsyncHTTPProxy(
                proxy_url=proxy,
                ssl_context=ssl_context,
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=backend,
            )
        else:
            self._pool = httpcore.AsyncConnectionPool(
                ssl_context=ssl_context,
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=backend,
            )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._proxied:
            url = request.url
            port = url.port or (443 if url.scheme == "https" else 80)
            refusal = self._policy.check_proxied(url.raw_host.decode("ascii"), port)
            if refusal is not None:
                raise refused(OutboundRefused(refusal))
        return await super().handle_async_request(request)


def policy_transport(
    policy: OutboundPolicy, *, limits: httpx.Limits | None = None, proxy: str = ""
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection obeys ``policy`` (for clients that wrap it;
    give it to an ``httpx.AsyncClient`` built with ``trust_env=False``).

    ``limits`` defaults to httpx's own (100 connections, 20 kept alive). ``proxy``
    (``http://host:port``, ``security.outbound.proxy``) sends every request through that
    egress proxy; the policy then checks each target's host name (or literal address) and the
    proxy's own addresses.
    """
    return _PolicyTransport(
        PolicyNetworkBackend(policy), limits or DEFAULT_LIMITS, policy=policy, proxy=proxy
    )


def policy_client(
    policy: OutboundPolicy, *, limits: httpx.Limits | None = None
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every connection (redirects included) obeys ``policy``.

    ``limits`` defaults to httpx's own (100 connections, 20 kept alive).
    """
    return httpx.AsyncClient(transport=policy_transport(policy, limits=limits), trust_env=False)
