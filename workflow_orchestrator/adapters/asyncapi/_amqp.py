"""AsyncAPI over AMQP 0-9-1 (RabbitMQ): publish and subscribe through aio-pika, on the one
trio-asyncio loop.

Where messages go, from the AsyncAPI ``amqp`` bindings:

- A channel bound ``is: routingKey`` with an ``exchange.name`` is that exchange with the
  channel address as routing key (the operation binding's first ``cc`` entry instead, when it
  has one). Publishing sends to the exchange; subscribing declares a server-named, exclusive,
  auto-delete queue bound to it (a tap: it sees what is published while it exists). The
  exchange must exist.
- Otherwise (``is: queue``, or no binding) the address is a queue (``queue.name`` when the
  binding names one): publishing sends to it through the default exchange; subscribing
  consumes from it (competing with its other consumers), declaring it first when it does not
  exist, with the binding's ``durable``/``exclusive``/``autoDelete`` (default: not durable,
  deleted when its last consumer leaves).

Every connection is a plain aio-pika connection of its own, opened to an address the outbound
policy allowed (``_network``) by aiormq's transport hook, with TLS for ``amqps`` (the server
name verified against the host). Credentials: basic authentication's user and password; a
bearer token as the PLAIN password (what RabbitMQ's OAuth 2 plugin reads); none: the URL's user
information, else AMQP's ``guest``/``guest``. A published message carries the call's
idempotency key as ``message_id`` and waits for the broker's confirm. A subscription receives
at most ``buffered`` unacknowledged messages (the channel's prefetch); each is acknowledged
when the workflow takes it. Closing the subscription closes its connection (shielded, bounded),
which deletes a tap's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aio_pika
import aio_pika.abc
import aiormq
import aiormq.connection
import aiormq.exceptions
import attrs
import trio
import trio.lowlevel
import trio_asyncio
import yarl

from workflow_orchestrator.adapters.asyncapi._messages import (
    AsyncApiRequest,
    decode_body,
    encode_payload,
    failure,
    too_large,
)
from workflow_orchestrator.dsl import ErrorType, WorkflowError

__all__ = ["open_amqp_subscription", "publish_amqp"]

_CLOSE_TIMEOUT = 5.0


class _PolicyTransport(aiormq.connection.TransportFactory):
    """aiormq's transport, opened to the allowed ``addresses`` only (TLS names ``host``)."""

    def __init__(self, addresses: Sequence[str], host: str, port: int, tls: bool) -> None:
        self.addresses = tuple(addresses)
        self.host = host
        self.port = port
        self.tls = tls

    async def create(
        self, url: yarl.URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        kwargs.pop("ssl_context_provider", None)
        context = ssl.create_default_context() if self.tls else None
        last: OSError | None = None
        for address in self.addresses:
            try:
                return await asyncio.open_connection(
                    host=address,
                    port=self.port,
                    ssl=context,
                    server_hostname=self.host if context is not None else None,
                    **kwargs,
                )
            except OSError as error:
                last = error
        assert last is not None
        raise aiormq.exceptions.AMQPConnectionError(*last.args) from last


@attrs.frozen(kw_only=True)
class _Route:
    """Where a channel's messages go: an ``exchange`` and ``routing_key``, or a ``queue``."""

    exchange: str = ""
    routing_key: str = ""
    queue: str = ""
    durable: bool = False
    exclusive: bool = False
    auto_delete: bool = True
    vhost: str | None = None


def _section(binding: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = binding.get(name)
    return value if isinstance(value, Mapping) else {}


def _route(request: AsyncApiRequest) -> _Route:
    channel = request.binding("channel")
    operation = request.binding("operation")
    exchange = _section(channel, "exchange")
    queue = _section(channel, "queue")
    if channel.get("is", "routingKey" if exchange.get("name") else "queue") == "routingKey":
        name = str(exchange.get("name") or "")
        if name:
            cc = operation.get("cc")
            key = str(cc[0]) if isinstance(cc, list) and cc else request.address
            vhost = exchange.get("vhost")
            return _Route(exchange=name, routing_key=key, vhost=str(vhost) if vhost else None)
    vhost = queue.get("vhost")
    return _Route(
        queue=str(queue.get("name") or request.address),
        durable=bool(queue.get("durable", False)),
        exclusive=bool(queue.get("exclusive", False)),
        auto_delete=bool(queue.get("autoDelete", True)),
        vhost=str(vhost) if vhost else None,
    )


def _url(request: AsyncApiRequest, route: _Route) -> str:
    endpoint = request.endpoint
    credentials = request.credentials
    user, password = endpoint.user, endpoint.password
    if credentials is not None:
        if credentials.scheme == "bearer":
            user, password = user or "", credentials.token
        else:
            user, password = credentials.user, credentials.password
    vhost = route.vhost if route.vhost is not None else (endpoint.path[1:] or "/")
    userinfo = ""
    if user is not None or password is not None:
        userinfo = f"{quote(user or '', safe='')}:{quote(password or '', safe='')}@"
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    path = "/" if vhost == "/" else "/" + quote(vhost, safe="")
    return f"amqp://{userinfo}{host}:{endpoint.port}{path}"


def _error(exc: BaseException, request: AsyncApiRequest, doing: str) -> WorkflowError:
    """The workflow error of an AMQP failure while ``doing`` something."""
    where = request.where
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
        return failure(
            ErrorType.AUTHENTICATION,
            f"{request.url} refused the credentials while {doing}; check the call's authentication",
            where,
            title="Authentication Error",
        )
    if isinstance(exc, aiormq.exceptions.ChannelNotFoundEntity):
        return failure(
            ErrorType.COMMUNICATION,
            f"{doing} on {request.url} failed: {exc.args[-1] if exc.args else exc}; create it or "
            "fix the AsyncAPI document's amqp bindings",
            where,
            status=404,
        )
    if isinstance(exc, aiormq.exceptions.ChannelAccessRefused):
        return failure(
            ErrorType.AUTHORIZATION,
            f"{doing} on {request.url} was refused: {exc.args[-1] if exc.args else exc}",
            where,
            status=403,
        )
    return failure(
        ErrorType.COMMUNICATION,
        f"{doing} on {request.url} failed: {type(exc).__name__}: {exc}",
        where,
        status=503,
    )


_AMQP_ERRORS = (aiormq.exceptions.AMQPError, OSError, asyncio.TimeoutError)


async def _connect(
    url: str, addresses: Sequence[str], host: str, port: int, tls: bool, seconds: float
) -> aio_pika.abc.AbstractConnection:
    """A connected aio-pika connection (asyncio side)."""
    connection = aio_pika.Connection(yarl.URL(url))
    connection.kwargs["transport_factory"] = _PolicyTransport(addresses, host, port, tls)
    try:
        await connection.connect(timeout=seconds)
    except BaseException:
        await connection.close()
        raise
    return connection


async def _close(connection: aio_pika.abc.AbstractConnection) -> None:
    with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
        with contextlib.suppress(*_AMQP_ERRORS):  # the broker may have closed it already
            await trio_asyncio.aio_as_trio(connection.close)()


@asynccontextmanager
async def _connection(
    request: AsyncApiRequest, route: _Route, addresses: Sequence[str], seconds: float
) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    endpoint = request.endpoint
    try:
        with trio.fail_after(seconds):
            connection = await trio_asyncio.aio_as_trio(_connect)(
                _url(request, route),
                addresses,
                endpoint.host,
                endpoint.port,
                request.tls,
                seconds,
            )
    except _AMQP_ERRORS as exc:
        raise _error(exc, request, "connecting") from None
    try:
        yield connection
    finally:
        await _close(connection)


def _message(request: AsyncApiRequest) -> aio_pika.Message:
    body, content_type = encode_payload(request.payload, request.content_type)
    operation = request.binding("operation")
    options: dict[str, Any] = {}
    if operation.get("priority") is not None:
        options["priority"] = int(operation["priority"])
    if operation.get("expiration") is not None:
        options["expiration"] = float(operation["expiration"]) / 1000
    if operation.get("replyTo") is not None:
        options["reply_to"] = str(operation["replyTo"])
    mode = operation.get("deliveryMode", 2)
    return aio_pika.Message(
        body,
        headers=dict(request.headers),
        content_type=content_type,
        message_id=request.key,
        delivery_mode=aio_pika.DeliveryMode(int(mode) if mode in (1, 2) else 2),
        **options,
    )


async def _send(
    connection: aio_pika.abc.AbstractConnection,
    route: _Route,
    message: aio_pika.Message,
    seconds: float,
) -> None:
    """Publish with a confirm (asyncio side)."""
    channel = await connection.channel(publisher_confirms=True)
    try:
        if route.exchange:
            exchange = await channel.get_exchange(route.exchange, ensure=False)
            await exchange.publish(message, routing_key=route.routing_key, timeout=seconds)
        else:
            await channel.default_exchange.publish(
                message, routing_key=route.queue, timeout=seconds
            )
    finally:
        if not channel.is_closed:
            await channel.close()


async def publish_amqp(
    request: AsyncApiRequest, addresses: Sequence[str], *, seconds: float, max_size: int
) -> None:
    """Publish the request's message and wait for the broker's confirm (see the module doc)."""
    route = _route(request)
    message = _message(request)
    if len(message.body) > max_size:
        raise too_large("the message to publish", len(message.body), max_size, request.where)
    target = f"exchange {route.exchange!r}" if route.exchange else f"queue {route.queue!r}"
    async with _connection(request, route, addresses, seconds) as connection:
        try:
            with trio.fail_after(seconds):
                await trio_asyncio.aio_as_trio(_send)(connection, route, message, seconds)
        except _AMQP_ERRORS as exc:
            raise _error(exc, request, f"publishing to {target}") from None
        except trio.TooSlowError:
            raise failure(
                ErrorType.TIMEOUT,
                f"publishing to {target} on {request.url} was not confirmed within {seconds:g}s "
                "(workflows.calls.asyncapi.timeout)",
                request.where,
            ) from None


def _plain(value: Any) -> Any:
    """An AMQP field value as JSON."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


@attrs.define(eq=False)
class _Tap:
    """Deliveries waiting for the workflow; filled on the asyncio side, emptied by Trio
    (trio-asyncio runs both on one thread; neither awaits while changing it)."""

    waiting: deque[aio_pika.abc.AbstractIncomingMessage] = attrs.field(factory=deque)
    arrived: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    closed: bool = False
    reason: BaseException | None = None

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.waiting.append(message)
        self.arrived.unpark_all()

    def on_close(self, _sender: Any, reason: BaseException | None = None) -> None:
        self.closed = True
        self.reason = reason
        self.arrived.unpark_all()


async def _listen(
    connection: aio_pika.abc.AbstractConnection, route: _Route, prefetch: int, tap: _Tap
) -> None:
    """Declare (and bind) the queue and start consuming into ``tap`` (asyncio side)."""
    channel = await connection.channel(publisher_confirms=False)
    await channel.set_qos(prefetch_count=prefetch)
    if route.exchange:
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        await queue.bind(route.exchange, routing_key=route.routing_key)
    else:
        try:
            queue = await channel.declare_queue(route.queue, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            channel = await connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=prefetch)
            queue = await channel.declare_queue(
                route.queue,
                durable=route.durable,
                exclusive=route.exclusive,
                auto_delete=route.auto_delete,
            )
    channel.close_callbacks.add(tap.on_close)
    await queue.consume(tap.on_message, no_ack=False)


@attrs.define(eq=False)
class _Messages:
    """The subscription's messages for the workflow, in arrival order."""

    request: AsyncApiRequest
    tap: _Tap
    max_size: int

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> dict[str, Any]:
        tap, request = self.tap, self.request
        while not tap.waiting:
            if tap.closed:
                if tap.reason is None:
                    raise StopAsyncIteration
                raise _error(tap.reason, request, f"consuming {request.describe()}")
            await tap.arrived.park()
        incoming = tap.waiting.popleft()
        if len(incoming.body) > self.max_size:
            await trio_asyncio.aio_as_trio(incoming.reject)(requeue=False)
            raise too_large(
                f"a message received from {request.describe()}",
                len(incoming.body),
                self.max_size,
                request.where,
            )
        await trio_asyncio.aio_as_trio(incoming.ack)()
        message: dict[str, Any] = {
            "payload": decode_body(incoming.body, incoming.content_type or request.content_type),
            "headers": _plain(dict(incoming.headers or {})),
        }
        if incoming.correlation_id is not None:
            message["correlationId"] = str(incoming.correlation_id)
        return message


@asynccontextmanager
async def open_amqp_subscription(
    request: AsyncApiRequest,
    addresses: Sequence[str],
    *,
    seconds: float,
    max_size: int,
    buffered: int,
) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """Subscribe (see the module doc); the iterator ends when the broker closes the channel
    normally and raises a communication error when it fails."""
    route = _route(request)
    tap = _Tap()
    target = (
        f"exchange {route.exchange!r} (routing key {route.routing_key!r})"
        if route.exchange
        else f"queue {route.queue!r}"
    )
    async with _connection(request, route, addresses, seconds) as connection:
        try:
            with trio.fail_after(seconds):
                await trio_asyncio.aio_as_trio(_listen)(connection, route, buffered, tap)
        except _AMQP_ERRORS as exc:
            raise _error(exc, request, f"subscribing to {target}") from None
        except trio.TooSlowError:
            raise failure(
                ErrorType.TIMEOUT,
                f"subscribing to {target} on {request.url} did not finish within {seconds:g}s "
                "(workflows.calls.asyncapi.timeout)",
                request.where,
            ) from None
        yield _Messages(request=request, tap=tap, max_size=max_size)
