"""``call: grpc`` run by workflows: the official example, retries, authentication and the
setting that disables it, with a real gRPC server and the adapters the service opens."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import trio

from tests.support.grpc_server import GREET_PROTO, Failure, GrpcServer, serve_grpc
from tests.support.instances import Runtime, definition, open_runtime
from tests.support.spec import require_spec
from workflow_orchestrator.adapters import PooledHttpClient, ServiceContext, open_service_adapters
from workflow_orchestrator.adapters.grpc import GrpcCaller
from workflow_orchestrator.config import (
    CallSettings,
    GrpcCallSettings,
    OutboundSettings,
    SecretGrant,
    WorkflowSettings,
)
from workflow_orchestrator.dsl.expressions import ExpressionEngine
from workflow_orchestrator.dsl.model import load_workflow
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    InMemoryEffects,
    Interpreter,
    ServiceAdapters,
)
from workflow_orchestrator.dsl.validation import (
    ValidationOptions,
    load_document,
    validate_definition,
)
from workflow_orchestrator.instances import StartRequest
from workflow_orchestrator.security import (
    EnvironmentSecrets,
    NamespacePolicy,
    OutboundPolicy,
    SecretStore,
)
from workflow_orchestrator.storage.instances import InstanceRecord, InstanceStatus

LOOPBACK = OutboundPolicy.from_settings(OutboundSettings(allow=("127.0.0.0/8", "::1")))
SAY_HELLO = "GreeterApi.Greeter/SayHello"
TOKEN = "grpc-t0ken-5ecret"


def _hello(request: dict[str, Any], metadata: dict[str, str], _: object) -> dict[str, Any]:
    return {
        "message": f"Hello, {request.get('name', '')}",
        "echoed_metadata": [metadata.get("authorization", "")],
    }


@asynccontextmanager
async def _runtime(
    server: GrpcServer, settings: GrpcCallSettings, **options: Any
) -> AsyncIterator[Runtime]:
    """A durable runtime whose services are those the service would open for ``settings``,
    with the example's host sent to ``server``."""
    workflows = WorkflowSettings(calls=CallSettings(grpc=settings))
    async with (
        PooledHttpClient(policy=LOOPBACK) as http,
        open_service_adapters(
            ServiceContext(
                workflows=workflows,
                outbound=LOOPBACK,
                http=http,
                host_map={"grpc://localhost:5011": server.target},
            )
        ) as services,
        open_runtime(services=services, **options) as harness,
    ):
        yield harness


async def _run(harness: Runtime, definition_id: str, input: Any = None) -> InstanceRecord:
    record, _ = await harness.runtime.start_instance(
        StartRequest(definition_id=definition_id, input=input or {})
    )
    with trio.fail_after(30):
        await harness.wait_status(
            record.instance_id, InstanceStatus.COMPLETED, InstanceStatus.FAULTED
        )
    return harness.store.stored(record.instance_id).record


def _proto_directory(tmp_path: Path) -> str:
    (tmp_path / "app").mkdir(parents=True, exist_ok=True)
    (tmp_path / "app" / "greet.proto").write_text(GREET_PROTO)
    return str(tmp_path)


async def test_the_official_example_runs_through_the_durable_runtime(tmp_path: Path) -> None:
    """call-grpc.yaml validates with gRPC enabled and completes with the server's answer,
    its proto read as app/greet.proto under protoDirectory."""
    text = (require_spec() / "examples" / "call-grpc.yaml").read_text(encoding="utf-8")
    document = load_document(text)
    assert validate_definition(document, ValidationOptions(enabled_calls=frozenset({"grpc"}))) == []
    settings = GrpcCallSettings(proto_directory=_proto_directory(tmp_path))
    with serve_grpc() as server:
        server.answer(SAY_HELLO, _hello)
        async with _runtime(server, settings) as harness:
            harness.store.register("grpc-example", "0.1.0", document)
            record = await _run(harness, "grpc-example", {"user": {"preferredDisplayName": "Ada"}})
    assert record.status is InstanceStatus.COMPLETED, record.error
    assert record.output == {"message": "Hello, Ada", "echoed_metadata": [""]}
    (received,) = server.calls(SAY_HELLO)
    assert received.request == {"name": "Ada"}
    assert received.metadata["idempotency-key"].startswith(str(record.instance_id))


RETRYING = """\
do:
  - greet:
      try:
        - call-it:
            call: grpc
            with:
              proto: {endpoint: file://app/greet.proto}
              service: {name: GreeterApi.Greeter, host: localhost, port: 5011}
              method: SayHello
              arguments: {name: Flaky}
      catch:
        errors:
          with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/communication, status: 503}
        retry:
          delay: {milliseconds: 10}
          limit:
            attempt: {count: 3}
"""


async def test_an_unavailable_server_is_retried_by_the_dsl(tmp_path: Path) -> None:
    """UNAVAILABLE is a communication error with status 503: the catch retries it, and the
    second attempt (with its own idempotency key) completes the workflow."""
    settings = GrpcCallSettings(proto_directory=_proto_directory(tmp_path))
    with serve_grpc() as server:
        server.answer(SAY_HELLO, Failure(grpc.StatusCode.UNAVAILABLE, "warming up"), _hello)
        async with _runtime(server, settings) as harness:
            harness.register("retrying", RETRYING)
            record = await _run(harness, "retrying")
    assert record.status is InstanceStatus.COMPLETED, record.error
    assert record.output == {"message": "Hello, Flaky", "echoed_metadata": [""]}
    keys = [r.metadata["idempotency-key"] for r in server.calls(SAY_HELLO)]
    assert len(keys) == 2 and keys[0] != keys[1]


AUTHENTICATED = """\
use:
  secrets: [apitoken]
  authentications:
    api:
      bearer: {use: apitoken}
do:
  - bearer:
      call: grpc
      with:
        proto: {endpoint: file://app/greet.proto}
        service:
          name: GreeterApi.Greeter
          host: localhost
          port: 5011
          authentication: {use: api}
        method: SayHello
        arguments: {name: Bearer}
      output:
        as:
          reply: ${ . }
          scheme: ${ $authorization.scheme }
      export:
        as:
          bearer: ${ . }
  - basic:
      call: grpc
      with:
        proto: {endpoint: file://app/greet.proto}
        service:
          name: GreeterApi.Greeter
          host: localhost
          port: 5011
          authentication:
            basic: {username: ada, password: lovelace}
        method: SayHello
        arguments: {name: Basic}
"""


async def test_authentication_travels_as_metadata_and_is_never_stored(tmp_path: Path) -> None:
    """A bearer token from a secret and inline basic credentials become the authorization
    metadata; $authorization describes it; the token echoed back is redacted when stored."""
    settings = GrpcCallSettings(proto_directory=_proto_directory(tmp_path))
    secrets = SecretStore(
        providers=(
            EnvironmentSecrets(environ={"WORKFLOW_SECRET_APITOKEN": f'{{"token": "{TOKEN}"}}'}),
        )
    )
    policy = NamespacePolicy.from_grants([SecretGrant(namespace="test", secrets=("apitoken",))])
    with serve_grpc() as server:
        server.answer(SAY_HELLO, _hello)
        async with _runtime(server, settings, secrets=secrets, policy=policy) as harness:
            harness.register("authenticated", AUTHENTICATED)
            record = await _run(harness, "authenticated")
            stored = repr(harness.store.stored(record.instance_id))
    assert record.status is InstanceStatus.COMPLETED, record.error
    bearer, basic = server.calls(SAY_HELLO)
    assert bearer.metadata["authorization"] == f"Bearer {TOKEN}"
    assert basic.metadata["authorization"] == "Basic " + base64.b64encode(b"ada:lovelace").decode()
    # Once a secret was read, every credential the run sends is redacted when stored (as for
    # call: http), so the echoed basic credentials are too.
    assert record.output == {
        "message": "Hello, Basic",
        "echoed_metadata": ["[redacted secret authorization]"],
    }
    assert "'scheme': 'Bearer'" in stored
    assert TOKEN not in stored


DISABLED = """\
do:
  - greet:
      call: grpc
      with:
        proto: {endpoint: file://app/greet.proto}
        service: {name: GreeterApi.Greeter, host: localhost, port: 5011}
        method: SayHello
"""


async def test_a_disabled_grpc_call_faults_naming_the_setting(tmp_path: Path) -> None:
    """workflows.calls.grpc.enabled false: no adapter, and the call faults with a
    configuration error naming the setting; the server is never called."""
    settings = GrpcCallSettings(enabled=False, proto_directory=_proto_directory(tmp_path))
    with serve_grpc() as server:
        async with _runtime(server, settings) as harness:
            harness.register("disabled", DISABLED)
            record = await _run(harness, "disabled")
    assert record.status is InstanceStatus.FAULTED
    assert record.error is not None
    assert record.error["type"].endswith("/configuration")
    assert record.error["detail"] == (
        "call: grpc is not enabled on this service; set workflows.calls.grpc.enabled: true in "
        "the configuration"
    )
    assert server.received == []
    assert isinstance(record.instance_id, uuid.UUID)


PROTECTED_PROTO = """\
do:
  - greet:
      call: grpc
      with:
        proto:
          endpoint:
            uri: https://protos.example.com/greet.proto
            authentication:
              bearer: {token: proto-reader}
        service: {name: GreeterApi.Greeter, host: localhost, port: 5011}
        method: SayHello
        arguments: {name: Proto}
"""


async def test_an_authenticated_proto_endpoint_sends_its_credentials() -> None:
    """The proto endpoint's own authentication goes with its download, not with the call."""
    downloads: list[HttpRequest] = []

    async def send(request: HttpRequest) -> HttpResponse:
        downloads.append(request)
        return HttpResponse(status=200, body=GREET_PROTO.encode())

    with serve_grpc() as server:
        server.answer(SAY_HELLO, _hello)
        caller = GrpcCaller(
            settings=GrpcCallSettings(),
            policy=LOOPBACK,
            send=send,
            mapped=lambda url: url.replace("grpc://localhost:5011", server.target),
        )
        effects = InMemoryEffects(services=ServiceAdapters(callers={"grpc": caller.call}))
        workflow = load_workflow(definition("protected", PROTECTED_PROTO))
        result = await Interpreter(workflow, ExpressionEngine()).start(effects, {})
    assert result.status == "completed", result.error
    assert result.output == {"message": "Hello, Proto", "echoed_metadata": [""]}
    assert [(r.url, r.headers.get("authorization")) for r in downloads] == [
        ("https://protos.example.com/greet.proto", "Bearer proto-reader")
    ]
    assert "authorization" not in server.calls(SAY_HELLO)[0].metadata
