"""AsyncAPI over WebSocket (``ws``, ``wss``): publish sends one message on a connection of
its own, subscribe reads the messages a connection receives, through trio-websocket.

The resource is the server URL's path followed by the channel address. The TCP connection is
opened to an address the outbound policy allowed (``_network``), with TLS for ``wss`` (the
server's name verified); credentials go in the handshake's ``Authorization`` header (basic or
bearer), and a handshake answered 401 or 403 is an authentication or authorization error. A
WebSocket message has no headers: publishing a message with ``headers`` is refused. The
payload is sent as JSON text (a string as it is) and a received message is read as JSON when
it parses, else as text (binary: base64). The connection receives at most ``maxMessageSize``
per message and buffers ``buffered`` messages ahead of the workflow; a close with code 1000 or
1001 ends a subscription, any other close fails it.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import attrs
import trio
import trio_websocket

from workflow_orchestrator.adapters.asyncapi._messages import (
    AsyncApiRequest,
    decode_body,
    encode_payload,
    failure,
    too_large,
)
from workflow_orchestrator.dsl import ErrorType, WorkflowError

__all__ = ["open_ws_subscription", "publish_ws"]

_CLOSE_TIMEOUT = 5.0
_NORMAL_CLOSE = (1000, 1001)
_TOO_BIG = 1009
_DEFAULT_PORTS = {"ws": 80, "wss": 443}


def _resource(request: AsyncApiRequest) -> str:
    base = request.endpoint.path.rstrip("/")
    address = request.address if request.address.startswith("/") else "/" + request.address
    return (base + address) or "/"


def _host_header(request: AsyncApiRequest) -> str:
    endpoint = request.endpoint
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    if _DEFAULT_PORTS.get(endpoint.scheme) == endpoint.port:
        return host
    return f"{host}:{endpoint.port}"


async def _stream(request: AsyncApiRequest, addresses: Sequence[str]) -> trio.abc.Stream:
    endpoint = request.endpoint
    last: OSError | None = None
    for address in addresses:
        try:
            tcp = await trio.open_tcp_stream(address, endpoint.port)
            break
        except OSError as error:
            last = error
    else:
        raise failure(
            ErrorType.COMMUNICATION,
            f"connecting to {request.url} failed: {last}",
            request.where,
            status=503,
        )
    if not request.tls:
        return tcp
    secure = trio.SSLStream(
        tcp, ssl.create_default_context(), server_hostname=endpoint.host, https_compatible=True
    )
    await secure.do_handshake()
    return secure


def _rejected(exc: trio_websocket.ConnectionRejected, request: AsyncApiRequest) -> Exception:
    status = exc.status_code
    if status == 401:
        kind, title = ErrorType.AUTHENTICATION, "Authentication Error"
    elif status == 403:
        kind, title = ErrorType.AUTHORIZATION, "Authorization Error"
    else:
        kind, title = ErrorType.COMMUNICATION, None
    return failure(
        kind,
        f"{request.url} refused the WebSocket handshake for {_resource(request)!r} with status "
        f"{status}",
        request.where,
        status=status,
        title=title,
    )


@asynccontextmanager
async def _connection(
    request: AsyncApiRequest,
    addresses: Sequence[str],
    *,
    seconds: float,
    max_size: int,
    buffered: int,
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """An open WebSocket for the block. trio-websocket's reader task runs in a nursery of
    ours: its failures (a refused handshake, a broken stream) come out as workflow errors, and
    an error of the block comes out as it was raised, not inside an exception group."""
    headers = []
    if request.credentials is not None:
        headers.append((b"authorization", request.credentials.header().encode()))
    streams: list[trio.abc.Stream] = []
    raised: list[Exception] = []
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(seconds):
                stream = await _stream(request, addresses)
                streams.append(stream)
                websocket = await trio_websocket.wrap_client_stream(
                    nursery,
                    stream,  # type: ignore[arg-type]
                    _host_header(request),
                    _resource(request),
                    extra_headers=headers,
                    message_queue_size=buffered,
                    max_message_size=max_size,
                )
            try:
                yield websocket
            except Exception as exc:  # the block's own error, re-raised plain below
                raised.append(exc)
            finally:
                with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                    await websocket.aclose()
                nursery.cancel_scope.cancel()
    except* trio_websocket.ConnectionRejected as group:
        raise _rejected(_leaf(group), request) from None
    except* (trio_websocket.HandshakeError, OSError, trio.BrokenResourceError) as group:
        raise failure(
            ErrorType.COMMUNICATION,
            f"opening a WebSocket to {request.url} failed: {_leaf(group)}",
            request.where,
            status=503,
        ) from None
    except* trio.TooSlowError:
        raise failure(
            ErrorType.TIMEOUT,
            f"opening a WebSocket to {request.url} did not finish within {seconds:g}s "
            "(workflows.calls.asyncapi.timeout)",
            request.where,
        ) from None
    except* WorkflowError as group:
        raise _leaf(group) from None
    finally:
        for stream in streams:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await stream.aclose()
    if raised:
        raise raised[0]


_E = TypeVar("_E", bound=BaseException)


def _leaf(group: BaseExceptionGroup[_E]) -> _E:
    """The first exception of ``group`` that is not a group."""
    first: Any = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return cast(_E, first)


def _closed(
    exc: trio_websocket.ConnectionClosed, request: AsyncApiRequest, max_size: int
) -> Exception:
    reason = exc.reason or trio_websocket.CloseReason(1006, None)
    if reason.code == _TOO_BIG:
        return too_large(
            f"a message on the WebSocket {_resource(request)!r}",
            max_size + 1,
            max_size,
            request.where,
        )
    return failure(
        ErrorType.COMMUNICATION,
        f"the WebSocket {_resource(request)!r} of {request.url} closed with code {reason.code}"
        f"{': ' + reason.reason if reason.reason else ''}",
        request.where,
        status=502,
    )


async def publish_ws(
    request: AsyncApiRequest, addresses: Sequence[str], *, seconds: float, max_size: int
) -> None:
    """Send the request's payload as one message (see the module doc)."""
    if request.headers:
        raise failure(
            ErrorType.CONFIGURATION,
            "a WebSocket message has no headers; remove message.headers or use a protocol "
            "that carries them (amqp, kafka)",
            request.where,
        )
    body, _ = encode_payload(request.payload, request.content_type)
    if len(body) > max_size:
        raise too_large("the message to publish", len(body), max_size, request.where)
    async with _connection(
        request, addresses, seconds=seconds, max_size=max_size, buffered=1
    ) as ws:
        try:
            with trio.fail_after(seconds):
                await ws.send_message(body.decode("utf-8"))
        except trio_websocket.ConnectionClosed as exc:
            raise _closed(exc, request, max_size) from None
        except trio.TooSlowError:
            raise failure(
                ErrorType.TIMEOUT,
                f"sending on the WebSocket of {request.url} did not finish within {seconds:g}s",
                request.where,
            ) from None


@attrs.define(eq=False)
class _Messages:
    request: AsyncApiRequest
    websocket: trio_websocket.WebSocketConnection
    max_size: int

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            data = await self.websocket.get_message()
        except trio_websocket.ConnectionClosed as exc:
            if exc.reason is not None and exc.reason.code in _NORMAL_CLOSE:
                raise StopAsyncIteration from None
            raise _closed(exc, self.request, self.max_size) from None
        body = data.encode("utf-8") if isinstance(data, str) else data
        content_type = (
            self.request.content_type if isinstance(data, str) else "application/octet-stream"
        )
        return {"payload": decode_body(body, content_type), "headers": {}}


@asynccontextmanager
async def open_ws_subscription(
    request: AsyncApiRequest,
    addresses: Sequence[str],
    *,
    seconds: float,
    max_size: int,
    buffered: int,
) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """Read what the WebSocket receives (see the module doc)."""
    async with _connection(
        request, addresses, seconds=seconds, max_size=max_size, buffered=buffered
    ) as websocket:
        yield _Messages(request=request, websocket=websocket, max_size=max_size)
