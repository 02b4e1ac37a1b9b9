"""Outbound HTTP through httpx: the I/O behind the DSL's `Effects.http`.

The durable effects of the instance actor send their `HttpRequest` values through it (the
service builds one per replica and hands it in), and so do the conformance tests. httpx runs
under trio through anyio.

Transport failures and timeouts become communication/timeout `WorkflowError`s the workflow can
catch; every request carries its ``Idempotency-Key`` header.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import trio

from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import HttpRequest, HttpResponse


class HttpxClient:
    """Sends `HttpRequest` values with a shared `httpx.AsyncClient`.

    ``host_map`` rewrites ``scheme://host[:port]`` prefixes (for example the CTK's
    ``https://petstore.swagger.io`` to a local stub) before sending. Use as an async context
    manager, or pass a client you own.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        host_map: Mapping[str, str] | None = None,
        default_timeout: float = 30.0,
    ) -> None:
        self._owned = client is None
        self._client = client or httpx.AsyncClient()
        self._host_map = dict(host_map or {})
        self._timeout = default_timeout

    async def __aenter__(self) -> HttpxClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client if this object created it."""
        if self._owned:
            with trio.move_on_after(5, shield=True):
                await self._client.aclose()

    def _map(self, url: str) -> str:
        for prefix, target in self._host_map.items():
            if url.startswith(prefix):
                return target + url[len(prefix) :]
        return url

    async def http(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``; raise a `WorkflowError` if no response arrives."""
        headers = dict(request.headers)
        if request.idempotency_key:
            headers.setdefault("idempotency-key", request.idempotency_key)
        timeout = request.timeout or self._timeout
        try:
            with trio.fail_after(timeout + 1):
                response = await self._client.request(
                    request.method,
                    self._map(request.url),
                    headers=headers,
                    content=request.body,
                    follow_redirects=request.follow_redirects,
                    timeout=timeout,
                )
        except (httpx.TimeoutException, trio.TooSlowError):
            raise WorkflowError(
                Problem.standard(
                    ErrorType.TIMEOUT,
                    detail=f"{request.method} {request.url} got no response within {timeout:g}s",
                )
            ) from None
        except httpx.HTTPError as exc:
            raise WorkflowError(
                Problem.standard(
                    ErrorType.COMMUNICATION,
                    status=503,
                    detail=f"{request.method} {request.url} failed: {exc}",
                )
            ) from None
        return HttpResponse(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=response.content,
        )
