"""Checks of real API responses against the OpenAPI document the service serves.

``assert_matches_openapi("GET", "/v1/workflow-definitions/{id}", 200, body)`` finds the operation
by its path template (as written in the document, relative to the server URL), the response the
document declares for the status, and validates ``body`` against that response's schema with
JSON Schema 2020-12 (the dialect of OpenAPI 3.1), formats included. ``$ref`` s resolve against the
whole document. An undocumented status, an undocumented media type and a body that does not
match all fail with a message naming the operation, the status and what is wrong.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from typing import Any

import jsonschema_rs

from workflow_orchestrator.gateway._openapi import openapi_document

DOCUMENT_URI = "urn:workflow-orchestrator:openapi"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@functools.cache
def document() -> dict[str, Any]:
    """The packaged document (servers URL ``/api``); do not change it."""
    return openapi_document()


@functools.cache
def registry() -> jsonschema_rs.Registry:
    """The whole document as one resource, so that every ``#/components/...`` ref resolves."""
    return jsonschema_rs.Registry([(DOCUMENT_URI, document())], draft=jsonschema_rs.Draft202012)


def escape_pointer_token(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def resolve_pointer(pointer: str) -> Any:
    """The value at a JSON pointer of the document (``#/components/...`` or ``/components/...``)."""
    node: Any = document()
    for raw in pointer.removeprefix("#").split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(token)]
        elif isinstance(node, dict) and token in node:
            node = node[token]
        else:
            raise KeyError(f"{pointer} does not resolve: no {token!r}")
    return node


def follow_ref(node: dict[str, Any], pointer: str) -> tuple[dict[str, Any], str]:
    """An OpenAPI Reference Object followed (repeatedly) to its target, with the target's pointer."""
    seen: set[str] = set()
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/") or ref in seen:
            raise AssertionError(f"unsupported or circular reference {ref!r} at {pointer}")
        seen.add(ref)
        pointer = ref.removeprefix("#")
        node = resolve_pointer(pointer)
    return node, pointer


def schema_validator(pointer: str) -> jsonschema_rs.Validator:
    """A 2020-12 validator (formats asserted) for the schema at ``pointer`` of the document."""
    return _validator(pointer)


@functools.cache
def _validator(pointer: str) -> jsonschema_rs.Validator:
    return jsonschema_rs.Draft202012Validator(
        # A URI fragment percent-encodes what a JSON pointer may hold, such as "{" of "{id}".
        {"$ref": f"{DOCUMENT_URI}#{urllib.parse.quote(pointer, safe='/~')}"},
        registry=registry(),
        validate_formats=True,
    )


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _response_for(operation: dict[str, Any], status: int) -> str | None:
    responses = operation.get("responses", {})
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            return key
    return None


def assert_matches_openapi(
    method: str,
    path_template: str,
    status: int,
    body: Any,
    *,
    content_type: str | None = None,
) -> None:
    """Fail unless the document declares ``status`` for the operation and ``body`` matches it.

    ``body`` is the decoded JSON body (``None`` for an empty one). ``content_type`` (the
    response's ``Content-Type``), when given, must be one the document declares for the answer;
    otherwise the answer must declare exactly one media type, which is used.
    """
    operation_name = f"{method.upper()} {path_template}"
    paths = document()["paths"]
    if path_template not in paths:
        raise AssertionError(
            f"{operation_name}: the OpenAPI document has no path {path_template!r}; "
            f"documented: {sorted(paths)}"
        )
    operation = paths[path_template].get(method.lower())
    if operation is None:
        documented = [m.upper() for m in HTTP_METHODS if m in paths[path_template]]
        raise AssertionError(
            f"{operation_name}: the OpenAPI document has no {method.upper()} on this path; "
            f"documented: {documented}"
        )
    key = _response_for(operation, status)
    if key is None:
        raise AssertionError(
            f"{operation_name} answered {status}, a status the OpenAPI document does not "
            f"declare; documented: {sorted(operation['responses'])}"
        )
    base = f"/paths/{escape_pointer_token(path_template)}/{method.lower()}/responses/{key}"
    response, pointer = follow_ref(operation["responses"][key], base)
    content: dict[str, Any] = response.get("content", {})
    if not content:
        if body not in (None, b"", ""):
            raise AssertionError(
                f"{operation_name} {status}: the document declares no body, got {body!r}"
            )
        return
    if content_type is not None:
        media_type = _media_type(content_type)
        if media_type not in content:
            raise AssertionError(
                f"{operation_name} {status}: content type {media_type!r} is not documented; "
                f"documented: {sorted(content)}"
            )
    elif len(content) == 1:
        media_type = next(iter(content))
    else:
        raise AssertionError(
            f"{operation_name} {status}: the document declares {sorted(content)}; "
            "pass content_type= to say which one the response had"
        )
    if "schema" not in content[media_type]:
        return
    schema_pointer = f"{pointer}/content/{escape_pointer_token(media_type)}/schema"
    errors = [
        f"  at {_instance_pointer(e.instance_path)!r} of the body: {e.message}"
        for e in schema_validator(schema_pointer).iter_errors(body)
    ]
    if errors:
        raise AssertionError(
            f"{operation_name} {status} ({media_type}): the body does not match the schema at "
            f"#{schema_pointer}:\n" + "\n".join(errors) + f"\nbody: {_shorten(body)}"
        )


def _instance_pointer(path: list[str | int]) -> str:
    return "".join(f"/{escape_pointer_token(str(part))}" for part in path)


def _shorten(body: Any, limit: int = 2000) -> str:
    text = repr(body)
    return text if len(text) <= limit else text[:limit] + "..."


def path_template_of(rule: str) -> str:
    """A Werkzeug rule (``/v1/items/<item_id>``) as a template with anonymous parameters."""
    return re.sub(r"<(?:[^:<>]+:)?[^<>]+>", "{}", rule)
