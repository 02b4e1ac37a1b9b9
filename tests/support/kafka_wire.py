"""The Kafka wire framing the test support speaks itself, over Trio streams: size-prefixed
frames, request headers, and encoding/decoding with aiokafka's protocol classes.

A frame is an int32 (big-endian) size then that many bytes. A request starts with api_key
(int16), api_version (int16), correlation_id (int32) and client_id (nullable string: int16
length, -1 for null); flexible versions add tagged fields after it, which only
``request_body`` callers of non-flexible versions rely on not being there. A non-flexible
response starts with the request's correlation_id (int32).
"""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any

import attrs
import trio
from aiokafka.protocol.api import RequestStruct

__all__ = [
    "MAX_FRAME",
    "FrameReader",
    "RequestHeader",
    "decode_response",
    "encode_request",
    "encode_response",
    "frame",
    "parse_request_header",
]

MAX_FRAME = 100 * 1024 * 1024  # Kafka's default socket.request.max.bytes

_SIZE = struct.Struct(">i")
_HEADER = struct.Struct(">hhih")


def frame(payload: bytes) -> bytes:
    """``payload`` with its size prefix."""
    return _SIZE.pack(len(payload)) + payload


@attrs.frozen
class RequestHeader:
    """The fixed part of a request header, and where the (non-flexible) body starts."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int


def parse_request_header(payload: bytes) -> RequestHeader:
    """The header of request ``payload`` (a frame without its size); ValueError if short."""
    if len(payload) < _HEADER.size:
        raise ValueError(f"a request of {len(payload)} bytes has no complete header")
    api_key, api_version, correlation_id, length = _HEADER.unpack_from(payload)
    offset = _HEADER.size
    client_id = None
    if length >= 0:
        if len(payload) < offset + length:
            raise ValueError("the request's client_id is cut short")
        client_id = payload[offset : offset + length].decode("utf-8", errors="replace")
        offset += length
    return RequestHeader(api_key, api_version, correlation_id, client_id, offset)


def encode_request(request: RequestStruct, correlation_id: int, client_id: str) -> bytes:
    """The frame of ``request`` (an aiokafka request struct of one version)."""
    header = request.build_request_header(correlation_id=correlation_id, client_id=client_id)
    return frame(header.encode() + request.encode())


def decode_response(request: RequestStruct, payload: bytes) -> tuple[int, Any]:
    """The correlation id and the decoded response to ``request`` from a response frame."""
    buffer = BytesIO(payload)
    header = request.parse_response_header(buffer)
    return int(header.correlation_id), request.RESPONSE_TYPE.decode(buffer)


def encode_response(correlation_id: int, response: Any) -> bytes:
    """The frame of a non-flexible ``response`` (an aiokafka response struct)."""
    return frame(_SIZE.pack(correlation_id) + response.encode())


@attrs.define(eq=False)
class FrameReader:
    """Reads whole frames from ``stream``, keeping what arrived beyond the last one."""

    stream: trio.abc.ReceiveStream
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)

    async def next(self) -> bytes | None:
        """The next frame's payload; None when the peer closed between frames. A peer that
        closes inside a frame, or announces one over ``MAX_FRAME``, is a ValueError."""
        while True:
            if len(self._buffer) >= _SIZE.size:
                (size,) = _SIZE.unpack_from(self._buffer)
                if size < 0 or size > MAX_FRAME:
                    raise ValueError(f"a frame of {size} bytes is not a Kafka frame")
                end = _SIZE.size + size
                if len(self._buffer) >= end:
                    payload = bytes(self._buffer[_SIZE.size : end])
                    del self._buffer[:end]
                    return payload
            data = await self.stream.receive_some(65536)
            if not data:
                if self._buffer:
                    raise ValueError("the peer closed the connection inside a frame")
                return None
            self._buffer += data

    def take_buffered(self) -> bytes:
        """What arrived after the last frame returned (it is no longer kept here)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest
