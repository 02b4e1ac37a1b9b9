"""The health documents' formats: the deployment guide's timestamps, uptime and latency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from workflow_orchestrator.gateway import format_duration_ms, format_timestamp, format_uptime


def test_timestamps_are_utc_whole_seconds_with_z() -> None:
    """A time is written as the guide's 2023-08-01T15:30:45Z, whatever its zone and fraction."""
    moment = datetime(2023, 8, 1, 15, 30, 45, 987654, tzinfo=UTC)
    assert format_timestamp(moment) == "2023-08-01T15:30:45Z"
    paris = moment.astimezone(timezone(timedelta(hours=2)))
    assert format_timestamp(paris) == "2023-08-01T15:30:45Z"
    assert format_timestamp(moment.replace(tzinfo=None)) == "2023-08-01T15:30:45Z"


def test_uptime_and_latency_read_like_the_guide() -> None:
    """Uptime reads like '5d 12h 30m' and latency like '2ms'."""
    assert format_uptime(5 * 86400 + 12 * 3600 + 30 * 60 + 59) == "5d 12h 30m"
    assert format_uptime(0) == "0d 0h 0m"
    assert format_duration_ms(0.0024) == "2ms"
