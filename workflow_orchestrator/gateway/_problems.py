"""RFC 9457 ``application/problem+json`` responses and the error handlers that produce them.

Every error a client sees has a stable ``type`` URI under ``PROBLEM_BASE``, a short ``title``,
the HTTP ``status`` and a ``detail`` sentence saying what was wrong and what to do. Unexpected
exceptions become a 500 whose detail never contains internals; the exception is logged.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from typing import Any

from quart import Quart, Response, current_app, request
from werkzeug.exceptions import HTTPException

from workflow_orchestrator.errors import OrchestratorError

__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_CONTENT_TYPE",
    "ProblemError",
    "install_problem_handlers",
    "problem_response",
]

logger = logging.getLogger(__name__)

PROBLEM_BASE = "https://workflow-orchestrator.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def problem_response(
    status: int, kind: str, title: str, detail: str, **extensions: Any
) -> Response:
    """A problem+json response; ``kind`` is the last segment of the ``type`` URI."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
        # A URI reference: what the path holds beyond URI characters, percent-encoded.
        "instance": urllib.parse.quote(request.path, safe=_PATH_SAFE) if request else None,
    }
    body.update(extensions)
    return Response(json.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE)


class ProblemError(OrchestratorError):
    """A client's mistake, raised anywhere in a request and answered as its problem+json.

    ``kind`` is the last segment of the ``type`` URI; ``extensions`` are extra members (such
    as ``parameter`` or ``pointer``).
    """

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions

    def response(self) -> Response:
        response = problem_response(
            self.status, self.kind, self.title, self.detail, **self.extensions
        )
        response.headers.update(self.headers)
        return response


def _kind_of(exc: HTTPException) -> str:
    name = (exc.name or "error").lower().replace(" ", "-")
    return "".join(ch for ch in name if ch.isalnum() or ch == "-")


def install_problem_handlers(app: Quart) -> None:
    """Turn HTTP errors (404, 405, ...) and unhandled exceptions into problem+json."""

    @app.errorhandler(ProblemError)
    async def client_error(exc: ProblemError) -> Response:
        return exc.response()

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        detail = exc.description or exc.name
        if status == 404:
            detail = f"no route matches {request.method} {request.path}; check the path and method"
        elif status == 413:
            limit = current_app.config.get("MAX_CONTENT_LENGTH")
            detail = (
                f"the request body is larger than the limit of {limit:,} bytes "
                "(server.maxRequestSize); send less"
                if limit
                else "the request body is too large; send less"
            )
        elif status == 405:
            allowed = exc.valid_methods if hasattr(exc, "valid_methods") else None
            detail = f"{request.method} is not allowed on {request.path}" + (
                f"; allowed: {', '.join(sorted(allowed))}" if allowed else ""
            )
            if allowed:  # RFC 9110: a 405 names the methods the resource supports
                response = problem_response(status, _kind_of(exc), exc.name, detail)
                response.headers["Allow"] = ", ".join(sorted(allowed))
                return response
        return problem_response(status, _kind_of(exc), exc.name or "Error", str(detail))

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error in %s %s", request.method, request.path)
        return problem_response(
            500,
            "internal-error",
            "Internal Server Error",
            "the server failed to handle the request; the error is in its log",
        )
