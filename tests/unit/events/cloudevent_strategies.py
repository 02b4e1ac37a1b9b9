"""Hypothesis strategies of valid CloudEvents, shared by the binding tests."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from workflow_orchestrator.events import CloudEvent, validate_event

__all__ = ["events"]

# PostgreSQL cannot store NUL, so events containing it are invalid (tested on their own).
_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_text = st.text(_chars, min_size=1, max_size=20)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(_chars, max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(_chars, max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_ext_name = st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True).filter(
    lambda n: (
        n not in {"id", "source", "type", "specversion", "data", "time", "subject"}
        and n not in {"datacontenttype", "dataschema"}
    )
)
_ext_value = st.text(_chars, max_size=10) | st.booleans() | st.integers(-(2**31), 2**31 - 1)
_time = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda t: t.isoformat().replace("+00:00", "Z"))
_payload = st.one_of(
    st.just({}),
    _json.map(lambda d: {"data": d}),
    _json.map(lambda d: {"datacontenttype": "application/json", "data": d}),
    st.text(_chars, min_size=1, max_size=20).map(
        lambda d: {"datacontenttype": "text/plain", "data": d}
    ),
    st.binary(min_size=1, max_size=20).map(
        lambda b: {
            "datacontenttype": "application/octet-stream",
            "data_base64": base64.b64encode(b).decode(),
        }
    ),
)


@st.composite
def events(draw: st.DrawFn) -> CloudEvent:
    """Valid CloudEvents with optional attributes, extensions and every kind of payload."""
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(_text),
        "source": draw(_text),
        "type": draw(_text),
    }
    if draw(st.booleans()):
        attributes["subject"] = draw(_text)
    if draw(st.booleans()):
        attributes["time"] = draw(_time)
    attributes.update(draw(st.dictionaries(_ext_name, _ext_value, max_size=3)))
    attributes.update(draw(_payload))
    return validate_event(attributes)
