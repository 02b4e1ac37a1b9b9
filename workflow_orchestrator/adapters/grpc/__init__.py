"""``call: grpc``: unary calls to gRPC services, described by a proto or by reflection.

Imported on its own (like ``adapters.kafka``); `open_service_adapters` adds `GrpcCaller.call`
as the ``grpc`` caller when ``workflows.calls.grpc.enabled`` is on.

- `GrpcCaller`: a `ServiceCall` of kind ``grpc`` -> the JSON of the response. The proto of
  ``proto.endpoint`` is read under ``workflows.calls.grpc.protoDirectory`` (``file://``) or
  downloaded through the service's HTTP client (``http(s)://``), compiled by grpcio-tools'
  protoc into descriptors (no generated code) and cached by content; or the server's
  reflection service describes the service (``descriptorSource: reflection``).
- `load_credentials`: the TLS credentials of ``workflows.calls.grpc.tls``/``caFile``.

Invariants: every connection goes to addresses the outbound policy allowed (checked after
resolving, connected by address); every call has a gRPC deadline and is cancelled with its
task; every failure is a `WorkflowError` with a standard problem (gRPC status codes mapped as
HTTP statuses are: UNAVAILABLE 503, DEADLINE_EXCEEDED timeout 504, UNAUTHENTICATED 401,
PERMISSION_DENIED 403, INVALID_ARGUMENT validation 400, NOT_FOUND 404, ...).
"""

from workflow_orchestrator.adapters.grpc._caller import GrpcCaller, load_credentials

__all__ = ["GrpcCaller", "load_credentials"]
