"""Serve a Quart-Trio app with hypercorn until a shutdown event, then drain.

On the event hypercorn stops accepting connections and lets in-flight requests finish within
``grace_period`` seconds before it closes them.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Sequence
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

from workflow_orchestrator.errors import OrchestratorError, exception_leaves

__all__ = ["ListenerError", "serve_app"]

logger = logging.getLogger(__name__)


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def _advice(errors: Sequence[BaseException], port_setting: str) -> str:
    """What to change for the bind errors: the host, or the port (privileged, or in use)."""
    codes = {error.errno for error in errors if isinstance(error, OSError)}
    if any(isinstance(error, socket.gaierror) for error in errors) or errno.EADDRNOTAVAIL in codes:
        return "set server.host to an address of this machine, e.g. 0.0.0.0 (all) or 127.0.0.1"
    if errno.EACCES in codes:
        return f"ports below 1024 need privileges; set {port_setting} to a port above 1023"
    return f"set {port_setting} to a free port or stop what uses this one"


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
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``app`` on ``host:port``; ``task_status.started`` gets the bound URLs.

    Raises ``ListenerError`` (naming ``port_setting``) when the address cannot be bound.
    """
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    config = Config()
    config.bind = [address]
    config.graceful_timeout = grace_period
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 30

    failure: ListenerError | None = None
    async with trio.open_nursery() as nursery:
        try:
            binds: list[str] = await nursery.start(
                partial(serve, app, config, shutdown_trigger=shutdown.wait)
            )
        except* OSError as group:
            errors = exception_leaves(group)
            reasons = sorted({_reason(exc) for exc in errors})
            failure = ListenerError(
                f"cannot listen on {address} for the {name}: {'; '.join(reasons)}; "
                + _advice(errors, port_setting),
                address=address,
            )
            failure.__cause__ = group
        else:
            logger.info("%s listening on %s", name, ", ".join(binds))
            task_status.started(binds)
    if failure is not None:
        raise failure  # outside the nursery, so callers see it alone, not in a group
    logger.info("%s stopped", name)
