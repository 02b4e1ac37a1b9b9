"""A read that ran out of time answers 503 with ``Retry-After``, never 500.

The API reads through their own pool with a statement timeout (``database.apiPoolSize``,
``database.apiStatementTimeout``); ``ReadTimedOut`` means that read, or its wait for a
connection, took longer: the service is busy, not broken, and the client may retry.
"""

from __future__ import annotations

import math

from quart import Quart, Response

from workflow_orchestrator.gateway._problems import problem_response
from workflow_orchestrator.storage import ReadTimedOut

__all__ = ["install_read_timeout_handler"]


def install_read_timeout_handler(app: Quart) -> None:
    """Answer ``ReadTimedOut`` with a 503 problem+json and a ``Retry-After`` header."""

    @app.errorhandler(ReadTimedOut)
    async def read_timed_out(exc: ReadTimedOut) -> Response:
        response = problem_response(503, "read-timeout", "Read Timed Out", str(exc))
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.timeout)))
        return response
