"""`McpCaller`: ``call: mcp`` through the ``mcp`` SDK, one MCP session per call.

Each call opens its transport (connects to the streamable HTTP endpoint, or starts the stdio
server), initializes a session with the task's ``protocolVersion`` and ``client``, sends the
method, and closes everything before it returns. Nothing outlives the call, so a crash or a
retry never finds a half-used session, and a call re-executed after a crash is simply a new
session; the price is an ``initialize`` round trip per call (and a process start for stdio).
MCP carries no idempotency key, so none is sent: a tool re-executed after a crash runs again.

The SDK is anyio-based and runs on trio as it is; no asyncio bridge is involved.

The output is the JSON-RPC result, as the DSL reference says (``model_dump`` by alias, JSON
mode, without absent fields), at most ``max_message_size`` bytes as JSON. Failures, per the
reference, are runtime errors: a JSON-RPC error (with the server's message), a tool result
with ``isError`` (with the tool's text), an answer that is not valid MCP, a server that cannot
be reached or exits. Exceptions: the call's time is up (timeout), the outbound policy refuses
the endpoint (communication, 403, as for every outbound call), the task's arguments are
invalid (validation), stdio is disabled or not allowed to the namespace (configuration).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import urlsplit

import anyio
import attrs
import httpx
import pydantic
import trio
from mcp import ClientSession, types
from mcp.shared.exceptions import McpError
from mcp.shared.session import RequestResponder
from mcp.shared.version import SUPPORTED_PROTOCOL_VERSIONS

from workflow_orchestrator.adapters.mcp._abort import Abort
from workflow_orchestrator.adapters.mcp._arguments import (
    HttpTransport,
    McpCall,
    StdioTransport,
    read_call,
)
from workflow_orchestrator.adapters.mcp._http import open_http_transport
from workflow_orchestrator.adapters.mcp._stdio import ServerProcess, open_stdio_transport
from workflow_orchestrator.config import McpCallSettings
from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import ServiceCall
from workflow_orchestrator.security import OutboundPolicy, OutboundRefused

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_SIZE = 10 * 1024 * 1024
MAX_MESSAGE_SIZE_SETTING = "workflows.maxResponseSize"
_SESSION_TERMINATED = 32600  # what the SDK reports for an HTTP 404 from the endpoint
_SHOWN = 500

Streams = AbstractAsyncContextManager[tuple[Any, Any]]


def _unmapped(url: str) -> str:
    return url


def _problem(
    error_type: str, detail: str, where: str, *, title: str | None = None, status: int | None = None
) -> WorkflowError:
    return WorkflowError(
        Problem.standard(error_type, detail=detail, instance=where, title=title, status=status)
    )


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first leaf of ``group`` (the one its message describes; the others are alike)."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


def _target(call: McpCall) -> str:
    """The server of ``call`` for messages: its command, or its URL without credentials
    and query."""
    transport = call.transport
    if isinstance(transport, StdioTransport):
        return f"the MCP server {transport.command!r}"
    parts = urlsplit(transport.endpoint)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"the MCP server at {parts.scheme}://{host}{parts.path}"


def _tool_text(result: types.CallToolResult) -> str:
    text = " ".join(item.text for item in result.content if isinstance(item, types.TextContent))
    text = text.replace("\0", "\ufffd").strip()
    return text[:_SHOWN] or "(no text)"


@attrs.frozen(kw_only=True)
class McpCaller:
    """The ``mcp`` adapter: call it with a `ServiceCall` of kind ``mcp`` (see the module
    docstring for what it does and how it fails).

    ``settings`` are ``workflows.calls.mcp``; ``process_namespaces`` are
    ``workflows.run.namespaces`` (who may start stdio servers, ``*``: everyone); ``outbound``
    checks every connection; ``map_url`` rewrites an endpoint before it is checked (tests send
    the official examples' hosts to local servers with it); ``max_message_size`` caps each
    message and the result (``workflows.maxResponseSize``); ``proxy`` is the egress proxy of
    the HTTP transport (``security.outbound.proxy``, empty: none).
    """

    settings: McpCallSettings
    outbound: OutboundPolicy
    process_namespaces: tuple[str, ...] = ("*",)
    map_url: Callable[[str], str] = _unmapped
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    proxy: str = ""  # security.outbound.proxy: http://host:port, or none

    async def __call__(self, request: ServiceCall) -> Any:
        """The JSON-RPC result of the call ``request`` describes."""
        where = request.task_ref
        call = read_call(request.arguments, where)
        self._check_transport(call, request.namespace, where)
        limit = self.settings.timeout
        timeout = min(request.timeout or limit, limit)
        target = _target(call)
        server = (
            ServerProcess(command=call.transport.command)
            if isinstance(call.transport, StdioTransport)
            else None
        )
        abort = Abort(scope=trio.CancelScope(deadline=trio.current_time() + timeout))
        result: pydantic.BaseModel | None = None
        failure: WorkflowError | None = None
        with abort.scope:
            try:
                result = await self._session(call, abort, server, timeout, target, where)
            except* WorkflowError as group:
                leaf = _first(group)
                failure = failure or (leaf if isinstance(leaf, WorkflowError) else None)
            except* OutboundRefused as group:
                failure = failure or self._refused(_first(group), target, where)
            except* McpError as group:
                failure = failure or self._rpc_error(_first(group), call, server, target, where)
            except* (
                httpx.HTTPError,
                OSError,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                pydantic.ValidationError,
            ) as group:
                failure = failure or self._transport_error(
                    _first(group), call, server, target, where
                )
        if abort.error is not None:
            raise abort.error
        if failure is not None:
            raise failure
        if result is None:
            raise _problem(
                ErrorType.TIMEOUT,
                f"the MCP call {call.method} to {target} did not finish within {timeout:g}s "
                f"(with.timeout, at most workflows.calls.mcp.timeout: {limit:g}s)",
                where,
            )
        return self._output(call, result, target, where)

    def _check_transport(self, call: McpCall, namespace: str, where: str) -> None:
        transport = call.transport
        if isinstance(transport, HttpTransport):
            parts = urlsplit(transport.endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise _problem(
                    ErrorType.VALIDATION,
                    f"with.transport.http.endpoint must be an http or https URL, not "
                    f"{transport.endpoint[:200]!r}",
                    where,
                )
            return
        if not self.settings.stdio:
            raise _problem(
                ErrorType.CONFIGURATION,
                "call: mcp over stdio starts a local process, which this service does not do "
                "while workflows.calls.mcp.stdio is false (the default); set "
                "workflows.calls.mcp.stdio: true in the configuration, or use the http transport",
                where,
                title="Unsupported Feature",
            )
        allowed = self.process_namespaces
        if "*" not in allowed and namespace not in allowed:
            raise _problem(
                ErrorType.CONFIGURATION,
                f"namespace {namespace!r} may not start MCP servers over stdio (local processes); "
                "add it to workflows.run.namespaces in the configuration",
                where,
                title="Unsupported Feature",
            )

    def _transport(
        self,
        call: McpCall,
        abort: Abort,
        server: ServerProcess | None,
        seconds: float,
        target: str,
        where: str,
    ) -> Streams:
        transport = call.transport
        if isinstance(transport, StdioTransport):
            assert server is not None  # made for every stdio call
            return open_stdio_transport(
                transport,
                path=":".join(self.settings.stdio_path),
                max_message_size=self.max_message_size,
                abort=abort,
                server=server,
                where=where,
            )

        def exceeded() -> None:
            abort.fail(self._too_large(target, where))

        return open_http_transport(
            self.map_url(transport.endpoint),
            headers=dict(transport.headers),
            policy=self.outbound,
            read_timeout=seconds,
            max_message_size=self.max_message_size,
            exceeded=exceeded,
            proxy=self.proxy,
        )

    async def _session(
        self,
        call: McpCall,
        abort: Abort,
        server: ServerProcess | None,
        seconds: float,
        target: str,
        where: str,
    ) -> pydantic.BaseModel:
        async def unreadable(
            message: RequestResponder[types.ServerRequest, types.ClientResult]
            | types.ServerNotification
            | Exception,
        ) -> None:
            if isinstance(message, Exception):
                abort.fail(
                    _problem(
                        ErrorType.RUNTIME,
                        f"{target} sent a message that is not valid MCP: {str(message)[:_SHOWN]}",
                        where,
                    )
                )

        async with (
            self._transport(call, abort, server, seconds, target, where) as (read, write),
            ClientSession(read, write, message_handler=unreadable) as session,
        ):
            await self._initialize(session, call, target, where)
            return await session.send_request(call.request, call.result_type)

    async def _initialize(
        self, session: ClientSession, call: McpCall, target: str, where: str
    ) -> None:
        """``initialize`` with the task's protocol version and client, then ``initialized``
        (the SDK's ``ClientSession.initialize`` always asks for its latest version)."""
        answer = await session.send_request(
            types.ClientRequest(
                types.InitializeRequest(
                    params=types.InitializeRequestParams(
                        protocolVersion=call.protocol_version,
                        capabilities=types.ClientCapabilities(),
                        clientInfo=call.client,
                    )
                )
            ),
            types.InitializeResult,
        )
        if str(answer.protocolVersion) not in SUPPORTED_PROTOCOL_VERSIONS:
            raise _problem(
                ErrorType.RUNTIME,
                f"{target} speaks MCP {answer.protocolVersion!r}, which this runtime does not "
                f"({list(SUPPORTED_PROTOCOL_VERSIONS)})",
                where,
            )
        await session.send_notification(types.ClientNotification(types.InitializedNotification()))

    def _output(
        self, call: McpCall, result: pydantic.BaseModel, target: str, where: str
    ) -> dict[str, Any]:
        if isinstance(result, types.CallToolResult) and result.isError:
            raise _problem(
                ErrorType.RUNTIME,
                f"tool {call.tool!r} of {target} failed: {_tool_text(result)}",
                where,
                title="MCP Tool Error",
            )
        output = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        if len(json.dumps(output, separators=(",", ":"))) > self.max_message_size:
            raise self._too_large(target, where)
        return output

    def _too_large(self, target: str, where: str) -> WorkflowError:
        return _problem(
            ErrorType.RUNTIME,
            f"{target} answered with more than {self.max_message_size:,} bytes; raise "
            f"{MAX_MESSAGE_SIZE_SETTING} or ask for less",
            where,
        )

    @staticmethod
    def _refused(error: BaseException, target: str, where: str) -> WorkflowError:
        assert isinstance(error, OutboundRefused)  # what except* matched
        return _problem(
            ErrorType.COMMUNICATION,
            f"{target}: {error.refusal.describe()}",
            where,
            title="Outbound Call Refused",
            status=403,
        )

    @staticmethod
    def _rpc_error(
        error: BaseException,
        call: McpCall,
        server: ServerProcess | None,
        target: str,
        where: str,
    ) -> WorkflowError:
        assert isinstance(error, McpError)  # what except* matched
        data = error.error
        if data.code == types.CONNECTION_CLOSED:
            event = f"ended the connection before answering {call.method}"
            detail = server.describe(event) if server is not None else f"{target} {event}"
        elif data.code == _SESSION_TERMINATED and server is None:
            detail = (
                f"{target} answered HTTP 404: no MCP endpoint at that path, or the session "
                "ended; check with.transport.http.endpoint"
            )
        else:
            message = data.message.replace("\0", "\ufffd")[:_SHOWN]
            detail = f"{target} answered {call.method} with JSON-RPC error {data.code}: {message}"
        return _problem(ErrorType.RUNTIME, detail, where, title="MCP Error")

    @staticmethod
    def _transport_error(
        error: BaseException,
        call: McpCall,
        server: ServerProcess | None,
        target: str,
        where: str,
    ) -> WorkflowError:
        if isinstance(error, httpx.HTTPStatusError):
            status = error.response.status_code
            return _problem(
                ErrorType.RUNTIME,
                f"{target} answered HTTP {status} {error.response.reason_phrase}".rstrip(),
                where,
                status=status,
            )
        if isinstance(error, httpx.TimeoutException):
            return _problem(ErrorType.TIMEOUT, f"{target} did not answer in time: {error}", where)
        if isinstance(error, pydantic.ValidationError):
            return _problem(
                ErrorType.RUNTIME,
                f"{target} answered {call.method} with a result that is not valid MCP: "
                f"{error.error_count()} problem(s), first: {error.errors()[0]['msg']}",
                where,
            )
        if server is not None:
            event = f"stopped before answering {call.method}"
            return _problem(ErrorType.RUNTIME, server.describe(event), where)
        reason = str(error) or type(error).__name__
        return _problem(ErrorType.RUNTIME, f"{target} could not be reached: {reason}", where)
