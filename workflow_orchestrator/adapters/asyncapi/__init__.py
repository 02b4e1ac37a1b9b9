"""The broker side of ``call: asyncapi``: publishing and subscribing over AMQP (aio-pika),
Kafka (``adapters.kafka``) and WebSocket (trio-websocket), every connection checked by the
outbound policy.

``open_asyncapi_adapter`` is opened once by ``open_service_adapters`` when
``workflows.calls.asyncapi.enabled``; its `AsyncApiAdapter` serves `Effects.call_service`
(publish) and `Effects.consume_messages` (subscribe) for ``ServiceCall(kind="asyncapi")``.
The DSL side (documents, operations, filters, the consumption's lifetime, ``foreach``) is
``dsl.runtime._asyncapi_call``. By concern: ``_adapter`` (dispatch, connection budget,
errors), ``_network`` (resolution and the policy), ``_messages`` (the request, payloads),
``_amqp``, ``_kafka``, ``_ws``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from workflow_orchestrator.adapters.asyncapi._adapter import PROTOCOLS, AsyncApiAdapter
from workflow_orchestrator.config import AsyncApiCallSettings
from workflow_orchestrator.security import OutboundPolicy

__all__ = ["PROTOCOLS", "AsyncApiAdapter", "open_asyncapi_adapter"]


@asynccontextmanager
async def open_asyncapi_adapter(
    settings: AsyncApiCallSettings, policy: OutboundPolicy, mapped: Callable[[str], str] = str
) -> AsyncIterator[AsyncApiAdapter]:
    """The adapter for the block. Must run inside ``open_asyncio_bridge()`` (AMQP and Kafka
    use the trio-asyncio loop); every connection a call opens is closed by that call."""
    yield AsyncApiAdapter(settings=settings, policy=policy, mapped=mapped)
