"""Child specifications: what a supervisor starts, how it restarts and stops it.

Three kinds of child share ``ChildSpec``'s fields:

- ``ActorSpec``: a message-driven actor made by ``factory()``.
- ``ServiceSpec``: any long-running ``async def run(*, task_status)`` (storage, HTTP gateways);
  it is ready when it calls ``task_status.started(value)``.
- ``SupervisorSpec``: a nested supervisor with its own strategy and children.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

if TYPE_CHECKING:
    from workflow_orchestrator.actors._actor import Actor

M = TypeVar("M")


class RestartStrategy(enum.Enum):
    """Which children restart when one fails (OTP semantics)."""

    ONE_FOR_ONE = "one_for_one"
    """Only the failed child."""
    ONE_FOR_ALL = "one_for_all"
    """All children: the others are stopped in reverse start order, then all restart."""
    REST_FOR_ONE = "rest_for_one"
    """The failed child and every child started after it."""


class Restart(enum.Enum):
    """When a child that exits is restarted (OTP restart types)."""

    PERMANENT = "permanent"
    """Always, also after a normal exit."""
    TRANSIENT = "transient"
    """Only after a failure; a normal exit removes it."""
    TEMPORARY = "temporary"
    """Never; any exit removes it (and a sibling's restart does not bring it back)."""


def _check_name(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or "/" in value or value in {".", ".."}:
        raise ValueError(
            f"child name {value!r} is not valid; use a non-empty name without '/' "
            "(it becomes one segment of the actor path)"
        )


def _positive(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Backoff:
    """Delay before restart number n (0-based) of a child that keeps failing.

    ``min(maximum, initial * multiplier**n)`` spread by +/- ``jitter`` (a fraction) and
    capped at ``maximum``. The count resets when a child has not failed for ``reset_after``
    seconds. ``Backoff.none()`` restarts at once (OTP's behaviour).
    """

    initial: float = attrs.field(default=0.1, validator=_non_negative)
    maximum: float = attrs.field(default=30.0, validator=_non_negative)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    jitter: float = attrs.field(default=0.2, validator=_non_negative)
    reset_after: float = attrs.field(default=60.0, validator=_non_negative)

    @classmethod
    def none(cls) -> Backoff:
        return cls(initial=0.0, maximum=0.0, jitter=0.0)

    def delay(self, attempt: int, rng: random.Random) -> float:
        if self.maximum == 0 or self.initial == 0:
            return 0.0
        # Cap the exponent so a long-failing child cannot overflow the float.
        base = self.initial * self.multiplier ** min(attempt, 64)
        base = min(self.maximum, base)
        if self.jitter:
            base *= rng.uniform(1 - self.jitter, 1 + self.jitter)
        return min(self.maximum, base)


@attrs.frozen(kw_only=True)
class ChildSpec:
    """Fields every child has: a unique name among its siblings, restart type and the
    time it is given to stop gracefully before it is cancelled."""

    name: str = attrs.field(validator=_check_name)
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float = attrs.field(default=5.0, validator=_non_negative)


@attrs.frozen(kw_only=True)
class ActorSpec(ChildSpec, Generic[M]):
    """An actor: ``factory()`` makes a fresh ``Actor`` on every (re)start and re-activation.

    ``mailbox_capacity`` bounds the mailbox (``tell`` waits, ``tell_nowait`` raises when full).
    ``passivate_after`` (seconds, or None) passivates the actor once it has been idle that
    long: the instance leaves memory and the next message re-activates it.
    """

    factory: Callable[[], Actor[M]]
    mailbox_capacity: int = attrs.field(default=64, validator=_positive)
    passivate_after: float | None = attrs.field(default=None)

    @passivate_after.validator
    def _check_passivate_after(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            _positive(self, attribute, value)


@attrs.frozen(kw_only=True)
class ServiceSpec(ChildSpec):
    """A supervised non-actor service, e.g. ``functools.partial(serve, app, config)``.

    ``run`` is called as ``run(task_status=...)`` (plus ``stop_requested=<trio.Event>`` when
    ``graceful`` is true) and must call ``task_status.started(value)`` once ready; a failure
    before that makes ``start_child`` raise. It should run until cancelled. Returning counts
    as a normal exit and raising as a failure.

    On stop: with ``graceful``, the ``stop_requested`` event is set and the service has
    ``shutdown_timeout`` seconds to return (e.g. hypercorn's ``shutdown_trigger``); then, or
    at once without ``graceful``, its task is cancelled.
    """

    run: Callable[..., Awaitable[object]]
    graceful: bool = False


def _child_tuple(children: Iterable[ChildSpec]) -> tuple[ChildSpec, ...]:
    return tuple(children)


@attrs.frozen(kw_only=True)
class SupervisorSpec(ChildSpec):
    """A supervisor: its strategy, restart intensity, backoff and initial children.

    More than ``max_restarts`` restarts within ``within_seconds`` make it give up: it stops
    its children and fails with ``RestartIntensityExceeded`` to its own parent. Children
    start in the order given and stop in reverse order. Dynamic children added with
    ``Supervisor.start_child`` are lost when the supervisor itself restarts (as OTP).
    ``shutdown_timeout`` defaults to infinity: a supervisor's stop is bounded by its
    children's timeouts.
    """

    strategy: RestartStrategy = RestartStrategy.ONE_FOR_ONE
    max_restarts: int = attrs.field(default=3, validator=_non_negative)
    within_seconds: float = attrs.field(default=5.0, validator=_positive)
    backoff: Backoff = attrs.field(factory=Backoff)
    children: tuple[ChildSpec, ...] = attrs.field(default=(), converter=_child_tuple)
    shutdown_timeout: float = attrs.field(default=math.inf, validator=_non_negative)

    @children.validator
    def _check_unique(self, attribute: attrs.Attribute[Any], value: tuple[ChildSpec, ...]) -> None:
        names = [child.name for child in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(
                f"supervisor {self.name!r} has duplicate child names {duplicates}; "
                "give every child a unique name"
            )
