"""What every API request goes through before its route runs.

- The body is read to its end (at most ``MAX_CONTENT_LENGTH``, else 413), also when the route
  (or a 404/405) never looks at it: hypercorn's HTTP/1.1 keep-alive stalls a connection whose
  earlier requests left bodies unread, and the client then waits for an answer that never
  comes.
- The URL holds no NUL character: PostgreSQL text cannot hold NUL (``%00``), so a path or query
  parameter with one would fail its query with a server error; it is refused here, once for
  every route, as a 400 problem naming the parameter.
"""

from __future__ import annotations

from quart import Quart, request

from workflow_orchestrator.gateway._problems import ProblemError

__all__ = ["install_request_checks"]


# Route arguments by the name the OpenAPI document gives them.
_PATH_PARAMETER_NAMES = {"raw_id": "id", "definition_id": "id"}


def _shown(name: str) -> str:
    return name.replace("\x00", "\\u0000")


def check_url_parameters() -> None:
    """Raise a 400 `ProblemError` when a query or path parameter holds the NUL character."""
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            raise ProblemError(
                400,
                "invalid-query-parameter",
                "Invalid Query Parameter",
                f"query parameter {_shown(name)!r} holds the NUL character (%00), which is "
                "not allowed; remove it",
                parameter=_shown(name),
            )
    for argument, raw in (request.view_args or {}).items():
        name = _PATH_PARAMETER_NAMES.get(argument, argument)
        if isinstance(raw, str) and "\x00" in raw:
            raise ProblemError(
                400,
                "invalid-path-parameter",
                "Invalid Path Parameter",
                f"path parameter {name!r} holds the NUL character (%00), which is not "
                "allowed; remove it",
                parameter=name,
            )


def install_request_checks(app: Quart) -> None:
    """Read the body and run `check_url_parameters` before every request of ``app``."""

    @app.before_request
    async def checked() -> None:
        if request.content_length or "Transfer-Encoding" in request.headers:
            await request.get_data(as_text=False)
        check_url_parameters()
