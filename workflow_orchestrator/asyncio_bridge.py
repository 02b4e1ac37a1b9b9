"""The one asyncio loop of the process (trio-asyncio), for asyncpg and aio-pika.

``open_asyncio_bridge()`` opens it with an exception handler that logs what asyncio libraries
report as "unhandled" (a future whose exception nobody read, a callback that failed) instead of
trio-asyncio's default, which re-raises it into the loop's nursery and so would stop the whole
service because, say, PostgreSQL closed an idle pooled connection. Errors that matter reach our
code through the awaited calls themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio_asyncio

__all__ = ["open_asyncio_bridge"]

logger = logging.getLogger(__name__)


def _log_unhandled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exception = context.get("exception")
    message = context.get("message") or "unhandled error in the asyncio loop"
    logger.warning(
        "asyncio library reported: %s%s",
        message,
        f" ({type(exception).__name__}: {exception})" if exception is not None else "",
    )


@asynccontextmanager
async def open_asyncio_bridge() -> AsyncIterator[asyncio.AbstractEventLoop]:
    """Open the trio-asyncio loop for the duration of the block."""
    async with trio_asyncio.open_loop() as loop:
        loop.set_exception_handler(_log_unhandled)
        yield loop
