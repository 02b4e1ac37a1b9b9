"""Serve a Quart-Trio app with hypercorn until a shutdown event, then drain.

On the event hypercorn stops accepting connections and lets in-flight requests finish within
``grace_period`` seconds before it closes them. Hypercorn alone would also keep an idle
keep-alive connection (a load balancer's, a probe's) open for the whole grace period, so
``serve_app`` counts the requests in flight itself and stops the server as soon as none is left.

With a TLS context (``gateway._tls``) the listener speaks only HTTPS: hypercorn gets our context
instead of building one from file paths, a plain HTTP request fails the handshake and never
reaches the app, and the bound URLs (and the log line) say ``https://``.

With ``reuse_port`` (the workers of ``server.workers`` > 1) the socket is bound with
``SO_REUSEPORT``: every worker binds the same address and the kernel spreads the connections.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
from collections.abc import Sequence
from functools import partial

import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio import serve
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart_trio import QuartTrio

from workflow_orchestrator.errors import OrchestratorError, exception_leaves
from workflow_orchestrator.gateway._tls import ListenerTls

__all__ = ["ListenerError", "serve_app"]

logger = logging.getLogger(__name__)

# A client that has not finished its TLS handshake by then is dropped (hypercorn waits 60s).
_HANDSHAKE_TIMEOUT = 10.0


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def _advice(errors: Sequence[BaseException], port_setting: str, host_setting: str) -> str:
    """What to change for the bind errors: the host, or the port (privileged, or in use)."""
    codes = {error.errno for error in errors if isinstance(error, OSError)}
    if any(isinstance(error, socket.gaierror) for error in errors) or errno.EADDRNOTAVAIL in codes:
        return f"set {host_setting} to an address of this machine, e.g. 0.0.0.0 (all) or 127.0.0.1"
    if errno.EACCES in codes:
        return f"ports below 1024 need privileges; set {port_setting} to a port above 1023"
    return f"set {port_setting} to a free port or stop what uses this one"


class _ListenerConfig(Config):
    """Hypercorn's settings for one address, serving with a prepared TLS context (None: plain
    HTTP)."""

    def __init__(
        self, host: str, port: int, tls: ssl.SSLContext | None, *, reuse_port: bool = False
    ) -> None:
        super().__init__()
        self._host = host
        self._port = port
        self._tls = tls
        self._reuse_port = reuse_port

    def create_sockets(self) -> Sockets:
        """The listening socket; closed at once when it cannot be bound (hypercorn's own would
        be left open for the garbage collector)."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self._reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self._host, self._port))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        if self._tls is None:
            return Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
        return Sockets(secure_sockets=[sock], insecure_sockets=[], quic_sockets=[])

    @property
    def ssl_enabled(self) -> bool:
        return self._tls is not None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self._tls


class _CountedRequests:
    """The app as ASGI, counting the HTTP requests in flight (their response sent once the
    app returns); ``drained`` waits until none is left."""

    def __init__(self, app: QuartTrio) -> None:
        self._app = app
        self._in_flight = 0
        self._idle = trio.Event()
        self._idle.set()

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        self._in_flight += 1
        if self._in_flight == 1:
            self._idle = trio.Event()
        try:
            await self._app(scope, receive, send)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def drained(self) -> None:
        while self._in_flight:
            await self._idle.wait()


class ListenerError(OrchestratorError, OSError):
    """A listener could not bind its address."""

    def __init__(self, message: str, *, address: str) -> None:
        super().__init__(message)
        self.address = address


async def serve_app(
    app: QuartTrio,
    *,
    name: str,
    host: str,
    port: int,
    shutdown: trio.Event,
    grace_period: float,
    port_setting: str = "the port setting",
    host_setting: str = "server.host",
    tls: ListenerTls | None = None,
    reuse_port: bool = False,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``app`` on ``host:port``; ``task_status.started`` gets the bound URLs.

    ``tls`` with a context serves HTTPS only; ``reuse_port`` shares the port with the other
    workers of a group (``SO_REUSEPORT``). Raises ``ListenerError`` (naming ``port_setting``
    or ``host_setting``) when the address cannot be bound.
    """
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    tls = tls or ListenerTls()
    config = _ListenerConfig(host, port, tls.context, reuse_port=reuse_port)
    config.ssl_handshake_timeout = _HANDSHAKE_TIMEOUT
    config.bind = [address]
    config.graceful_timeout = grace_period
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 30

    failure: ListenerError | None = None
    counted = _CountedRequests(app)
    async with trio.open_nursery() as nursery:
        try:
            binds: list[str] = await nursery.start(
                partial(serve, counted, config, shutdown_trigger=shutdown.wait)
            )
        except* OSError as group:
            errors = exception_leaves(group)
            reasons = sorted({_reason(exc) for exc in errors})
            failure = ListenerError(
                f"cannot listen on {address} for the {name}: {'; '.join(reasons)}; "
                + _advice(errors, port_setting, host_setting),
                address=address,
            )
            failure.__cause__ = group
        else:
            details = tls.describe()
            logger.info(
                "%s listening on %s%s", name, ", ".join(binds), f" ({details})" if details else ""
            )
            task_status.started(binds)
            await shutdown.wait()
            # Hypercorn lets requests in flight finish within the grace period; once none is
            # left, idle keep-alive connections need not hold the stop any longer.
            with trio.move_on_after(grace_period):
                await counted.drained()
                await trio.sleep(0.05)  # let the last response's connection wind down
                nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure  # outside the nursery, so callers see it alone, not in a group
    logger.info("%s stopped", name)
