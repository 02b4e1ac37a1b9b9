"""The arguments of one ``call: mcp`` (the task's evaluated ``with``), read and checked before
anything starts or connects.

Every problem is a validation `WorkflowError` naming the field: the method and its
``parameters`` (checked against the SDK's request model of that method, so ``tools/call``
without ``name`` fails here, not at the server), the protocol version (one the SDK speaks),
the transport (exactly one of ``http`` and ``stdio``) and its values (no NUL, no ``=`` in a
variable name: what a process could not be given).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import pydantic
from mcp import types
from mcp.shared.version import SUPPORTED_PROTOCOL_VERSIONS

from workflow_orchestrator._version import __version__
from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError

#: The DSL's default ``with.protocolVersion``.
DEFAULT_PROTOCOL_VERSION = "2025-06-18"
CLIENT_NAME = "workflow-orchestrator"

#: The request model and the result model of each method of the DSL's enum.
METHODS: Mapping[str, tuple[type[types.ClientRequestType], type[pydantic.BaseModel]]] = {
    "tools/list": (types.ListToolsRequest, types.ListToolsResult),
    "tools/call": (types.CallToolRequest, types.CallToolResult),
    "prompts/list": (types.ListPromptsRequest, types.ListPromptsResult),
    "prompts/get": (types.GetPromptRequest, types.GetPromptResult),
    "resources/list": (types.ListResourcesRequest, types.ListResourcesResult),
    "resources/read": (types.ReadResourceRequest, types.ReadResourceResult),
    "resources/templates/list": (
        types.ListResourceTemplatesRequest,
        types.ListResourceTemplatesResult,
    ),
}


@attrs.frozen(kw_only=True)
class HttpTransport:
    """The streamable HTTP transport: ``endpoint`` as the task gave it (not yet mapped),
    ``headers`` lower-cased (an endpoint's authentication is one of them by now)."""

    endpoint: str
    headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class StdioTransport:
    """The stdio transport: the command that starts the server, its arguments, and the
    variables its environment gets besides the fixed ``PATH`` and ``LANG``."""

    command: str
    arguments: tuple[str, ...] = ()
    environment: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class McpCall:
    """One call: ``request`` (the SDK's request of ``method``), the model its result is read
    with, the protocol version and client the session is initialized with, the transport."""

    method: str
    request: types.ClientRequest
    result_type: type[pydantic.BaseModel]
    protocol_version: str
    client: types.Implementation
    transport: HttpTransport | StdioTransport

    @property
    def tool(self) -> str | None:
        """The tool of a ``tools/call`` (None for the other methods)."""
        root = self.request.root
        return root.params.name if isinstance(root, types.CallToolRequest) else None


def _invalid(detail: str, where: str) -> WorkflowError:
    return WorkflowError(Problem.standard(ErrorType.VALIDATION, detail=detail, instance=where))


def _text(value: Any, field: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(f"{field} must be a non-empty string, not {value!r}", where)
    if "\0" in value:
        raise _invalid(f"{field} must not contain a NUL character", where)
    return value


def _strings(value: Any, field: str, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _invalid(f"{field} must be an object of names to strings", where)
    return {str(name): str(item) for name, item in value.items()}


def _summary(error: pydantic.ValidationError) -> str:
    """The first problems of a validation error, as ``field: message`` pairs."""
    parts = []
    for item in error.errors()[:3]:
        location = ".".join(str(part) for part in item["loc"])
        parts.append(f"{location or 'the request'}: {item['msg']}")
    more = len(error.errors()) - len(parts)
    return "; ".join(parts) + (f" and {more} more" if more > 0 else "")


def _request(method: Any, parameters: Any, where: str) -> types.ClientRequest:
    if method not in METHODS:
        raise _invalid(f"with.method must be one of {sorted(METHODS)}, not {method!r}", where)
    if parameters is not None and not isinstance(parameters, Mapping):
        raise _invalid(
            f"with.parameters must be an object (or an expression giving one), not "
            f"{type(parameters).__name__}",
            where,
        )
    request_type, _ = METHODS[method]
    body: dict[str, Any] = {"method": method}
    if parameters:
        body["params"] = dict(parameters)
    try:
        return types.ClientRequest(request_type.model_validate(body))
    except pydantic.ValidationError as error:
        summary = _summary(error).replace("params.", "with.parameters.")
        raise _invalid(f"the parameters of {method} are not valid: {summary}", where) from None


def _transport(value: Any, where: str) -> HttpTransport | StdioTransport:
    if not isinstance(value, Mapping) or ("http" in value) == ("stdio" in value):
        raise _invalid("with.transport must have exactly one of http and stdio", where)
    http = value.get("http")
    if http is not None:
        if not isinstance(http, Mapping):
            raise _invalid("with.transport.http must be an object", where)
        headers = _strings(http.get("headers"), "with.transport.http.headers", where)
        return HttpTransport(
            endpoint=_text(http.get("endpoint"), "with.transport.http.endpoint", where),
            headers={name.lower(): item for name, item in headers.items()},
        )
    stdio = value.get("stdio")
    if not isinstance(stdio, Mapping):
        raise _invalid("with.transport.stdio must be an object", where)
    arguments = stdio.get("arguments") or []
    if not isinstance(arguments, list):
        raise _invalid("with.transport.stdio.arguments must be a list of strings", where)
    environment = _strings(stdio.get("environment"), "with.transport.stdio.environment", where)
    for name, item in environment.items():
        if not name or "=" in name or "\0" in name or "\0" in item:
            raise _invalid(
                f"with.transport.stdio.environment: {name!r} cannot be given to a process "
                "(a name is not empty and has no '=' or NUL; a value has no NUL)",
                where,
            )
    return StdioTransport(
        command=_text(stdio.get("command"), "with.transport.stdio.command", where),
        arguments=tuple(
            _text(str(item), f"with.transport.stdio.arguments[{index}]", where)
            for index, item in enumerate(arguments)
        ),
        environment=environment,
    )


def read_call(arguments: Mapping[str, Any], where: str) -> McpCall:
    """The call described by ``arguments`` (a validation error naming the field if not)."""
    version = arguments.get("protocolVersion", DEFAULT_PROTOCOL_VERSION)
    if version not in SUPPORTED_PROTOCOL_VERSIONS:
        raise _invalid(
            f"with.protocolVersion {version!r} is not one this runtime speaks; use one of "
            f"{list(SUPPORTED_PROTOCOL_VERSIONS)}",
            where,
        )
    client = arguments.get("client")
    if client is not None and not isinstance(client, Mapping):
        raise _invalid("with.client must be an object with name and version", where)
    client = client or {}
    method = arguments.get("method")
    request = _request(method, arguments.get("parameters"), where)
    return McpCall(
        method=str(method),
        request=request,
        result_type=METHODS[str(method)][1],
        protocol_version=str(version),
        client=types.Implementation(
            name=_text(client.get("name", CLIENT_NAME), "with.client.name", where),
            version=_text(client.get("version", __version__), "with.client.version", where),
        ),
        transport=_transport(arguments.get("transport"), where),
    )
