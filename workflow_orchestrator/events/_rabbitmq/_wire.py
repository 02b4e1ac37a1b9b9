"""The AMQP 0-9-1 frames of one publication, written directly: the outbox relay's hot path.

pamqp builds a ``Basic.Publish``, a ``Basic.Properties`` and a ``ContentHeader`` object per
message, validates every property and marshals each through its type table: most of the CPU of
publishing a lifecycle event. ``publication_bytes`` writes the same bytes with ``struct`` for
the messages the relay sends (no headers, no correlation id, no timestamp; an exchange pamqp
accepts; strings within a short string), and returns None for anything else, which the caller
marshals with pamqp as before, so errors stay pamqp's. ``tests/unit/events/test_rabbitmq_wire.py``
checks the bytes against pamqp's for every property combination it writes.
"""

from __future__ import annotations

import struct
import uuid

from pamqp import constants

from workflow_orchestrator.events._rabbitmq._values import OutgoingMessage

__all__ = ["publication_bytes"]

_FRAME_END = b"\xce"
_FRAME_HEADER = struct.Struct(">BHI")
# Basic (class 60) Publish (method 40), ticket 0.
_PUBLISH_PREFIX = struct.pack(">HHH", 60, 40, 0)
# Basic (class 60), weight 0, the body size.
_HEADER_PREFIX = struct.Struct(">HxxQ")
_FLAGS = struct.Struct(">H")
_CONTENT_TYPE = 0x8000
_DELIVERY_MODE = 0x1000
_PRIORITY = 0x0800
_MESSAGE_ID = 0x0080
_MESSAGE_TYPE = 0x0020
_EXCHANGE_NAME = constants.DOMAIN_REGEX["exchange-name"]
_MAX_EXCHANGE = 127
_MAX_SHORTSTR = 255
# Exchange names seen valid (the relay uses two); bounded.
_valid_exchanges: set[str] = set()


def _short(value: str) -> bytes | None:
    data = value.encode("utf-8")
    if len(data) > _MAX_SHORTSTR:
        return None
    return bytes((len(data),)) + data


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return _FRAME_HEADER.pack(kind, channel, len(payload)) + payload + _FRAME_END


def _exchange_ok(exchange: str) -> bool:
    if exchange in _valid_exchanges:
        return True
    if len(exchange) > _MAX_EXCHANGE or not _EXCHANGE_NAME.fullmatch(exchange):
        return False
    if len(_valid_exchanges) < 1024:
        _valid_exchanges.add(exchange)
    return True


def publication_bytes(
    message: OutgoingMessage, channel: int, max_content_size: int
) -> bytes | None:
    """The frames of ``message`` on ``channel`` exactly as pamqp marshals the ones
    ``_internals`` builds (message id ``uuid4().hex`` when it has none), or None when the
    message needs pamqp (see the module docstring)."""
    if message.headers or message.correlation_id is not None or message.timestamp is not None:
        return None
    if not _exchange_ok(message.exchange):
        return None
    exchange = _short(message.exchange)
    routing_key = _short(message.routing_key)
    message_id = _short(message.message_id or uuid.uuid4().hex)
    if exchange is None or routing_key is None or message_id is None:
        return None
    flags = _DELIVERY_MODE | _PRIORITY | _MESSAGE_ID
    content_type = b""
    if message.content_type:
        encoded = _short(message.content_type)
        if encoded is None:
            return None
        content_type = encoded
        flags |= _CONTENT_TYPE
    message_type = b""
    if message.message_type:
        encoded = _short(message.message_type)
        if encoded is None:
            return None
        message_type = encoded
        flags |= _MESSAGE_TYPE
    body = message.body
    header = b"".join(
        (
            _HEADER_PREFIX.pack(60, len(body)),
            _FLAGS.pack(flags),
            content_type,
            b"\x02" if message.persistent else b"\x01",  # delivery mode
            b"\x00",  # priority 0
            message_id,
            message_type,
        )
    )
    parts = [
        _frame(constants.FRAME_METHOD, channel, _PUBLISH_PREFIX + exchange + routing_key + b"\x00"),
        _frame(constants.FRAME_HEADER, channel, header),
    ]
    for start in range(0, len(body), max_content_size):
        parts.append(_frame(constants.FRAME_BODY, channel, body[start : start + max_content_size]))
    return b"".join(parts)
