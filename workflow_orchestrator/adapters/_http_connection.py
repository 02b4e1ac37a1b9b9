"""One outbound HTTP/1.1 connection over a Trio stream, opened where the policy allows.

`open_connection` connects to an `Origin` through `allowed_addresses` (the outbound policy
checks every resolved address; the connection goes to a checked address, by address) and, for
``https``, wraps the socket in TLS that verifies the certificate against the origin's host
*name*. `HttpConnection` sends one request at a time and hands the response back as a head and
body chunks; after a complete exchange it says whether it can carry another request. Requests
are written here (`serialize_request` refuses what HTTP does not allow in a method, target or
header); responses are parsed by llhttp, Node.js's C parser, through ``httptools`` (h11 cost
about 35 microseconds an exchange in pure Python, llhttp about 2; ``benchmarks/
outbound_clients.py`` keeps an h11 connection for the comparison).

A connection is closed at once and without ceremony (the socket, not a TLS close_notify), so
closing never waits and cannot fail: a connection whose exchange did not finish cleanly, for
any reason including cancellation, is simply closed and never reused.
"""

from __future__ import annotations

import re
import select
import ssl
from typing import NamedTuple

import httptools
import trio

from workflow_orchestrator.adapters._outbound_addresses import (
    AddressUnavailable,
    allowed_addresses,
)
from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.security import OutboundPolicy

RECEIVE_BYTES = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024  # the status line and headers of a response


class Origin(NamedTuple):
    """Where a connection goes: scheme (``http``/``https``), host name (lower case), port."""

    scheme: str
    host: str
    port: int


class ConnectionBroken(OrchestratorError):
    """The connection failed mid-exchange; ``received`` says whether any of the response came.

    A request on a reused connection that fails before anything is received may be sent again
    on a fresh one (the server most likely closed the idle connection as we sent).
    """

    def __init__(self, message: str, *, received: bool) -> None:
        super().__init__(message)
        self.received = received


class ConnectFailed(OrchestratorError):
    """No connection could be opened (the name, TCP or the TLS handshake failed)."""


class InvalidRequest(OrchestratorError):
    """The request cannot be sent as given (a method, target or header HTTP does not allow)."""


class ResponseHead(NamedTuple):
    """A response's status and headers (names in lower case, in the order received)."""

    status_code: int
    headers: list[tuple[bytes, bytes]]


_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but HTAB
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f-\xff]")


def serialize_request(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes | None
) -> bytes:
    """The request as bytes on the wire; raises `InvalidRequest` for what HTTP does not allow
    (a header value with CR or LF, say, which would smuggle in headers or a request)."""
    if not _TOKEN.match(method):
        raise InvalidRequest(f"invalid method {method!r}")
    if not target or _BAD_TARGET.search(target):
        raise InvalidRequest(f"invalid request target {target!r}")
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        if not _TOKEN.match(name):
            raise InvalidRequest(f"invalid header name {name!r}")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise InvalidRequest(f"invalid value of the header {name.decode('latin-1')}")
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    if body:
        parts.append(body)
    return b"".join(parts)


class _Response:
    """The parser's callbacks for one response, and what they collected."""

    __slots__ = (
        "chunks",
        "complete",
        "extra",
        "head_bytes",
        "head_done",
        "headers",
        "informational",
        "keep_alive",
        "parser",
        "status",
    )

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.chunks: list[bytes] = []
        self.status = 0
        self.head_done = False
        self.informational = False
        self.complete = False
        self.keep_alive = False  # llhttp's view, taken while it describes this response
        self.extra = False  # bytes after the response: the connection cannot be trusted

    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.headers.append((name.lower(), value))
            self.head_bytes += len(name) + len(value)

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # 100 Continue, 103 Early Hints: skipped
            self.informational = True
            self.headers = []
        else:
            self.status = status
            self.head_done = True
            self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
        elif not self.complete:
            self.complete = True
            self.keep_alive = self.keep_alive and self.parser.should_keep_alive()

    def until_close(self) -> bool:
        """Whether the body is delimited by the end of the connection (no length, not
        chunked)."""
        for name, value in self.headers:
            if name == b"content-length" or (
                name == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                return False
        return True


class HttpConnection:
    """An open HTTP/1.1 connection to ``origin`` (one exchange at a time); responses are
    parsed by llhttp (httptools)."""

    __slots__ = (
        "_head_only",
        "_received",
        "_response",
        "_socket",
        "_stream",
        "_until_close",
        "exchanges",
        "idle_since",
        "origin",
    )

    def __init__(
        self, origin: Origin, stream: trio.abc.Stream, socket: trio.socket.SocketType
    ) -> None:
        self.origin = origin
        self._stream = stream
        self._socket = socket
        self._response: _Response | None = None
        self._received = False
        self._head_only = False
        self._until_close = False
        self.exchanges = 0  # completed exchanges: > 0 means the connection was reused
        self.idle_since = 0.0

    async def send_request(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes | None
    ) -> None:
        """Send the whole request (head and body)."""
        data = serialize_request(method, target, headers, body)
        self._response = _Response()
        self._received = False
        self._head_only = method == b"HEAD"
        self._until_close = False
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, OSError) as error:
            raise ConnectionBroken(f"sending failed: {describe(error)}", received=False) from None

    async def receive_head(self) -> ResponseHead:
        """The response's status and headers (informational 1xx responses are skipped)."""
        response = self._response
        assert response is not None, "send a request first"
        fed = 0
        while not response.head_done:
            data = await self._receive()
            if not data:
                raise ConnectionBroken(
                    "the server closed the connection without answering", received=self._received
                )
            self._feed(response, data)
            fed += len(data)
            if response.head_bytes > MAX_HEAD_BYTES or (
                not response.head_done and fed > MAX_HEAD_BYTES
            ):
                raise ConnectionBroken(
                    f"the response's head is larger than {MAX_HEAD_BYTES} bytes", received=True
                )
        if self._head_only:
            response.complete = True  # a response to HEAD has no body, whatever it declares
            response.chunks.clear()
        return ResponseHead(response.status, response.headers)

    async def receive_chunk(self) -> bytes | None:
        """The next piece of the body, or None once it is complete."""
        response = self._response
        assert response is not None, "send a request first"
        while True:
            chunks = response.chunks
            if chunks:
                response.chunks = []
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if response.complete:
                self.exchanges += 1
                return None
            data = await self._receive()
            if data:
                self._feed(response, data)
            elif response.until_close():
                response.complete = True
                self._until_close = True
            else:
                raise ConnectionBroken(
                    "the server closed the connection before the end of the body", received=True
                )

    def next_cycle(self) -> bool:
        """After a complete exchange: whether the connection can carry another request."""
        response = self._response
        self._response = None
        return (
            response is not None
            and response.complete
            and not response.extra
            and not self._until_close
            and response.keep_alive
        )

    def looks_closed(self) -> bool:
        """Whether an idle connection has something to read: the server closed it (or sent
        what it should not have). Either way it cannot carry a request."""
        poller = select.poll()
        poller.register(self._socket.fileno(), select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        """Close the socket now (never waits, never fails)."""
        self._socket.close()

    async def _receive(self) -> bytes:
        try:
            data = await self._stream.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, OSError) as error:
            raise ConnectionBroken(describe(error), received=self._received) from None
        if data:
            self._received = True
        return bytes(data)

    @staticmethod
    def _feed(response: _Response, data: bytes) -> None:
        try:
            response.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise ConnectionBroken("the server switched protocols", received=True) from None
        except httptools.HttpParserError as error:
            raise ConnectionBroken(f"malformed response: {error}", received=True) from None


def describe(error: BaseException) -> str:
    """The message of ``error`` or, when it has none (trio's stream errors), of its cause."""
    while not str(error) and error.__cause__ is not None:
        error = error.__cause__
    return str(error) or type(error).__name__


async def open_connection(
    origin: Origin,
    policy: OutboundPolicy,
    ssl_context: ssl.SSLContext,
    kind: type[HttpConnection] = HttpConnection,
    *,
    proxy: Origin | None = None,
) -> HttpConnection:
    """A connection to ``origin`` through the first allowed address that answers, or, with
    ``proxy``, a tunnel to it through the proxy (``CONNECT``; the policy checks the proxy's
    addresses, the caller the origin's name).

    Raises `OutboundRefused` when the policy refuses the host and `ConnectFailed` when no
    connection could be opened.
    """
    sock, plain = await _open_tcp(proxy or origin, policy)
    stream: trio.abc.Stream = plain
    try:
        if proxy is not None:
            await _tunnel(plain, origin, proxy)
        if origin.scheme == "https":
            tls = trio.SSLStream(
                stream, ssl_context, server_hostname=origin.host, https_compatible=True
            )
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError as error:
                raise ConnectFailed(f"TLS with {origin.host} failed: {describe(error)}") from None
            stream = tls
    except BaseException:
        sock.close()
        raise
    return kind(origin, stream, sock)


async def _open_tcp(
    origin: Origin, policy: OutboundPolicy
) -> tuple[trio.socket.SocketType, trio.SocketStream]:
    try:
        addresses = await allowed_addresses(policy, origin.host, origin.port)
    except AddressUnavailable as error:
        raise ConnectFailed(str(error)) from None
    last_error: OSError | None = None
    for address in addresses:
        family = trio.socket.AF_INET6 if ":" in address else trio.socket.AF_INET
        sock = trio.socket.socket(family, trio.socket.SOCK_STREAM)
        try:
            await sock.connect((address, origin.port))
        except OSError as error:
            sock.close()
            last_error = error
            continue
        except BaseException:
            sock.close()
            raise
        return sock, trio.SocketStream(sock)
    assert last_error is not None  # addresses is not empty
    raise ConnectFailed(
        f"cannot connect to {origin.host} port {origin.port}: {describe(last_error)}"
    )


async def _tunnel(stream: trio.SocketStream, origin: Origin, proxy: Origin) -> None:
    """Ask ``proxy`` on ``stream`` for a tunnel to ``origin`` (``CONNECT``)."""
    authority = (f"[{origin.host}]" if ":" in origin.host else origin.host) + f":{origin.port}"
    request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
    where = f"the proxy {proxy.host} port {proxy.port}"
    try:
        await stream.send_all(request)
        head = b""
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some(RECEIVE_BYTES)
            if not data or len(head) > MAX_HEAD_BYTES:
                raise ConnectFailed(f"{where} did not answer CONNECT {authority}")
            head += data
    except (trio.BrokenResourceError, OSError) as error:
        raise ConnectFailed(f"{where} failed: {describe(error)}") from None
    status_line = head.partition(b"\r\n")[0]
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].startswith(b"2"):
        shown = status_line[:100].decode("latin-1")
        raise ConnectFailed(f"{where} refused CONNECT {authority}: {shown}")
    if head.partition(b"\r\n\r\n")[2]:
        raise ConnectFailed(f"{where} sent data before the tunnel was open")
