"""Retrying after a failure: the pause before the next attempt, growing while failures repeat.

``RetryBackoff`` is the one backoff of the packages that reconnect or retry an external call
(a broker, the database): exponential from ``initial`` up to ``maximum``, with a random part
(``jitter``) so that replicas that failed together do not retry together, and a reset when an
attempt succeeds. It only computes delays (no I/O, no clock): callers sleep with their own
clock (``await trio.sleep(backoff.failed())``), so tests drive it under Trio's mock clock.
Every package may import this module; it imports nothing of ours.
"""

from __future__ import annotations

import math
import random

import attrs

__all__ = ["RetryBackoff", "backoff_step"]

# 2**60 times any sensible initial delay is past any maximum: the exponent stops growing there.
_MAX_EXPONENT = 60


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _fraction(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value!r}")


def backoff_step(attempt: int, *, initial: float, maximum: float) -> float:
    """The pause before retry ``attempt`` (1, 2, ...) without jitter: ``initial``, doubling
    each attempt, never above ``maximum`` (``initial`` for an attempt below 1)."""
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    return min(maximum, initial * math.pow(2, exponent))


@attrs.define(eq=False)
class RetryBackoff:
    """The pauses between the attempts of one retry loop (not shared between loops).

    ``failed()`` counts a failure and returns the pause before the next attempt: the step of
    ``backoff_step`` for that many failures, of which the fraction ``jitter`` is random
    (``step * (1 - jitter) + uniform(0, step * jitter)``; 0 makes it exact, 0.5 "half fixed,
    half random"). ``succeeded()`` resets the count and returns the failures it ended, so a
    caller can log the recovery once.
    """

    initial: float = attrs.field(validator=_non_negative)
    maximum: float = attrs.field(validator=_non_negative)
    jitter: float = attrs.field(default=0.5, validator=_fraction)
    rng: random.Random = attrs.field(factory=random.Random, repr=False)
    failures: int = attrs.field(default=0, init=False)

    def failed(self) -> float:
        """Count a failed attempt; the pause (seconds) before the next one."""
        self.failures += 1
        step = backoff_step(self.failures, initial=self.initial, maximum=self.maximum)
        if not self.jitter:
            return step
        return step * (1 - self.jitter) + self.rng.uniform(0, step * self.jitter)

    def succeeded(self) -> int:
        """Reset after a successful attempt; how many failures preceded it (0: none)."""
        failures, self.failures = self.failures, 0
        return failures
