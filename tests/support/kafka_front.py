"""A front for the Kafka test broker that does what tansu cannot do for tests: SASL
authentication (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, with real credential checks) and TLS,
before a plaintext, unauthenticated tansu behind it.

tansu 0.6.0's own SASL needs users created over the wire, which fails once authentication is
on, and its users did not survive a restart; its ``--cert`` and ``--key`` options refuse to
be given together ("the argument '--cert <CERT>' cannot be used with '--key <KEY>'"), so it
serves no TLS. Hence this front.

``open_kafka_front()`` listens on a free port of 127.0.0.1, starts a broker whose metadata
advertises the front's address (so clients come back through the front for every broker
connection), and serves each client connection as a Kafka broker with a SASL listener would:

- TLS first, when the front has a certificate authority (a server certificate for
  127.0.0.1/localhost is issued from it; client certificates are required with
  ``require_client_certificate``). A client that does not trust it fails its handshake;
- then, with ``users``, only ApiVersions (forwarded to tansu, whose answer lists SaslHandshake
  v0-1 and SaslAuthenticate v0-2), SaslHandshake v1 and SaslAuthenticate v0/v1 are accepted:
  an unknown mechanism is answered UNSUPPORTED_SASL_MECHANISM (33) with the enabled ones, a
  refused credential SASL_AUTHENTICATION_FAILED (58) with Kafka's message, and the connection
  is closed after either, as Kafka does; so is any other request before authentication,
  a SaslHandshake v0 (raw SASL tokens) and a SaslAuthenticate v2 (no client here sends them);
- once authenticated (or at once without ``users``), bytes are copied verbatim both ways
  to a connection of its own to tansu, until either side closes. A broker restart closes the
  front's connections; clients reconnect and authenticate again.

``sever_connections()`` drops every open client connection (the broker keeps running), for
tests of reconnection. Each authentication is recorded in ``authentications``.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import attrs
import trio
from aiokafka.protocol.admin import (
    SaslAuthenticateRequest_v0,
    SaslAuthenticateRequest_v1,
    SaslAuthenticateResponse_v0,
    SaslAuthenticateResponse_v1,
    SaslHandShakeRequest_v1,
    SaslHandShakeResponse_v1,
)

from tests.support.certificates import CertificateAuthority, PemFiles, client_context
from tests.support.kafka import HOST, KafkaBroker, Storage, open_kafka_broker
from tests.support.kafka_clients import ClientSecurity
from tests.support.kafka_wire import (
    FrameReader,
    RequestHeader,
    encode_response,
    frame,
    parse_request_header,
)
from tests.support.s3_server import S3Server
from tests.support.sasl_server import (
    MECHANISMS,
    AuthenticationFailed,
    Credentials,
    SaslExchange,
    start_exchange,
)

__all__ = ["Authentication", "KafkaFront", "open_kafka_front"]

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED = 33, 58
_AUTHENTICATE_VERSIONS = {
    0: (SaslAuthenticateRequest_v0, SaslAuthenticateResponse_v0),
    1: (SaslAuthenticateRequest_v1, SaslAuthenticateResponse_v1),
}
_CHUNK = 65536


@attrs.frozen
class Authentication:
    """One SASL authentication the front decided: who, how, and the refusal's message."""

    mechanism: str
    user: str | None
    accepted: bool
    message: str | None = None


class _Refused(Exception):
    """The connection ends here (after the answer, if any, was sent)."""


@attrs.define(eq=False)
class KafkaFront:
    """The front at ``bootstrap`` and the broker behind it (restart it through ``broker``)."""

    bootstrap: str
    broker: KafkaBroker
    credentials: Credentials | None
    mechanisms: tuple[str, ...]
    authority: CertificateAuthority | None
    server_certificate: PemFiles | None
    authentications: list[Authentication] = attrs.Factory(list)
    _ssl_context: ssl.SSLContext | None = None
    _connections: set[trio.CancelScope] = attrs.Factory(set)

    @property
    def ca_certificate(self) -> Path | None:
        """The PEM file of the CA that issued the front's certificate (what clients trust)."""
        return None if self.authority is None else self.authority.certificate_path

    def client_security(
        self,
        user: str | None = None,
        password: str | None = None,
        *,
        mechanism: str = "PLAIN",
        ssl_context: ssl.SSLContext | None = None,
    ) -> ClientSecurity:
        """How a client reaches this front: SASL ``mechanism`` as ``user`` when given, TLS
        (trusting the front's CA unless ``ssl_context`` says otherwise) when the front has
        it."""
        if ssl_context is None and self.authority is not None:
            ssl_context = client_context(self.authority)
        return ClientSecurity(
            ssl_context=ssl_context,
            sasl_mechanism=mechanism if user is not None else None,
            username=user,
            password=password,
        )

    def sever_connections(self) -> None:
        """Drop every client connection open now (new ones are accepted)."""
        for scope in list(self._connections):
            scope.cancel()

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        with trio.CancelScope() as scope:
            self._connections.add(scope)
            try:
                await self._serve(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ValueError):
                pass  # the client or the broker went away, or sent garbage: the connection ends
            except _Refused:
                pass
            finally:
                self._connections.discard(scope)
                await trio.aclose_forcefully(stream)

    async def _serve(self, stream: trio.SocketStream) -> None:
        client: trio.abc.Stream = stream
        if self._ssl_context is not None:
            secured = trio.SSLStream(stream, self._ssl_context, server_side=True)
            await secured.do_handshake()
            client = secured
        upstream = await trio.open_tcp_stream(HOST, self.broker.port)
        try:
            reader = FrameReader(client)
            leftover = b""
            if self.credentials is not None:
                leftover = await self._authenticate(client, reader, upstream)
            await _pipe(client, reader.take_buffered(), upstream, leftover)
        finally:
            await trio.aclose_forcefully(upstream)
            await trio.aclose_forcefully(client)

    async def _authenticate(
        self, client: trio.abc.Stream, reader: FrameReader, upstream: trio.SocketStream
    ) -> bytes:
        """The pre-authentication exchange; returns what tansu sent beyond its answers."""
        upstream_reader = FrameReader(upstream)
        exchange: SaslExchange | None = None
        mechanism = ""
        while True:
            payload = await reader.next()
            if payload is None:
                raise _Refused
            header = parse_request_header(payload)
            if header.api_key == API_VERSIONS and exchange is None:
                await upstream.send_all(frame(payload))
                answer = await upstream_reader.next()
                if answer is None:
                    raise _Refused
                await client.send_all(frame(answer))
            elif header.api_key == SASL_HANDSHAKE and exchange is None and header.api_version == 1:
                mechanism = SaslHandShakeRequest_v1.decode(payload[header.body_offset :]).mechanism
                exchange = await self._handshake(client, header, mechanism)
            elif (
                header.api_key == SASL_AUTHENTICATE
                and exchange is not None
                and header.api_version in _AUTHENTICATE_VERSIONS
            ):
                if await self._authenticate_step(client, header, payload, exchange, mechanism):
                    return upstream_reader.take_buffered()
            else:
                raise _Refused  # Kafka closes a connection that skips authentication

    async def _handshake(
        self, client: trio.abc.Stream, header: RequestHeader, mechanism: str
    ) -> SaslExchange:
        assert self.credentials is not None
        supported = mechanism in self.mechanisms
        response = SaslHandShakeResponse_v1(
            error_code=0 if supported else UNSUPPORTED_SASL_MECHANISM,
            enabled_mechanisms=list(self.mechanisms),
        )
        await client.send_all(encode_response(header.correlation_id, response))
        if not supported:
            self.authentications.append(
                Authentication(mechanism, None, False, f"unsupported mechanism {mechanism}")
            )
            raise _Refused
        return start_exchange(mechanism, self.credentials)

    async def _authenticate_step(
        self,
        client: trio.abc.Stream,
        header: RequestHeader,
        payload: bytes,
        exchange: SaslExchange,
        mechanism: str,
    ) -> bool:
        """One SaslAuthenticate round trip; True once the client is authenticated."""
        request_type, response_type = _AUTHENTICATE_VERSIONS[header.api_version]
        token = request_type.decode(payload[header.body_offset :]).sasl_auth_bytes
        fields = {"session_lifetime_ms": 0} if header.api_version >= 1 else {}
        try:
            answer = exchange.step(bytes(token or b""))
        except AuthenticationFailed as refusal:
            response = response_type(
                error_code=SASL_AUTHENTICATION_FAILED,
                error_message=str(refusal),
                sasl_auth_bytes=b"",
                **fields,
            )
            await client.send_all(encode_response(header.correlation_id, response))
            self.authentications.append(
                Authentication(mechanism, exchange.user, False, str(refusal))
            )
            raise _Refused from None
        response = response_type(error_code=0, error_message=None, sasl_auth_bytes=answer, **fields)
        await client.send_all(encode_response(header.correlation_id, response))
        if exchange.complete:
            self.authentications.append(Authentication(mechanism, exchange.user, True))
        return exchange.complete


async def _pipe(
    client: trio.abc.Stream, client_rest: bytes, upstream: trio.abc.Stream, upstream_rest: bytes
) -> None:
    """Copy bytes both ways (first what was read ahead) until either side closes."""

    async def copy(source: trio.abc.ReceiveStream, sink: trio.abc.SendStream, rest: bytes) -> None:
        try:
            if rest:
                await sink.send_all(rest)
            while data := await source.receive_some(_CHUNK):
                await sink.send_all(data)
        finally:
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(copy, client, upstream, client_rest)
        nursery.start_soon(copy, upstream, client, upstream_rest)


def _server_context(
    authority: CertificateAuthority, certificate: PemFiles, *, require_client: bool
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate.certificate), str(certificate.private_key))
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(authority.certificate_path))
    return context


@asynccontextmanager
async def open_kafka_front(
    *,
    users: Mapping[str, str] | None = None,
    mechanisms: tuple[str, ...] = MECHANISMS,
    tls: CertificateAuthority | None = None,
    require_client_certificate: bool = False,
    storage: Storage = "memory",
    log_folder: Path | None = None,
    s3: S3Server | None = None,
) -> AsyncIterator[KafkaFront]:
    """A front (SASL with ``users``: name -> password, over ``mechanisms``; TLS with a
    certificate issued by ``tls``) before a new broker (``open_kafka_broker`` arguments),
    for the block; both stop when it ends."""
    unknown = set(mechanisms) - set(MECHANISMS)
    if unknown:
        raise ValueError(f"the front offers only {', '.join(MECHANISMS)}, not {sorted(unknown)}")
    listeners = await trio.open_tcp_listeners(0, host=HOST)
    try:
        port = listeners[0].socket.getsockname()[1]
        certificate = None if tls is None else tls.issue_server("kafka-front")
        async with (
            open_kafka_broker(
                storage=storage, log_folder=log_folder, advertised_port=port, s3=s3
            ) as broker,
            trio.open_nursery() as nursery,
        ):
            front = KafkaFront(
                bootstrap=f"{HOST}:{port}",
                broker=broker,
                credentials=None if users is None else Credentials.create(users, mechanisms),
                mechanisms=mechanisms,
                authority=tls,
                server_certificate=certificate,
                ssl_context=None
                if tls is None or certificate is None
                else _server_context(tls, certificate, require_client=require_client_certificate),
            )
            await nursery.start(
                partial(
                    trio.serve_listeners,
                    front._serve_connection,
                    listeners,
                    handler_nursery=nursery,
                )
            )
            try:
                yield front
            finally:
                nursery.cancel_scope.cancel()
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)
