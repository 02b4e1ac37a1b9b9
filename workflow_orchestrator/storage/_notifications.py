"""LISTEN to a PostgreSQL notification channel from Trio, and keep listening.

One dedicated connection holds the LISTEN. asyncpg calls back on the asyncio side; the payload
reaches the Trio thread through ``TrioToken.run_sync_soon``, so a notification costs no bridge
crossing. The connection is watched (a termination listener, and a ``SELECT 1`` every
``check_every`` seconds because a half-open TCP connection reports nothing by itself); when it is
lost the listener reconnects with backoff. Notifications sent meanwhile are lost: callers poll
too, and ``on_listening`` (called each time listening starts again) lets them look at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import asyncpg
import attrs
import trio
import trio_asyncio

from workflow_orchestrator.retrying import backoff_step
from workflow_orchestrator.storage._database import Database

__all__ = ["DATABASE_ERRORS", "NotificationListener", "describe_error", "notify_ids"]

logger = logging.getLogger(__name__)

# What a lost or refused connection, or a failed statement, raises through ``Database``.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes DatabaseUnavailable and ConnectionError
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
# A check of the LISTEN connection that takes too long counts as a lost connection.
_LISTENER_ERRORS: tuple[type[BaseException], ...] = (*DATABASE_ERRORS, trio.TooSlowError)
_RETRY_INITIAL = 0.1
_RETRY_MAX = 5.0


_NOTIFY_CHUNK = 7000  # bytes of ids per notification (the payload limit is 8000)


async def notify_ids(connection: Any, channel: str, ids: Iterable[str]) -> None:
    """``NOTIFY channel`` with ``ids`` joined by commas, in as many notifications as the payload
    limit needs (asyncio side; inside a transaction they are sent when it commits)."""
    chunk: list[str] = []
    size = 0
    for item in ids:
        if chunk and size + len(item) + 1 > _NOTIFY_CHUNK:
            await connection.execute("SELECT pg_notify($1, $2)", channel, ",".join(chunk))
            chunk, size = [], 0
        chunk.append(item)
        size += len(item) + 1
    if chunk:
        await connection.execute("SELECT pg_notify($1, $2)", channel, ",".join(chunk))


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` (just the type when the message is empty)."""
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


@attrs.define(eq=False)
class NotificationListener:
    """LISTEN on ``channel``; ``on_payload(payload)`` runs on the Trio thread for each
    notification. Run with ``nursery.start(listener.run)``: started once listening."""

    database: Database
    channel: str
    on_payload: Callable[[str], None]
    on_listening: Callable[[], None] | None = None
    name: str = ""  # who listens, for the log
    check_every: float = 30.0
    check_timeout: float = 10.0
    listening: bool = attrs.field(default=False, init=False)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled, re-establishing the connection with backoff."""
        token = trio.lowlevel.current_trio_token()

        def notified(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self.on_payload, payload)

        who = f"{self.name}: " if self.name else ""
        reported = False
        failures = 0
        while True:
            lost: str | None = None  # why the connection was lost, once it was
            try:
                async with self.database.dedicated() as connection:
                    await trio_asyncio.aio_as_trio(connection.add_listener)(self.channel, notified)
                    self.listening = True
                    if failures:
                        logger.info("%slistening on %s again", who, self.channel)
                    failures = 0
                    if self.on_listening is not None:
                        self.on_listening()
                    if not reported:
                        task_status.started()
                        reported = True
                    try:
                        await self._watch(connection)
                    except _LISTENER_ERRORS as exc:
                        # Releasing a connection the server closed may fail too, with a less
                        # telling error: remember this one.
                        lost = describe_error(exc)
                        raise
                    finally:
                        self.listening = False
            except _LISTENER_ERRORS as exc:
                self.listening = False
                failures += 1
                log = logger.warning if failures == 1 else logger.debug
                log(
                    "%sthe LISTEN %s connection failed (%s); connecting again",
                    who,
                    self.channel,
                    lost or describe_error(exc),
                )
                await trio.sleep(backoff_step(failures, initial=_RETRY_INITIAL, maximum=_RETRY_MAX))

    async def _watch(self, connection: Any) -> None:
        """Return (by raising) once the LISTEN connection is lost."""
        lost = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def on_termination(_: Any) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(lost.set)

        connection.add_termination_listener(on_termination)
        try:
            if connection.is_closed():
                lost.set()
            while not lost.is_set():
                with trio.move_on_after(self.check_every):
                    await lost.wait()
                if not lost.is_set():
                    with trio.fail_after(self.check_timeout):
                        await trio_asyncio.aio_as_trio(connection.fetchval)("SELECT 1")
            raise ConnectionResetError("the connection was closed (by the server or the network)")
        finally:
            # Termination listeners survive the pool's reset: never leave ours behind. (A
            # connection the server closed has dropped them and is detached from its proxy.)
            with contextlib.suppress(asyncpg.InterfaceError):
                connection.remove_termination_listener(on_termination)
