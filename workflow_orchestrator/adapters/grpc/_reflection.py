"""Descriptors from the called server's reflection service (``grpc.reflection.v1``, then
``v1alpha``).

Reflection is a bidirectional stream, but one request answered by one response is, on the
wire, exactly a unary call: each question here is sent as a unary call of
``ServerReflectionInfo`` (the server reads one request, answers it and ends the stream), so it
shares `call_unary`'s deadline and cancellation. The messages of v1 and v1alpha are the same,
so grpcio-reflection's v1alpha classes encode both.

The file defining the service comes first (``file_containing_symbol``), then every dependency
it names that the answers did not carry already (``file_by_filename``), at most ``MAX_FILES``
files in all; ``google/protobuf/*`` dependencies are asked for like any other.
"""

from __future__ import annotations

import grpc
import trio
from grpc_reflection.v1alpha import reflection_pb2

from workflow_orchestrator.adapters.grpc._descriptors import (
    Descriptors,
    FileProto,
    decode_files,
    descriptors_from,
)
from workflow_orchestrator.adapters.grpc._errors import configuration_error, status_error
from workflow_orchestrator.adapters.grpc._sources import MAX_FILES
from workflow_orchestrator.adapters.grpc._transport import RpcFailed, call_unary

__all__ = ["reflect_service"]

_PATHS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)


async def _ask(
    channel: grpc.Channel,
    paths: list[str],
    request: reflection_pb2.ServerReflectionRequest,
    *,
    deadline: float,
    origin: str,
    where: str,
) -> list[FileProto]:
    """The files of one reflection answer; ``paths`` loses v1 when the server lacks it."""
    while True:
        timeout = max(deadline - trio.current_time(), 0.001)
        try:
            data = await call_unary(
                channel, paths[0], request.SerializeToString(), metadata={}, time_limit=timeout
            )
        except RpcFailed as failed:
            if failed.code is grpc.StatusCode.UNIMPLEMENTED and len(paths) > 1:
                paths.pop(0)
                continue
            raise status_error(
                failed.code,
                failed.details,
                what=f"reflection of {origin}",
                timeout=timeout,
                where=where,
            ) from None
        break
    response = reflection_pb2.ServerReflectionResponse.FromString(data)
    if response.HasField("error_response"):
        raise configuration_error(
            f"the reflection service of {origin} answers: "
            f"{response.error_response.error_message[:200]}",
            where,
        )
    return decode_files(
        response.file_descriptor_response.file_descriptor_proto, f"reflection of {origin}", where
    )


async def reflect_service(
    channel: grpc.Channel, service: str, *, origin: str, time_limit: float, where: str
) -> Descriptors:
    """The descriptors of ``service`` and its dependencies, as the server at ``origin``
    (``host:port``) reflects them, within ``time_limit`` seconds in all."""
    deadline = trio.current_time() + time_limit
    paths = list(_PATHS)
    files = await _ask(
        channel,
        paths,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=service),
        deadline=deadline,
        origin=origin,
        where=where,
    )
    known = {f.name: f for f in files}
    missing = [d for f in files for d in f.dependency if d not in known]
    while missing:
        name = missing.pop(0)
        if name in known:
            continue
        if len(known) >= MAX_FILES:
            raise configuration_error(
                f"the service {service} of {origin} depends on more than {MAX_FILES} files",
                where,
            )
        answer = await _ask(
            channel,
            paths,
            reflection_pb2.ServerReflectionRequest(file_by_filename=name),
            deadline=deadline,
            origin=origin,
            where=where,
        )
        for proto in answer:
            if proto.name not in known:
                known[proto.name] = proto
                missing.extend(d for d in proto.dependency if d not in known)
        if name not in known:
            raise configuration_error(
                f"the reflection service of {origin} does not describe {name}, which "
                f"{service} depends on",
                where,
            )
    return descriptors_from(known.values(), f"the reflection service of {origin}", where)
