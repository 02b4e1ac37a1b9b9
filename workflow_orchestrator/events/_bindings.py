"""The AMQP, HTTP and Kafka protocol bindings of CloudEvents 1.0, on plain values (no I/O).

Inputs are what any client library hands over: a mapping of headers or application
properties (a sequence of Kafka record headers), the content type, and the body bytes. The
same code serves RabbitMQ (aio-pika), Kafka (aiokafka), the database source and
``POST /api/v1/events``.

- Structured mode: the content type is ``application/cloudevents+json`` and the body is the
  event in the JSON format; attribute headers are ignored, as the bindings say.
- Binary mode: attributes travel as headers and the body is the data. AMQP accepts the
  spec's ``cloudEvents:`` and ``cloudEvents_`` application properties and also ``ce-`` and
  ``ce_`` as common producers send; HTTP accepts ``ce-`` headers (percent-decoded); Kafka
  ``ce_`` headers (UTF-8 values). Prefixes and names are case-insensitive. The message
  content type is ``datacontenttype``; without
  one, a body that parses as JSON is JSON data and any other body is kept as text.
  Text types (``text/*``, XML, or any type with a ``charset``) become text ``data``; other
  types, and text that is not UTF-8, become ``data_base64`` so the bytes survive exactly.
  An empty body means no data.
- Kafka's record key: a parsed event without a ``partitionkey`` attribute gets the key as
  its ``partitionkey`` (when it is non-empty UTF-8 text without NUL; another key is
  ignored); an encoded record's key is the ``key`` asked for, else the event's
  ``partitionkey``, else none. A binary-mode record without a value is an event without data
  (the binding's rule); a record without a value that is not a binary-mode event is a
  tombstone and refused. Encoding writes an empty value for an event without data, never a
  tombstone, so a compacted topic never loses the key's earlier records to an event.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import attrs

from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.events._cloudevents import (
    BATCH_CONTENT_TYPE,
    MAX_EVENT_SIZE,
    STRUCTURED_CONTENT_TYPE,
    InvalidEvent,
    check_size,
    event_data_bytes,
    is_json_content_type,
    load_json,
    media_type,
    parse_json_event,
    to_json,
    validate_event,
)

AMQP_PREFIXES = ("cloudevents:", "cloudevents_", "ce-", "ce_")
"""Application-property prefixes of attributes in AMQP binary mode (compared lower-case)."""

HTTP_PREFIXES = ("ce-",)

KAFKA_PREFIX = "ce_"
"""The header prefix of attributes in Kafka binary mode (compared lower-case)."""

_SAFE_HEADER_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


@attrs.frozen(kw_only=True)
class EncodedEvent:
    """An event encoded for a binding: ``headers`` (AMQP application properties or HTTP
    headers), the message ``content_type`` (None when the event has none) and the ``body``."""

    headers: Mapping[str, Any] = attrs.field(factory=dict)
    content_type: str | None = None
    body: bytes = b""


@attrs.frozen(kw_only=True)
class KafkaEncoded:
    """An event encoded as a Kafka record: ``headers`` (name, UTF-8 value) in order, the
    record ``key`` (None: no key) and the ``value``."""

    headers: tuple[tuple[str, bytes], ...] = ()
    key: bytes | None = None
    value: bytes = b""


def _amqp_value(header: str, value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise InvalidEvent(
                f"the message property {header!r} is not UTF-8 text; send attribute values "
                "as strings"
            ) from None
    if isinstance(value, datetime):
        # AMQP timestamps are UTC; render them as the RFC 3339 string the JSON form uses.
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.isoformat().replace("+00:00", "Z")
    if value is None or isinstance(value, str | bool | int):
        return value
    raise InvalidEvent(
        f"the message property {header!r} holds {type(value).__name__}; CloudEvent attribute "
        "values must be strings, booleans, integers or timestamps"
    )


def _attributes_from_headers(
    headers: Mapping[str, Any], prefixes: tuple[str, ...], *, http: bool
) -> tuple[dict[str, Any], int]:
    """The prefixed attributes of ``headers`` and their encoded size in bytes."""
    attributes: dict[str, Any] = {}
    origin: dict[str, str] = {}
    size = 0
    for header, raw in headers.items():
        lowered = header.lower()
        prefix = next((p for p in prefixes if lowered.startswith(p)), None)
        if prefix is None:
            continue
        name = lowered[len(prefix) :]
        size += len(header) + len(str(raw))
        if name in ("data", "data_base64"):
            raise InvalidEvent(
                f"the message has a {header!r} header; in binary mode the data is the "
                "message body, so remove that header"
            )
        value = unquote(raw) if http and isinstance(raw, str) else _amqp_value(header, raw)
        if name in attributes and attributes[name] != value:
            raise InvalidEvent(
                f"the message sets attribute '{name}' twice with different values "
                f"({origin[name]!r} and {header!r}); send each attribute once"
            )
        attributes[name] = value
        origin[name] = header
    return attributes, size


def _decode_data(attributes: dict[str, Any], content_type: str | None, body: bytes) -> None:
    if not body:
        return
    if is_json_content_type(content_type):
        if content_type:
            attributes["data"] = load_json(
                body, f"the event data (datacontenttype {content_type!r})"
            )
            return
        try:
            attributes["data"] = json.loads(body)
            return
        except RecursionError:
            raise InvalidEvent(
                "the event data nests arrays or objects too deeply to read"
            ) from None
        except ValueError:
            pass  # no content type and not JSON: keep the body as text (or base64) below
    if _is_text(content_type):
        try:
            attributes["data"] = body.decode()
            return
        except UnicodeDecodeError:
            pass  # declared text but not UTF-8: keep the bytes exactly, as base64
    attributes["data_base64"] = base64.b64encode(body).decode("ascii")


def _is_text(content_type: str | None) -> bool:
    """Whether a body of ``content_type`` is text (kept as ``data``) rather than bytes."""
    kind = media_type(content_type)
    return (
        not kind
        or kind.startswith("text/")
        or kind in ("application/xml", "application/x-www-form-urlencoded")
        or kind.endswith("+xml")
        or "charset=" in (content_type or "").lower()
    )


def _from_binary(
    attributes: dict[str, Any], size: int, content_type: str | None, body: bytes, max_size: int
) -> CloudEvent:
    check_size(size + len(body), max_size)
    content_type = content_type or attributes.get("datacontenttype")
    if content_type:
        attributes["datacontenttype"] = content_type
    _decode_data(attributes, content_type, body)
    return validate_event(attributes)


def _check_format(content_type: str | None) -> bool:
    """Whether ``content_type`` selects structured mode; rejects formats we do not read."""
    kind = media_type(content_type)
    if kind == STRUCTURED_CONTENT_TYPE:
        return True
    if kind == BATCH_CONTENT_TYPE:
        raise InvalidEvent(
            f"batched CloudEvents ({BATCH_CONTENT_TYPE}) are not supported; send one event "
            "per message"
        )
    if kind.startswith("application/cloudevents"):
        raise InvalidEvent(
            f"the event format {kind!r} is not supported; use {STRUCTURED_CONTENT_TYPE} "
            "(structured mode) or attribute headers (binary mode)"
        )
    return False


def _not_an_event(content_type: str | None, prefixes: str) -> InvalidEvent:
    shown = repr(content_type) if content_type else "not set"
    return InvalidEvent(
        f"the message is not a CloudEvent: it has no {prefixes} headers and its content type "
        f"is {shown}, not {STRUCTURED_CONTENT_TYPE!r}; send the event in structured or "
        "binary mode"
    )


def parse_amqp_message(
    *,
    headers: Mapping[str, Any],
    content_type: str | None,
    body: bytes,
    max_size: int = MAX_EVENT_SIZE,
) -> CloudEvent:
    """Parse an AMQP message (either binding mode) into a validated `CloudEvent`.

    ``headers`` are the application properties (AMQP 0-9-1 headers), ``content_type`` the
    message's content type. Raises `InvalidEvent` for anything that is not one valid
    CloudEvent of at most ``max_size`` bytes.
    """
    if _check_format(content_type):
        return parse_json_event(body, max_size=max_size)
    attributes, size = _attributes_from_headers(headers, AMQP_PREFIXES, http=False)
    if not attributes:
        raise _not_an_event(content_type, "'cloudEvents:', 'cloudEvents_', 'ce-' or 'ce_'")
    return _from_binary(attributes, size, content_type, body, max_size)


def parse_http_request(
    *, headers: Mapping[str, str], body: bytes, max_size: int = MAX_EVENT_SIZE
) -> CloudEvent:
    """Parse an HTTP request (either binding mode) into a validated `CloudEvent`.

    Header names are case-insensitive; ``Content-Type`` selects the mode. Raises
    `InvalidEvent` for anything that is not one valid CloudEvent of at most ``max_size`` bytes.
    """
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if _check_format(content_type):
        return parse_json_event(body, max_size=max_size)
    attributes, size = _attributes_from_headers(headers, HTTP_PREFIXES, http=True)
    if not attributes:
        raise _not_an_event(content_type, "'ce-'")
    return _from_binary(attributes, size, content_type, body, max_size)


def to_amqp_structured(event: CloudEvent) -> EncodedEvent:
    """The event as an AMQP message in structured mode (no attribute headers).

    Raises `InvalidEvent` when the event is not valid.
    """
    return EncodedEvent(content_type=STRUCTURED_CONTENT_TYPE, body=to_json(event))


def _binary_parts(event: CloudEvent) -> tuple[dict[str, Any], str | None, bytes]:
    checked = validate_event(event.attributes)
    attributes = {k: v for k, v in checked.attributes.items() if k not in ("data", "data_base64")}
    content_type = attributes.pop("datacontenttype", None)
    return attributes, content_type, event_data_bytes(checked) or b""


def to_amqp_binary(event: CloudEvent, *, prefix: str = "cloudEvents:") -> EncodedEvent:
    """The event as an AMQP message in binary mode: ``prefix``-named properties + data body.

    Extension values keep their AMQP types (strings, booleans, integers). Raises
    `InvalidEvent` when the event is not valid.
    """
    attributes, content_type, body = _binary_parts(event)
    headers = {f"{prefix}{name}": value for name, value in attributes.items()}
    return EncodedEvent(headers=headers, content_type=content_type, body=body)


def to_http_binary(event: CloudEvent) -> EncodedEvent:
    """The event as an HTTP request in binary mode: percent-encoded ``ce-`` headers + body.

    ``content_type`` goes into the ``Content-Type`` header. Booleans become ``true``/``false``
    and integers their decimal text (HTTP headers carry no types). Raises `InvalidEvent` when
    the event is not valid.
    """
    attributes, content_type, body = _binary_parts(event)
    headers: dict[str, Any] = {}
    for name, value in attributes.items():
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        headers[f"ce-{name}"] = quote(text, safe=_SAFE_HEADER_CHARS)
    return EncodedEvent(headers=headers, content_type=content_type, body=body)


# -- Kafka -------------------------------------------------------------------------------------


def _kafka_text(header: str, raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise InvalidEvent(
            f"the record header {header!r} is not UTF-8 text; the Kafka binding sends header "
            "values as UTF-8 strings"
        ) from None


def _kafka_content_type(headers: Sequence[tuple[str, bytes | None]]) -> str | None:
    """The ``content-type`` header (any case); None when there is none."""
    found: str | None = None
    for header, raw in headers:
        if raw is None or header.lower() != "content-type":
            continue
        text = _kafka_text(header, raw)
        if found is not None and text != found:
            raise InvalidEvent(
                f"the record has two content-type headers with different values ({found!r} "
                f"and {text!r}); send one"
            )
        found = text
    return found


def _kafka_attributes(headers: Sequence[tuple[str, bytes | None]]) -> tuple[dict[str, Any], int]:
    """The ``ce_`` attributes of ``headers`` and their encoded size in bytes; a header with
    a null value is an absent attribute."""
    attributes: dict[str, Any] = {}
    origin: dict[str, str] = {}
    size = 0
    for header, raw in headers:
        lowered = header.lower()
        if raw is None or not lowered.startswith(KAFKA_PREFIX):
            continue
        name = lowered[len(KAFKA_PREFIX) :]
        size += len(header.encode()) + len(raw)
        if name in ("data", "data_base64"):
            raise InvalidEvent(
                f"the record has a {header!r} header; in binary mode the data is the record "
                "value, so remove that header"
            )
        value = _kafka_text(header, raw)
        if name in attributes and attributes[name] != value:
            raise InvalidEvent(
                f"the record sets attribute '{name}' twice with different values "
                f"({origin[name]!r} and {header!r}); send each attribute once"
            )
        attributes[name] = value
        origin[name] = header
    return attributes, size


def _partition_key(key: bytes | None) -> str | None:
    """The record key as a ``partitionkey`` value: non-empty UTF-8 text without NUL, or None
    (a key that is no such text partitions the topic but says nothing to the event)."""
    if not key:
        return None
    try:
        text = key.decode()
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def parse_kafka_record(
    headers: Sequence[tuple[str, bytes | None]],
    key: bytes | None,
    value: bytes | None,
    *,
    max_size: int = MAX_EVENT_SIZE,
) -> CloudEvent:
    """Parse a Kafka record (either binding mode) into a validated `CloudEvent`.

    ``headers`` are the record's headers in order (names any case), ``key`` and ``value`` its
    key and value (None: absent). The ``content-type`` header selects structured mode;
    otherwise the ``ce_`` headers are the attributes and the value is the data. The key
    becomes ``partitionkey`` when the event has none. Raises `InvalidEvent` for anything that
    is not one valid CloudEvent of at most ``max_size`` bytes (the key counted when used).
    """
    content_type = _kafka_content_type(headers)
    partition_key = _partition_key(key)
    key_size = len(key) if key is not None and partition_key is not None else 0
    if _check_format(content_type):
        if value is None:
            raise InvalidEvent(
                "the record has no value (a tombstone); in structured mode the value is the "
                "event in JSON"
            )
        check_size(len(value) + key_size, max_size)
        defaults = {"partitionkey": partition_key} if partition_key is not None else None
        return parse_json_event(value, max_size=max_size, defaults=defaults)
    attributes, size = _kafka_attributes(headers)
    if not attributes:
        if value is None:
            raise InvalidEvent(
                "the record has no value (a tombstone) and no 'ce_' headers, so it is not a "
                "CloudEvent; send the event in structured or binary mode"
            )
        raise _not_an_event(content_type, "'ce_'")
    if partition_key is not None and attributes.get("partitionkey") is None:
        attributes["partitionkey"] = partition_key
        size += key_size
    size += len(content_type.encode()) if content_type else 0
    return _from_binary(attributes, size, content_type, value or b"", max_size)


def _header_text(value: Any) -> str:
    """An attribute value as header text: booleans ``true``/``false``, integers in decimal."""
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _record_key(event: CloudEvent, key: str | None) -> bytes | None:
    if key is not None:
        return key.encode()
    partition_key = event.attributes.get("partitionkey")
    return None if partition_key is None else _header_text(partition_key).encode()


def to_kafka_structured(event: CloudEvent, *, key: str | None = None) -> KafkaEncoded:
    """The event as a Kafka record in structured mode: a ``content-type`` header and the JSON
    event as the value; the record key is ``key``, else the event's ``partitionkey``.

    Raises `InvalidEvent` when the event is not valid.
    """
    value = to_json(event)
    return KafkaEncoded(
        headers=(("content-type", STRUCTURED_CONTENT_TYPE.encode()),),
        key=_record_key(event, key),
        value=value,
    )


def to_kafka_binary(event: CloudEvent, *, key: str | None = None) -> KafkaEncoded:
    """The event as a Kafka record in binary mode: ``ce_`` headers (UTF-8 text; booleans
    ``true``/``false``), the ``content-type`` header when the event has a
    ``datacontenttype``, and the data as the value (empty without data); the record key is
    ``key``, else the event's ``partitionkey``.

    Raises `InvalidEvent` when the event is not valid.
    """
    attributes, content_type, body = _binary_parts(event)
    headers = [
        (f"{KAFKA_PREFIX}{name}", _header_text(value).encode())
        for name, value in attributes.items()
    ]
    if content_type is not None:
        headers.append(("content-type", content_type.encode()))
    return KafkaEncoded(headers=tuple(headers), key=_record_key(event, key), value=body)
