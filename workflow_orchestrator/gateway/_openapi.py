"""The API's OpenAPI 3.1 document (package data ``openapi.yaml``) and the route that serves it.

The document's paths are relative to its server URL, the configured ``server.contextPath``; the
served copy says so in ``servers[0].url``. The YAML is read and parsed once per process;
``openapi_document`` hands out copies, so no caller can change what another one sees.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
from typing import Any

import yaml
from quart import Blueprint, Response

__all__ = ["openapi_document", "openapi_routes"]

_PACKAGE = "workflow_orchestrator.gateway"
_RESOURCE = "openapi.yaml"


@functools.cache
def _packaged_document() -> dict[str, Any]:
    text = importlib.resources.files(_PACKAGE).joinpath(_RESOURCE).read_text("utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def _server_url(context_path: str) -> str:
    """The server URL for ``context_path``: without a trailing slash, ``/`` for the root."""
    return context_path.rstrip("/") or "/"


def openapi_document(context_path: str = "/api") -> dict[str, Any]:
    """A fresh copy of the document whose ``servers[0].url`` is ``context_path``."""
    document = copy.deepcopy(_packaged_document())
    document["servers"][0]["url"] = _server_url(context_path)
    return document


def openapi_routes(context_path: str) -> Blueprint:
    """``GET {context_path}/openapi.json``: the document as JSON, serialized once."""
    routes = Blueprint("openapi", __name__, url_prefix=context_path.rstrip("/"))
    body = json.dumps(openapi_document(context_path))

    @routes.get("/openapi.json")
    async def document() -> Response:
        return Response(body, content_type="application/json")

    return routes
