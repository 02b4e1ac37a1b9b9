"""Serve a Quart-Trio app with hypercorn until a shutdown event, then drain.

On the event hypercorn stops accepting connections and lets in-flight requests finish within
``grace_period`` seconds before it closes them.
"""

from __future__ import annotations

import logging

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

__all__ = ["serve_app"]

logger = logging.getLogger(__name__)


async def serve_app(
    app: QuartTrio,
    *,
    name: str,
    host: str,
    port: int,
    shutdown: trio.Event,
    grace_period: float,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``app`` on ``host:port``; ``task_status.started`` gets the bound URLs."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = grace_period
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 30

    async def started(binds: list[str]) -> None:
        logger.info("%s listening on %s", name, ", ".join(binds))

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(run)
        await started(binds)
        task_status.started(binds)
    logger.info("%s stopped", name)
