"""AsyncAPI over Kafka: publish through ``adapters.kafka``'s producer, subscribe with its tail
reader (from the end of the topic at the time of the call, without a consumer group).

The channel address is the topic. A published record carries the message headers (strings as
UTF-8, other values as JSON), ``content-type`` and the call's idempotency key in the
``idempotency-key`` header, and is acknowledged by all in-sync replicas; its key is the
operation binding's ``key`` when that is a string (else none). Credentials: basic is SASL
PLAIN, bearer is SASL OAUTHBEARER; ``kafka-secure`` adds TLS (the broker's name is then
verified, so the client connects by name after the policy checked its addresses). The
bootstrap server must be allowed by the outbound policy, and so must every broker its
metadata advertises (checked before any is asked for data).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs

from workflow_orchestrator.adapters._broker_errors import BrokerUnavailable, PublishFailed
from workflow_orchestrator.adapters.asyncapi._messages import (
    AsyncApiRequest,
    decode_body,
    encode_payload,
    failure,
    header_text,
    too_large,
)
from workflow_orchestrator.adapters.kafka import (
    KafkaTail,
    MissingTopic,
    OutgoingRecord,
    call_options,
    learned_brokers,
    open_kafka_producer,
    open_kafka_tail,
    producer_options,
)
from workflow_orchestrator.dsl import ErrorType, WorkflowError

__all__ = ["BrokerCheck", "open_kafka_subscription", "publish_kafka"]

BrokerCheck = Callable[[Sequence[tuple[str, int]]], Awaitable[None]]


def _options(
    request: AsyncApiRequest, addresses: Sequence[str], seconds: float, max_size: int
) -> dict[str, Any]:
    endpoint = request.endpoint
    host = endpoint.host if request.tls else addresses[0]
    shown = f"[{host}]" if ":" in host else host
    credentials = request.credentials
    user = password = token = None
    if credentials is not None and credentials.scheme == "bearer":
        token = credentials.token
    elif credentials is not None:
        user, password = credentials.user, credentials.password
    elif endpoint.user is not None:
        user, password = endpoint.user, endpoint.password
    return call_options(
        f"{shown}:{endpoint.port}",
        tls=request.tls,
        user=user,
        password=password,
        token=token,
        max_bytes=max_size,
        request_timeout=seconds,
    )


def _error(exc: Exception, request: AsyncApiRequest, doing: str) -> WorkflowError:
    if isinstance(exc, MissingTopic):
        return failure(
            ErrorType.COMMUNICATION,
            f"{doing}: topic {exc.topic!r} does not exist on {request.url}; create it or fix "
            "the channel address",
            request.where,
            status=404,
        )
    if isinstance(exc, PublishFailed):
        return failure(ErrorType.COMMUNICATION, f"{doing}: {exc}", request.where, status=502)
    return failure(ErrorType.COMMUNICATION, f"{doing}: {exc}", request.where, status=503)


def _record(request: AsyncApiRequest, max_size: int) -> OutgoingRecord:
    body, content_type = encode_payload(request.payload, request.content_type)
    if len(body) > max_size:
        raise too_large("the message to publish", len(body), max_size, request.where)
    headers = [(str(k), header_text(v).encode()) for k, v in request.headers.items()]
    headers.append(("content-type", content_type.encode()))
    headers.append(("idempotency-key", request.key.encode()))
    key = request.binding("message").get("key")
    return OutgoingRecord(
        topic=request.address,
        value=body,
        key=key.encode() if isinstance(key, str) else None,
        headers=tuple(headers),
    )


async def publish_kafka(
    request: AsyncApiRequest,
    addresses: Sequence[str],
    check: BrokerCheck,
    *,
    seconds: float,
    max_size: int,
) -> None:
    """Produce the request's message to the topic and wait for its acknowledgement."""
    record = _record(request, max_size)
    options = producer_options(_options(request, addresses, seconds, max_size))
    doing = f"publishing to topic {request.address!r} on {request.url}"
    try:
        async with open_kafka_producer(
            options,
            brokers=request.url,
            idempotent=False,
            connect_timeout=seconds,
            operation_timeout=seconds,
        ) as producer:
            await check(learned_brokers(producer))
            await producer.publish([record])
    except (BrokerUnavailable, PublishFailed) as exc:
        raise _error(exc, request, doing) from None


@attrs.define(eq=False)
class _Messages:
    request: AsyncApiRequest
    tail: KafkaTail
    max_size: int
    batch: int
    waiting: list[Any] = attrs.field(factory=list)

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> dict[str, Any]:
        request = self.request
        while not self.waiting:
            try:
                self.waiting.extend(await self.tail.next_batch(self.batch))
            except BrokerUnavailable as exc:
                raise _error(exc, request, f"consuming {request.describe()}") from None
        record = self.waiting.pop(0)
        value = record.value or b""
        size = len(value) + sum(len(n) + len(v or b"") for n, v in record.headers)
        if size > self.max_size:
            raise too_large(
                f"a message received from {request.describe()}", size, self.max_size, request.where
            )
        headers = {name: (v or b"").decode("utf-8", "replace") for name, v in record.headers}
        content_type = headers.get("content-type") or request.content_type
        return {"payload": decode_body(value, content_type), "headers": headers}


@asynccontextmanager
async def open_kafka_subscription(
    request: AsyncApiRequest,
    addresses: Sequence[str],
    check: BrokerCheck,
    *,
    seconds: float,
    max_size: int,
    buffered: int,
) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """Read the topic from its end (see the module doc)."""
    options = _options(request, addresses, seconds, max_size)
    try:
        async with open_kafka_tail(
            options,
            brokers=request.url,
            topic=request.address,
            check_brokers=check,
            connect_timeout=seconds,
        ) as tail:
            yield _Messages(request=request, tail=tail, max_size=max_size, batch=buffered)
    except (BrokerUnavailable, MissingTopic) as exc:
        raise _error(exc, request, f"subscribing to {request.describe()}") from None
