"""The I/O behind the DSL's protocols: outbound HTTP, local processes, the expression sandbox.

``workflow_orchestrator.dsl`` describes effects as values and protocols and performs none of
them; this package performs them. The composition root (``service.py``), the CLI and the tests
build these adapters and hand them to what uses them; nothing here is looked up globally.

- `PooledHttpClient`: `HttpRequest` -> `HttpResponse` over HTTP/1.1 connections pooled per
  origin (behind `Effects.http` in the service); every connection within the outbound policy,
  the response body streamed and capped (``workflows.maxResponseSize``).
- `HttpxClient`: the same through httpx (or an ``httpx.AsyncClient`` of the caller's own).
- `LocalProcesses` (from `open_local_processes`, bounded by `ProcessLimits`):
  `ProcessRequest` -> `ProcessResult` as a sandboxed child process (behind
  `Effects.run_process`, where configuration enables shell/script tasks); processes that are
  not awaited belong to its nursery. `run_local_process` runs one to its end.
- `SandboxPool`: the `ExpressionSandbox` of the expression engine, jq in killable worker
  processes under a CPU, memory and output budget, shared in turn between the owners
  (definitions) of the evaluations that wait; `open_sandbox` owns one and
  `open_expression_engine` builds an engine on one.
- `open_service_adapters`: the adapters of ``call: grpc|asyncapi|mcp`` and ``run.container``
  that configuration enables (behind `Effects.call_service` and `Effects.consume_messages`).
- ``adapters.containers`` (a subpackage): ``run.container`` through the podman or docker CLI,
  with the sweeper of containers whose lifetime is over (behind the ``container`` kind of
  `open_service_adapters`, where ``workflows.run.container.runtime`` names a runtime).
- ``adapters.mcp`` (a subpackage, the only code that imports the ``mcp`` SDK): `McpCaller`,
  ``call: mcp`` over streamable HTTP or stdio, one session per call (opened by
  `open_service_adapters` when ``workflows.calls.mcp.enabled``).
- ``adapters.kafka`` (a subpackage, imported on its own): Kafka group consumption and
  acknowledged producing over aiokafka, used by the Kafka event source and usable without it
  (``call: asyncapi``).

Invariants: every external call is bounded (an HTTP request by its timeout, a process by its
timeout, an evaluation by its CPU and wall-clock budget) and its failure becomes the DSL's
error (`WorkflowError` with a standard problem, `ExpressionError`); every process started here
is reaped by its owner, within a bounded, shielded scope. This package may import ``dsl``
(whose protocols it implements), never the other way round.
"""

from workflow_orchestrator.adapters._http_client import HttpxClient
from workflow_orchestrator.adapters._pooled_http_client import PooledHttpClient
from workflow_orchestrator.adapters._process_isolation import hide_from_processes
from workflow_orchestrator.adapters._processes import (
    LocalProcesses,
    ProcessLimits,
    open_local_processes,
    run_local_process,
)
from workflow_orchestrator.adapters._sandbox import (
    SandboxPool,
    open_expression_engine,
    open_sandbox,
)
from workflow_orchestrator.adapters._service_adapters import ServiceContext, open_service_adapters

__all__ = [
    "HttpxClient",
    "LocalProcesses",
    "PooledHttpClient",
    "ProcessLimits",
    "SandboxPool",
    "ServiceContext",
    "hide_from_processes",
    "open_expression_engine",
    "open_local_processes",
    "open_sandbox",
    "open_service_adapters",
    "run_local_process",
]
