"""``call: grpc``: what the interpreter adds before the gRPC adapter takes the call.

The adapter (``workflow_orchestrator.adapters.grpc``) compiles the proto, connects and calls;
authentication is the interpreter's, as for ``call: http``: ``service.authentication`` becomes
the ``authorization`` metadata of the call (basic, bearer, OAuth2/OIDC, through `authorize`)
and ``$authorization`` for the task's output expressions, and an authenticated
``proto.endpoint`` object becomes the ``authorization`` header of the proto's download. The
adapter receives the evaluated ``with`` without the policies, plus two keys no definition can
write (the schema refuses unknown keys under ``with``): ``metadata`` and ``protoHeaders``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.dsl.runtime._auth import authorize
from workflow_orchestrator.dsl.runtime._effects import ServiceCall
from workflow_orchestrator.dsl.runtime._runner import Runner

__all__ = ["call_grpc"]


async def call_grpc(
    runner: Runner, with_: Mapping[str, Any], data: Any, args: dict[str, Any], key: str, where: str
) -> Any:
    """Perform ``call: grpc`` with evaluated arguments ``with_`` through the effects."""
    arguments = dict(with_)
    metadata: dict[str, str] = {}
    service = with_.get("service")
    if isinstance(service, Mapping):
        authentication = service.get("authentication")
        arguments["service"] = {k: v for k, v in service.items() if k != "authentication"}
        if authentication:
            header, descriptor = await authorize(runner, authentication, data, args, where, key)
            metadata["authorization"] = header
            args["authorization"] = descriptor
    proto_headers: dict[str, str] = {}
    proto = with_.get("proto")
    if isinstance(proto, Mapping) and isinstance(proto.get("endpoint"), Mapping):
        endpoint = proto["endpoint"]
        if endpoint.get("authentication"):
            header, _ = await authorize(
                runner, endpoint["authentication"], data, args, where, key + "/proto"
            )
            proto_headers["authorization"] = header
        arguments["proto"] = {**proto, "endpoint": {"uri": endpoint.get("uri")}}
    arguments["metadata"] = metadata
    arguments["protoHeaders"] = proto_headers
    request = ServiceCall(
        kind="grpc",
        arguments=arguments,
        key=f"{runner.state.instance_id}{key}",
        task_ref=where,
    )
    return await runner.effects.call_service(request)
