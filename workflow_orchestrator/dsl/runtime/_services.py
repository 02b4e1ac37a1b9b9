"""`ServiceAdapters`: which adapter serves each `ServiceCall` kind, for every effects
implementation.

The durable runtime is handed the adapters the configuration enables (gRPC, AsyncAPI, MCP,
containers; see ``workflow_orchestrator.adapters``); tests hand `InMemoryEffects` their own.
A kind without an adapter is a configuration error the workflow sees, naming the setting that
enables it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import attrs

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime._effects import ServiceCall

__all__ = ["MessageConsumer", "ServiceAdapters", "ServiceCaller", "service_disabled"]

ServiceCaller = Callable[[ServiceCall], Awaitable[Any]]
MessageConsumer = Callable[[ServiceCall], AbstractAsyncContextManager[AsyncIterator[Any]]]

# The setting that gives a kind its adapter (the others: workflows.calls.<kind>.enabled).
_ENABLED_BY = {"container": "workflows.run.container.runtime (podman or docker)"}


def service_disabled(request: ServiceCall) -> WorkflowError:
    """The configuration error of a call no adapter serves."""
    what = "run.container" if request.kind == "container" else f"call: {request.kind}"
    setting = _ENABLED_BY.get(request.kind, f"workflows.calls.{request.kind}.enabled: true")
    return WorkflowError(
        Problem.standard(
            ErrorType.CONFIGURATION,
            title="Unsupported Feature",
            detail=f"{what} is not enabled on this service; set {setting} in the configuration",
            instance=request.task_ref,
        )
    )


@attrs.frozen(kw_only=True)
class ServiceAdapters:
    """``callers`` answer one call each; ``consumers`` open subscriptions (AsyncAPI's
    ``subscribe``), both by `ServiceCall.kind`."""

    callers: Mapping[str, ServiceCaller] = attrs.field(factory=dict)
    consumers: Mapping[str, MessageConsumer] = attrs.field(factory=dict)

    def kinds(self) -> frozenset[str]:
        """The kinds some adapter serves."""
        return frozenset(self.callers) | frozenset(self.consumers)

    async def call(self, request: ServiceCall) -> Any:
        """The result of ``request`` from its adapter (a configuration error without one)."""
        caller = self.callers.get(request.kind)
        if caller is None:
            raise service_disabled(request)
        return await caller(request)

    def consume(self, request: ServiceCall) -> AbstractAsyncContextManager[AsyncIterator[Any]]:
        """The subscription of ``request`` from its adapter (a configuration error without
        one)."""
        consumer = self.consumers.get(request.kind)
        if consumer is None:
            raise service_disabled(request)
        return consumer(request)
