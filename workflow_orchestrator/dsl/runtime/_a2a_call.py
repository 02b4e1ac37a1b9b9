"""``call: a2a``: Agent2Agent JSON-RPC 2.0 requests over the HTTP effect.

The request goes through `Effects.http` like ``call: http``, so it is committed before and
after, checked by the outbound policy and sent with the task's idempotency key; the JSON-RPC
``id`` is that same key, stable across re-executions of one attempt, and so is the
``messageId`` a ``message/send``/``message/stream`` message gets when it has none (a UUID
derived from the key; ``role`` defaults to ``user``).

The server is the ``agentCard``'s JSON-RPC interface when an agent card is given (the card is
fetched like an OpenAPI document: once per run, within ``workflows.maxDocumentSize``), else
``server``. The endpoint's ``authentication``, if any, authorizes the JSON-RPC request.

Output, per the DSL reference: the JSON-RPC ``result``; for ``message/stream`` and
``tasks/resubscribe``, whose answer is a server-sent event stream of JSON-RPC responses
(read whole, within the HTTP client's response size limit, until the server closes it), the
array of every event's ``result`` in order. A JSON-RPC error is a ``runtime`` error naming its
code and message; an HTTP status other than 2xx, or an answer that is no JSON-RPC response,
is a ``communication`` error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

import trio

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime._auth import authorize
from workflow_orchestrator.dsl.runtime._documents import fetch_document
from workflow_orchestrator.dsl.runtime._effects import HttpRequest, HttpResponse, ServiceCall
from workflow_orchestrator.dsl.runtime._runner import Runner
from workflow_orchestrator.dsl.runtime._services import service_disabled
from workflow_orchestrator.dsl.runtime._uri import MissingTemplateValue, expand_uri_template
from workflow_orchestrator.dsl.validation._grammar._calls import A2A_METHODS

__all__ = ["METHODS", "STREAMING_METHODS", "call_a2a"]

METHODS = frozenset(A2A_METHODS)
STREAMING_METHODS = frozenset({"message/stream", "tasks/resubscribe"})
_MESSAGE_METHODS = frozenset({"message/send", "message/stream"})
# Where an agent card lists interfaces, and the field naming each one's protocol (A2A 0.3, 1.0).
_INTERFACE_LISTS = (
    ("additionalInterfaces", "transport"),
    ("supportedInterfaces", "protocolBinding"),
)
_OFF_LOOP_BYTES = 64 * 1024
_SNIPPET_BYTES = 200


def _error(error_type: str, detail: str, where: str, status: int | None = None) -> WorkflowError:
    return WorkflowError(Problem.standard(error_type, detail=detail, instance=where, status=status))


def _endpoint(value: Any, data: Any, what: str, where: str) -> tuple[str, Mapping[str, Any] | None]:
    """The URI (a URI template expanded with ``data``) and authentication policy of an
    endpoint (a URI or ``{uri, authentication}``)."""
    authentication = None
    if isinstance(value, Mapping) and isinstance(value.get("uri"), str):
        policy = value.get("authentication")
        authentication = policy if isinstance(policy, Mapping) else None
        value = value["uri"]
    if not isinstance(value, str):
        raise _error(
            ErrorType.CONFIGURATION, f"{what} must be a URI or an object with 'uri'", where
        )
    try:
        return expand_uri_template(value, data), authentication
    except MissingTemplateValue as exc:
        raise _error(ErrorType.VALIDATION, str(exc), where) from None


def _interface(card: Mapping[str, Any], card_uri: str, where: str) -> str:
    """The URL of the agent card's JSON-RPC interface (A2A 0.3 ``url``/``preferredTransport``/
    ``additionalInterfaces``, or 1.0 ``supportedInterfaces``), resolved against the card's."""
    candidates: list[str] = []
    preferred = str(card.get("preferredTransport") or "JSONRPC").upper()
    if preferred == "JSONRPC" and isinstance(card.get("url"), str):
        candidates.append(card["url"])
    for field, kind in _INTERFACE_LISTS:
        for interface in card.get(field) or ():
            if (
                isinstance(interface, Mapping)
                and str(interface.get(kind, "")).upper() == "JSONRPC"
                and isinstance(interface.get("url"), str)
            ):
                candidates.append(interface["url"])
    if not candidates:
        raise _error(
            ErrorType.CONFIGURATION,
            f"the agent card {card_uri} names no JSON-RPC interface (its 'url' with "
            "preferredTransport JSONRPC, or an additionalInterfaces entry with transport "
            "JSONRPC); call an agent that serves JSON-RPC, or give 'server' without 'agentCard'",
            where,
        )
    url = urljoin(card_uri, candidates[0])
    if not url.startswith(("http://", "https://")):
        raise _error(
            ErrorType.CONFIGURATION,
            f"the agent card {card_uri} gives the JSON-RPC interface {url!r}, which is not an "
            "http(s) URL",
            where,
        )
    return url


async def _server(
    runner: Runner, with_: Mapping[str, Any], data: Any, where: str
) -> tuple[str, Mapping[str, Any] | None]:
    """The JSON-RPC URL and the authentication policy of the call."""
    card = with_.get("agentCard")
    if card is not None:
        # The reference: 'server' is ignored when an agent card is given.
        if not isinstance(card, Mapping):
            raise _error(
                ErrorType.CONFIGURATION, "agentCard must be an object with an endpoint", where
            )
        card_uri, authentication = _endpoint(
            card.get("endpoint"), data, "agentCard.endpoint", where
        )
        document = await fetch_document(
            runner.effects,
            runner.options,
            runner.documents,
            card_uri,
            what=f"the agent card {card_uri}",
            accept="application/json",
            where=where,
        )
        if not isinstance(document, Mapping):
            raise _error(
                ErrorType.CONFIGURATION, f"the agent card {card_uri} is not a JSON object", where
            )
        return _interface(document, card_uri, where), authentication
    server = with_.get("server")
    if server is None:
        raise _error(
            ErrorType.CONFIGURATION,
            "an a2a call needs 'agentCard' or 'server'; give the agent's card or its "
            "JSON-RPC endpoint",
            where,
        )
    return _endpoint(server, data, "server", where)


def _params(method: str, parameters: Any, key: str, where: str) -> Any:
    """The JSON-RPC ``params``: ``parameters``, with a message's defaults filled in."""
    if parameters is None:
        return None
    if not isinstance(parameters, Mapping):
        raise _error(
            ErrorType.VALIDATION,
            f"the parameters of A2A method {method!r} must be an object, got "
            f"{type(parameters).__name__}; give an object (or an expression that yields one)",
            where,
        )
    params = dict(parameters)
    message = params.get("message")
    if method in _MESSAGE_METHODS and isinstance(message, Mapping):
        filled = dict(message)
        # Stable across re-executions of this attempt: a retried request is the same message.
        filled.setdefault("messageId", str(uuid.uuid5(uuid.NAMESPACE_URL, "a2a:" + key)))
        filled.setdefault("role", "user")
        filled.setdefault("kind", "message")
        params["message"] = filled
    return params


def _rpc_result(envelope: Any, method: str, url: str, where: str, status: int | None) -> Any:
    """The ``result`` of a JSON-RPC response, or the error it carries as a workflow error."""
    if not isinstance(envelope, Mapping) or ("result" not in envelope and "error" not in envelope):
        raise _error(
            ErrorType.COMMUNICATION,
            f"A2A method {method!r} at {url} answered with something that is not a JSON-RPC "
            "response (no 'result' nor 'error')",
            where,
        )
    error = envelope.get("error")
    if error is not None:
        code = error.get("code") if isinstance(error, Mapping) else None
        message = error.get("message") if isinstance(error, Mapping) else error
        data = error.get("data") if isinstance(error, Mapping) else None
        detail = f"A2A method {method!r} at {url} failed with JSON-RPC error {code}: {message}"
        if data is not None:
            detail += f" ({json.dumps(data, default=str)[:_SNIPPET_BYTES]})"
        raise WorkflowError(
            Problem.standard(
                ErrorType.RUNTIME, title="A2A Error", detail=detail, instance=where, status=status
            )
        )
    return envelope["result"]


def parse_events(text: str) -> list[str]:
    """The ``data`` of each server-sent event in ``text`` (the lines of one event joined by
    newlines); comments, ``event``/``id``/``retry`` fields and empty events are skipped."""
    events: list[str] = []
    lines: list[str] = []
    for line in text.splitlines():
        if not line:
            if lines:
                events.append("\n".join(lines))
                lines = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            lines.append(value[1:] if value.startswith(" ") else value)
    if lines:
        events.append("\n".join(lines))
    return events


def _decode(body: bytes, streaming: bool) -> Any:
    """The JSON-RPC response(s) of a body: one parsed value, or a list for an event stream.

    Raises ValueError for data that is not JSON."""
    text = body.decode("utf-8")
    if streaming:
        return [json.loads(data) for data in parse_events(text)]
    return json.loads(text)


async def _read(response: HttpResponse, streaming: bool) -> Any:
    if len(response.body) <= _OFF_LOOP_BYTES:
        return _decode(response.body, streaming)
    return await trio.to_thread.run_sync(_decode, response.body, streaming)


async def call_a2a(
    runner: Runner, with_: Mapping[str, Any], data: Any, args: dict[str, Any], key: str, where: str
) -> Any:
    """Perform ``call: a2a`` with evaluated arguments ``with_`` (see the module docstring)."""
    if "a2a" not in runner.options.enabled_calls:
        raise service_disabled(ServiceCall(kind="a2a", arguments={}, key="", task_ref=where))
    method = with_.get("method")
    if method not in METHODS:
        raise _error(
            ErrorType.CONFIGURATION,
            f"A2A method {method!r} is not one the DSL knows; use one of {sorted(METHODS)}",
            where,
        )
    request_key = f"{runner.state.instance_id}{key}"
    url, authentication = await _server(runner, with_, data, where)
    streaming = method in STREAMING_METHODS
    envelope: dict[str, Any] = {"jsonrpc": "2.0", "id": request_key, "method": method}
    params = _params(method, with_.get("parameters"), request_key, where)
    if params is not None:
        envelope["params"] = params
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if streaming else "application/json",
    }
    if authentication:
        header, descriptor = await authorize(runner, authentication, data, args, where, key)
        headers["authorization"] = header
        args["authorization"] = descriptor
    response = await runner.effects.http(
        HttpRequest(
            method="POST",
            url=url,
            headers=headers,
            body=json.dumps(envelope, separators=(",", ":")).encode(),
            idempotency_key=request_key,
            timeout=runner.options.a2a_timeout,
        )
    )
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    as_stream = streaming and media == "text/event-stream"
    try:
        decoded = await _read(response, as_stream)
    except (ValueError, RecursionError):
        decoded = None
    if not 200 <= response.status < 300:
        if isinstance(decoded, Mapping) and isinstance(decoded.get("error"), Mapping):
            _rpc_result(decoded, method, url, where, response.status)
        snippet = response.body[:_SNIPPET_BYTES].decode("utf-8", "replace").replace("\0", "\ufffd")
        raise _error(
            ErrorType.COMMUNICATION,
            f"A2A method {method!r}: POST {url} returned status {response.status}: {snippet}",
            where,
            status=response.status,
        )
    if decoded is None:
        raise _error(
            ErrorType.COMMUNICATION,
            f"A2A method {method!r} at {url} answered with a body that is not JSON"
            + (" nor a JSON event stream" if streaming else ""),
            where,
        )
    if not as_stream:
        result = _rpc_result(decoded, method, url, where, None)
        # A server that answers a streaming method with one JSON response sent one event.
        return [result] if streaming else result
    return [_rpc_result(event, method, url, where, None) for event in decoded]
