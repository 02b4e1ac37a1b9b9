"""Child specifications and the backoff formula."""

from __future__ import annotations

import random

import pytest

from workflow_orchestrator.supervision import ActorSpec, Backoff, SupervisorSpec


def test_backoff_doubles_up_to_the_cap() -> None:
    """Without jitter the delay is initial * multiplier**n, capped at maximum."""
    backoff = Backoff(initial=0.5, multiplier=2, maximum=3, jitter=0)
    rng = random.Random(0)
    assert [backoff.delay(n, rng) for n in range(5)] == [0.5, 1, 2, 3, 3]


def test_backoff_jitter_stays_within_bounds() -> None:
    """Jitter spreads the delay by at most +/- the fraction and never exceeds the cap."""
    backoff = Backoff(initial=1, multiplier=2, maximum=10, jitter=0.25)
    rng = random.Random(1)
    delays = [backoff.delay(1, rng) for _ in range(200)]
    assert min(delays) >= 1.5
    assert max(delays) <= 2.5
    assert len(set(delays)) > 1
    assert all(backoff.delay(10, rng) <= 10 for _ in range(50))


def test_backoff_none_restarts_at_once() -> None:
    """Backoff.none() gives a zero delay whatever the attempt."""
    assert Backoff.none().delay(50, random.Random(0)) == 0


def test_backoff_huge_attempt_does_not_overflow() -> None:
    """A child failing for a very long time still gets the capped delay."""
    assert Backoff(jitter=0).delay(10_000, random.Random(0)) == 30


def test_child_name_with_slash_is_rejected() -> None:
    """A child name is one path segment; a '/' is refused with advice."""
    with pytest.raises(ValueError, match="child name 'a/b' is not valid; use a non-empty name"):
        SupervisorSpec(name="a/b")


def test_duplicate_child_names_are_rejected() -> None:
    """A supervisor spec with two children of one name is refused, naming them."""
    with pytest.raises(ValueError, match=r"duplicate child names \['x'\]"):
        SupervisorSpec(name="s", children=[SupervisorSpec(name="x"), SupervisorSpec(name="x")])


def test_mailbox_capacity_must_be_positive() -> None:
    """A zero mailbox capacity is refused."""
    with pytest.raises(ValueError, match="mailbox_capacity must be > 0, got 0"):
        ActorSpec(name="a", factory=object, mailbox_capacity=0)  # type: ignore[arg-type]
