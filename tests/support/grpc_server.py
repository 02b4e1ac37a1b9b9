"""A real gRPC server for the tests of ``call: grpc``, built from a proto text at run time.

`serve_grpc` compiles the proto with grpcio-tools' protoc into descriptors (no generated
code), serves every unary method of its services on 127.0.0.1 (plaintext, or TLS with a
certificate) from a thread pool, and records each call: the method, the request as JSON and
the metadata. What a method answers is scripted per method (`GrpcServer.answer`): a response
object, a `Failure` (a status code and message), or a function of the request and metadata;
answers are used in order, the last one repeatedly. Without a script a method answers its
default (empty) response. Optionally the server runs the reflection service too.
"""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message
from grpc_reflection.v1alpha import reflection

from tests.support.certificates import PemFiles

GREET_PROTO = """\
syntax = "proto3";

package GreeterApi;

service Greeter {
  rpc SayHello (HelloRequest) returns (HelloReply);
  rpc SayHellos (HelloRequest) returns (stream HelloReply);
}

message HelloRequest {
  string name = 1;
  int32 times = 2;
}

message HelloReply {
  string message = 1;
  repeated string echoed_metadata = 2;
}
"""


@attrs.frozen
class Failure:
    """An answer that ends the call with ``code`` and ``details``."""

    code: grpc.StatusCode
    details: str = ""


Handler = Callable[[dict[str, Any], dict[str, str], grpc.ServicerContext], Any]
Answer = Mapping[str, Any] | Failure | Handler


@attrs.frozen(kw_only=True)
class Received:
    """One call the server received: ``method`` is ``package.Service/Method``."""

    method: str
    request: dict[str, Any]
    metadata: dict[str, str]


@attrs.define(eq=False)
class GrpcServer:
    """A running server: its ``port``, the calls it ``received``, its scripted answers."""

    port: int
    received: list[Received] = attrs.field(factory=list)
    answers: dict[str, list[Answer]] = attrs.field(factory=dict)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    @property
    def target(self) -> str:
        """``grpc://127.0.0.1:<port>``, what the host map sends the examples' hosts to."""
        return f"grpc://127.0.0.1:{self.port}"

    def answer(self, method: str, *answers: Answer) -> None:
        """Answer ``method`` (``package.Service/Method``) with ``answers``, in order."""
        self.answers[method] = list(answers)

    def calls(self, method: str) -> list[Received]:
        """The calls of ``method`` received so far."""
        with self._lock:
            return [r for r in self.received if r.method == method]

    def _next(self, method: str) -> Answer | None:
        with self._lock:
            script = self.answers.get(method)
            if not script:
                return None
            return script.pop(0) if len(script) > 1 else script[0]

    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)


def compile_proto(text: str, name: str = "service.proto") -> descriptor_pb2.FileDescriptorSet:
    """The descriptors of the proto ``text`` (with its imports of well-known types)."""
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / name).write_text(text)
        output = Path(folder) / "set.pb"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{folder}",
                f"-I{include}",
                f"--descriptor_set_out={output}",
                "--include_imports",
                name,
            ],
            check=True,
            capture_output=True,
        )
        return descriptor_pb2.FileDescriptorSet.FromString(output.read_bytes())


def _behaviour(
    server: GrpcServer, method: str, response: type[Message]
) -> Callable[[Message, grpc.ServicerContext], Message]:
    def behave(request: Message, context: grpc.ServicerContext) -> Message:
        as_json = json_format.MessageToDict(request, preserving_proto_field_name=True)
        metadata = {m.key: str(m.value) for m in context.invocation_metadata()}
        server._record(Received(method=method, request=as_json, metadata=metadata))
        answer = server._next(method)
        if callable(answer):
            answer = answer(as_json, metadata, context)
        if isinstance(answer, Failure):
            context.abort(answer.code, answer.details)
        if isinstance(answer, Message):
            return answer
        return json_format.ParseDict(dict(answer or {}), response())

    return behave


@contextmanager
def serve_grpc(
    proto: str = GREET_PROTO,
    *,
    name: str = "service.proto",
    reflection_service: bool = False,
    certificate: PemFiles | None = None,
) -> Iterator[GrpcServer]:
    """Serve the services of ``proto`` on 127.0.0.1 until the block ends."""
    described = compile_proto(proto, name)
    pool = descriptor_pool.DescriptorPool()
    for file in described.file:
        pool.Add(file)
    main = pool.FindFileByName(name)
    executor = ThreadPoolExecutor(max_workers=8)
    server = grpc.server(executor)
    port = (
        server.add_secure_port(
            "127.0.0.1:0",
            grpc.ssl_server_credentials(
                [(certificate.private_key.read_bytes(), certificate.certificate.read_bytes())]
            ),
        )
        if certificate is not None
        else server.add_insecure_port("127.0.0.1:0")
    )
    running = GrpcServer(port=port)
    services = []
    for service in main.services_by_name.values():
        handlers = {}
        for method in service.methods:
            if method.client_streaming or method.server_streaming:
                continue
            request = message_factory.GetMessageClass(method.input_type)
            response = message_factory.GetMessageClass(method.output_type)
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _behaviour(running, f"{service.full_name}/{method.name}", response),
                request_deserializer=request.FromString,
                response_serializer=response.SerializeToString,
            )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service.full_name, handlers),)
        )
        services.append(service.full_name)
    if reflection_service:
        reflection.enable_server_reflection((*services, reflection.SERVICE_NAME), server, pool)
    server.start()
    try:
        yield running
    finally:
        server.stop(None).wait(5)
        executor.shutdown(wait=False, cancel_futures=True)
