"""The httpx adapter: request mapping, host map, idempotency header, transport errors."""

from __future__ import annotations

import httpx
import pytest

from workflow_orchestrator.adapters import HttpxClient
from workflow_orchestrator.dsl.errors import WorkflowError
from workflow_orchestrator.dsl.runtime import HttpRequest


def _client(handler: httpx.MockTransport) -> HttpxClient:
    return HttpxClient(
        httpx.AsyncClient(transport=handler),
        host_map={"https://petstore.example.com": "http://127.0.0.1:9"},
    )


async def test_request_is_sent_with_mapped_host_and_idempotency_key() -> None:
    """The host map rewrites the URL; the idempotency key travels as a header."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"ok": True}, headers={"X-Thing": "1"})

    client = _client(httpx.MockTransport(handle))
    response = await client.http(
        HttpRequest(
            method="POST",
            url="https://petstore.example.com/v2/pet",
            headers={"content-type": "application/json"},
            body=b'{"a":1}',
            idempotency_key="i-1/do/0/save",
        )
    )
    assert str(seen[0].url) == "http://127.0.0.1:9/v2/pet"
    assert seen[0].headers["idempotency-key"] == "i-1/do/0/save"
    assert seen[0].content == b'{"a":1}'
    assert response.status == 201
    assert response.headers["x-thing"] == "1"


async def test_transport_failure_is_a_communication_error() -> None:
    """A connection error becomes a catchable communication error naming the request."""

    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = _client(httpx.MockTransport(handle))
    with pytest.raises(WorkflowError) as caught:
        await client.http(HttpRequest(method="GET", url="https://elsewhere.example.com/x"))
    problem = caught.value.problem
    assert problem.type == "https://serverlessworkflow.io/spec/1.0.0/errors/communication"
    assert problem.detail == "GET https://elsewhere.example.com/x failed: refused"


async def test_timeout_is_a_timeout_error() -> None:
    """An httpx timeout becomes the spec's timeout error."""

    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = _client(httpx.MockTransport(handle))
    with pytest.raises(WorkflowError) as caught:
        await client.http(HttpRequest(method="GET", url="https://x.example.com/", timeout=2))
    assert caught.value.problem.status == 408
    assert caught.value.problem.detail == "GET https://x.example.com/ got no response within 2s"
