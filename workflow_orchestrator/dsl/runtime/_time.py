"""Time helpers: ISO 8601 text and the spec's dateTime descriptor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

_LAST_ISO: list[Any] = [None, ""]
_LAST_DESCRIPTOR: list[Any] = [None, None]


def iso(moment: datetime) -> str:
    """``moment`` as ISO 8601 text in UTC with a ``Z`` suffix (memoizes the last call)."""
    if moment is _LAST_ISO[0]:
        return str(_LAST_ISO[1])
    text = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    _LAST_ISO[0], _LAST_ISO[1] = moment, text
    return text


def parse_iso(text: str) -> datetime:
    """The aware datetime of ISO 8601 ``text`` (as written by `iso`)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def plus_seconds(moment: datetime, seconds: float) -> datetime:
    """``moment`` plus ``seconds``."""
    return moment + timedelta(seconds=seconds)


def descriptor(moment: datetime) -> dict[str, Any]:
    """The spec's dateTime descriptor (``iso8601``, ``epoch.seconds``, ``epoch.milliseconds``).

    The result is shared with other callers for the same moment; treat it as read-only.
    """
    if moment is _LAST_DESCRIPTOR[0]:
        return _LAST_DESCRIPTOR[1]  # type: ignore[no-any-return]
    stamp = moment.timestamp()
    value = {
        "iso8601": iso(moment),
        "epoch": {"seconds": int(stamp), "milliseconds": int(stamp * 1000)},
    }
    _LAST_DESCRIPTOR[0], _LAST_DESCRIPTOR[1] = moment, value
    return value
