"""CloudEvents 1.0 validation and the JSON event format, without I/O.

Events are the DSL's `CloudEvent`: its ``attributes`` hold the event in structured JSON form
(context attributes, extensions, and ``data`` or ``data_base64``), so the router can hand a
parsed event straight to the interpreter, whose ``listen`` filters match on those attributes.

Invariants of an event returned by this module (`validate_event` and every parser):

- ``id``, ``source``, ``type`` are non-empty strings and ``specversion`` is ``"1.0"``;
- ``datacontenttype``, ``dataschema``, ``subject`` are non-empty strings when present, and
  ``time`` is an RFC 3339 timestamp string (kept as sent, so ids and round trips are stable);
- extension names are 1-20 lower-case ASCII letters or digits and their values are strings,
  booleans or 32-bit integers; attributes set to JSON ``null`` are treated as absent;
- ``data`` is a JSON value when ``datacontenttype`` is JSON (or absent), else usually text;
  payloads that are not UTF-8 text travel as ``data_base64``; never both.

Every rejection is an `InvalidEvent` whose message says what is wrong and how to fix it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.storage import Unstorable, storable_json

MAX_EVENT_SIZE = 1024 * 1024
"""The default limit on an encoded event's size in bytes (1 MiB)."""

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
"""The media type of a CloudEvent in the JSON event format (structured mode)."""

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"

REQUIRED_ATTRIBUTES = ("id", "source", "specversion", "type")
OPTIONAL_ATTRIBUTES = ("datacontenttype", "dataschema", "subject", "time")
DATA_MEMBERS = ("data", "data_base64")

_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_INT32 = range(-(2**31), 2**31)
_REQUIRED_TEXT = "CloudEvents 1.0 requires id, source, specversion and type"


class InvalidEvent(OrchestratorError, ValueError):
    """A message or document is not a valid CloudEvent 1.0 of a supported binding.

    ``event_id`` and ``event_source`` are set when the event got far enough to have them, so a
    dead-letter log line can name the event.
    """

    def __init__(
        self, message: str, *, event_id: str | None = None, event_source: str | None = None
    ) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.event_source = event_source


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _fail(message: str, attributes: Mapping[str, Any]) -> InvalidEvent:
    return InvalidEvent(
        message,
        event_id=_text(attributes.get("id")),
        event_source=_text(attributes.get("source")),
    )


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "an empty string" if not value else repr(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def _quoted_list(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def media_type(content_type: str | None) -> str:
    """The lower-case media type of ``content_type`` without parameters (``""`` if none)."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_json_content_type(content_type: str | None) -> bool:
    """Whether data of ``content_type`` is JSON (absent counts as JSON, as the format says)."""
    kind = media_type(content_type)
    return kind in ("", "application/json", "text/json") or kind.endswith("+json")


def is_rfc3339(value: str) -> bool:
    """Whether ``value`` is an RFC 3339 timestamp with a valid date, time and offset."""
    if not _RFC3339.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def event_time(event: CloudEvent) -> datetime | None:
    """The event's ``time`` as an aware `datetime`, or None when it has no ``time``."""
    value = event.attributes.get("time")
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))


def event_data_bytes(event: CloudEvent) -> bytes | None:
    """The event's data as bytes, encoded per ``datacontenttype``; None when it has none.

    JSON data (or data without a content type) is JSON-encoded, text is UTF-8,
    ``data_base64`` is decoded.
    """
    attributes = event.attributes
    if "data_base64" in attributes:
        return base64.b64decode(attributes["data_base64"])
    if "data" not in attributes:
        return None
    data = attributes["data"]
    content_type = attributes.get("datacontenttype")
    if isinstance(data, str) and not is_json_content_type(content_type):
        return data.encode()
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _check_required(attributes: Mapping[str, Any]) -> None:
    missing = [n for n in REQUIRED_ATTRIBUTES if attributes.get(n) is None]
    if missing:
        noun = "attribute" if len(missing) == 1 else "attributes"
        raise _fail(
            f"the event has no {_quoted_list(missing)} {noun}; {_REQUIRED_TEXT}", attributes
        )
    version = attributes["specversion"]
    if version != "1.0":
        raise _fail(
            f"the event's specversion is {_describe(version)}; only CloudEvents 1.0 is "
            "supported: set specversion to '1.0'",
            attributes,
        )
    for name in ("id", "source", "type"):
        value = attributes[name]
        if not isinstance(value, str) or not value:
            raise _fail(
                f"the event's '{name}' attribute is {_describe(value)}; "
                "it must be a non-empty string",
                attributes,
            )


def _check_optional(attributes: Mapping[str, Any]) -> None:
    for name in OPTIONAL_ATTRIBUTES:
        value = attributes.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise _fail(
                f"the event's '{name}' attribute is {_describe(value)}; "
                "it must be a non-empty string",
                attributes,
            )
    time = attributes.get("time")
    if isinstance(time, str) and not is_rfc3339(time):
        raise _fail(
            f"the event's 'time' attribute {time!r} is not an RFC 3339 timestamp; "
            "use a form like '2024-05-01T12:00:00Z' or '2024-05-01T14:00:00.5+02:00'",
            attributes,
        )


def _check_extensions(attributes: Mapping[str, Any]) -> None:
    known = {*REQUIRED_ATTRIBUTES, *OPTIONAL_ATTRIBUTES, *DATA_MEMBERS}
    for name, value in attributes.items():
        if name in known or value is None:
            continue
        if not isinstance(name, str) or not _EXTENSION_NAME.fullmatch(name):
            raise _fail(
                f"the event's extension attribute {name!r} has an invalid name; CloudEvents "
                "attribute names are 1 to 20 lower-case letters a-z or digits 0-9",
                attributes,
            )
        if not (isinstance(value, str | bool) or (isinstance(value, int) and value in _INT32)):
            raise _fail(
                f"the event's extension attribute '{name}' is {_describe(value)}; extension "
                "values must be strings, booleans or 32-bit integers",
                attributes,
            )


def _check_data(attributes: Mapping[str, Any]) -> None:
    if "data_base64" not in attributes:
        return
    if "data" in attributes:
        raise _fail(
            "the event has both 'data' and 'data_base64'; send the payload in one of them",
            attributes,
        )
    encoded = attributes["data_base64"]
    try:
        if not isinstance(encoded, str):
            raise TypeError(encoded)
        base64.b64decode(encoded, validate=True)
    except (TypeError, ValueError):  # binascii.Error, and non-ASCII text, are ValueErrors
        raise _fail(
            "the event's 'data_base64' is not valid base64; encode binary data with "
            "standard base64 (RFC 4648, with padding)",
            attributes,
        ) from None


def validate_event(attributes: Mapping[str, Any]) -> CloudEvent:
    """Check a CloudEvent in structured form and return it as a `CloudEvent`.

    Attributes set to None are dropped (CloudEvents treats null as absent); the returned
    event's ``attributes`` is a fresh dict (nested ``data`` is shared, not copied).
    Raises `InvalidEvent` naming the first problem found, required attributes first.
    """
    cleaned = {k: v for k, v in attributes.items() if v is not None or k == "data"}
    _check_required(cleaned)
    _check_optional(cleaned)
    _check_extensions(cleaned)
    _check_data(cleaned)
    _check_storable(cleaned)
    return CloudEvent(attributes=cleaned)


def _check_storable(attributes: Mapping[str, Any]) -> None:
    """Refuse what PostgreSQL cannot store in ``jsonb`` (``storage.storable_json``): NaN and
    infinities, the NUL character, lone surrogates, nesting too deep. Such an event would fail
    its routing transaction on every delivery; refused here, it is dead-lettered alone."""
    try:
        storable_json(attributes, what="the event")
    except Unstorable as problem:
        raise _fail(str(problem), attributes) from None


def check_size(size: int, max_size: int) -> None:
    """Raise `InvalidEvent` when an encoded event of ``size`` bytes exceeds ``max_size``."""
    if size > max_size:
        raise InvalidEvent(
            f"the event is {size:,} bytes, over the limit of {max_size:,} bytes; "
            "send large payloads by reference (for example a URL in data)"
        )


def load_json(body: bytes | str, what: str) -> Any:
    """Decode JSON ``body``; ``what`` names the document in the error message."""
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise InvalidEvent(f"{what} is not UTF-8 text; encode the JSON as UTF-8") from None
    except RecursionError:
        raise InvalidEvent(f"{what} nests arrays or objects too deeply to read") from None
    except json.JSONDecodeError as error:
        raise InvalidEvent(
            f"{what} is not valid JSON: {error.msg} at line {error.lineno} column "
            f"{error.colno}; send the CloudEvent as a JSON object"
        ) from None


def parse_json_event(
    body: bytes | str,
    *,
    max_size: int = MAX_EVENT_SIZE,
    defaults: Mapping[str, Any] | None = None,
) -> CloudEvent:
    """Parse one CloudEvent in the JSON event format (``application/cloudevents+json``).

    ``defaults`` are attributes the event gets when it does not set them (or sets them to
    null), validated with the rest (the Kafka binding's ``partitionkey`` from the record key).
    Raises `InvalidEvent` when the body exceeds ``max_size`` bytes, is not JSON, is not a
    JSON object, or is not a valid CloudEvent.
    """
    size = len(body.encode() if isinstance(body, str) else body)
    check_size(size, max_size)
    document = load_json(body, "the event body")
    if not isinstance(document, dict):
        raise InvalidEvent(
            f"the event body is {_describe(document)}, not a JSON object; send one CloudEvent "
            "per message as a JSON object (batches are not supported)"
        )
    for name, value in (defaults or {}).items():
        if document.get(name) is None:
            document[name] = value
    return validate_event(document)


def to_json(event: CloudEvent) -> bytes:
    """The event in the JSON event format, UTF-8 encoded; `parse_json_event` reads it back.

    Raises `InvalidEvent` when the event is not valid, so nothing invalid is ever published.
    """
    checked = validate_event(event.attributes)
    return json.dumps(checked.attributes, ensure_ascii=False, separators=(",", ":")).encode()
