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
check. ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` still choose the CAs TLS trusts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import httpcore
import httpx
import trio

from workflow_orchestrator.security import (
    IPAddress,
    OutboundPolicy,
    OutboundRefused,
    normalize_address,
)

logger = logging.getLogger(__name__)

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
        refusal = self._policy.check_name(host, port)
        if refusal is not None:
            raise self._refused(OutboundRefused(refusal))
        deadline = trio.current_time() + (math.inf if timeout is None else timeout)
        with trio.move_on_at(deadline):
            addresses = await _resolve(host, port)
        if trio.current_time() >= deadline:
            raise httpcore.ConnectTimeout(f"resolving {host} took more than {timeout}s")
        allowed: list[str] = []
        first_refusal: OutboundRefused | None = None
        for text, address in addresses:
            refusal = self._policy.check(host, address, port)
            if refusal is None:
                allowed.append(text)
            elif first_refusal is None:
                first_refusal = OutboundRefused(refusal)
        if not allowed:
            if first_refusal is None:  # getaddrinfo answered, but with nothing
                raise httpcore.ConnectError(f"{host} resolved to no address")
            raise self._refused(first_refusal)
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

    @staticmethod
    def _refused(refused: OutboundRefused) -> OutboundRefused:
        refusal = refused.refusal
        logger.warning(
            "outbound call refused: %s",
            refusal.describe(),
            extra={"host": refusal.host, "address": refusal.address, "port": refusal.port},
        )
        return refused


async def _resolve(host: str, port: int) -> list[tuple[str, IPAddress]]:
    """The addresses of ``host`` as (text to connect to, normalised address), in order."""
    literal = normalize_address(host)
    if literal is not None:
        return [(str(literal), literal)]
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    except trio.socket.gaierror as error:
        raise httpcore.ConnectError(f"cannot resolve {host}: {error.strerror}") from None
    found: list[tuple[str, IPAddress]] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        text = str(sockaddr[0])
        address = normalize_address(text)
        if address is not None and all(text != seen for seen, _ in found):
            found.append((text, address))
    return found


class _PolicyTransport(httpx.AsyncHTTPTransport):
    """``AsyncHTTPTransport`` whose connection pool opens connections through ``backend``."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError(
                "this httpx release builds its transport differently; the outbound policy "
                "cannot be installed (see adapters/_outbound_network.py)"
            )
        self._pool = httpcore.AsyncConnectionPool(
            # SSL_CERT_FILE / SSL_CERT_DIR still choose the trusted CAs (that is not a bypass).
            ssl_context=httpx.create_ssl_context(trust_env=True),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def policy_transport(
    policy: OutboundPolicy, *, limits: httpx.Limits | None = None
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection obeys ``policy`` (for clients that wrap it;
    give it to an ``httpx.AsyncClient`` built with ``trust_env=False``).

    ``limits`` defaults to httpx's own (100 connections, 20 kept alive).
    """
    return _PolicyTransport(PolicyNetworkBackend(policy), limits or DEFAULT_LIMITS)


def policy_client(
    policy: OutboundPolicy, *, limits: httpx.Limits | None = None
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every connection (redirects included) obeys ``policy``.

    ``limits`` defaults to httpx's own (100 connections, 20 kept alive).
    """
    return httpx.AsyncClient(transport=policy_transport(policy, limits=limits), trust_env=False)
