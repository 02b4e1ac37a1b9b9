"""AMQP and HTTP bindings: structured and binary mode, exact errors, and round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given

from tests.unit.events.cloudevent_strategies import events
from workflow_orchestrator.events import (
    STRUCTURED_CONTENT_TYPE,
    CloudEvent,
    EncodedEvent,
    InvalidEvent,
    parse_amqp_message,
    parse_http_request,
    parse_json_event,
    to_amqp_binary,
    to_amqp_structured,
    to_http_binary,
    to_json,
    validate_event,
)

BASE = {"specversion": "1.0", "id": "e-1", "source": "/orders", "type": "order.created"}
STRUCTURED_BODY = json.dumps({**BASE, "data": {"orderId": "o-7"}}).encode()


def amqp_headers(prefix: str, **extra: Any) -> dict[str, Any]:
    """The base attributes as AMQP application properties with ``prefix``."""
    return {f"{prefix}{k}": v for k, v in {**BASE, **extra}.items()}


def amqp_error(**message: Any) -> str:
    """The message `parse_amqp_message` raises for ``message``."""
    message.setdefault("headers", {})
    message.setdefault("content_type", None)
    message.setdefault("body", b"")
    with pytest.raises(InvalidEvent) as caught:
        parse_amqp_message(**message)
    return str(caught.value)


def http_error(headers: dict[str, str], body: bytes = b"") -> str:
    """The message `parse_http_request` raises for ``headers`` and ``body``."""
    with pytest.raises(InvalidEvent) as caught:
        parse_http_request(headers=headers, body=body)
    return str(caught.value)


# -- AMQP structured mode ------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        STRUCTURED_CONTENT_TYPE,
        "application/cloudevents+json; charset=utf-8",
        "Application/CloudEvents+JSON",
    ],
)
def test_amqp_structured(content_type: str) -> None:
    """The structured content type (any case, with parameters) selects the JSON format."""
    parsed = parse_amqp_message(headers={}, content_type=content_type, body=STRUCTURED_BODY)
    assert parsed.attributes == {**BASE, "data": {"orderId": "o-7"}}


def test_amqp_structured_ignores_attribute_headers() -> None:
    """In structured mode the body is the event; attribute headers do not override it."""
    headers = amqp_headers("cloudEvents:", id="other")
    parsed = parse_amqp_message(
        headers=headers, content_type=STRUCTURED_CONTENT_TYPE, body=STRUCTURED_BODY
    )
    assert parsed.attributes["id"] == "e-1"


def test_amqp_structured_errors_come_from_the_json_format() -> None:
    """A bad structured body is reported like any JSON event."""
    assert amqp_error(content_type=STRUCTURED_CONTENT_TYPE, body=b"nope") == (
        "the event body is not valid JSON: Expecting value at line 1 column 1; send the "
        "CloudEvent as a JSON object"
    )


# -- AMQP binary mode ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix", ["cloudEvents:", "cloudEvents_", "ce-", "ce_", "CE-", "cloudevents:"]
)
def test_amqp_binary_prefixes(prefix: str) -> None:
    """Every accepted prefix yields the same event; the content type is datacontenttype."""
    parsed = parse_amqp_message(
        headers={**amqp_headers(prefix), "x-delivery-count": 1},
        content_type="application/json",
        body=b'{"orderId": "o-7"}',
    )
    assert parsed.attributes == {
        **BASE,
        "datacontenttype": "application/json",
        "data": {"orderId": "o-7"},
    }


def test_amqp_binary_typed_values() -> None:
    """AMQP-typed values: bytes are decoded, timestamps become RFC 3339, ints and bools stay."""
    parsed = parse_amqp_message(
        headers=amqp_headers(
            "cloudEvents:",
            id=b"e-1",
            time=datetime(2024, 5, 1, 12, 0, 0),
            priority=3,
            urgent=False,
            MyExt="x",
        ),
        content_type=None,
        body=b"",
    )
    assert parsed.attributes == {
        **BASE,
        "time": "2024-05-01T12:00:00Z",
        "priority": 3,
        "urgent": False,
        "myext": "x",
    }


def test_amqp_binary_aware_timestamp_keeps_its_offset() -> None:
    """An aware timestamp property keeps the instant; UTC is written with Z."""
    parsed = parse_amqp_message(
        headers=amqp_headers("ce_", time=datetime(2024, 5, 1, 12, tzinfo=UTC)),
        content_type=None,
        body=b"",
    )
    assert parsed.attributes["time"] == "2024-05-01T12:00:00Z"


@pytest.mark.parametrize(
    ("content_type", "body", "data"),
    [
        ("text/plain", b"hello", {"data": "hello"}),
        ("text/plain; charset=utf-8", b'{"a": 1}', {"data": '{"a": 1}'}),
        ("application/octet-stream", b"\x00\xff", {"data_base64": "AP8="}),
        ("application/octet-stream", b"abc", {"data_base64": "YWJj"}),
        ("text/plain", b"\xff", {"data_base64": "/w=="}),
        ("application/xml", b"<a/>", {"data": "<a/>"}),
        ("application/atom+xml", b"<a/>", {"data": "<a/>"}),
        ("application/x-custom; charset=utf-8", b"abc", {"data": "abc"}),
        (None, b'{"a": 1}', {"data": {"a": 1}}),
        (None, b"plain words", {"data": "plain words"}),
        (None, b"\xff", {"data_base64": "/w=="}),
        ("application/vnd.order+json", b"[1]", {"data": [1]}),
        ("application/json", b"", {}),
    ],
)
def test_amqp_binary_data_decoding(
    content_type: str | None, body: bytes, data: dict[str, Any]
) -> None:
    """JSON types decode as JSON, text types as text, other bytes as base64; empty is no data."""
    parsed = parse_amqp_message(
        headers=amqp_headers("cloudEvents:"), content_type=content_type, body=body
    )
    expected = {**BASE, **data}
    if content_type:
        expected["datacontenttype"] = content_type
    assert parsed.attributes == expected


def test_amqp_binary_datacontenttype_property_is_a_fallback() -> None:
    """Without a message content type, a datacontenttype property is used for the data."""
    parsed = parse_amqp_message(
        headers=amqp_headers("ce-", datacontenttype="text/plain"),
        content_type=None,
        body=b"42",
    )
    assert parsed.attributes["data"] == "42"
    assert parsed.attributes["datacontenttype"] == "text/plain"


def test_amqp_binary_bad_json_data() -> None:
    """Data declared JSON that is not JSON is rejected, naming the content type."""
    assert amqp_error(
        headers=amqp_headers("cloudEvents:"), content_type="application/json", body=b"{oops"
    ) == (
        "the event data (datacontenttype 'application/json') is not valid JSON: Expecting "
        "property name enclosed in double quotes at line 1 column 2; send the CloudEvent as a "
        "JSON object"
    )


def test_amqp_binary_missing_attribute() -> None:
    """Binary-mode events are validated like structured ones."""
    headers = amqp_headers("cloudEvents:")
    del headers["cloudEvents:source"]
    assert amqp_error(headers=headers) == (
        "the event has no 'source' attribute; CloudEvents 1.0 requires id, source, "
        "specversion and type"
    )


def test_amqp_binary_conflicting_duplicates() -> None:
    """The same attribute under two prefixes must agree."""
    headers = {**amqp_headers("cloudEvents:"), "ce-id": "e-2"}
    assert amqp_error(headers=headers) == (
        "the message sets attribute 'id' twice with different values ('cloudEvents:id' and "
        "'ce-id'); send each attribute once"
    )
    same = {**amqp_headers("cloudEvents:"), "ce-id": "e-1"}
    assert parse_amqp_message(headers=same, content_type=None, body=b"").attributes == BASE


@pytest.mark.parametrize("header", ["cloudEvents:data", "ce-data_base64"])
def test_amqp_binary_data_header(header: str) -> None:
    """Data travels in the body in binary mode, never in a header."""
    assert amqp_error(headers={**amqp_headers("cloudEvents:"), header: "x"}) == (
        f"the message has a {header!r} header; in binary mode the data is the message body, "
        "so remove that header"
    )


def test_amqp_binary_bad_property_values() -> None:
    """Property values must be text, booleans, integers or timestamps."""
    assert amqp_error(headers=amqp_headers("cloudEvents:", id=b"\xff")) == (
        "the message property 'cloudEvents:id' is not UTF-8 text; send attribute values as strings"
    )
    assert amqp_error(headers=amqp_headers("cloudEvents:", myext=[1])) == (
        "the message property 'cloudEvents:myext' holds list; CloudEvent attribute values must "
        "be strings, booleans, integers or timestamps"
    )


def test_amqp_not_a_cloud_event() -> None:
    """A message with neither the structured type nor attribute headers is named as such."""
    assert amqp_error(headers={"x-other": 1}, content_type="text/plain", body=b"hi") == (
        "the message is not a CloudEvent: it has no 'cloudEvents:', 'cloudEvents_', 'ce-' or "
        "'ce_' headers and its content type is 'text/plain', not 'application/cloudevents+json'; "
        "send the event in structured or binary mode"
    )
    assert "its content type is not set," in amqp_error()


def test_amqp_batch_and_other_formats() -> None:
    """Batches and event formats other than JSON are rejected with what to use instead."""
    assert amqp_error(content_type="application/cloudevents-batch+json", body=b"[]") == (
        "batched CloudEvents (application/cloudevents-batch+json) are not supported; send one "
        "event per message"
    )
    assert amqp_error(content_type="application/cloudevents+avro", body=b"x") == (
        "the event format 'application/cloudevents+avro' is not supported; use "
        "application/cloudevents+json (structured mode) or attribute headers (binary mode)"
    )


def test_amqp_binary_oversized() -> None:
    """The limit covers the body and the attribute headers together."""
    headers = amqp_headers("cloudEvents:")
    header_size = sum(len(k) + len(v) for k, v in headers.items())
    body = b"x" * (100 - header_size)
    assert parse_amqp_message(headers=headers, content_type="text/plain", body=body, max_size=100)
    assert amqp_error(
        headers=headers, content_type="text/plain", body=body + b"x", max_size=100
    ) == (
        "the event is 101 bytes, over the limit of 100 bytes; send large payloads by reference "
        "(for example a URL in data)"
    )


# -- HTTP --------------------------------------------------------------------------------------


def test_http_structured() -> None:
    """Content-Type (any case) application/cloudevents+json selects structured mode."""
    parsed = parse_http_request(
        headers={"Content-Type": "application/cloudevents+json; charset=UTF-8"},
        body=STRUCTURED_BODY,
    )
    assert parsed.attributes == {**BASE, "data": {"orderId": "o-7"}}


def test_http_binary_with_percent_encoded_headers() -> None:
    """ce- headers (any case) are percent-decoded; Content-Type is datacontenttype."""
    parsed = parse_http_request(
        headers={
            "Ce-Specversion": "1.0",
            "CE-ID": "e-1",
            "ce-source": "/orders",
            "ce-type": "order.created",
            "ce-subject": "caf%C3%A9%20%22x%22",
            "content-type": "application/json",
            "x-request-id": "r",
        },
        body=b'{"orderId":"o-7"}',
    )
    assert parsed.attributes == {
        **BASE,
        "subject": 'café "x"',
        "datacontenttype": "application/json",
        "data": {"orderId": "o-7"},
    }


def test_http_ignores_underscore_and_amqp_prefixes() -> None:
    """Only ce- headers are attributes over HTTP."""
    assert http_error({"cloudEvents:id": "1", "content-type": "application/json"}, b"{}") == (
        "the message is not a CloudEvent: it has no 'ce-' headers and its content type is "
        "'application/json', not 'application/cloudevents+json'; send the event in structured "
        "or binary mode"
    )


def test_http_binary_errors() -> None:
    """HTTP binary mode reports validation errors of the decoded attributes."""
    headers = {f"ce-{k}": v for k, v in BASE.items()}
    assert http_error({**headers, "ce-time": "now"}) == (
        "the event's 'time' attribute 'now' is not an RFC 3339 timestamp; use a form like "
        "'2024-05-01T12:00:00Z' or '2024-05-01T14:00:00.5+02:00'"
    )
    assert http_error({**headers, "ce-specversion": "0.3"}) == (
        "the event's specversion is '0.3'; only CloudEvents 1.0 is supported: set specversion "
        "to '1.0'"
    )


def test_http_batch_is_rejected() -> None:
    """Batched HTTP requests are rejected with the exact reason."""
    assert http_error({"content-type": "application/cloudevents-batch+json"}, b"[]") == (
        "batched CloudEvents (application/cloudevents-batch+json) are not supported; send one "
        "event per message"
    )


# -- serialization ---------------------------------------------------------------------------


def test_to_amqp_structured() -> None:
    """Structured AMQP messages carry the JSON event and the structured content type."""
    event = validate_event({**BASE, "data": {"orderId": "o-7"}})
    message = to_amqp_structured(event)
    assert message == EncodedEvent(content_type=STRUCTURED_CONTENT_TYPE, body=to_json(event))
    assert (
        parse_amqp_message(
            headers=message.headers, content_type=message.content_type, body=message.body
        )
        == event
    )


def test_to_amqp_binary() -> None:
    """Binary AMQP messages carry prefixed properties, the content type and the data body."""
    event = validate_event(
        {**BASE, "datacontenttype": "text/plain", "priority": 2, "data": "hello"}
    )
    message = to_amqp_binary(event)
    assert message == EncodedEvent(
        headers={f"cloudEvents:{k}": v for k, v in {**BASE, "priority": 2}.items()},
        content_type="text/plain",
        body=b"hello",
    )
    assert to_amqp_binary(event, prefix="cloudEvents_").headers["cloudEvents_id"] == "e-1"


def test_to_http_binary() -> None:
    """HTTP binary headers are percent-encoded text; booleans are true/false."""
    event = validate_event({**BASE, "subject": "café %", "flag": True, "n": -3})
    message = to_http_binary(event)
    assert message.headers["ce-subject"] == "caf%C3%A9%20%25"
    assert message.headers["ce-flag"] == "true"
    assert message.headers["ce-n"] == "-3"
    assert message.content_type is None
    assert message.body == b""


def test_serializers_refuse_invalid_events() -> None:
    """No binding serializer publishes an invalid event."""
    bad = CloudEvent(attributes={**BASE, "time": "later"})
    for serialize in (to_amqp_structured, to_amqp_binary, to_http_binary):
        with pytest.raises(InvalidEvent, match="is not an RFC 3339 timestamp"):
            serialize(bad)


# -- round-trip property ----------------------------------------------------------------------


@given(events())
def test_round_trip_property(event: CloudEvent) -> None:
    """Every valid event survives JSON, AMQP structured and AMQP binary unchanged."""
    assert parse_json_event(to_json(event)) == event
    structured = to_amqp_structured(event)
    assert (
        parse_amqp_message(
            headers=structured.headers, content_type=structured.content_type, body=structured.body
        )
        == event
    )
    binary = to_amqp_binary(event)
    assert (
        parse_amqp_message(
            headers=binary.headers, content_type=binary.content_type, body=binary.body
        )
        == event
    )


@given(events())
def test_http_binary_round_trip_property(event: CloudEvent) -> None:
    """HTTP binary mode round-trips every event whose extensions are strings."""
    event = validate_event(
        {
            k: (str(v) if isinstance(v, int) and not isinstance(v, bool) else v)
            for k, v in event.attributes.items()
        }
    )
    message = to_http_binary(event)
    headers = dict(message.headers)
    if message.content_type is not None:
        headers["Content-Type"] = message.content_type
    parsed = parse_http_request(headers=headers, body=message.body)
    # Headers carry no types (a boolean extension comes back as text); the data is the body.
    expected = {
        k: (json.dumps(v) if isinstance(v, bool) and k != "data" else v)
        for k, v in event.attributes.items()
    }
    assert parsed.attributes == expected
