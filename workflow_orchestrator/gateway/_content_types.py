"""Only the documented content types reach a route (415 otherwise).

A web page can make a browser send a POST with ``text/plain``, a form or multipart body to any
address without asking first (a CORS "simple" request); refusing every content type the API
does not document closes that door even where authentication is off; so does refusing a body
without a ``Content-Type`` (a ``fetch`` of a typeless ``Blob``). What each route takes:

- ``POST /v1/workflow-definitions``: ``application/yaml``, ``application/x-yaml``,
  ``text/yaml`` or ``application/json``;
- ``POST /v1/workflow-instances`` and the commands (cancel, suspend, resume):
  ``application/json``;
- ``POST /v1/events``: ``application/cloudevents+json`` (structured mode), or the event's data
  with its own type and ``ce-*`` headers (binary mode; ``ce-specversion`` is required, and a
  browser cannot send it without asking first).
"""

from __future__ import annotations

from collections.abc import Mapping

from quart import Quart, request

from workflow_orchestrator.gateway._problems import ProblemError

__all__ = ["ROUTE_CONTENT_TYPES", "install_content_type_checks"]

_YAML_OR_JSON = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "application/json"}
)
_JSON = frozenset({"application/json"})
_STRUCTURED_EVENT = frozenset({"application/cloudevents+json"})

#: The body types each route takes (by Quart endpoint name).
ROUTE_CONTENT_TYPES: Mapping[str, frozenset[str]] = {
    "v1.definitions.register": _YAML_OR_JSON,
    "v1.instances.start": _JSON,
    "v1.instances.cancel": _JSON,
    "v1.instances.suspend": _JSON,
    "v1.instances.resume": _JSON,
    "v1.events.publish_event": _STRUCTURED_EVENT,
}
_BINARY_EVENT_ROUTE = "v1.events.publish_event"


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _refuse(content_type: str | None, allowed: frozenset[str], extra: str = "") -> ProblemError:
    given = f"Content-Type {content_type[:100]!r}" if content_type else "no Content-Type"
    return ProblemError(
        415,
        "unsupported-media-type",
        "Unsupported Media Type",
        f"the request has {given}; this endpoint takes {', '.join(sorted(allowed))}{extra}",
    )


def check_content_type() -> None:
    """Raise a 415 problem when the request's body type is not one its route takes."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    allowed = ROUTE_CONTENT_TYPES.get(request.endpoint or "")
    if allowed is None:
        return
    content_type = request.headers.get("Content-Type")
    if request.endpoint == _BINARY_EVENT_ROUTE and "ce-specversion" in request.headers:
        return  # binary mode: the body is the event's data, of any type
    if not content_type or not content_type.strip():
        # A browser sends a body without a type unasked (fetch with a typeless Blob): only an
        # empty body may come without one.
        if request.content_length or "Transfer-Encoding" in request.headers:
            raise _refuse(content_type, allowed)
        return
    if _media_type(content_type) not in allowed:
        extra = (
            ", or the event's data with ce-* headers (binary mode)"
            if request.endpoint == _BINARY_EVENT_ROUTE
            else ""
        )
        raise _refuse(content_type, allowed, extra)


def install_content_type_checks(app: Quart) -> None:
    """Run `check_content_type` before every request of ``app``."""

    @app.before_request
    async def content_type() -> None:
        check_content_type()
