"""The httpx adapter: request mapping, host map, idempotency header, transport errors."""

from __future__ import annotations

import httpx
import pytest

from tests.support.http_stub import run_http_stub
from workflow_orchestrator.adapters import HttpxClient
from workflow_orchestrator.config import OutboundSettings
from workflow_orchestrator.dsl.errors import WorkflowError
from workflow_orchestrator.dsl.runtime import HttpRequest
from workflow_orchestrator.security import OutboundPolicy

# The stub listens on loopback, which the default outbound policy refuses.
LOOPBACK = OutboundPolicy.from_settings(OutboundSettings(allow=("127.0.0.1",)))


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


async def test_response_within_the_size_limit_is_read_whole() -> None:
    """A body up to max_response_size arrives whole, with or without a Content-Length."""
    with run_http_stub() as stub:
        async with HttpxClient(policy=LOOPBACK, max_response_size=4096) as client:
            for path in ("/size/4096", "/size/3000?stream"):
                response = await client.http(HttpRequest(method="GET", url=stub.url + path))
                expected = int(path.removeprefix("/size/").partition("?")[0])
                assert response.status == 200
                assert len(response.body) == expected
                assert response.body == b'"' + b"x" * (expected - 2) + b'"'


async def test_declared_larger_response_is_refused_naming_the_setting() -> None:
    """A Content-Length over the limit is a communication error naming size, limit, setting."""
    with run_http_stub() as stub:
        async with HttpxClient(policy=LOOPBACK, max_response_size=2048) as client:
            url = stub.url + "/size/5000"
            with pytest.raises(WorkflowError) as caught:
                await client.http(HttpRequest(method="GET", url=url))
    problem = caught.value.problem
    assert problem.type == "https://serverlessworkflow.io/spec/1.0.0/errors/communication"
    assert problem.status == 502
    assert problem.title == "Response Too Large"
    assert problem.detail == (
        f"GET {url} answered with a body of 5000 bytes, more than the limit of 2048 bytes; "
        "raise the setting workflows.maxResponseSize or ask for less"
    )


async def test_streamed_response_is_cut_off_once_it_passes_the_limit() -> None:
    """A body without a length is counted as it arrives: 200 MB are refused after the limit,
    not read whole (the stub's writes fail once the client has hung up)."""
    with run_http_stub() as stub:
        async with HttpxClient(policy=LOOPBACK, max_response_size=64 * 1024) as client:
            url = stub.url + f"/size/{200 * 1024 * 1024}?stream"
            with pytest.raises(WorkflowError) as caught:
                await client.http(HttpRequest(method="GET", url=url))
            # The client is still usable afterwards.
            small = await client.http(HttpRequest(method="GET", url=stub.url + "/size/10"))
    assert caught.value.problem.detail == (
        f"GET {url} answered with a body of more than the limit of 65536 bytes; "
        "raise the setting workflows.maxResponseSize or ask for less"
    )
    assert small.body == b'"xxxxxxxx"'


def test_a_limit_below_one_byte_is_refused() -> None:
    """max_response_size must allow some body."""
    with pytest.raises(ValueError, match="max_response_size must be at least 1 byte, not 0"):
        HttpxClient(max_response_size=0)
