"""Reading a response body on an `HttpConnection`: decoded and counted against a limit.

A body declared (``Content-Length``) larger than the limit is refused before any of it is
read; one without a length is counted as it arrives and refused as soon as it passes the limit,
so an endless or huge answer never sits in memory. ``gzip`` and ``deflate`` bodies (the client
asks for them) are decoded, and it is the decoded size that counts: a small compressed body
cannot expand past the limit either.
"""

from __future__ import annotations

import zlib

from workflow_orchestrator.adapters._http_connection import HttpConnection, ResponseHead
from workflow_orchestrator.adapters._http_problems import TooLarge
from workflow_orchestrator.errors import OrchestratorError

ACCEPT_ENCODING = b"gzip, deflate"


class DecodingFailed(OrchestratorError):
    """The body is not what its ``Content-Encoding`` says."""


class _Decoder:
    """gzip or deflate (zlib-wrapped or raw, as servers send either) decoding, bounded."""

    def __init__(self, encoding: bytes) -> None:
        self._gzip = encoding in (b"gzip", b"x-gzip")
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS)
        self._first = True

    def decode(self, data: bytes, room: int) -> bytes:
        """``data`` decoded; at most ``room + 1`` bytes (more than ``room`` means too large)."""
        try:
            if self._first and not self._gzip:
                self._first = False
                try:
                    return self._inflate.decompress(data, room + 1)
                except zlib.error:
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate
            return self._inflate.decompress(data, room + 1)
        except zlib.error as error:
            raise DecodingFailed(f"the response body is not valid {self._kind}: {error}") from None

    @property
    def _kind(self) -> str:
        return "gzip" if self._gzip else "deflate"


def header(head: ResponseHead, name: bytes) -> bytes | None:
    """The (last) value of header ``name`` (lower case) in ``head``."""
    found = None
    for key, value in head.headers:
        if key == name:
            found = value
    return found


async def read_body(
    connection: HttpConnection, head: ResponseHead, limit: int, *, bodiless: bool = False
) -> bytes:
    """The whole (decoded) body of the response ``head`` on ``connection``.

    Raises `TooLarge` past ``limit`` (the connection is then unusable: close it).
    ``bodiless``: the response has no body whatever its ``Content-Length`` says (it answers a
    HEAD), so that length is not held against the limit; nor is it for 204 and 304.
    """
    declared = header(head, b"content-length")
    has_body = not bodiless and head.status_code not in (204, 304)
    if has_body and declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(int(declared), declared=True)
    encoding = (header(head, b"content-encoding") or b"").strip().lower()
    decoder = _Decoder(encoding) if encoding in (b"gzip", b"x-gzip", b"deflate") else None
    chunks: list[bytes] = []
    received = 0
    while (chunk := await connection.receive_chunk()) is not None:
        if decoder is not None:
            chunk = decoder.decode(chunk, limit - received)
        received += len(chunk)
        if received > limit:
            raise TooLarge(limit, declared=False)
        chunks.append(chunk)
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)
