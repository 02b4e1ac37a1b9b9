"""JSON responses and request bodies for the API."""

from __future__ import annotations

import json
from typing import Any

from quart import Response

__all__ = ["json_response"]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``body`` as ``application/json`` (datetimes and other values by ``str``)."""
    return Response(
        json.dumps(body, default=str),
        status=status,
        content_type="application/json",
        headers=headers,
    )
