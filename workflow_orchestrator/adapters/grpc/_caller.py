"""`GrpcCaller`: one ``call: grpc`` (a `ServiceCall` of kind ``grpc``) from start to JSON.

A call, in order: read the task's arguments (``proto``, ``service``, ``method``,
``arguments``, and the ``metadata``/``protoHeaders`` the interpreter added for
authentication); resolve the host (after the host map) and check it with the outbound
policy; get the descriptors, from the proto (downloaded or read, compiled by protoc, cached by
content) or from the server's reflection (``descriptorSource: reflection``, or no ``proto``);
encode ``arguments`` as the request (``json_format``: an unknown field is a validation error
naming it); call within the deadline with the ``authorization`` and ``idempotency-key``
metadata; decode the response to JSON with proto field names, default values included.

Caches are bounded and in memory: compiled protos by content hash (``CACHE_ENTRIES``), and
for ``TTL`` seconds the downloaded proto files by URL and reflected descriptors by server and
service, so a changed proto or server is picked up within that time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import attrs
import grpc
import trio
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from workflow_orchestrator.adapters.grpc._descriptors import (
    COMPILE_CONCURRENCY,
    Descriptors,
    compile_protos,
)
from workflow_orchestrator.adapters.grpc._errors import (
    MAX_MESSAGE_SETTING,
    SETTINGS,
    configuration_error,
    status_error,
)
from workflow_orchestrator.adapters.grpc._reflection import reflect_service
from workflow_orchestrator.adapters.grpc._sources import HttpSend, ProtoFiles, ProtoLoader
from workflow_orchestrator.adapters.grpc._transport import (
    RpcFailed,
    call_unary,
    open_channel,
    resolve_target,
)
from workflow_orchestrator.config import GrpcCallSettings
from workflow_orchestrator.dsl import ErrorType, LruCache, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import ServiceCall
from workflow_orchestrator.security import OutboundPolicy

__all__ = ["CACHE_ENTRIES", "DEFAULT_PORT", "TTL", "GrpcCaller", "load_credentials"]

CACHE_ENTRIES = 64
TTL = 60.0
DEFAULT_PORT = 443
# JSON conversions of messages larger than this run in a worker thread.
OFF_LOOP_BYTES = 64 * 1024

T = TypeVar("T")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_KEY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def _validation(detail: str, where: str) -> WorkflowError:
    return WorkflowError(Problem.standard(ErrorType.VALIDATION, detail=detail, instance=where))


@attrs.frozen(kw_only=True)
class _Arguments:
    """The parts of a call's arguments the adapter uses, checked."""

    service: str
    host: str
    port: int
    method: str
    arguments: Mapping[str, Any]
    proto: str | None
    metadata: Mapping[str, str]
    proto_headers: dict[str, str]

    @classmethod
    def read(cls, arguments: Mapping[str, Any], where: str) -> _Arguments:
        service = arguments.get("service")
        if not isinstance(service, Mapping):
            raise configuration_error("call: grpc needs 'service' with 'name' and 'host'", where)
        name, host, port = service.get("name"), service.get("host"), service.get("port")
        method = arguments.get("method")
        if not isinstance(name, str) or not name or not isinstance(host, str) or not host:
            raise configuration_error("call: grpc needs 'service.name' and 'service.host'", where)
        if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
            raise configuration_error(f"service.port {port!r} is not a port number", where)
        if not isinstance(method, str) or not method:
            raise configuration_error("call: grpc needs 'method'", where)
        values = arguments.get("arguments")
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise _validation(
                f"the arguments of {name}/{method} must be an object, not {type(values).__name__}",
                where,
            )
        proto = arguments.get("proto")
        endpoint = proto.get("endpoint") if isinstance(proto, Mapping) else None
        if isinstance(endpoint, Mapping):
            endpoint = endpoint.get("uri")
        if endpoint is not None and not isinstance(endpoint, str):
            raise configuration_error("proto.endpoint must be a URI", where)
        return cls(
            service=name,
            host=host,
            port=port or DEFAULT_PORT,
            method=method,
            arguments=values,
            proto=endpoint,
            metadata={str(k): str(v) for k, v in (arguments.get("metadata") or {}).items()},
            proto_headers={
                str(k): str(v) for k, v in (arguments.get("protoHeaders") or {}).items()
            },
        )


def _checked_metadata(metadata: Mapping[str, str], what: str, where: str) -> dict[str, str]:
    """``metadata`` as gRPC can send it; a value it cannot carry is a configuration error."""
    for name, value in metadata.items():
        if not _PRINTABLE.fullmatch(value):
            raise configuration_error(
                f"the {name} metadata of the gRPC call {what} holds characters gRPC metadata "
                "cannot carry (printable ASCII only); check the authentication's credentials",
                where,
            )
    return dict(metadata)


async def _off_loop_if(large: bool, function: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(function) if large else function()


def _to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


@attrs.define(eq=False)
class GrpcCaller:
    """Performs ``call: grpc`` under ``settings`` (``workflows.calls.grpc``).

    ``policy`` decides where calls (and reflection) connect; ``send`` downloads ``http(s)``
    protos (the service's HTTP client, behind the same policy); ``mapped`` rewrites
    ``grpc://host:port`` and proto URLs before the policy sees them
    (``ServiceContext.mapped``: tests send the examples' hosts to local servers);
    ``credentials`` are the TLS credentials when ``settings.tls`` is on (see
    `load_credentials`).
    """

    settings: GrpcCallSettings
    policy: OutboundPolicy
    send: HttpSend | None = None
    mapped: Callable[[str], str] = str
    credentials: grpc.ChannelCredentials | None = None
    _compiled: LruCache[str, Descriptors] = attrs.field(
        init=False, factory=lambda: LruCache(CACHE_ENTRIES)
    )
    _sources: LruCache[tuple[str, str], tuple[float, ProtoFiles]] = attrs.field(
        init=False, factory=lambda: LruCache(CACHE_ENTRIES)
    )
    _reflected: LruCache[tuple[str, str], tuple[float, Descriptors]] = attrs.field(
        init=False, factory=lambda: LruCache(CACHE_ENTRIES)
    )
    _limiter: trio.CapacityLimiter = attrs.field(
        init=False, factory=lambda: trio.CapacityLimiter(COMPILE_CONCURRENCY)
    )

    def _mapped(self, host: str, port: int, where: str) -> tuple[str, int]:
        """``host`` and ``port`` after the host map."""
        shown = f"[{host}]" if ":" in host else host
        authority = self.mapped(f"grpc://{shown}:{port}").split("://", 1)[-1].split("/", 1)[0]
        mapped_host, _, mapped_port = authority.rpartition(":")
        if not mapped_port.isdigit():
            raise configuration_error(f"the host map sends {host}:{port} to {authority!r}", where)
        return mapped_host.strip("[]"), int(mapped_port)

    async def call(self, request: ServiceCall) -> Any:
        """The JSON response of the unary call ``request`` describes; failures are
        `WorkflowError`s (see ``_errors``)."""
        where = request.task_ref
        call = _Arguments.read(request.arguments, where)
        timeout = request.timeout or self.settings.timeout
        host, port = self._mapped(call.host, call.port, where)
        what = f"{call.service}/{call.method} at {call.host}:{call.port}"
        target = await resolve_target(self.policy, host, port, what, where)
        channel = open_channel(
            target,
            credentials=self.credentials if self.settings.tls else None,
            max_message_size=self.settings.max_message_size,
        )
        try:
            descriptors = await self._descriptors(call, channel, target.name, timeout, where)
            method = descriptors.method(call.service, call.method, where)
            message = self._request(call, method.request, where)
            payload = message.SerializeToString()
            if len(payload) > self.settings.max_message_size:
                raise _validation(
                    f"the request of {call.service}/{call.method} is {len(payload):,} bytes, more "
                    f"than {MAX_MESSAGE_SETTING} ({self.settings.max_message_size:,}); send less",
                    where,
                )
            metadata = {
                **_checked_metadata(call.metadata, what, where),
                # Task names may hold any character; metadata carries printable ASCII only.
                "idempotency-key": quote(request.key, safe=_KEY_SAFE),
            }
            try:
                data = await call_unary(
                    channel, method.path, payload, metadata=metadata, time_limit=timeout
                )
            except RpcFailed as failed:
                raise status_error(
                    failed.code, failed.details, what=what, timeout=timeout, where=where
                ) from None
        finally:
            channel.close()
        large = len(data) > OFF_LOOP_BYTES
        try:
            response = await _off_loop_if(large, lambda: method.response.FromString(data))
        except DecodeError:
            raise WorkflowError(
                Problem.standard(
                    ErrorType.COMMUNICATION,
                    status=502,
                    detail=f"gRPC call {what} answered with a message that is not a "
                    f"{method.response.DESCRIPTOR.full_name}",
                    instance=where,
                )
            ) from None
        return await _off_loop_if(large, lambda: _to_json(response))

    def _request(self, call: _Arguments, request: type[Message], where: str) -> Message:
        message = request()
        try:
            json_format.ParseDict(dict(call.arguments), message)
        except json_format.ParseError as error:
            text = " ".join(str(error).split())[:300]
            raise _validation(
                f"the arguments of {call.service}/{call.method} do not fit "
                f"{request.DESCRIPTOR.full_name}: {text}",
                where,
            ) from None
        return message

    async def _descriptors(
        self, call: _Arguments, channel: grpc.Channel, origin: str, time_limit: float, where: str
    ) -> Descriptors:
        if self.settings.descriptor_source == "reflection" or call.proto is None:
            key = (origin, call.service)
            cached = self._reflected.get(key)
            if cached is not None and cached[0] > trio.current_time():
                return cached[1]
            found = await reflect_service(
                channel, call.service, origin=origin, time_limit=time_limit, where=where
            )
            self._reflected.put(key, (trio.current_time() + TTL, found))
            return found
        protos = await self._protos(call.proto, call.proto_headers, time_limit, where)
        digest = protos.digest()
        compiled = self._compiled.get(digest)
        if compiled is None:
            compiled = self._compiled.put(
                digest, await compile_protos(protos, self._limiter, where)
            )
        return compiled

    async def _protos(
        self, uri: str, headers: dict[str, str], time_limit: float, where: str
    ) -> ProtoFiles:
        loader = ProtoLoader(
            directory=self.settings.proto_directory,
            send=self.send,
            max_size=self.settings.max_proto_size,
            timeout=time_limit,
            mapped=self.mapped,
        )
        if uri.startswith("file:"):
            return await loader.load(uri, headers, where)  # read each time: it is local
        key = (uri, json.dumps(headers, sort_keys=True))
        cached = self._sources.get(key)
        if cached is not None and cached[0] > trio.current_time():
            return cached[1]
        protos = await loader.load(uri, headers, where)
        self._sources.put(key, (trio.current_time() + TTL, protos))
        return protos


def load_credentials(settings: GrpcCallSettings) -> grpc.ChannelCredentials | None:
    """The TLS credentials of ``settings`` (None when TLS is off); an unreadable
    ``caFile`` raises `ValueError` naming the setting."""
    if not settings.tls:
        return None
    roots = None
    if settings.ca_file:
        try:
            with open(settings.ca_file, "rb") as file:
                roots = file.read()
        except OSError as error:
            raise ValueError(
                f"{SETTINGS}.caFile: cannot read {settings.ca_file}: {error.strerror}"
            ) from None
    return grpc.ssl_channel_credentials(root_certificates=roots)
