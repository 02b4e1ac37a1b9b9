"""A small HTTP/1.1 load generator for the benchmarks' client processes.

httpx spends about a millisecond of CPU per request (its pool scans every connection, its
models and its streams are pure Python), so a client built on it on this 2-core machine takes
the cores the service is measured on. This one sends pre-encoded requests over ``concurrency``
keep-alive connections (one request in flight on each, asyncio streams, no pipelining) and
parses only the status line, ``Content-Length`` and the body, which is what the benchmarks
need. Responses must carry ``Content-Length`` (the service's JSON answers do). It runs as a
script in a child process (``main``) that imports neither trio nor trio-asyncio (importing
trio-asyncio slows ``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.parse
from collections.abc import Callable


class HttpLoadError(RuntimeError):
    pass


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    lowered = head.lower()
    marker = lowered.find(b"\r\ncontent-length:")
    if marker < 0:
        raise HttpLoadError(f"a response without Content-Length: {head[:200]!r}")
    end = lowered.find(b"\r\n", marker + 2)
    length = int(lowered[marker + 17 : end].strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


async def post_many(
    url: str,
    n: int,
    concurrency: int,
    body_of: Callable[[int], bytes],
    *,
    content_type: str = "application/json",
    expect: int = 201,
) -> list[tuple[float, bytes]]:
    """POST ``body_of(i)`` to ``url`` for ``i`` in ``range(n)``; return, in order of ``i``,
    ``(time.perf_counter() just before the request was written, response body)``.

    Raises `HttpLoadError` on the first response whose status is not ``expect``.
    """
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    prefix = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nhost: {host}:{port}\r\n"
        f"content-type: {content_type}\r\ncontent-length: "
    ).encode()
    results: list[tuple[float, bytes]] = [(0.0, b"")] * n
    next_i = 0

    async def connection() -> None:
        nonlocal next_i
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_i < n:
                i = next_i
                next_i += 1
                body = body_of(i)
                before = time.perf_counter()
                writer.write(prefix + str(len(body)).encode() + b"\r\n\r\n" + body)
                status, answer = await _read_response(reader)
                if status != expect:
                    raise HttpLoadError(f"request {i}: {status} {answer[:500]!r}")
                results[i] = (before, answer)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return results


def main() -> None:
    """``python _http_load.py URL CONCURRENCY < bodies``: one JSON body per line on stdin;
    prints ``[[start time, response body], ...]`` as JSON, in the order of the bodies."""
    url, concurrency = sys.argv[1], int(sys.argv[2])
    bodies = [line.encode() for line in sys.stdin.read().splitlines() if line]
    answers = asyncio.run(post_many(url, len(bodies), concurrency, bodies.__getitem__))
    json.dump([[before, body.decode()] for before, body in answers], sys.stdout)


if __name__ == "__main__":
    main()
