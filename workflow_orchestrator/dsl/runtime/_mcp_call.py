"""``call: mcp``: the interpreter's part of a Model Context Protocol call.

The call itself (a session, ``initialize``, the method) is the MCP adapter's, behind
`Effects.call_service`; here the task's evaluated ``with`` is made ready for it:

- ``with.timeout`` (a duration) becomes `ServiceCall.timeout` in seconds; the adapter bounds
  it by its own maximum.
- An HTTP ``endpoint`` given as an object becomes its URI, and its ``authentication`` policy
  an ``authorization`` header (as for ``call: http``: basic, bearer, OAuth2/OIDC client
  credentials through the effects); a URI template is expanded from the task input.

Nothing here is recorded: `ServiceCall.arguments` reach the adapter and are never committed,
so the header does not end up in the instance's state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.model import InvalidDuration, duration_seconds
from workflow_orchestrator.dsl.runtime._auth import authorize
from workflow_orchestrator.dsl.runtime._effects import ServiceCall
from workflow_orchestrator.dsl.runtime._runner import Runner
from workflow_orchestrator.dsl.runtime._uri import MissingTemplateValue, expand_uri_template


def _invalid(detail: str, where: str) -> WorkflowError:
    return WorkflowError(Problem.standard(ErrorType.VALIDATION, detail=detail, instance=where))


def _timeout(value: Any, where: str) -> float | None:
    if value is None:
        return None
    try:
        seconds = duration_seconds(value)
    except InvalidDuration as error:
        raise _invalid(f"with.timeout: {error}", where) from None
    if seconds <= 0:
        raise _invalid(f"with.timeout must be longer than zero, not {value!r}", where)
    return seconds


async def _http_transport(
    runner: Runner,
    http: Mapping[str, Any],
    data: Any,
    args: dict[str, Any],
    key: str,
    where: str,
) -> dict[str, Any]:
    """The HTTP transport with its endpoint as a URI and its authentication as a header."""
    endpoint = http.get("endpoint")
    authentication: Any = None
    if isinstance(endpoint, Mapping):
        authentication = endpoint.get("authentication")
        endpoint = endpoint.get("uri")
    if not isinstance(endpoint, str):
        raise _invalid("with.transport.http.endpoint must be a URI or an object with 'uri'", where)
    try:
        uri = expand_uri_template(endpoint, data)
    except MissingTemplateValue as error:
        raise _invalid(str(error), where) from None
    headers = http.get("headers")
    if headers is not None and not isinstance(headers, Mapping):
        raise _invalid("with.transport.http.headers must be an object of names to values", where)
    merged = {str(name).lower(): str(value) for name, value in (headers or {}).items()}
    if isinstance(authentication, Mapping) and authentication:
        header, descriptor = await authorize(runner, authentication, data, args, where, key)
        merged["authorization"] = header
        args["authorization"] = descriptor
    return {**http, "endpoint": uri, "headers": merged}


async def call_mcp(
    runner: Runner, with_: Mapping[str, Any], data: Any, args: dict[str, Any], key: str, where: str
) -> Any:
    """Perform ``call: mcp`` with evaluated arguments ``with_``: the JSON-RPC result of the
    method (the adapter's errors are the task's)."""
    arguments = dict(with_)
    transport = with_.get("transport")
    if isinstance(transport, Mapping) and isinstance(transport.get("http"), Mapping):
        http = await _http_transport(runner, transport["http"], data, args, key, where)
        arguments["transport"] = {**transport, "http": http}
    request = ServiceCall(
        kind="mcp",
        arguments=arguments,
        key=f"{runner.state.instance_id}{key}",
        task_ref=where,
        timeout=_timeout(with_.get("timeout"), where),
    )
    return await runner.effects.call_service(request)
