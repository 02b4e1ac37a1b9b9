"""``call: http`` and ``call: openapi``: building requests, authentication, reading responses.

Requests go through `Effects.http`; each carries an idempotency key derived from the task's
execution key (which includes retry attempts), so re-executing the same attempt after a crash
sends the same key. OpenAPI documents are fetched through the effects too, within limits
(``fetch_document``), and cached per run. The effects bound the size of a response body; a body
larger than ``OFF_LOOP_BYTES`` is decoded in a worker thread, so parsing it never holds up the
other instances on the event loop.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import trio

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime._auth import authorize
from workflow_orchestrator.dsl.runtime._documents import fetch_document
from workflow_orchestrator.dsl.runtime._effects import HttpRequest, HttpResponse
from workflow_orchestrator.dsl.runtime._runner import Runner
from workflow_orchestrator.dsl.runtime._uri import (
    MissingTemplateValue,
    expand_uri_template,
    with_query,
)

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
OFF_LOOP_BYTES = 64 * 1024
_SNIPPET_BYTES = 200


def _config_error(detail: str, where: str) -> WorkflowError:
    return WorkflowError(Problem.standard(ErrorType.CONFIGURATION, detail=detail, instance=where))


def decode_content(response: HttpResponse) -> Any:
    """The response body: JSON parsed, text decoded, binary base64-encoded.

    A body that claims to be JSON and is not (malformed, or nested deeper than the parser
    goes) is kept as text. ``NaN`` or ``\\u0000`` in JSON are data like any other: whether
    they can be stored is the durable layer's decision.
    """
    body = response.body
    if not body:
        return None
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media.endswith("json") or media.endswith("+json"):
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            return body.decode("utf-8", "replace")
    if media.startswith("text/") or media in ("application/xml", "application/yaml", ""):
        text = body.decode("utf-8", "replace")
        if not media:
            try:
                return json.loads(text)
            except (ValueError, RecursionError):
                return text
        return text
    return base64.b64encode(body).decode("ascii")


async def read_content(response: HttpResponse) -> Any:
    """``decode_content``, in a worker thread when the body is larger than ``OFF_LOOP_BYTES``."""
    if len(response.body) <= OFF_LOOP_BYTES:
        return decode_content(response)
    return await trio.to_thread.run_sync(decode_content, response)


def _encode_body(body: Any, headers: dict[str, str]) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, str):
        headers.setdefault("content-type", "text/plain; charset=utf-8")
        return body.encode()
    headers.setdefault("content-type", "application/json")
    return json.dumps(body, separators=(",", ":")).encode()


async def send(
    runner: Runner,
    *,
    method: str,
    url: str,
    headers: Mapping[str, Any],
    body: Any,
    authentication: Mapping[str, Any] | None,
    output: str,
    redirect: bool,
    data: Any,
    args: dict[str, Any],
    key: str,
    where: str,
) -> Any:
    """Send one request and shape the task's raw output per ``output``."""
    request_headers = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    if authentication:
        header, descriptor = await authorize(runner, authentication, data, args, where, key)
        request_headers["authorization"] = header
        args["authorization"] = descriptor
    payload = _encode_body(body, request_headers)
    request = HttpRequest(
        method=method.upper(),
        url=url,
        headers=request_headers,
        body=payload,
        follow_redirects=redirect,
        idempotency_key=f"{runner.state.instance_id}{key}",
        timeout=runner.options.http_timeout,
    )
    response = await runner.effects.http(request)
    high = 400 if redirect else 300
    if not 200 <= response.status < high:
        # The first bytes as text, without NUL (the error is stored with the instance).
        snippet = response.body[:_SNIPPET_BYTES].decode("utf-8", "replace").replace("\0", "\ufffd")
        raise WorkflowError(
            Problem.standard(
                ErrorType.COMMUNICATION,
                status=response.status,
                title="Communication Error",
                detail=f"{request.method} {url} returned status {response.status}: {snippet}",
                instance=where,
            )
        )
    if output == "raw":
        return base64.b64encode(response.body).decode("ascii")
    content = await read_content(response)
    if output == "response":
        return {
            "request": {
                "method": request.method,
                "uri": url,
                "headers": {k: v for k, v in request_headers.items() if k != "authorization"},
            },
            "statusCode": response.status,
            "headers": dict(response.headers),
            "content": content,
        }
    return content


def _endpoint(value: Any, where: str) -> tuple[str, Mapping[str, Any] | None]:
    if isinstance(value, str):
        return value, None
    if isinstance(value, Mapping) and isinstance(value.get("uri"), str):
        return value["uri"], value.get("authentication")
    raise _config_error("endpoint must be a URI or an object with 'uri'", where)


async def call_http(
    runner: Runner, with_: Mapping[str, Any], data: Any, args: dict[str, Any], key: str, where: str
) -> Any:
    """Perform ``call: http`` with evaluated arguments ``with_``."""
    uri, authentication = _endpoint(with_.get("endpoint"), where)
    try:
        url = expand_uri_template(uri, data)
    except MissingTemplateValue as exc:
        raise WorkflowError(
            Problem.standard(ErrorType.VALIDATION, detail=str(exc), instance=where)
        ) from None
    query = with_.get("query")
    return await send(
        runner,
        method=str(with_.get("method", "get")),
        url=with_query(url, query if isinstance(query, Mapping) else None),
        headers=with_.get("headers") or {},
        body=with_.get("body"),
        authentication=authentication,
        output=str(with_.get("output", "content")),
        redirect=bool(with_.get("redirect", False)),
        data=data,
        args=args,
        key=key,
        where=where,
    )


async def _document(runner: Runner, uri: str, where: str) -> Mapping[str, Any]:
    document = await fetch_document(
        runner.effects,
        runner.options,
        runner.documents,
        uri,
        what=f"the OpenAPI document {uri}",
        accept="application/json, application/yaml",
        where=where,
    )
    if not isinstance(document, Mapping):
        raise _config_error(f"the OpenAPI document {uri} is not an object", where)
    return document


def _base_url(document: Mapping[str, Any], document_uri: str) -> str:
    servers = document.get("servers")
    if servers:
        url = str(servers[0].get("url", ""))
    else:
        scheme = (document.get("schemes") or ["https"])[0]
        host = document.get("host")
        if host is None:
            host = document_uri.split("://", 1)[-1].split("/", 1)[0]
        url = f"{scheme}://{host}{document.get('basePath', '')}"
    if url.startswith("/"):
        origin = "/".join(document_uri.split("/", 3)[:3])
        url = origin + url
    return url.rstrip("/")


async def call_openapi(
    runner: Runner, with_: Mapping[str, Any], data: Any, args: dict[str, Any], key: str, where: str
) -> Any:
    """Perform ``call: openapi``: find ``operationId`` in the document and call it."""
    doc_uri, _ = _endpoint((with_.get("document") or {}).get("endpoint"), where)
    document = await _document(runner, doc_uri, where)
    operation_id = with_.get("operationId")
    found = None
    for path, item in (document.get("paths") or {}).items():
        for method in _METHODS:
            operation = (item or {}).get(method)
            if isinstance(operation, Mapping) and operation.get("operationId") == operation_id:
                found = (path, method, operation, item.get("parameters") or [])
    if found is None:
        raise _config_error(
            f"operation {operation_id!r} is not in the OpenAPI document {doc_uri}", where
        )
    path, method, operation, shared = found
    parameters = dict(with_.get("parameters") or {})
    path_values: dict[str, Any] = {}
    query: dict[str, Any] = {}
    headers: dict[str, Any] = {}
    body: Any = None
    for spec in [*shared, *(operation.get("parameters") or [])]:
        name, place = spec.get("name"), spec.get("in")
        if name not in parameters:
            continue
        value = parameters.pop(name)
        if place == "path":
            path_values[name] = value
        elif place == "query":
            query[name] = value
        elif place == "header":
            headers[name] = value
        elif place == "body":
            body = value
    if body is None and "requestBody" in operation and parameters:
        body = parameters
    try:
        url = _base_url(document, doc_uri) + expand_uri_template(path, path_values)
    except MissingTemplateValue as exc:
        raise WorkflowError(
            Problem.standard(ErrorType.VALIDATION, detail=str(exc), instance=where)
        ) from None
    return await send(
        runner,
        method=method,
        url=with_query(url, query),
        headers=headers,
        body=body,
        authentication=with_.get("authentication"),
        output=str(with_.get("output", "content")),
        redirect=bool(with_.get("redirect", False)),
        data=data,
        args=args,
        key=key,
        where=where,
    )
