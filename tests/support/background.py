"""Running a component's ``run`` in the background and polling for what it does meanwhile."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

import trio


class Runnable(Protocol):
    """Something with a ``run`` that nursery.start() can start and cancellation stops."""

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None:
        """Work until cancelled, calling ``task_status.started()`` once under way."""


R = TypeVar("R", bound=Runnable)


@asynccontextmanager
async def running(component: R) -> AsyncIterator[R]:
    """``component.run`` started in a nursery for the block, cancelled when it ends."""
    async with trio.open_nursery() as nursery:
        await nursery.start(component.run)
        yield component
        nursery.cancel_scope.cancel()


async def wait_until(condition: Callable[[], bool], interval: float = 0.02) -> None:
    """Poll ``condition`` every ``interval`` seconds (the caller bounds the wait)."""
    # What is polled signals nothing a test can wait on.
    while not condition():  # noqa: ASYNC110
        await trio.sleep(interval)
