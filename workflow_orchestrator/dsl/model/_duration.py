"""Durations of the DSL: ISO 8601 strings, inline ``{days, hours, ...}`` objects, expressions.

ISO 8601 years and months have no fixed length; like other runtimes we count a year as 365 days
and a month as 30 days.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from workflow_orchestrator.errors import OrchestratorError

_ISO = re.compile(
    r"^P(?!$)(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
_ISO_FACTORS = (365 * 86400.0, 30 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0)
_INLINE_FACTORS = {
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
    "milliseconds": 0.001,
}


class InvalidDuration(OrchestratorError, ValueError):
    """A duration that is neither ISO 8601 nor an inline object (message says which form)."""


@attrs.frozen(kw_only=True)
class Duration:
    """A fixed number of seconds, or a runtime expression that evaluates to a duration."""

    seconds: float = 0.0
    expression: str | None = None


def parse_iso8601_duration(text: str) -> float:
    """Seconds in an ISO 8601 duration such as ``PT1M30S``."""
    match = _ISO.match(text.strip())
    if match is None:
        raise InvalidDuration(
            f"duration {text!r} is not ISO 8601; write it like 'PT30S' or 'P1DT2H'"
        )
    return sum(
        float(part) * factor
        for part, factor in zip(match.groups(), _ISO_FACTORS, strict=True)
        if part is not None
    )


def duration_seconds(value: Any) -> float:
    """Seconds in an evaluated duration value (ISO string or inline object)."""
    if isinstance(value, str):
        return parse_iso8601_duration(value)
    if isinstance(value, Mapping):
        unknown = set(value) - set(_INLINE_FACTORS)
        if unknown:
            raise InvalidDuration(
                f"duration has unknown fields {sorted(unknown)}; use {sorted(_INLINE_FACTORS)}"
            )
        return sum(float(value[k]) * f for k, f in _INLINE_FACTORS.items() if k in value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise InvalidDuration(
        f"duration {value!r} must be an ISO 8601 string or an object of days/hours/"
        "minutes/seconds/milliseconds"
    )


def build_duration(value: Any) -> Duration:
    """A `Duration` from a definition's duration field."""
    if isinstance(value, str) and value.strip().startswith("${"):
        return Duration(expression=value)
    return Duration(seconds=duration_seconds(value))
