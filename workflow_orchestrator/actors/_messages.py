"""What travels through a mailbox besides plain messages: an ``ask`` and its way back.

An ``Ask`` wakes the asking task directly (``wait_task_rescheduled``), without a channel, so
an ask costs one small object. The reply is delivered at most once; a reply to an asker that
gave up (timeout or cancellation) is dropped.
"""

from __future__ import annotations

from typing import Any

import outcome
import trio


class Ask:
    """An ``ask`` in the mailbox: the message and the way back to the asking task."""

    __slots__ = ("abandoned", "message", "result", "task")

    def __init__(self, message: Any) -> None:
        self.message = message
        self.task: trio.lowlevel.Task | None = None
        self.result: outcome.Outcome[Any] | None = None
        self.abandoned = False

    def reply(self, result: outcome.Outcome[Any]) -> None:
        """Wake the asker with ``result`` (or keep it until it waits; drop it if it left)."""
        if self.task is not None:
            trio.lowlevel.reschedule(self.task, result)
            self.task = None
        elif not self.abandoned:
            self.result = result

    async def wait(self) -> Any:
        """Return the reply (or raise the error it carries); cancellation abandons the ask."""
        if self.result is not None:
            await trio.lowlevel.checkpoint()
            return self.result.unwrap()
        self.task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self.task = None
            self.abandoned = True
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)


def message_type(message: object) -> str:
    """The type name shown in errors: the asked message's type for an ``Ask``."""
    if type(message) is Ask:
        message = message.message
    return type(message).__name__
