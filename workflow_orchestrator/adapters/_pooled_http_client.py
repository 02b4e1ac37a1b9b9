"""`PooledHttpClient`: the service's outbound HTTP (``call: http``, ``call: openapi``, ...).

HTTP/1.1 over Trio streams (responses parsed by llhttp through httptools) and a connection pool
of its own (`ConnectionPool`: idle connections kept per origin, O(1) to take and give back,
capped per origin and in total, waiters served first come, first served). It replaced httpx on
this path, whose pool scans every pooled connection for every request (see
``benchmarks/outbound_clients.py`` for the comparison).

Every connection is opened where the outbound policy (``security.outbound``) allows: the
resolved addresses are checked and the connection goes to a checked one, by address; TLS
verifies the certificate against the URL's host name (``SSL_CERT_FILE`` and ``SSL_CERT_DIR``
choose the trusted CAs). Redirects, when the request follows them, are followed here (at most
`MAX_REDIRECTS`), each hop through the pool and so through the policy. A request that fails on
a reused connection before any of the response arrives (the server closed it as we sent) is
sent again once on a fresh connection if it is idempotent (its method, or an
``Idempotency-Key`` header, which every workflow call carries). With ``proxy`` (the setting
``security.outbound.proxy``) calls go through that egress proxy.

Timeouts, refusals, bodies over ``max_response_size`` and transport failures become the
`WorkflowError`s of `_http_problems`, as with `HttpxClient`. No proxy is taken from the
environment (``HTTP_PROXY`` and the like): only the configured one, which the policy covers.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import quote, unquote, urljoin, urlsplit

import httpx
import trio

from workflow_orchestrator._version import __version__
from workflow_orchestrator.adapters._http_body import (
    ACCEPT_ENCODING,
    DecodingFailed,
    header,
    read_body,
)
from workflow_orchestrator.adapters._http_connection import (
    ConnectFailed,
    ConnectionBroken,
    HttpConnection,
    InvalidRequest,
    Origin,
    ResponseHead,
    open_connection,
)
from workflow_orchestrator.adapters._http_pool import (
    DEFAULT_IDLE_EXPIRY,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PER_ORIGIN,
    ConnectionPool,
)
from workflow_orchestrator.adapters._http_problems import (
    DEFAULT_MAX_RESPONSE_SIZE,
    TooLarge,
    failed,
    refused,
    timed_out,
    too_large,
)
from workflow_orchestrator.adapters._outbound_addresses import mapped_url
from workflow_orchestrator.adapters._outbound_addresses import refused as refused_call
from workflow_orchestrator.config._security_checks import proxy_problem
from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse
from workflow_orchestrator.security import OutboundPolicy, OutboundRefused

MAX_REDIRECTS = 20
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_IDEMPOTENT = frozenset((b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"))
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SAFE_PATH = "!$&'()*+,;=:@/%-._~"
_SAFE_QUERY = _SAFE_PATH + "?"
_USER_AGENT = f"workflow-orchestrator/{__version__}".encode()
# Framing is ours to decide: these are never taken from the request's headers.
_FRAMING = frozenset(("content-length", "transfer-encoding", "connection", "upgrade", "te"))


_VIA_PROXY = "http-via-proxy"  # the pool's key of connections to the proxy for http targets


def _parse_proxy(url: str) -> Origin:
    reason = proxy_problem(url)
    if reason is not None:
        raise ValueError(f"security.outbound.proxy: {reason}")
    parts = urlsplit(url)
    assert parts.hostname is not None  # checked above
    assert parts.port is not None
    return Origin("http", parts.hostname, parts.port)


class _Failed(Exception):
    """The request cannot be sent as given (a bad URL, a header that cannot be encoded,
    too many redirects)."""


class _Target(NamedTuple):
    origin: Origin
    target: bytes
    host: bytes  # the Host header
    authorization: bytes | None  # from user:password in the URL


def _parse(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise _Failed(f"invalid URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise _Failed(f"the URL's scheme {scheme!r} is not http or https")
    host = parts.hostname
    if not host:
        raise _Failed("the URL has no host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as error:
            raise _Failed(f"invalid host name {host!r}: {error}") from None
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    target = quote(parts.path or "/", safe=_SAFE_PATH)
    if parts.query:
        target += "?" + quote(parts.query, safe=_SAFE_QUERY)
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = b"Basic " + base64.b64encode(credentials.encode())
    return _Target(
        Origin(scheme, host, port), target.encode("ascii"), host_header.encode(), authorization
    )


def _encode_headers(headers: Mapping[str, str]) -> dict[bytes, bytes]:
    encoded: dict[bytes, bytes] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in _FRAMING:
            continue
        try:
            encoded[key.encode("ascii")] = value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Failed(f"the header name {name!r} is not ASCII") from None
    return encoded


def _response_headers(head: ResponseHead) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in head.headers:
        key = name.decode("ascii", "replace")
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


class PooledHttpClient:
    """Sends `HttpRequest` values over pooled HTTP/1.1 connections within ``policy``.

    ``policy`` decides where calls may connect (the default `OutboundPolicy` refuses loopback,
    link-local and cloud metadata addresses). ``host_map`` rewrites ``scheme://host[:port]``
    prefixes (the CTK's ``https://petstore.swagger.io`` to a local stub, say) before sending;
    the policy sees the rewritten host. ``max_response_size`` bounds the body of every
    response in bytes. ``max_connections`` and ``max_per_origin`` cap the open connections,
    ``idle_expiry`` is how long (seconds) an idle one is kept. ``proxy`` (``http://host:port``,
    ``security.outbound.proxy``) sends every call through that egress proxy: ``http`` targets
    in absolute form over pooled connections to the proxy, ``https`` through a ``CONNECT``
    tunnel per origin; the policy checks the proxy's addresses when connecting to it and
    each target's host name (or literal address) before a request is sent, since the proxy
    resolves names itself. Use as an async context manager (or call `aclose`).
    """

    def __init__(
        self,
        *,
        policy: OutboundPolicy | None = None,
        host_map: Mapping[str, str] | None = None,
        default_timeout: float = 30.0,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_per_origin: int = DEFAULT_MAX_PER_ORIGIN,
        idle_expiry: float = DEFAULT_IDLE_EXPIRY,
        proxy: str = "",
    ) -> None:
        if max_response_size < 1:
            raise ValueError(f"max_response_size must be at least 1 byte, not {max_response_size}")
        self._policy = policy or OutboundPolicy()
        self._host_map = dict(host_map or {})
        self._timeout = default_timeout
        self._max_response_size = max_response_size
        # SSL_CERT_FILE / SSL_CERT_DIR still choose the trusted CAs (that is not a bypass).
        self._ssl_context = httpx.create_ssl_context(trust_env=True)
        self._ssl_context.set_alpn_protocols(["http/1.1"])
        self._proxy = _parse_proxy(proxy) if proxy else None
        self.pool = ConnectionPool(
            self._connect,
            max_connections=max_connections,
            max_per_origin=max_per_origin,
            idle_expiry=idle_expiry,
        )

    async def __aenter__(self) -> PooledHttpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the idle connections (those in use close when their exchange ends)."""
        self.pool.close()
        await trio.lowlevel.checkpoint()

    async def _connect(self, origin: Origin) -> HttpConnection:
        proxy = self._proxy
        if proxy is None:
            return await open_connection(origin, self._policy, self._ssl_context)
        if origin.scheme == _VIA_PROXY:  # plain HTTP to any host, through the proxy
            connection = await open_connection(
                Origin("http", proxy.host, proxy.port), self._policy, self._ssl_context
            )
            connection.origin = origin
            return connection
        return await open_connection(origin, self._policy, self._ssl_context, proxy=proxy)

    async def http(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``; raise a `WorkflowError` if no (small enough) response arrives."""
        timeout = request.timeout or self._timeout
        method, url = request.method, request.url
        try:
            # A bare cancel scope, not fail_after (a generator-based context manager): this
            # runs for every call.
            with trio.CancelScope(deadline=trio.current_time() + timeout):
                return await self._send(request)
            raise timed_out(method, url, timeout)
        except OutboundRefused as error:
            raise refused(method, url, error) from None
        except TooLarge as error:
            raise too_large(method, url, error, self._max_response_size) from None
        except (ConnectFailed, ConnectionBroken, DecodingFailed, InvalidRequest, _Failed) as error:
            raise failed(method, url, error) from None

    async def _send(self, request: HttpRequest) -> HttpResponse:
        method = request.method.upper().encode("ascii", "replace")
        url = mapped_url(self._host_map, request.url)
        headers = _encode_headers(request.headers)
        if request.idempotency_key:
            headers.setdefault(b"idempotency-key", request.idempotency_key.encode("utf-8"))
        body = request.body
        for _hop in range(MAX_REDIRECTS + 1):
            target = _parse(url)
            head, content = await self._exchange(target, method, headers, body)
            location = header(head, b"location")
            if not (
                request.follow_redirects and head.status_code in _REDIRECTS and location is not None
            ):
                return HttpResponse(
                    status=head.status_code, headers=_response_headers(head), body=content
                )
            url = urljoin(url, location.decode("latin-1"))
            if _parse(url).origin != target.origin:
                # Credentials for one origin are not handed to another (as browsers and httpx).
                headers.pop(b"authorization", None)
                headers.pop(b"host", None)
            # As httpx (and browsers) do: 303, and 302 but for HEAD, become a GET without a
            # body; so does a POST answered by 301.
            status = head.status_code
            if (status in (302, 303) and method != b"HEAD") or (
                status == 301 and method == b"POST"
            ):
                method, body = b"GET", None
        raise _Failed(f"more than {MAX_REDIRECTS} redirects")

    async def _exchange(
        self, target: _Target, method: bytes, headers: dict[bytes, bytes], body: bytes | None
    ) -> tuple[ResponseHead, bytes]:
        """One request and its response over a pooled connection (sent again once on a fresh
        connection when a reused one turns out closed before any answer)."""
        fields = [(b"host", headers.get(b"host", target.host))]
        fields += [(name, value) for name, value in headers.items() if name != b"host"]
        if target.authorization is not None and b"authorization" not in headers:
            fields.append((b"authorization", target.authorization))
        if b"accept" not in headers:
            fields.append((b"accept", b"*/*"))
        if b"accept-encoding" not in headers:
            fields.append((b"accept-encoding", ACCEPT_ENCODING))
        if b"user-agent" not in headers:
            fields.append((b"user-agent", _USER_AGENT))
        if body is not None:
            fields.append((b"content-length", str(len(body)).encode()))
        retry = method in _IDEMPOTENT or b"idempotency-key" in headers
        origin, request_target = target.origin, target.target
        if self._proxy is not None:
            # The proxy resolves the name: the policy decides by the name (or address) alone.
            refusal = self._policy.check_proxied(origin.host, origin.port)
            if refusal is not None:
                raise refused_call(OutboundRefused(refusal))
            if origin.scheme == "http":
                request_target = b"http://" + target.host + request_target
                origin = Origin(_VIA_PROXY, self._proxy.host, self._proxy.port)
        pool = self.pool
        fresh = False
        while True:
            connection = await pool.acquire(origin, fresh=fresh)
            reused = connection.exchanges > 0
            done = False
            try:
                await connection.send_request(method, request_target, fields, body)
                head = await connection.receive_head()
                content = await read_body(
                    connection, head, self._max_response_size, bodiless=method == b"HEAD"
                )
                done = True
            except ConnectionBroken as broken:
                if retry and reused and not broken.received:
                    retry, fresh = False, True
                    continue  # the connection is closed below; this opens a new one
                raise
            finally:
                pool.release(connection, reusable=done and connection.next_cycle())
            return head, content
