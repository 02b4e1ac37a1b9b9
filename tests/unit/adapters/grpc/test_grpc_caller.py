"""``call: grpc`` through `GrpcCaller` against a real gRPC server started by the test."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import attrs
import grpc
import pytest
import trio

from tests.support.certificates import CertificateAuthority
from tests.support.document_server import Document, serve_documents
from tests.support.grpc_server import GREET_PROTO, Failure, GrpcServer, serve_grpc
from workflow_orchestrator.adapters import PooledHttpClient
from workflow_orchestrator.adapters.grpc import GrpcCaller, load_credentials
from workflow_orchestrator.adapters.grpc import _caller as caller_module
from workflow_orchestrator.config import GrpcCallSettings, OutboundSettings
from workflow_orchestrator.dsl import WorkflowError
from workflow_orchestrator.dsl.runtime import ServiceCall
from workflow_orchestrator.security import OutboundPolicy

# The test servers listen on loopback, which the default outbound policy refuses.
LOOPBACK = OutboundPolicy.from_settings(OutboundSettings(allow=("127.0.0.0/8", "::1")))
SAY_HELLO = "GreeterApi.Greeter/SayHello"
ERRORS = "https://serverlessworkflow.io/spec/1.0.0/errors/"


def _hello(request: dict[str, Any], metadata: dict[str, str], _: object) -> dict[str, Any]:
    return {
        "message": f"Hello, {request.get('name', '')}",
        "echoed_metadata": [metadata.get("authorization", "")],
    }


def _caller(
    server: GrpcServer,
    settings: GrpcCallSettings,
    policy: OutboundPolicy = LOOPBACK,
    hosts: dict[str, str] | None = None,
    **more: Any,
) -> GrpcCaller:
    """A caller sending the example's host (and ``hosts``) to the test's servers."""
    host_map = {"grpc://localhost:5011": server.target, **(hosts or {})}

    def mapped(url: str) -> str:
        for prefix, target in host_map.items():
            if url.startswith(prefix):
                return target + url[len(prefix) :]
        return url

    return GrpcCaller(settings=settings, policy=policy, mapped=mapped, **more)


def _call(
    proto: str | None = "file://app/greet.proto", method: str = "SayHello", **arguments: Any
) -> ServiceCall:
    with_: dict[str, Any] = {
        "service": {"name": "GreeterApi.Greeter", "host": "localhost", "port": 5011},
        "method": method,
        "arguments": arguments,
        "metadata": {},
    }
    if proto is not None:
        with_["proto"] = {"endpoint": proto}
    return ServiceCall(kind="grpc", arguments=with_, key="instance-1/do/0/greet", task_ref="/do/0")


@pytest.fixture
def protos(tmp_path: Path) -> Path:
    """A proto directory holding app/greet.proto."""
    (tmp_path / "protos" / "app").mkdir(parents=True)
    (tmp_path / "protos" / "app" / "greet.proto").write_text(GREET_PROTO)
    return tmp_path / "protos"


async def _failure(caller: GrpcCaller, request: ServiceCall) -> dict[str, Any]:
    with pytest.raises(WorkflowError) as caught:
        await caller.call(request)
    return caught.value.problem.to_json()


async def test_call_compiles_the_proto_and_sends_metadata(protos: Path) -> None:
    """The proto under protoDirectory describes the call; the answer is JSON with proto field
    names and defaults, the metadata carries authorization and the idempotency key."""
    with serve_grpc() as server:
        server.answer(SAY_HELLO, _hello)
        caller = _caller(server, GrpcCallSettings(proto_directory=str(protos)))
        request = _call(name="Ada")
        request.arguments["metadata"]["authorization"] = "Bearer token-1"
        result = await caller.call(request)
    assert result == {"message": "Hello, Ada", "echoed_metadata": ["Bearer token-1"]}
    (received,) = server.calls(SAY_HELLO)
    assert received.request == {"name": "Ada"}
    assert received.metadata["idempotency-key"] == "instance-1/do/0/greet"
    assert received.metadata["authorization"] == "Bearer token-1"


async def test_a_proto_is_compiled_once_per_content(
    protos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two calls with the same proto compile it once; a changed proto is compiled again."""
    compiled: list[str] = []
    real = caller_module.compile_protos

    async def counting(*args: Any) -> Any:
        compiled.append(args[0].digest())
        return await real(*args)

    monkeypatch.setattr(caller_module, "compile_protos", counting)
    with serve_grpc() as server:
        caller = _caller(server, GrpcCallSettings(proto_directory=str(protos)))
        await caller.call(_call(name="a"))
        await caller.call(_call(name="b"))
        (protos / "app" / "greet.proto").write_text(GREET_PROTO + "\n// changed\n")
        await caller.call(_call(name="c"))
    assert len(compiled) == 2 and compiled[0] != compiled[1]
    assert len(server.calls(SAY_HELLO)) == 3


async def test_imports_are_read_beside_the_main_file(tmp_path: Path) -> None:
    """A proto importing another (and a well-known type) compiles from the directory."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "messages.proto").write_text(
        'syntax = "proto3";\npackage GreeterApi;\n'
        "message HelloRequest { string name = 1; int32 times = 2; }\n"
        "message HelloReply { string message = 1; repeated string echoed_metadata = 2; }\n"
    )
    (tmp_path / "app" / "greet.proto").write_text(
        'syntax = "proto3";\npackage GreeterApi;\nimport "messages.proto";\n'
        'import "google/protobuf/empty.proto"; // a well-known type\n'
        "service Greeter { rpc SayHello (HelloRequest) returns (HelloReply); }\n"
    )
    with serve_grpc() as server:
        server.answer(SAY_HELLO, _hello)
        caller = _caller(server, GrpcCallSettings(proto_directory=str(tmp_path)))
        result = await caller.call(_call(name="Bo"))
    assert result["message"] == "Hello, Bo"


async def test_a_proto_is_downloaded_through_the_http_client() -> None:
    """An https proto endpoint (and its import) is fetched through the HTTP client, at the
    address the host map gives."""
    with serve_documents() as documents, serve_grpc() as server:
        documents.documents["/protos/greet.proto"] = Document(
            GREET_PROTO.replace(
                "message HelloReply", 'import "extra.proto";\nmessage HelloReply'
            ).encode(),
            content_type="text/plain",
        )
        documents.documents["/protos/extra.proto"] = Document(
            b'syntax = "proto3";\npackage extra;\nmessage Unused { string a = 1; }\n',
            content_type="text/plain",
        )
        server.answer(SAY_HELLO, _hello)
        async with PooledHttpClient(policy=LOOPBACK) as http:
            hosts = {"https://protos.example.com": documents.url}
            caller = _caller(server, GrpcCallSettings(), hosts=hosts, send=http.http)
            result = await caller.call(
                _call("https://protos.example.com/protos/greet.proto", name="Cy")
            )
            missing = await _failure(
                caller, _call("https://protos.example.com/protos/none.proto", name="Cy")
            )
    assert result["message"] == "Hello, Cy"
    assert (missing["type"], missing["status"]) == (ERRORS + "communication", 404)
    assert missing["detail"] == (
        "GET https://protos.example.com/protos/none.proto (a proto file) returned status 404"
    )


async def test_a_proto_download_goes_through_the_outbound_policy() -> None:
    """The HTTP client's policy refuses a proto on loopback like any other call."""
    with serve_documents() as documents, serve_grpc() as server:
        documents.documents["/greet.proto"] = Document(GREET_PROTO.encode())
        async with PooledHttpClient(policy=OutboundPolicy()) as http:
            caller = _caller(server, GrpcCallSettings(), send=http.http)
            problem = await _failure(caller, _call(f"{documents.url}/greet.proto", name="x"))
    assert (problem["status"], problem["title"]) == (403, "Outbound Call Refused")
    assert server.received == []


async def test_reflection_describes_the_service_without_a_proto() -> None:
    """descriptorSource: reflection asks the server; no proto directory is needed."""
    with serve_grpc(reflection_service=True) as server:
        server.answer(SAY_HELLO, _hello)
        caller = _caller(server, GrpcCallSettings(descriptor_source="reflection"))
        first = await caller.call(_call(name="Di"))
        second = await caller.call(_call(None, name="Ed"))
    assert (first["message"], second["message"]) == ("Hello, Di", "Hello, Ed")
    assert len(server.calls(SAY_HELLO)) == 2


async def test_reflection_of_a_server_without_it_is_an_error() -> None:
    """A server without reflection answers UNIMPLEMENTED, named in the error."""
    with serve_grpc() as server:
        caller = _caller(server, GrpcCallSettings(descriptor_source="reflection"))
        problem = await _failure(caller, _call(name="x"))
    assert problem["status"] == 501
    assert problem["detail"].startswith("gRPC call reflection of 127.0.0.1:")
    assert "UNIMPLEMENTED" in problem["detail"]


@pytest.mark.parametrize(
    ("code", "kind", "status"),
    [
        (grpc.StatusCode.UNAVAILABLE, "communication", 503),
        (grpc.StatusCode.UNAUTHENTICATED, "authentication", 401),
        (grpc.StatusCode.PERMISSION_DENIED, "authorization", 403),
        (grpc.StatusCode.INVALID_ARGUMENT, "validation", 400),
        (grpc.StatusCode.NOT_FOUND, "communication", 404),
        (grpc.StatusCode.INTERNAL, "communication", 500),
        (grpc.StatusCode.UNIMPLEMENTED, "communication", 501),
    ],
)
async def test_status_codes_become_standard_errors(
    protos: Path, code: grpc.StatusCode, kind: str, status: int
) -> None:
    """A status code maps to the DSL's error type and HTTP status, naming the server's
    message."""
    with serve_grpc() as server:
        server.answer(SAY_HELLO, Failure(code, "the server says no"))
        caller = _caller(server, GrpcCallSettings(proto_directory=str(protos)))
        problem = await _failure(caller, _call(name="x"))
    assert problem == {
        "type": ERRORS + kind,
        "status": status,
        "title": f"gRPC {code.name}",
        "instance": "/do/0",
        "detail": f"gRPC call GreeterApi.Greeter/SayHello at localhost:5011 failed with "
        f"{code.name}: the server says no",
    }


async def test_an_unanswered_call_is_a_timeout(protos: Path) -> None:
    """The call's timeout is its gRPC deadline: a server that does not answer in time gives
    a timeout error naming the setting."""
    release = threading.Event()

    def stall(request: Any, metadata: Any, context: grpc.ServicerContext) -> dict[str, Any]:
        release.wait(10)
        return {}

    with serve_grpc() as server:
        server.answer(SAY_HELLO, stall)
        caller = _caller(server, GrpcCallSettings(proto_directory=str(protos), timeout=0.5))
        try:
            problem = await _failure(caller, _call(name="x"))
        finally:
            release.set()
    assert (problem["type"], problem["status"]) == (ERRORS + "timeout", 504)
    assert "no answer within 0.5s" in problem["detail"]
    assert "workflows.calls.grpc.timeout" in problem["detail"]


async def test_cancelling_the_task_cancels_the_rpc(protos: Path) -> None:
    """A cancelled task cancels its RPC: the server sees the call end before it answered."""
    ended = threading.Event()
    started = threading.Event()

    def stall(request: Any, metadata: Any, context: grpc.ServicerContext) -> dict[str, Any]:
        context.add_callback(ended.set)
        started.set()
        ended.wait(10)
        return {}

    with serve_grpc() as server:
        server.answer(SAY_HELLO, stall)
        caller = _caller(server, GrpcCallSettings(proto_directory=str(protos)))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller.call, _call(name="x"))
            await trio.to_thread.run_sync(started.wait, 10)
            nursery.cancel_scope.cancel()
        assert await trio.to_thread.run_sync(ended.wait, 10)


async def test_unknown_fields_in_arguments_are_a_validation_error(protos: Path) -> None:
    """An argument the request message lacks is a validation error naming the field."""
    with serve_grpc() as server:
        caller = _caller(server, GrpcCallSettings(proto_directory=str(protos)))
        problem = await _failure(caller, _call(nmae="x"))
    assert problem["type"] == ERRORS + "validation"
    assert problem["detail"].startswith(
        "the arguments of GreeterApi.Greeter/SayHello do not fit GreeterApi.HelloRequest: "
    )
    assert 'no field named "nmae"' in problem["detail"]
    assert server.received == []


async def test_streaming_methods_and_unknown_names_are_configuration_errors(
    protos: Path,
) -> None:
    """Streaming methods, unknown methods and unknown services are refused, naming them."""
    with serve_grpc() as server:
        caller = _caller(server, GrpcCallSettings(proto_directory=str(protos)))
        streaming = await _failure(caller, _call(method="SayHellos"))
        unknown = await _failure(caller, _call(method="SayBye"))
        request = _call()
        request.arguments["service"]["name"] = "Greeter"
        service = await _failure(caller, request)
    assert streaming["type"] == ERRORS + "configuration"
    assert streaming["detail"] == (
        "method GreeterApi.Greeter/SayHellos is server-streaming; call: grpc calls unary "
        "methods only"
    )
    assert unknown["detail"].endswith(
        "has no method 'SayBye'; its methods: ['SayHello', 'SayHellos']"
    )
    assert service["detail"].startswith(
        "service 'Greeter' is not defined by file://app/greet.proto"
    )
    assert server.received == []


async def test_the_default_outbound_policy_refuses_loopback(protos: Path) -> None:
    """Without an allow entry, the loopback server is refused before any connection."""
    with serve_grpc() as server:
        caller = _caller(
            server, GrpcCallSettings(proto_directory=str(protos)), policy=OutboundPolicy()
        )
        problem = await _failure(caller, _call(name="x"))
    assert (problem["type"], problem["status"]) == (ERRORS + "communication", 403)
    assert problem["title"] == "Outbound Call Refused"
    assert "127.0.0.1 is a loopback address" in problem["detail"]
    assert "security.outbound.allow" in problem["detail"]
    assert server.received == []


async def test_file_endpoints_need_the_proto_directory() -> None:
    """file:// is refused while protoDirectory is empty, naming the setting."""
    with serve_grpc() as server:
        problem = await _failure(_caller(server, GrpcCallSettings()), _call(name="x"))
    assert problem["type"] == ERRORS + "configuration"
    assert problem["detail"] == (
        "proto endpoint file://app/greet.proto names a local file, and "
        "workflows.calls.grpc.protoDirectory is not set; put the file in a folder set as "
        "workflows.calls.grpc.protoDirectory, or serve it over https"
    )


@pytest.mark.parametrize(
    "endpoint",
    ["file://../secret.proto", "file://app/../../secret.proto", "SECRET", "file://app/link.proto"],
)
async def test_file_endpoints_cannot_leave_the_proto_directory(protos: Path, endpoint: str) -> None:
    """'..', absolute paths and symbolic links cannot reach a file outside the directory."""
    secret = protos.parent / "secret.proto"
    secret.write_text(GREET_PROTO)
    (protos / "app" / "link.proto").symlink_to(secret)
    endpoint = endpoint.replace("SECRET", f"file://{secret}")
    with serve_grpc() as server:
        caller = _caller(server, GrpcCallSettings(proto_directory=str(protos)))
        problem = await _failure(caller, _call(endpoint, name="x"))
    assert problem["type"] == ERRORS + "configuration"
    assert "resolves outside workflows.calls.grpc.protoDirectory" in problem["detail"]
    assert server.received == []


async def test_imports_cannot_leave_the_proto_directory(protos: Path) -> None:
    """An import spelled with '..' is refused before anything is read."""
    (protos / "app" / "greet.proto").write_text(
        GREET_PROTO.replace("package GreeterApi;", 'package GreeterApi;\nimport "../x.proto";')
    )
    with serve_grpc() as server:
        caller = _caller(server, GrpcCallSettings(proto_directory=str(protos)))
        problem = await _failure(caller, _call(name="x"))
    assert problem["detail"] == (
        "proto file://app/greet.proto: greet.proto imports '../x.proto', which is not a plain "
        "relative path; import files by a path below the main file's folder"
    )


async def test_a_proto_that_does_not_compile_quotes_protoc(protos: Path) -> None:
    """protoc's message (file, line, column) is in the configuration error."""
    (protos / "app" / "greet.proto").write_text('syntax = "proto3";\nmessage {\n')
    with serve_grpc() as server:
        caller = _caller(server, GrpcCallSettings(proto_directory=str(protos)))
        problem = await _failure(caller, _call(name="x"))
    assert problem["type"] == ERRORS + "configuration"
    assert problem["detail"].startswith(
        "proto file://app/greet.proto does not compile: greet.proto:2:9: "
    )


async def test_proto_files_are_size_capped(protos: Path) -> None:
    """Proto files larger than maxProtoSize are refused, naming the setting."""
    (protos / "app" / "greet.proto").write_text(GREET_PROTO + "//" + "x" * 2048 + "\n")
    with serve_grpc() as server:
        caller = _caller(server, GrpcCallSettings(proto_directory=str(protos), max_proto_size=1024))
        problem = await _failure(caller, _call(name="x"))
    assert problem["detail"] == (
        "the proto files of file://app/greet.proto are larger than 1,024 bytes, the limit set by "
        "workflows.calls.grpc.maxProtoSize; make them smaller or raise the setting"
    )


async def test_responses_larger_than_the_limit_are_refused(protos: Path) -> None:
    """A response over maxMessageSize fails the call, naming the setting."""
    with serve_grpc() as server:
        server.answer(SAY_HELLO, {"message": "x" * 4096})
        caller = _caller(
            server, GrpcCallSettings(proto_directory=str(protos), max_message_size=1024)
        )
        problem = await _failure(caller, _call(name="x"))
    assert (problem["type"], problem["status"]) == (ERRORS + "communication", 502)
    assert "workflows.calls.grpc.maxMessageSize" in problem["detail"]
    assert len(server.calls(SAY_HELLO)) == 1


async def test_tls_verifies_the_server_against_the_configured_ca(
    protos: Path, tmp_path: Path
) -> None:
    """With tls on, the server's certificate is checked against caFile and the host name."""
    authority = CertificateAuthority.create(tmp_path)
    other = CertificateAuthority.create(tmp_path, name="other")
    with serve_grpc(certificate=authority.issue_server()) as server:
        server.answer(SAY_HELLO, _hello)
        trusted = GrpcCallSettings(
            proto_directory=str(protos), tls=True, ca_file=str(authority.certificate_path)
        )
        untrusted = GrpcCallSettings(
            proto_directory=str(protos), tls=True, ca_file=str(other.certificate_path)
        )
        target = f"grpc://localhost:{server.port}"

        def mapped(url: str) -> str:
            return target + url.removeprefix("grpc://localhost:5011")

        good = GrpcCaller(
            settings=trusted, policy=LOOPBACK, mapped=mapped, credentials=load_credentials(trusted)
        )
        bad = GrpcCaller(
            settings=untrusted,
            policy=LOOPBACK,
            mapped=mapped,
            credentials=load_credentials(untrusted),
        )
        result = await good.call(_call(name="Tls"))
        problem = await _failure(bad, _call(name="x"))
    assert result["message"] == "Hello, Tls"
    assert problem["status"] == 503
    assert len(server.calls(SAY_HELLO)) == 1


def test_an_unreadable_ca_file_names_the_setting(tmp_path: Path) -> None:
    """A caFile that cannot be read stops the adapter from starting, naming the setting."""
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match="caFile") as caught:
        load_credentials(GrpcCallSettings(tls=True, ca_file=str(missing)))
    assert str(caught.value) == (
        f"workflows.calls.grpc.caFile: cannot read {missing}: No such file or directory"
    )


async def test_metadata_holds_printable_ascii_only(protos: Path) -> None:
    """A task name beyond ASCII is percent-encoded in the idempotency key; a credential gRPC
    cannot carry is a configuration error before anything is sent."""
    with serve_grpc() as server:
        caller = _caller(server, GrpcCallSettings(proto_directory=str(protos)))
        await caller.call(attrs.evolve(_call(name="x"), key="instance-1/do/0/grüßen"))
        request = _call(name="x")
        request.arguments["metadata"]["authorization"] = "Bearer tök\n"
        problem = await _failure(caller, request)
    (received,) = server.calls(SAY_HELLO)
    assert received.metadata["idempotency-key"] == "instance-1/do/0/gr%C3%BC%C3%9Fen"
    assert problem["type"] == ERRORS + "configuration"
    assert problem["detail"].startswith(
        "the authorization metadata of the gRPC call GreeterApi.Greeter/SayHello at "
        "localhost:5011 holds characters gRPC metadata cannot carry"
    )
