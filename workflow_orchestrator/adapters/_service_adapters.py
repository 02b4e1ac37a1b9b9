"""`open_service_adapters`: the adapters of the calls beyond HTTP and of ``run.container``
that configuration enables, open for as long as the service runs.

Each enabled kind adds its caller (or consumer) here; the instance runtime hands them to every
activation through ``InstancePorts.services``. A kind left out is refused by
`ServiceAdapters` with the setting that enables it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Protocol

import attrs

from workflow_orchestrator.adapters._outbound_addresses import mapped_url
from workflow_orchestrator.adapters.asyncapi import open_asyncapi_adapter
from workflow_orchestrator.adapters.containers import open_container_runtime
from workflow_orchestrator.adapters.grpc import GrpcCaller, load_credentials
from workflow_orchestrator.adapters.mcp import McpCaller
from workflow_orchestrator.config import WorkflowSettings
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    MessageConsumer,
    ServiceAdapters,
    ServiceCaller,
)
from workflow_orchestrator.security import OutboundPolicy

__all__ = ["ServiceContext", "open_service_adapters"]


class HttpSender(Protocol):
    """The service's HTTP client (`PooledHttpClient`, or `HttpxClient` in tests)."""

    async def http(self, request: HttpRequest) -> HttpResponse: ...


@attrs.frozen(kw_only=True)
class ServiceContext:
    """What the adapters may use of the service: the ``workflows`` settings, the outbound
    policy every connection goes through, and the service's HTTP client (documents such as
    protos and AsyncAPI files are fetched through it).

    ``host_map`` rewrites where a call goes before the policy sees it, as the HTTP client's
    does: ``scheme://host[:port]`` prefixes to ``scheme://host:port`` targets (``grpc://``,
    ``amqp://``, ``kafka://``, ``http(s)://``); tests map the hosts of the official examples
    to local servers with it. The service maps nothing. ``proxy`` is
    ``security.outbound.proxy`` (empty: none), for the adapters that open HTTP connections
    themselves (``call: mcp``).
    """

    workflows: WorkflowSettings
    outbound: OutboundPolicy
    http: HttpSender
    host_map: Mapping[str, str] = attrs.field(factory=dict)
    proxy: str = ""  # security.outbound.proxy, for the adapters that connect themselves

    def mapped(self, url: str) -> str:
        """``url`` with the first ``host_map`` prefix it starts with rewritten."""
        return mapped_url(self.host_map, url)


@asynccontextmanager
async def open_service_adapters(context: ServiceContext) -> AsyncIterator[ServiceAdapters]:
    """The adapters of the enabled kinds; leaving the context closes them.

    Raises ``ConfigError`` naming the setting when an enabled kind cannot be served (a
    container runtime whose program is missing)."""
    callers: dict[str, ServiceCaller] = {}
    consumers: dict[str, MessageConsumer] = {}
    async with AsyncExitStack() as stack:
        run = context.workflows.run
        if run.container.runtime != "none":
            containers = await stack.enter_async_context(
                open_container_runtime(run.container, max_output=run.max_output_size)
            )
            callers["container"] = containers.call
        grpc = context.workflows.calls.grpc
        if grpc.enabled:
            callers["grpc"] = GrpcCaller(
                settings=grpc,
                policy=context.outbound,
                send=context.http.http,
                mapped=context.mapped,
                credentials=load_credentials(grpc),
            ).call
        calls = context.workflows.calls
        if calls.asyncapi.enabled:
            asyncapi = await stack.enter_async_context(
                open_asyncapi_adapter(calls.asyncapi, context.outbound, context.mapped)
            )
            callers["asyncapi"] = asyncapi.call
            consumers["asyncapi"] = asyncapi.consume
        if calls.mcp.enabled:
            callers["mcp"] = McpCaller(
                settings=calls.mcp,
                outbound=context.outbound,
                process_namespaces=run.namespaces,
                map_url=context.mapped,
                max_message_size=context.workflows.max_response_size,
                proxy=context.proxy,
            )
        yield ServiceAdapters(callers=callers, consumers=consumers)
