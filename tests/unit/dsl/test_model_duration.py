"""Durations: ISO 8601, inline objects and expressions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow_orchestrator.dsl.model import (
    Duration,
    InvalidDuration,
    duration_seconds,
    parse_iso8601_duration,
)
from workflow_orchestrator.dsl.model._duration import build_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT30S", 30), ("PT1M30S", 90), ("P1DT2H", 93600), ("PT0.5S", 0.5), ("P1W", 604800)],
)
def test_iso8601_durations(text: str, seconds: float) -> None:
    """ISO 8601 durations convert to seconds."""
    assert parse_iso8601_duration(text) == seconds


def test_invalid_iso_duration_says_how_to_write_one() -> None:
    """A malformed duration names itself and shows valid forms."""
    with pytest.raises(InvalidDuration) as caught:
        parse_iso8601_duration("30 seconds")
    assert str(caught.value) == (
        "duration '30 seconds' is not ISO 8601; write it like 'PT30S' or 'P1DT2H'"
    )


def test_inline_duration_rejects_unknown_fields() -> None:
    """Inline durations accept only days/hours/minutes/seconds/milliseconds."""
    with pytest.raises(InvalidDuration) as caught:
        duration_seconds({"weeks": 1})
    assert "unknown fields ['weeks']" in str(caught.value)


def test_expression_durations_are_kept_for_run_time() -> None:
    """A ``${...}`` duration is evaluated by the interpreter, not at build time."""
    assert build_duration("${ .delay }") == Duration(expression="${ .delay }")


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "days": st.integers(0, 30),
            "hours": st.integers(0, 23),
            "minutes": st.integers(0, 59),
            "seconds": st.integers(0, 59),
        },
    ).filter(bool)
)
def test_inline_and_iso_forms_agree(parts: dict[str, int]) -> None:
    """The inline form and the equivalent ISO 8601 text give the same seconds."""
    text = "P" + (f"{parts['days']}D" if "days" in parts else "")
    time = "".join(
        f"{parts[k]}{u}"
        for k, u in (("hours", "H"), ("minutes", "M"), ("seconds", "S"))
        if k in parts
    )
    if time:
        text += "T" + time
    if text == "P":
        return
    assert parse_iso8601_duration(text) == duration_seconds(parts)
