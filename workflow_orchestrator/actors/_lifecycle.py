"""Lifecycle values shared by actors and supervisors: states, stop reasons, failures."""

from __future__ import annotations

import enum

import attrs


class LifecycleState(enum.Enum):
    """Where a child (actor, service or supervisor) is in its life.

    ``starting`` -> ``running`` -> (``restarting`` -> ``running``)* -> ``stopping`` ->
    ``stopped``; an idle actor may go ``running`` -> ``passivated`` -> ``running``.
    """

    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    PASSIVATED = "passivated"
    STOPPED = "stopped"


class StopKind(enum.Enum):
    """Why an actor's ``on_stop`` runs or why a watched actor terminated."""

    NORMAL = "normal"
    """It stopped itself or was stopped on request."""
    FAILURE = "failure"
    """It raised; ``StopReason.error`` holds the exception."""
    SHUTDOWN = "shutdown"
    """Its supervisor stopped (system shutdown or escalation)."""
    RESTART = "restart"
    """A sibling failed and the strategy restarts it too (``on_stop`` only)."""
    PASSIVATION = "passivation"
    """It was idle longer than its passivation timeout (``on_stop`` only)."""


@attrs.frozen(kw_only=True)
class StopReason:
    """Why an actor stops: the kind and, for failures, the exception."""

    kind: StopKind
    error: BaseException | None = None


@attrs.frozen(kw_only=True)
class Terminated:
    """Death-watch notification delivered to a watching actor's mailbox."""

    path: str
    reason: StopReason


@attrs.frozen(kw_only=True)
class FailureInfo:
    """The last failure of a child: exception type, message and wall-clock time (epoch s)."""

    type: str
    message: str
    time: float
