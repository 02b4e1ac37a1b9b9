"""Descriptors of a gRPC service: protoc's output (or reflection's) as a descriptor pool.

`compile_protos` runs grpcio-tools' protoc in a child process on the call's proto files,
written under a private temporary folder by their virtual paths, and reads back a
``FileDescriptorSet`` (``--include_imports``): no Python code is generated, nothing is
imported. protoc's messages name the virtual paths, so they go into the configuration error
as they are. The caller's limiter keeps the number of protoc processes at once bounded
(``COMPILE_CONCURRENCY``); each runs for at most ``COMPILE_TIMEOUT`` seconds, and a cancelled
compile kills its process (``trio.run_process``).

`Descriptors` holds a private ``DescriptorPool`` per proto (two workflows' protos may define
the same names differently) and finds a unary method in it; request and response classes are
built by ``message_factory``.
"""

from __future__ import annotations

import importlib.resources
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import attrs
import trio
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError, Message

from workflow_orchestrator.adapters.grpc._errors import configuration_error
from workflow_orchestrator.adapters.grpc._sources import ProtoFiles
from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError

__all__ = [
    "COMPILE_CONCURRENCY",
    "COMPILE_TIMEOUT",
    "Descriptors",
    "Method",
    "compile_protos",
    "decode_files",
    "descriptors_from",
]

FileProto = descriptor_pb2.FileDescriptorProto

COMPILE_TIMEOUT = 30.0
COMPILE_CONCURRENCY = 4
_ERROR_LINES = 5


@attrs.frozen(kw_only=True)
class Method:
    """A unary method: its full gRPC path (``/package.Service/Method``) and message classes."""

    path: str
    request: type[Message]
    response: type[Message]


@attrs.frozen(kw_only=True)
class Descriptors:
    """The descriptors of one proto (or of one server's reflection); ``origin`` names it."""

    pool: descriptor_pool.DescriptorPool
    origin: str

    def method(self, service: str, method: str, where: str) -> Method:
        """The unary ``method`` of ``service``; a missing service or method, or a streaming
        one, is a configuration error naming what there is."""
        try:
            found = self.pool.FindServiceByName(service)
        except KeyError:
            raise configuration_error(
                f"service {service!r} is not defined by {self.origin}; give its full name "
                "(package.Service)",
                where,
            ) from None
        methods = found.methods_by_name
        if method not in methods:
            raise configuration_error(
                f"service {service} of {self.origin} has no method {method!r}; its methods: "
                f"{sorted(methods)}",
                where,
            )
        descriptor: MethodDescriptor = methods[method]
        if descriptor.client_streaming or descriptor.server_streaming:
            kind = "client" if descriptor.client_streaming else "server"
            if descriptor.client_streaming and descriptor.server_streaming:
                kind = "bidirectional"
            raise configuration_error(
                f"method {service}/{method} is {kind}-streaming; call: grpc calls unary "
                "methods only",
                where,
            )
        return Method(
            path=f"/{service}/{method}",
            request=message_factory.GetMessageClass(descriptor.input_type),
            response=message_factory.GetMessageClass(descriptor.output_type),
        )


def decode_files(files: Iterable[bytes], origin: str, where: str) -> list[FileProto]:
    """The serialized ``FileDescriptorProto``s ``files`` decoded (a configuration error
    naming ``origin`` when one is not)."""
    try:
        return [FileProto.FromString(data) for data in files]
    except DecodeError:
        raise configuration_error(f"the descriptors of {origin} cannot be decoded", where) from None


def descriptors_from(files: Iterable[FileProto], origin: str, where: str) -> Descriptors:
    """A pool of the file descriptors ``files``, in any order (each is added once its
    dependencies are; the first of a name wins)."""
    pending: dict[str, FileProto] = {}
    for proto in files:
        pending.setdefault(proto.name, proto)
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    while pending:
        ready = [p for p in pending.values() if all(d in added for d in p.dependency)]
        if not ready:
            missing = sorted({d for p in pending.values() for d in p.dependency} - added)
            raise configuration_error(
                f"the descriptors of {origin} lack the files {missing[:5]} they depend on", where
            )
        for proto in ready:
            try:
                pool.Add(proto)
            except (TypeError, ValueError) as error:
                raise configuration_error(
                    f"the descriptors of {origin} are inconsistent: {error}", where
                ) from None
            added.add(proto.name)
            del pending[proto.name]
    return Descriptors(pool=pool, origin=origin)


def _well_known_include() -> str:
    return str(importlib.resources.files("grpc_tools") / "_proto")


def _write_tree(folder: Path, protos: ProtoFiles) -> None:
    for name, content in protos.files:
        path = folder / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def _compiler_messages(stderr: bytes, scratch: str) -> str:
    """protoc's error lines, without the logging library's preamble and warnings, naming
    files by their virtual paths (not where they were written)."""
    lines = [
        line.strip().replace(scratch, "")
        for line in stderr.decode("utf-8", "replace").splitlines()
        if line.strip() and not line.startswith(("WARNING: All log messages", "W0000", "I0000"))
    ]
    shown = "; ".join(lines[:_ERROR_LINES])
    return shown.replace("\0", "\ufffd") or "protoc failed without a message"


async def compile_protos(
    protos: ProtoFiles, limiter: trio.CapacityLimiter, where: str
) -> Descriptors:
    """The descriptors of ``protos`` compiled by protoc, run while holding ``limiter``; a
    proto that does not compile is a configuration error quoting protoc, one that takes too
    long a timeout error."""
    async with limiter:
        scratch = await trio.to_thread.run_sync(tempfile.mkdtemp, "", "wo-protoc-")
        folder = Path(scratch)
        try:
            await trio.to_thread.run_sync(_write_tree, folder, protos)
            output = folder / "descriptors.pb"
            command = [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"--proto_path={folder / 'src'}",
                f"--proto_path={_well_known_include()}",
                f"--descriptor_set_out={output}",
                "--include_imports",
                protos.main,
            ]
            try:
                with trio.fail_after(COMPILE_TIMEOUT):
                    result = await trio.run_process(
                        command,
                        stdin=subprocess.DEVNULL,
                        capture_stdout=True,
                        capture_stderr=True,
                        check=False,
                    )
            except trio.TooSlowError:
                raise WorkflowError(
                    Problem.standard(
                        ErrorType.TIMEOUT,
                        detail=f"compiling the proto {protos.origin} took more than "
                        f"{COMPILE_TIMEOUT:g}s",
                        instance=where,
                    )
                ) from None
            if result.returncode != 0:
                raise configuration_error(
                    f"proto {protos.origin} does not compile: "
                    f"{_compiler_messages(result.stderr, str(folder / 'src') + '/')}",
                    where,
                )
            data = await trio.to_thread.run_sync(output.read_bytes)
        finally:
            with trio.move_on_after(5, shield=True):
                await trio.to_thread.run_sync(_remove_tree, folder)
    described = descriptor_pb2.FileDescriptorSet.FromString(data)
    return descriptors_from(described.file, protos.origin, where)


def _remove_tree(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
