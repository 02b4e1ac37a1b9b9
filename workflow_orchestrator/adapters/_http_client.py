"""Outbound HTTP through httpx: the I/O behind the DSL's `Effects.http`.

The durable effects of the instance actor send their `HttpRequest` values through it (the
service builds one per replica and hands it in), and so do the conformance tests. httpx runs
under trio through anyio.

Transport failures and timeouts become communication/timeout `WorkflowError`s the workflow can
catch; every request carries its ``Idempotency-Key`` header. A response body is streamed and
counted: one larger than ``max_response_size`` (the ``workflows.maxResponseSize`` setting) is
refused as soon as its ``Content-Length`` or the bytes received so far exceed the limit, so an
endless or huge answer never sits in memory.

Where calls may go is the outbound policy's decision (``security.outbound``): the client this
object builds connects through `PolicyNetworkBackend`, which checks the resolved address of
every connection, redirects included; a refused call is a communication `WorkflowError` with
status 403 whose detail names the host, the address, why, and the setting to change.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import trio

from workflow_orchestrator.adapters._http_problems import (
    DEFAULT_MAX_RESPONSE_SIZE,
    TooLarge,
    failed,
    refused,
    timed_out,
    too_large,
)
from workflow_orchestrator.adapters._outbound_addresses import mapped_url
from workflow_orchestrator.adapters._outbound_network import policy_client
from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse
from workflow_orchestrator.security import OutboundPolicy, OutboundRefused


class HttpxClient:
    """Sends `HttpRequest` values with a shared `httpx.AsyncClient`.

    ``policy`` decides where calls may connect (the default `OutboundPolicy` refuses loopback,
    link-local and cloud metadata addresses). ``host_map`` rewrites ``scheme://host[:port]``
    prefixes (for example the CTK's ``https://petstore.swagger.io`` to a local stub) before
    sending; the policy sees the rewritten host. ``max_response_size`` bounds the body of every
    response in bytes. Use as an async context manager, or pass a client you own: its
    transport then decides where calls go and ``policy`` cannot be given (tests use this
    with ``httpx.MockTransport``).
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        policy: OutboundPolicy | None = None,
        host_map: Mapping[str, str] | None = None,
        default_timeout: float = 30.0,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
    ) -> None:
        if max_response_size < 1:
            raise ValueError(f"max_response_size must be at least 1 byte, not {max_response_size}")
        if client is not None and policy is not None:
            raise ValueError("give a policy or a client of your own, not both")
        self._owned = client is None
        self._client = client or policy_client(policy or OutboundPolicy())
        self._host_map = dict(host_map or {})
        self._timeout = default_timeout
        self._max_response_size = max_response_size

    async def __aenter__(self) -> HttpxClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client if this object created it."""
        if self._owned:
            with trio.move_on_after(5, shield=True):
                await self._client.aclose()

    async def http(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``; raise a `WorkflowError` if no (small enough) response arrives."""
        headers = dict(request.headers)
        if request.idempotency_key:
            headers.setdefault("idempotency-key", request.idempotency_key)
        timeout = request.timeout or self._timeout
        try:
            with trio.fail_after(timeout + 1):
                outgoing = self._client.build_request(
                    request.method,
                    mapped_url(self._host_map, request.url),
                    headers=headers,
                    content=request.body,
                    timeout=timeout,
                )
                response = await self._client.send(
                    outgoing, stream=True, follow_redirects=request.follow_redirects
                )
                try:
                    body = await self._read_body(response)
                finally:
                    with trio.move_on_after(1, shield=True):
                        await response.aclose()
        except (httpx.TimeoutException, trio.TooSlowError):
            raise timed_out(request.method, request.url, timeout) from None
        except OutboundRefused as error:
            raise refused(request.method, request.url, error) from None
        except TooLarge as error:
            raise too_large(request.method, request.url, error, self._max_response_size) from None
        except httpx.HTTPError as error:
            raise failed(request.method, request.url, error) from None
        return HttpResponse(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=body,
        )

    async def _read_body(self, response: httpx.Response) -> bytes:
        """The (decoded) body, refused once it is larger than the limit."""
        limit = self._max_response_size
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise TooLarge(int(declared), declared=True)
        chunks: list[bytes] = []
        received = 0
        try:
            async for chunk in response.aiter_bytes():
                if received > limit:
                    continue  # the connection is closed: this ends the stream (see below)
                received += len(chunk)
                if received > limit:
                    # Close the connection instead of leaving the loop, so that the stream's
                    # generators end here rather than when the garbage collector finds them.
                    chunks.clear()
                    await response.aclose()
                else:
                    chunks.append(chunk)
        except httpx.HTTPError:
            if received <= limit:
                raise
        if received > limit:
            raise TooLarge(limit, declared=False)
        return b"".join(chunks)
