"""CloudEvents 1.0 validation and the JSON event format: accepted shapes and exact error texts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.events import (
    CloudEvent,
    InvalidEvent,
    event_data_bytes,
    event_time,
    is_json_content_type,
    parse_json_event,
    to_json,
    validate_event,
)

BASE = {"specversion": "1.0", "id": "e-1", "source": "/orders", "type": "order.created"}
REQUIRED = "CloudEvents 1.0 requires id, source, specversion and type"


def event(**changes: Any) -> dict[str, Any]:
    """A valid structured event with ``changes`` applied."""
    return {**BASE, **changes}


def body(**changes: Any) -> bytes:
    """The JSON body of `event`."""
    return json.dumps(event(**changes)).encode()


def rejection(document: dict[str, Any]) -> str:
    """The message `validate_event` raises for ``document``."""
    with pytest.raises(InvalidEvent) as caught:
        validate_event(document)
    return str(caught.value)


def test_minimal_event_parses_to_the_dsl_cloud_event() -> None:
    """A minimal JSON event becomes the DSL's CloudEvent with the attributes as sent."""
    parsed = parse_json_event(body())
    assert parsed == CloudEvent(attributes=BASE)
    assert parsed.key == "/orders#e-1"
    assert parsed.type == "order.created"


def test_full_event_keeps_every_attribute() -> None:
    """Optional attributes, extensions and JSON data survive parsing unchanged."""
    document = event(
        datacontenttype="application/json",
        dataschema="https://example.com/order.json",
        subject="order-7",
        time="2024-05-01T12:00:00.250+02:00",
        traceparent="00-abc-def-01",
        priority=3,
        urgent=True,
        data={"orderId": "o-7", "items": [1, 2]},
    )
    assert parse_json_event(json.dumps(document)).attributes == document


def test_null_attributes_count_as_absent() -> None:
    """Attributes set to null are dropped, as CloudEvents treats null as absent."""
    parsed = validate_event(event(subject=None, myext=None))
    assert parsed.attributes == BASE


def test_error_is_an_orchestrator_error_and_a_value_error() -> None:
    """InvalidEvent can be caught as OrchestratorError or ValueError."""
    assert issubclass(InvalidEvent, OrchestratorError)
    assert issubclass(InvalidEvent, ValueError)


def test_error_carries_the_event_id_and_source_when_known() -> None:
    """The error names the event it rejected, so dead-letter logs can say which one."""
    with pytest.raises(InvalidEvent) as caught:
        validate_event(event(time="soon"))
    assert (caught.value.event_id, caught.value.event_source) == ("e-1", "/orders")
    with pytest.raises(InvalidEvent) as caught:
        parse_json_event(b"[")
    assert (caught.value.event_id, caught.value.event_source) == (None, None)


@pytest.mark.parametrize("name", ["id", "source", "specversion", "type"])
def test_missing_required_attribute(name: str) -> None:
    """A missing required attribute is named with the full list of required ones."""
    document = event()
    del document[name]
    assert rejection(document) == f"the event has no '{name}' attribute; {REQUIRED}"


def test_several_missing_attributes_are_all_named() -> None:
    """All missing required attributes are listed in spec order."""
    assert rejection({"specversion": "1.0", "source": "/s"}) == (
        f"the event has no 'id' and 'type' attributes; {REQUIRED}"
    )
    assert rejection({}) == (
        f"the event has no 'id', 'source', 'specversion' and 'type' attributes; {REQUIRED}"
    )


@pytest.mark.parametrize(
    ("value", "shown"), [("0.3", "'0.3'"), (1.0, "the number 1.0"), ("", "an empty string")]
)
def test_unsupported_specversion(value: Any, shown: str) -> None:
    """Only specversion '1.0' is accepted and the message says what to set."""
    assert rejection(event(specversion=value)) == (
        f"the event's specversion is {shown}; only CloudEvents 1.0 is supported: "
        "set specversion to '1.0'"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [("", "an empty string"), (7, "the number 7"), (True, "a boolean"), ([], "an array")],
)
def test_required_attribute_must_be_a_non_empty_string(value: Any, shown: str) -> None:
    """id, source and type must be non-empty strings."""
    assert rejection(event(source=value)) == (
        f"the event's 'source' attribute is {shown}; it must be a non-empty string"
    )


@pytest.mark.parametrize("name", ["datacontenttype", "dataschema", "subject", "time"])
def test_optional_attribute_must_be_a_non_empty_string(name: str) -> None:
    """Optional context attributes, when present, are non-empty strings."""
    assert rejection(event(**{name: {}})) == (
        f"the event's '{name}' attribute is an object; it must be a non-empty string"
    )


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01",
        "2024-05-01T12:00:00",
        "2024-13-01T12:00:00Z",
        "2024-02-30T12:00:00Z",
        "2024-05-01T25:00:00Z",
        "yesterday",
        "2024-05-01T12:00:00+0200",
    ],
)
def test_time_must_be_rfc3339(value: str) -> None:
    """A time that is not an RFC 3339 timestamp (with offset and valid date) is rejected."""
    assert rejection(event(time=value)) == (
        f"the event's 'time' attribute {value!r} is not an RFC 3339 timestamp; use a form like "
        "'2024-05-01T12:00:00Z' or '2024-05-01T14:00:00.5+02:00'"
    )


@pytest.mark.parametrize(
    "value", ["2024-05-01T12:00:00Z", "2024-05-01t12:00:00.123456789z", "2024-05-01T12:00:00-05:30"]
)
def test_time_accepts_rfc3339_forms(value: str) -> None:
    """Z or numeric offsets, any fraction digits and lower-case t/z are RFC 3339."""
    assert validate_event(event(time=value)).attributes["time"] == value


def test_event_time_is_an_aware_datetime() -> None:
    """event_time converts the time attribute; events without one give None."""
    moment = event_time(validate_event(event(time="2024-05-01T14:00:00+02:00")))
    assert moment == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert moment is not None
    assert moment.utcoffset() == timedelta(hours=2)
    assert event_time(validate_event(event(time="2024-05-01T12:00:00Z"))) == datetime(
        2024, 5, 1, 12, tzinfo=UTC
    )
    assert event_time(validate_event(event())) is None


@pytest.mark.parametrize("name", ["Bad", "my_ext", "my-ext", "abcdefghijklmnopqrstu", "ümlaut", ""])
def test_extension_names(name: str) -> None:
    """Extension names are 1-20 lower-case ASCII letters or digits."""
    assert rejection(event(**{name: "x"})) == (
        f"the event's extension attribute {name!r} has an invalid name; CloudEvents attribute "
        "names are 1 to 20 lower-case letters a-z or digits 0-9"
    )


def test_extension_name_of_twenty_characters_is_accepted() -> None:
    """Twenty characters is the limit, inclusive."""
    assert validate_event(event(abcdefghijklmnopqrst="x")).attributes["abcdefghijklmnopqrst"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ({"a": 1}, "an object"),
        ([1], "an array"),
        (1.5, "the number 1.5"),
        (2**31, "the number 2147483648"),
    ],
)
def test_extension_values(value: Any, shown: str) -> None:
    """Extension values are strings, booleans or 32-bit integers."""
    assert rejection(event(myext=value)) == (
        f"the event's extension attribute 'myext' is {shown}; extension values must be "
        "strings, booleans or 32-bit integers"
    )


def test_data_and_data_base64_together() -> None:
    """An event carries its payload in data or data_base64, not both."""
    assert rejection(event(data=1, data_base64="AA==")) == (
        "the event has both 'data' and 'data_base64'; send the payload in one of them"
    )


@pytest.mark.parametrize("value", ["not base64!", "AAA", 12, "AA\u00e9="])
def test_bad_data_base64(value: Any) -> None:
    """data_base64 must be standard, padded base64 text."""
    assert rejection(event(data_base64=value)) == (
        "the event's 'data_base64' is not valid base64; encode binary data with standard "
        "base64 (RFC 4648, with padding)"
    )


def test_bad_json() -> None:
    """A body that is not JSON names the decoder's complaint and position."""
    with pytest.raises(InvalidEvent) as caught:
        parse_json_event(b'{"id": ')
    assert str(caught.value) == (
        "the event body is not valid JSON: Expecting value at line 1 column 8; send the "
        "CloudEvent as a JSON object"
    )


def test_json_that_is_not_utf8() -> None:
    """A body in a non-UTF encoding is rejected with a hint to use UTF-8."""
    with pytest.raises(InvalidEvent) as caught:
        parse_json_event(b'{"id": "\xff"}')
    assert str(caught.value) == "the event body is not UTF-8 text; encode the JSON as UTF-8"


@pytest.mark.parametrize(("document", "shown"), [([], "an array"), ("x", "'x'"), (None, "null")])
def test_json_that_is_not_an_object(document: Any, shown: str) -> None:
    """The body must be one JSON object: batches and scalars are rejected."""
    with pytest.raises(InvalidEvent) as caught:
        parse_json_event(json.dumps(document))
    assert str(caught.value) == (
        f"the event body is {shown}, not a JSON object; send one CloudEvent per message as a "
        "JSON object (batches are not supported)"
    )


def test_oversized_event() -> None:
    """Bodies over max_size are rejected before parsing, with both sizes in the message."""
    big = body(data="x" * 2_000_000)
    with pytest.raises(InvalidEvent) as caught:
        parse_json_event(big)
    assert str(caught.value) == (
        f"the event is {len(big):,} bytes, over the limit of 1,048,576 bytes; send large "
        "payloads by reference (for example a URL in data)"
    )
    assert parse_json_event(big, max_size=len(big)).attributes["data"] == "x" * 2_000_000
    with pytest.raises(InvalidEvent, match="over the limit of 10 bytes"):
        parse_json_event(body(), max_size=10)


def test_to_json_round_trips_and_is_compact_utf8() -> None:
    """to_json writes compact UTF-8 JSON that parse_json_event reads back equal."""
    original = validate_event(event(subject="café", data={"n": [1, None]}))
    encoded = to_json(original)
    assert "café".encode() in encoded
    assert b", " not in encoded
    assert parse_json_event(encoded) == original


def test_to_json_refuses_invalid_events() -> None:
    """Serialization validates first, so an invalid event is never published."""
    with pytest.raises(InvalidEvent) as caught:
        to_json(CloudEvent(attributes={"specversion": "1.0", "id": "1", "type": "t"}))
    assert str(caught.value) == f"the event has no 'source' attribute; {REQUIRED}"


def test_emitted_dsl_events_validate() -> None:
    """Events built like the interpreter's emit and lifecycle events are valid as they are."""
    emitted = CloudEvent(
        attributes={
            "specversion": "1.0",
            "id": "6d0f1c2e-0000-5000-8000-000000000000",
            "source": "urn:workflow-orchestrator",
            "type": "io.serverlessworkflow.workflow.started.v1",
            "time": "2024-05-01T12:00:00.123456+00:00",
            "datacontenttype": "application/json",
            "data": {"name": "order"},
        }
    )
    assert validate_event(emitted.attributes) == emitted


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, True),
        ("", True),
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("text/json", True),
        ("application/vnd.order+json", True),
        ("text/plain", False),
        ("application/octet-stream", False),
    ],
)
def test_json_content_types(content_type: str | None, expected: bool) -> None:
    """JSON is application/json, text/json, any +json type, or no content type at all."""
    assert is_json_content_type(content_type) is expected


def test_event_data_bytes() -> None:
    """Data is encoded per its content type: JSON, UTF-8 text, or decoded base64."""
    assert event_data_bytes(validate_event(event())) is None
    assert event_data_bytes(validate_event(event(data={"a": "é"}))) == '{"a":"é"}'.encode()
    assert event_data_bytes(validate_event(event(data="hi"))) == b'"hi"'
    text = validate_event(event(datacontenttype="text/plain", data="hi"))
    assert event_data_bytes(text) == b"hi"
    assert event_data_bytes(validate_event(event(data_base64="AP8="))) == b"\x00\xff"


def test_nan_and_infinity_are_refused() -> None:
    """NaN cannot be stored as JSON: the event is invalid, not a routing failure forever."""
    text = '{"specversion": "1.0", "id": "e-1", "source": "/o", "type": "t", "data": {"x": NaN}}'
    with pytest.raises(InvalidEvent) as caught:
        parse_json_event(text)
    assert str(caught.value) == (
        "the event holds nan, which JSON does not allow; use a number, null or a string at /data/x"
    )


def test_nul_character_is_refused_but_an_escaped_backslash_is_not() -> None:
    """A NUL anywhere is refused (PostgreSQL cannot store it); the text '\\u0000' is fine."""
    assert rejection(event(data={"note": "a\x00b"})) == (
        "the event holds the NUL character (\\u0000), which PostgreSQL cannot store; remove it "
        "or encode the value (for example base64) at /data/note"
    )
    kept = parse_json_event(body(data={"note": "a\\u0000b"}))
    assert kept.attributes["data"] == {"note": "a\\u0000b"}


def test_lone_surrogate_and_deep_nesting_are_refused() -> None:
    """A lone surrogate and nesting deeper than JSON can encode are refused where they are."""
    deep: Any = 0
    for _ in range(1_500):
        deep = [deep]
    assert rejection(event(data={"name": "\ud83d"})) == (
        "the event holds a lone UTF-16 surrogate, which is not valid Unicode; send valid UTF-8 "
        "text at /data/name"
    )
    assert rejection(event(data=deep)).startswith("the event nests deeper than 256 levels")
