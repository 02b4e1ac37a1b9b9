"""The shared retry backoff: exponential, capped, jittered within its bounds, reset on success."""

from __future__ import annotations

import random

import pytest

from workflow_orchestrator.retrying import RetryBackoff, backoff_step


def test_steps_double_up_to_the_maximum() -> None:
    """0.1, 0.2, 0.4, ... capped at the maximum, also for huge attempt numbers."""
    steps = [backoff_step(n, initial=0.1, maximum=1.0) for n in (0, 1, 2, 3, 4, 5, 10_000)]
    assert steps == pytest.approx([0.1, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_without_jitter_the_delays_are_the_steps() -> None:
    """jitter=0 gives the exact step of each failure."""
    backoff = RetryBackoff(initial=0.5, maximum=2.0, jitter=0.0)
    assert [backoff.failed() for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]


def test_jitter_keeps_the_fixed_part() -> None:
    """With jitter 0.5 every delay lies between half the step and the step."""
    backoff = RetryBackoff(initial=1.0, maximum=8.0, rng=random.Random(7))
    for step in (1.0, 2.0, 4.0, 8.0, 8.0):
        assert step / 2 <= backoff.failed() <= step


def test_success_resets_and_reports_the_failures() -> None:
    """succeeded() returns the failures it ended and starts again from the initial delay."""
    backoff = RetryBackoff(initial=0.2, maximum=5.0, jitter=0.0)
    backoff.failed()
    backoff.failed()
    assert backoff.succeeded() == 2
    assert backoff.succeeded() == 0
    assert backoff.failed() == 0.2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"initial": -1.0, "maximum": 1.0}, "initial must be >= 0, got -1.0"),
        (
            {"initial": 1.0, "maximum": 1.0, "jitter": 1.5},
            "jitter must be between 0 and 1, got 1.5",
        ),
    ],
)
def test_invalid_settings_are_refused(fields: dict[str, float], message: str) -> None:
    """A negative delay or a jitter outside 0..1 is a ValueError naming the field."""
    with pytest.raises(ValueError, match=message):
        RetryBackoff(**fields)
