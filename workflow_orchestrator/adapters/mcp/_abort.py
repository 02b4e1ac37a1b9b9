"""`Abort`: how a transport ends a call early with an error of its own.

The SDK reads a transport's messages in tasks of its own and turns some failures into
log lines or into waiting for an answer that never comes (an oversized or unreadable answer,
say). A transport that sees such a failure records it here and cancels the call's scope, so
the call ends at once with that error instead of at its timeout.
"""

from __future__ import annotations

import attrs
import trio

from workflow_orchestrator.dsl import WorkflowError


@attrs.define(eq=False)
class Abort:
    """The call's cancel scope (its deadline is the call's timeout) and the first error that
    ended it early, if one did."""

    scope: trio.CancelScope
    error: WorkflowError | None = None

    def fail(self, error: WorkflowError) -> None:
        """End the call with ``error`` (the first one given wins)."""
        if self.error is None:
            self.error = error
        self.scope.cancel()
