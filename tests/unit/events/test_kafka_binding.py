"""The Kafka binding: structured and binary records, header case, the record key and
partitionkey, exact errors, and round trips."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.events.cloudevent_strategies import events
from workflow_orchestrator.events import (
    STRUCTURED_CONTENT_TYPE,
    CloudEvent,
    InvalidEvent,
    KafkaEncoded,
    parse_kafka_record,
    to_json,
    to_kafka_binary,
    to_kafka_structured,
    validate_event,
)

Headers = list[tuple[str, bytes | None]]

BASE = {"specversion": "1.0", "id": "e-1", "source": "/orders", "type": "order.created"}
STRUCTURED_VALUE = json.dumps({**BASE, "data": {"orderId": "o-7"}}).encode()
STRUCTURED: Headers = [("content-type", STRUCTURED_CONTENT_TYPE.encode())]


def ce_headers(prefix: str = "ce_", **extra: str) -> Headers:
    """The base attributes (and ``extra``) as Kafka headers named with ``prefix``."""
    return [(f"{prefix}{k}", v.encode()) for k, v in {**BASE, **extra}.items()]


def kafka_error(
    headers: Headers, value: bytes | None = b"", key: bytes | None = None, **options: int
) -> str:
    """The message `parse_kafka_record` raises for the record."""
    with pytest.raises(InvalidEvent) as caught:
        parse_kafka_record(headers, key, value, **options)
    return str(caught.value)


# -- structured mode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "content_type"),
    [
        ("content-type", STRUCTURED_CONTENT_TYPE),
        ("Content-Type", "application/cloudevents+json; charset=UTF-8"),
        ("CONTENT-TYPE", "Application/CloudEvents+JSON"),
    ],
)
def test_structured(header: str, content_type: str) -> None:
    """The structured content type (header name and value in any case) selects the JSON event."""
    parsed = parse_kafka_record([(header, content_type.encode())], None, STRUCTURED_VALUE)
    assert parsed.attributes == {**BASE, "data": {"orderId": "o-7"}}


def test_structured_ignores_attribute_headers() -> None:
    """In structured mode the value is the event; ce_ headers do not override it."""
    headers = [*ce_headers(id="other"), *STRUCTURED, ("ce_bad", b"\xff")]
    assert parse_kafka_record(headers, None, STRUCTURED_VALUE).attributes["id"] == "e-1"


def test_structured_errors_come_from_the_json_format() -> None:
    """A bad structured value is reported like any JSON event."""
    assert kafka_error(STRUCTURED, b"nope") == (
        "the event body is not valid JSON: Expecting value at line 1 column 1; send the "
        "CloudEvent as a JSON object"
    )
    assert kafka_error(STRUCTURED, b"[]") == (
        "the event body is an array, not a JSON object; send one CloudEvent per message as a "
        "JSON object (batches are not supported)"
    )


def test_structured_tombstone() -> None:
    """A structured record without a value is refused as a tombstone."""
    assert kafka_error(STRUCTURED, None) == (
        "the record has no value (a tombstone); in structured mode the value is the event in JSON"
    )


def test_batch_and_other_formats() -> None:
    """Batches and event formats other than JSON are refused with what to send instead."""
    batch = [("content-type", b"application/cloudevents-batch+json")]
    assert kafka_error(batch, b"[]") == (
        "batched CloudEvents (application/cloudevents-batch+json) are not supported; send one "
        "event per message"
    )
    avro = [("Content-Type", b"application/cloudevents+avro")]
    assert kafka_error(avro, b"x") == (
        "the event format 'application/cloudevents+avro' is not supported; use "
        "application/cloudevents+json (structured mode) or attribute headers (binary mode)"
    )


# -- binary mode -------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["ce_", "CE_", "Ce_"])
def test_binary(prefix: str) -> None:
    """ce_ headers (any case) are attributes, content-type is datacontenttype, the value is the
    data; other headers are ignored."""
    headers = [
        *ce_headers(prefix, subject="café"),
        ("Content-Type", b"application/json"),
        ("traceparent", b"00-abc-def-01"),
        ("ce-id", b"a dash is not the Kafka prefix"),
    ]
    parsed = parse_kafka_record(headers, None, b'{"orderId": "o-7"}')
    assert parsed.attributes == {
        **BASE,
        "subject": "café",
        "datacontenttype": "application/json",
        "data": {"orderId": "o-7"},
    }


@pytest.mark.parametrize(
    ("content_type", "value", "data"),
    [
        ("text/plain", b"hello", {"data": "hello"}),
        ("application/octet-stream", b"\x00\xff", {"data_base64": "AP8="}),
        ("text/plain", b"\xff", {"data_base64": "/w=="}),
        (None, b'{"a": 1}', {"data": {"a": 1}}),
        (None, b"plain words", {"data": "plain words"}),
        ("application/json", b"", {}),
        ("application/json", None, {}),
        (None, None, {}),
    ],
)
def test_binary_data(content_type: str | None, value: bytes | None, data: dict[str, Any]) -> None:
    """The data follows the AMQP rules; an empty value, or none at all (the binding's form of
    an event without data), is no data."""
    headers = ce_headers()
    if content_type:
        headers.append(("content-type", content_type.encode()))
    expected = {**BASE, **data}
    if content_type:
        expected["datacontenttype"] = content_type
    assert parse_kafka_record(headers, None, value).attributes == expected


def test_binary_null_header_is_an_absent_attribute() -> None:
    """A header without a value sets nothing (CloudEvents: null is absent)."""
    headers = [*ce_headers(), ("ce_subject", None), ("content-type", None)]
    assert parse_kafka_record(headers, None, b"").attributes == BASE


def test_binary_duplicate_headers() -> None:
    """Kafka allows repeated headers: equal repeats are one attribute, different ones refused."""
    same = [*ce_headers(), ("CE_ID", b"e-1")]
    assert parse_kafka_record(same, None, b"").attributes == BASE
    assert kafka_error([*ce_headers(), ("CE_ID", b"e-2")]) == (
        "the record sets attribute 'id' twice with different values ('ce_id' and 'CE_ID'); send "
        "each attribute once"
    )
    two_types = [*ce_headers(), ("content-type", b"text/plain"), ("Content-Type", b"text/csv")]
    assert kafka_error(two_types) == (
        "the record has two content-type headers with different values ('text/plain' and "
        "'text/csv'); send one"
    )


@pytest.mark.parametrize("header", ["ce_data", "CE_DATA_BASE64"])
def test_binary_data_header(header: str) -> None:
    """Data travels in the value in binary mode, never in a header."""
    assert kafka_error([*ce_headers(), (header, b"x")]) == (
        f"the record has a {header!r} header; in binary mode the data is the record value, so "
        "remove that header"
    )


def test_binary_header_values_must_be_utf8() -> None:
    """Attribute and content-type header values are UTF-8 text, as the binding requires."""
    assert kafka_error([*ce_headers(), ("ce_subject", b"\xff")]) == (
        "the record header 'ce_subject' is not UTF-8 text; the Kafka binding sends header "
        "values as UTF-8 strings"
    )
    assert kafka_error([*ce_headers(), ("content-type", b"\xfe")]) == (
        "the record header 'content-type' is not UTF-8 text; the Kafka binding sends header "
        "values as UTF-8 strings"
    )


def test_binary_events_are_validated() -> None:
    """Binary-mode attributes are checked like structured ones."""
    headers = [h for h in ce_headers() if h[0] != "ce_source"]
    assert kafka_error(headers) == (
        "the event has no 'source' attribute; CloudEvents 1.0 requires id, source, "
        "specversion and type"
    )
    assert kafka_error(ce_headers(time="yesterday")) == (
        "the event's 'time' attribute 'yesterday' is not an RFC 3339 timestamp; use a form like "
        "'2024-05-01T12:00:00Z' or '2024-05-01T14:00:00.5+02:00'"
    )
    assert kafka_error(ce_headers(**{"Bad-Name": "x"})) == (
        "the event's extension attribute 'bad-name' has an invalid name; CloudEvents attribute "
        "names are 1 to 20 lower-case letters a-z or digits 0-9"
    )


def test_not_a_cloud_event() -> None:
    """A record with neither the structured type nor ce_ headers is named as such; so is a
    tombstone."""
    assert kafka_error([("content-type", b"text/plain")], b"hi") == (
        "the message is not a CloudEvent: it has no 'ce_' headers and its content type is "
        "'text/plain', not 'application/cloudevents+json'; send the event in structured or "
        "binary mode"
    )
    assert "its content type is not set," in kafka_error([], b"{}")
    assert kafka_error([("traceparent", b"x")], None, key=b"order-7") == (
        "the record has no value (a tombstone) and no 'ce_' headers, so it is not a CloudEvent; "
        "send the event in structured or binary mode"
    )


def test_size_limit() -> None:
    """The limit covers the attribute headers, the content type, the value and a key used as
    partitionkey."""
    headers = [*ce_headers(), ("content-type", b"text/plain")]
    used = sum(len(name) + len(value or b"") for name, value in headers) - len("content-type")
    value = b"x" * (100 - used - 3)
    assert parse_kafka_record(headers, b"k-1", value, max_size=100)
    assert kafka_error(headers, value + b"x", key=b"k-1", max_size=100) == (
        "the event is 101 bytes, over the limit of 100 bytes; send large payloads by reference "
        "(for example a URL in data)"
    )
    # A key that is not used (not UTF-8) does not count.
    assert parse_kafka_record(headers, b"\xff" * 50, value + b"xxx", max_size=100)
    structured = json.dumps(BASE).encode()
    assert parse_kafka_record(STRUCTURED, None, structured, max_size=len(structured))
    assert "over the limit" in kafka_error(STRUCTURED, structured, b"k", max_size=len(structured))


# -- the record key ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["structured", "binary"])
def test_the_key_becomes_partitionkey(mode: str) -> None:
    """A key that is UTF-8 text is the partitionkey of an event that has none."""
    if mode == "structured":
        parsed = parse_kafka_record(STRUCTURED, "order-7 ✓".encode(), STRUCTURED_VALUE)
        assert parsed.attributes == {
            **BASE,
            "data": {"orderId": "o-7"},
            "partitionkey": "order-7 ✓",
        }
    else:
        parsed = parse_kafka_record(ce_headers(), "order-7 ✓".encode(), b"")
        assert parsed.attributes == {**BASE, "partitionkey": "order-7 ✓"}


def test_the_events_own_partitionkey_wins() -> None:
    """An event's partitionkey attribute is kept whatever the key (a null one is absent)."""
    own = json.dumps({**BASE, "partitionkey": "mine"}).encode()
    assert parse_kafka_record(STRUCTURED, b"key", own).attributes["partitionkey"] == "mine"
    null = json.dumps({**BASE, "partitionkey": None}).encode()
    assert parse_kafka_record(STRUCTURED, b"key", null).attributes["partitionkey"] == "key"
    headers = ce_headers(partitionkey="mine")
    assert parse_kafka_record(headers, b"key", b"").attributes["partitionkey"] == "mine"


@pytest.mark.parametrize("key", [None, b"", b"\xff\xfe", b"a\x00b"])
def test_keys_that_are_not_text_are_ignored(key: bytes | None) -> None:
    """No key, an empty key, a key that is not UTF-8 or holds NUL sets no partitionkey and is
    not an error."""
    assert parse_kafka_record(ce_headers(), key, b"").attributes == BASE
    assert parse_kafka_record(STRUCTURED, key, json.dumps(BASE).encode()).attributes == BASE


# -- encoding ------------------------------------------------------------------------------------


def test_to_kafka_structured() -> None:
    """The JSON event as the value, the structured content type, the key from partitionkey."""
    event = validate_event({**BASE, "data": {"orderId": "o-7"}})
    assert to_kafka_structured(event) == KafkaEncoded(
        headers=(("content-type", b"application/cloudevents+json"),),
        key=None,
        value=to_json(event),
    )
    assert to_kafka_structured(event, key="order-7").key == b"order-7"
    keyed = validate_event({**BASE, "partitionkey": "p-1"})
    assert to_kafka_structured(keyed).key == b"p-1"
    assert to_kafka_structured(keyed, key="other").key == b"other"


def test_to_kafka_binary() -> None:
    """ce_ headers as UTF-8 text (booleans true/false), content-type, the data as the value."""
    event = validate_event(
        {
            **BASE,
            "subject": "café",
            "datacontenttype": "text/plain",
            "flag": True,
            "n": -3,
            "partitionkey": 42,
            "data": "hello",
        }
    )
    assert to_kafka_binary(event) == KafkaEncoded(
        headers=(
            ("ce_specversion", b"1.0"),
            ("ce_id", b"e-1"),
            ("ce_source", b"/orders"),
            ("ce_type", b"order.created"),
            ("ce_subject", "café".encode()),
            ("ce_flag", b"true"),
            ("ce_n", b"-3"),
            ("ce_partitionkey", b"42"),
            ("content-type", b"text/plain"),
        ),
        key=b"42",
        value=b"hello",
    )


def test_to_kafka_binary_without_data_is_no_tombstone() -> None:
    """An event without data has an empty value (never None) and no content-type header."""
    encoded = to_kafka_binary(validate_event(BASE), key="k")
    assert (encoded.value, encoded.key) == (b"", b"k")
    assert [name for name, _ in encoded.headers] == [f"ce_{k}" for k in BASE]


def test_serializers_refuse_invalid_events() -> None:
    """No Kafka serializer produces an invalid event."""
    bad = CloudEvent(attributes={**BASE, "time": "later"})
    for serialize in (to_kafka_structured, to_kafka_binary):
        with pytest.raises(InvalidEvent, match="is not an RFC 3339 timestamp"):
            serialize(bad)


# -- round-trip properties ------------------------------------------------------------------------


def parse(encoded: KafkaEncoded) -> CloudEvent:
    return parse_kafka_record(list(encoded.headers), encoded.key, encoded.value)


def as_header_text(event: CloudEvent) -> dict[str, Any]:
    """The attributes as binary mode carries them: extension values are text."""
    return {
        k: (
            json.dumps(v)
            if isinstance(v, bool) and k != "data"
            else str(v)
            if isinstance(v, int) and not isinstance(v, bool) and k != "data"
            else v
        )
        for k, v in event.attributes.items()
    }


@given(events())
def test_structured_round_trip(event: CloudEvent) -> None:
    """Every valid event survives structured mode unchanged (its partitionkey as the key)."""
    encoded = to_kafka_structured(event)
    assert parse(encoded) == event


@given(events())
def test_binary_round_trip(event: CloudEvent) -> None:
    """Every valid event survives binary mode, extension values as text (headers carry no
    types)."""
    assert parse(to_kafka_binary(event)).attributes == as_header_text(event)


_keys = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@given(events(), _keys)
def test_a_key_round_trips_as_partitionkey(event: CloudEvent, key: str) -> None:
    """A key given when encoding comes back as partitionkey when the event has none."""
    expected = dict(event.attributes)
    if key and expected.get("partitionkey") is None:
        expected["partitionkey"] = key
    assert parse(to_kafka_structured(event, key=key)).attributes == expected
    assert parse(to_kafka_binary(event, key=key)).attributes == as_header_text(
        CloudEvent(attributes=expected)
    )


@pytest.mark.parametrize("mode", ["structured", "binary"])
def test_data_nested_too_deeply_to_read_is_an_invalid_event(mode: str) -> None:
    """A value that nests 100,000 arrays (about 200 KB) is refused with a reason, never a
    RecursionError that would end the source and come back after every restart."""
    deep = b"[" * 100_000 + b"]" * 100_000
    if mode == "structured":
        headers: list[tuple[str, bytes | None]] = [
            ("content-type", b"application/cloudevents+json")
        ]
        value = b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":' + deep + b"}"
    else:
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"1"),
            ("ce_source", b"/s"),
            ("ce_type", b"t"),
        ]
        value = deep
    with pytest.raises(InvalidEvent, match="nests arrays or objects too deeply"):
        parse_kafka_record(headers, None, value)
