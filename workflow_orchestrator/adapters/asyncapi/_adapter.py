"""`AsyncApiAdapter`: the broker work of ``call: asyncapi`` (``ServiceCall`` kind
``asyncapi``), by protocol: AMQP (``amqp``, ``amqps``), Kafka (``kafka``, ``kafka-secure``)
and WebSocket (``ws``, ``wss``).

Every call: the server URL is rewritten by ``host_map`` (tests), its host resolved and checked
by the outbound policy (``_network``), and the connection opened to an allowed address only;
connecting and each publish are bounded by ``workflows.calls.asyncapi.timeout``. At most
``maxConnections`` connections are open at once (each publish and each subscription holds one
for as long as it lasts); a call past it fails at once instead of queueing behind
subscriptions that may last for hours. Failures are workflow errors: a refused destination
is a communication error (403) naming the policy's setting, a broker that cannot be reached
or fails a communication error, refused credentials an authentication error, a protocol this
service does not speak a configuration error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs

from workflow_orchestrator.adapters._outbound_addresses import AddressUnavailable, allowed_addresses
from workflow_orchestrator.adapters.asyncapi._amqp import open_amqp_subscription, publish_amqp
from workflow_orchestrator.adapters.asyncapi._kafka import open_kafka_subscription, publish_kafka
from workflow_orchestrator.adapters.asyncapi._messages import AsyncApiRequest, failure
from workflow_orchestrator.adapters.asyncapi._ws import open_ws_subscription, publish_ws
from workflow_orchestrator.config import AsyncApiCallSettings
from workflow_orchestrator.dsl import ErrorType, WorkflowError
from workflow_orchestrator.dsl.runtime import ServiceCall
from workflow_orchestrator.security import OutboundPolicy, OutboundRefused

__all__ = ["PROTOCOLS", "AsyncApiAdapter"]

#: The AsyncAPI protocols this adapter speaks, by family.
PROTOCOLS = {
    "amqp": "amqp",
    "amqps": "amqp",
    "kafka": "kafka",
    "kafka-secure": "kafka",
    "ws": "ws",
    "wss": "ws",
}


@attrs.define(eq=False)
class AsyncApiAdapter:
    """Publishes and subscribes for ``call: asyncapi`` (see the module docstring).

    ``mapped`` rewrites a server URL (``ServiceContext.mapped``); ``policy`` decides where
    connections may go.
    """

    settings: AsyncApiCallSettings
    policy: OutboundPolicy
    mapped: Callable[[str], str] = str
    _open: int = 0

    @property
    def open_connections(self) -> int:
        """Connections the calls hold now."""
        return self._open

    def _read(self, request: ServiceCall) -> AsyncApiRequest:
        parsed = AsyncApiRequest.read(request, self.mapped(str(request.arguments.get("url", ""))))
        if parsed.protocol not in PROTOCOLS:
            raise failure(
                ErrorType.CONFIGURATION,
                f"the AsyncAPI server {parsed.url} uses protocol {parsed.protocol!r}, which this "
                f"service does not speak; use a server of protocol {sorted(PROTOCOLS)}",
                parsed.where,
                title="Unsupported Feature",
            )
        if not parsed.address:
            raise failure(
                ErrorType.CONFIGURATION, "the AsyncAPI channel has no address", parsed.where
            )
        return parsed

    def _timeout(self, request: ServiceCall) -> float:
        return request.timeout or self.settings.timeout

    @asynccontextmanager
    async def _slot(self, request: AsyncApiRequest) -> AsyncIterator[None]:
        limit = self.settings.max_connections
        if self._open >= limit:
            raise failure(
                ErrorType.COMMUNICATION,
                f"{limit} AsyncAPI connections are open already, the limit set by "
                "workflows.calls.asyncapi.maxConnections; raise it or bound the subscriptions "
                "that hold them",
                request.where,
                status=503,
            )
        self._open += 1
        try:
            yield
        finally:
            self._open -= 1

    async def _addresses(self, request: AsyncApiRequest, host: str, port: int) -> list[str]:
        try:
            return await allowed_addresses(self.policy, host, port)
        except OutboundRefused as refused:
            raise _refused(request, refused) from None
        except AddressUnavailable as exc:
            raise failure(
                ErrorType.COMMUNICATION, f"{request.url}: {exc}", request.where, status=503
            ) from None

    def _broker_check(self, request: AsyncApiRequest) -> Callable[[Sequence[tuple[str, int]]], Any]:
        async def check(brokers: Sequence[tuple[str, int]]) -> None:
            for host, port in brokers:
                await self._addresses(request, host, port)

        return check

    async def call(self, request: ServiceCall) -> Any:
        """Publish the request's message; returns ``{"published": 1}``."""
        parsed = self._read(request)
        if parsed.action != "publish":
            raise failure(
                ErrorType.CONFIGURATION,
                f"the asyncapi action {parsed.action!r} is not a call; subscriptions consume",
                parsed.where,
            )
        timeout = self._timeout(request)
        size = self.settings.max_message_size
        endpoint = parsed.endpoint
        async with self._slot(parsed):
            addresses = await self._addresses(parsed, endpoint.host, endpoint.port)
            family = PROTOCOLS[parsed.protocol]
            if family == "amqp":
                await publish_amqp(parsed, addresses, seconds=timeout, max_size=size)
            elif family == "kafka":
                check = self._broker_check(parsed)
                await publish_kafka(parsed, addresses, check, seconds=timeout, max_size=size)
            else:
                await publish_ws(parsed, addresses, seconds=timeout, max_size=size)
        return {"published": 1}

    @asynccontextmanager
    async def consume(self, request: ServiceCall) -> AsyncIterator[AsyncIterator[Any]]:
        """Subscribe: the messages of the channel from now on, until the block ends."""
        parsed = self._read(request)
        timeout = self._timeout(request)
        size = self.settings.max_message_size
        buffered = self.settings.buffered_messages
        endpoint = parsed.endpoint
        async with self._slot(parsed):
            addresses = await self._addresses(parsed, endpoint.host, endpoint.port)
            family = PROTOCOLS[parsed.protocol]
            if family == "amqp":
                opened = open_amqp_subscription(
                    parsed, addresses, seconds=timeout, max_size=size, buffered=buffered
                )
            elif family == "kafka":
                opened = open_kafka_subscription(
                    parsed,
                    addresses,
                    self._broker_check(parsed),
                    seconds=timeout,
                    max_size=size,
                    buffered=buffered,
                )
            else:
                opened = open_ws_subscription(
                    parsed, addresses, seconds=timeout, max_size=size, buffered=buffered
                )
            async with opened as messages:
                yield messages


def _refused(request: AsyncApiRequest, refused: OutboundRefused) -> WorkflowError:
    return failure(
        ErrorType.COMMUNICATION,
        f"call: asyncapi to {request.url}: {refused.refusal.describe()}",
        request.where,
        status=403,
        title="Outbound Call Refused",
    )
