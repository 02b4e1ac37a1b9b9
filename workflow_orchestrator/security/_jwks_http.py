"""Fetching a JWKS document over HTTP(S) with httpx (under trio, through anyio).

The answer must be a 200 whose body fits in ``max_size`` bytes: the body is streamed and
counted, so an endless or huge answer never sits in memory. Redirects are not followed (the
JWKS URL is configured, not discovered). Every failure becomes a `JwksError` whose message
says what happened, without the URL's query or credentials; the time bound is the cache's.
"""

from __future__ import annotations

import httpx

from workflow_orchestrator.security._key_set import JwksError

__all__ = ["DEFAULT_MAX_JWKS_SIZE", "HttpJwksSource", "printable_url"]

#: A JWKS holds a few keys of a few hundred bytes each; 1 MiB leaves room for many.
DEFAULT_MAX_JWKS_SIZE = 1024 * 1024


def printable_url(url: str) -> str:
    """``url`` without credentials, query or fragment, for messages and logs."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<an invalid URL>"
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


class HttpJwksSource:
    """GETs ``url`` with a client the caller owns (and closes)."""

    def __init__(
        self, client: httpx.AsyncClient, url: str, *, max_size: int = DEFAULT_MAX_JWKS_SIZE
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1 byte, not {max_size}")
        self._client = client
        self._url = url
        self._max_size = max_size

    async def __call__(self) -> bytes:
        """The body of the answer; raises `JwksError` for anything but a small 200."""
        try:
            async with self._client.stream(
                "GET",
                self._url,
                headers={"Accept": "application/jwk-set+json, application/json"},
                follow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise JwksError(f"the issuer answered HTTP {response.status_code}")
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > self._max_size:
                    raise JwksError(f"the answer is larger than {self._max_size} bytes")
                return await self._read_body(response)
        except httpx.HTTPError as error:
            raise JwksError(f"{type(error).__name__}: {error}".rstrip(": ")) from None
        except OSError as error:
            raise JwksError(f"{type(error).__name__}: {error}") from None

    async def _read_body(self, response: httpx.Response) -> bytes:
        body = bytearray()
        too_large = JwksError(f"the answer is larger than {self._max_size} bytes")
        try:
            async for chunk in response.aiter_bytes():
                if len(body) > self._max_size:
                    continue  # the response is closed: this ends the stream
                body += chunk
                if len(body) > self._max_size:
                    # Close the response instead of leaving the loop, so that httpx's stream
                    # generators end here rather than when the garbage collector finds them.
                    await response.aclose()
        except httpx.HTTPError:
            if len(body) <= self._max_size:
                raise
        if len(body) > self._max_size:
            raise too_large
        return bytes(body)
